"""What turns a broker with subscribers into a runnable service.

Every service exposes `/health/live` (the process answers), `/health/ready` (the broker
answers) and `/metrics` (Prometheus) next to its Kafka subscribers, and stops gracefully
on SIGTERM: uvicorn's lifespan shutdown stops fetching, lets running handlers finish
within the broker's graceful timeout, and commits.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

from faststream.asgi import AsgiFastStream, AsgiResponse, get, make_ping_asgi
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.specification import AsyncAPI
from loguru import logger
from prometheus_client import CollectorRegistry, make_asgi_app

from shared.contracts import ProducerInfo, Stage
from shared.kafka import make_broker
from shared.logging import configure_logging
from shared.metrics import StageMetrics
from shared.stage import (
    DeadLetterTarget,
    Outgoing,
    Process,
    RecordSender,
    RetryPolicy,
    subscribe_stage,
)
from shared.topics import Topics
from shared.tracing import configure_tracing

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker

    from shared.settings import ServiceSettings, StageSettings


def triageflow_version() -> str:
    """Return the installed triageflow version."""
    try:
        return metadata.version("triageflow")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def producer_info(service: str, settings: ServiceSettings) -> ProducerInfo:
    """Return how this copy of a service names itself in the events it produces."""
    return ProducerInfo(
        service=service, version=triageflow_version(), instance=settings.instance_id
    )


@get(include_in_schema=False)
async def _live(scope: Any) -> AsgiResponse:  # Any: faststream resolves this annotation at runtime
    return AsgiResponse(b"ok", 200)


def service_app(broker: KafkaBroker, *, title: str, registry: CollectorRegistry) -> AsgiFastStream:
    """Return the ASGI application of one service: subscribers plus ops endpoints."""
    return AsgiFastStream(
        broker,
        asgi_routes=[
            ("/health/live", _live),
            ("/health/ready", make_ping_asgi(broker, timeout=5.0, include_in_schema=False)),
            ("/metrics", make_asgi_app(registry)),
        ],
        logger=None,
        specification=AsyncAPI(title=title, version=triageflow_version()),
    )


def stage_app(
    settings: StageSettings,
    *,
    service: str,
    topics: Sequence[str],
    process: Process,
    description: str,
    metrics: StageMetrics,
    observe: Callable[[list[Outgoing]], None] | None = None,
    dead_letter_failing: bool = True,
) -> AsgiFastStream:
    """Return a service that consumes `topics` in batches and runs `process` on each.

    Records that fail `max_attempts` times are dead-lettered unless `dead_letter_failing`
    is off (the audit consumer: skipping an event there would lose it from the trail).
    """
    broker = make_broker(
        settings.kafka,
        client_id=f"triageflow-{service}",
        graceful_timeout=settings.graceful_timeout_s,
        description=description,
        middlewares=(KafkaPrometheusMiddleware(registry=metrics.registry, app_name=service),),
    )
    # The stage publishes through its own producer (see RecordSender), closed only after
    # the broker let the running batch finish and commit.
    sender = RecordSender(settings.kafka, client_id=f"triageflow-{service}")
    subscribe_stage(
        broker,
        topics=topics,
        group_id=settings.group_id,
        process=process,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        title=service,
        metrics=metrics,
        sender=sender,
        observe=observe,
        retry=RetryPolicy(
            max_attempts=settings.max_attempts, backoff_max_s=settings.retry_backoff_max_s
        ),
        dead_letters=DeadLetterTarget(
            stage=Stage(service),
            producer=producer_info(service, settings),
            topic=Topics(settings.kafka.topic_prefix).deadletter,
        )
        if dead_letter_failing
        else None,
    )
    app = service_app(broker, title=f"triageflow {service}", registry=metrics.registry)
    app.after_shutdown(sender.stop)
    return app


def _exit_when_the_broker_cannot_start(app: AsgiFastStream, *, service: str) -> None:
    # faststream starts the broker after the ASGI startup completed; when that fails
    # (unreachable, bad credentials) uvicorn stops serving but the process hangs on, looking
    # alive and consuming nothing. Nothing was consumed yet, so exiting loses nothing, and
    # the supervisor (Kubernetes, `triageflow up`) restarts it.
    broker = app.broker
    assert broker is not None
    start = broker.start

    async def start_or_exit() -> None:
        try:
            await start()
        except Exception:
            logger.exception("{}: the Kafka broker did not start; exiting", service)
            sys.stderr.flush()
            os._exit(1)

    broker.start = start_or_exit  # type: ignore[method-assign]


def run_service(app: AsgiFastStream, *, service: str, settings: ServiceSettings) -> None:
    """Run a service until SIGTERM/SIGINT, serving its ops endpoints on `http_port`."""
    configure_logging(
        service=service,
        instance=settings.instance_id,
        json=settings.log_json,
        level=settings.log_level,
    )
    configure_tracing(
        service=service, exporter=settings.otel_exporter, endpoint=settings.otel_endpoint
    )
    options: dict[str, object] = {
        "host": settings.http_host,
        "port": settings.http_port,
        "timeout_graceful_shutdown": settings.graceful_timeout_s,
    }
    _exit_when_the_broker_cannot_start(app, service=service)
    asyncio.run(app.run(run_extra_options=options))  # type: ignore[arg-type]
