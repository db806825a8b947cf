"""The router's composition root."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from faststream.asgi import AsgiFastStream
from prometheus_client import CollectorRegistry

from services.router.handlers import RouterHandler
from services.router.routing import RoutingTable, load_default_routing, load_routing
from services.router.settings import RouterSettings
from shared.contracts import utc_now
from shared.kafka import make_broker
from shared.service import producer_info, service_app
from shared.stage import subscribe_stage
from shared.topics import Topics

SERVICE = "router"


def build_app(
    settings: RouterSettings,
    *,
    table: RoutingTable | None = None,
    clock: Callable[[], datetime] = utc_now,
    registry: CollectorRegistry | None = None,
) -> AsgiFastStream:
    """Wire the router: routing table, broker, subscriber, ops endpoints."""
    if table is None:
        table = (
            load_routing(settings.routing_file) if settings.routing_file else load_default_routing()
        )
    topics = Topics(settings.kafka.topic_prefix)
    broker = make_broker(
        settings.kafka,
        client_id=f"triageflow-{SERVICE}",
        graceful_timeout=settings.graceful_timeout_s,
        description="Routes decided tickets to downstream queues.",
    )
    handler = RouterHandler(
        table, topics=topics, producer=producer_info(SERVICE, settings), clock=clock
    )
    subscribe_stage(
        broker,
        topic=topics.decided,
        group_id=settings.group_id,
        process=handler,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        title="router",
    )
    return service_app(broker, title="triageflow router", registry=registry or CollectorRegistry())
