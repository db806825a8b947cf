"""Every service is visible: metrics that move, health endpoints, logs and spans per ticket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from services.audit.app import build_app as build_audit
from services.audit.migrate import apply_migrations
from services.audit.repository import PostgresAuditRepository, connect_pool
from services.audit.settings import AuditSettings
from services.classifier.app import build_app as build_classifier
from services.classifier.settings import ClassifierSettings
from services.policy.app import build_app as build_policy
from services.policy.settings import PolicySettings
from services.router.app import build_app as build_router
from services.router.routing import load_default_routing
from services.router.settings import RouterSettings
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topics import Topics, ensure_topics
from tests.asgi import get as _get
from tests.kafka_tools import publish
from tests.running import running
from tests.waiting import eventually

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SERVICES = ("classifier", "policy", "router", "audit")

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """Spans recorded by every service in this process."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    trace.set_tracer_provider(provider)
    return _EXPORTER


@pytest.fixture
def log_lines() -> Iterator[list[dict[str, Any]]]:
    """Every log line written while the test runs, parsed from loguru's JSON."""
    lines: list[dict[str, Any]] = []
    sink = logger.add(lambda m: lines.append(json.loads(m)["record"]), serialize=True)
    yield lines
    logger.remove(sink)


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_metrics_health_logs_and_traces_follow_one_ticket_through_all_four_services(
    kafka_settings: KafkaSettings,
    fresh_database: str,
    tmp_path: Path,
    spans: InMemorySpanExporter,
    log_lines: list[dict[str, Any]],
) -> None:
    topics = Topics(kafka_settings.topic_prefix)
    queues = [topics.queue(q) for q in load_default_routing().queue_names()]
    await ensure_topics(kafka_settings, [*topics.pipeline(), *queues])
    apply_migrations(fresh_database)
    group = topics.prefix
    registries = {name: CollectorRegistry() for name in SERVICES}
    apps = {
        "classifier": build_classifier(
            ClassifierSettings(
                kafka=kafka_settings, group_id=f"{group}c", model_cache_dir=tmp_path
            ),
            registry=registries["classifier"],
        ),
        "policy": build_policy(
            PolicySettings(kafka=kafka_settings, group_id=f"{group}p"),
            registry=registries["policy"],
        ),
        "router": build_router(
            RouterSettings(kafka=kafka_settings, group_id=f"{group}r"),
            registry=registries["router"],
        ),
        "audit": build_audit(
            AuditSettings(
                kafka=kafka_settings,
                group_id=f"{group}a",
                database=DatabaseSettings(url=fresh_database),
            ),
            registry=registries["audit"],
        ),
    }
    ticket = {"ticket_id": "OBS-1", "trace_id": TRACE_ID, "body": "I was charged twice"}

    async with running(*apps.values()):
        for name, app in apps.items():
            assert (await _get(app, "/health/live")).status_code == 200, name
            assert (await _get(app, "/health/ready")).status_code == 204, name
        before = {name: (await _get(app, "/metrics")).text for name, app in apps.items()}
        await publish(kafka_settings, topics.inbound, [(b"OBS-1", json.dumps(ticket).encode())])
        pool = await connect_pool(fresh_database)
        try:
            store = PostgresAuditRepository(pool)
            await eventually(store.count_events, until=lambda n: n >= 4, what="4 audited events")
        finally:
            await pool.close()
        after = {name: (await _get(app, "/metrics")).text for name, app in apps.items()}

    for name in SERVICES:
        moved = _metric(after[name], "triageflow_messages_in_total") - _metric(
            before[name], "triageflow_messages_in_total"
        )
        assert moved >= 1, f"{name}: messages_in did not move"
        assert "triageflow_consumer_lag" in after[name], name
        assert "triageflow_batch_processing_seconds_bucket" in after[name], name
    assert _metric(after["policy"], "triageflow_decisions_total") == 1
    assert _metric(after["classifier"], "triageflow_classification_confidence_count") == 1
    assert _metric(after["router"], "triageflow_routed_total") == 1

    services_logging_the_trace = {
        str(line["extra"].get("service"))
        for line in log_lines
        if line["extra"].get("trace_id") == TRACE_ID and line["extra"].get("ticket_id") == "OBS-1"
    }
    assert services_logging_the_trace >= set(SERVICES)

    ticket_spans: list[ReadableSpan] = [
        s
        for s in spans.get_finished_spans()
        if s.context and s.context.trace_id == int(TRACE_ID, 16)
    ]
    names = {s.name.split(" ")[0] for s in ticket_spans}
    assert names >= set(SERVICES), names
    audit_spans = [s for s in ticket_spans if s.name == "audit record"]
    producer_span_ids = {s.context.span_id for s in ticket_spans if s.context}
    assert any(s.parent and s.parent.span_id in producer_span_ids for s in audit_spans), (
        "the audit span is parented by the span that published the event (traceparent header)"
    )
