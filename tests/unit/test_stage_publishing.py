"""What one consumed batch leaves behind: records, headers, log lines and metrics (no Kafka)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from loguru import logger
from opentelemetry import trace
from prometheus_client import CollectorRegistry

from shared.codec import encode
from shared.contracts import ProducerInfo, Stage, TicketReceived
from shared.metrics import StageMetrics
from shared.stage import (
    DeadLetterTarget,
    Headers,
    Incoming,
    Outgoing,
    RetryPolicy,
    subscribe_stage,
)
from shared.tracing import _parent, traceparent_of, untraced_traceparent
from tests.factories import received

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class FakeBroker:
    """Keeps the batch handler the stage registers."""

    def __init__(self) -> None:
        self.handle: Any = None

    def subscriber(self, *topics: str, **options: object) -> Any:
        def register(handle: Any) -> Any:
            self.handle = handle
            return handle

        return register


class FakeSender:
    """Records what would be sent; every send is acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, Headers]] = []

    async def send(
        self, topic: str, value: bytes, *, key: bytes, headers: Headers
    ) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value, headers))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


class Batch:
    """The part of faststream's KafkaMessage the handler reads."""

    def __init__(self, records: list[ConsumerRecord[Any, Any]]) -> None:
        self.raw_message = tuple(records)


def record(offset: int, value: bytes, headers: Headers | None = None) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(
        "in",
        0,
        offset,
        1_700_000_000_000,
        0,
        b"T-1",
        value,
        None,
        3,
        len(value),
        tuple(headers or ()),
    )


async def echo(batch: list[Incoming]) -> list[Outgoing]:
    """Publish every valid ticket to `out`; anything else fails the record."""
    out = []
    for incoming in batch:
        ticket = TicketReceived.model_validate_json(incoming.value or b"")
        out.append(Outgoing("out", ticket.ticket_id, ticket, cause=incoming))
    return out


@pytest.fixture
def stage() -> tuple[FakeBroker, FakeSender, StageMetrics]:
    return subscribed(FakeSender())


def subscribed(sender: FakeSender) -> tuple[FakeBroker, FakeSender, StageMetrics]:
    """Register a policy-like stage that echoes tickets to `out`, dead letters to `dlq`."""
    broker = FakeBroker()
    metrics = StageMetrics.create(CollectorRegistry())
    subscribe_stage(
        broker,  # type: ignore[arg-type]
        topics=["in"],
        group_id="g",
        process=echo,
        max_records=500,
        batch_timeout_ms=50,
        title="policy",
        metrics=metrics,
        sender=sender,
        retry=RetryPolicy(backoff_initial_s=0.001),
        dead_letters=DeadLetterTarget(
            stage=Stage.POLICY, producer=ProducerInfo(service="policy", version="t"), topic="dlq"
        ),
    )
    return broker, sender, metrics


@pytest.fixture
def lines() -> Iterator[list[dict[str, Any]]]:
    """Every log line (level, message, bound context) written while the test runs."""
    seen: list[dict[str, Any]] = []
    sink = logger.add(
        lambda m: seen.append(
            {"level": m.record["level"].name, "message": m.record["message"], **m.record["extra"]}
        ),
        level="DEBUG",
    )
    yield seen
    logger.remove(sink)


def ticket(ticket_id: str) -> bytes:
    return encode(received(ticket_id, trace_id=TRACE_ID))


async def test_every_record_is_sent_with_its_content_type_trace_id_and_traceparent(
    stage: tuple[FakeBroker, FakeSender, StageMetrics],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No tracer provider installed (another test may have installed one process-wide).
    monkeypatch.setattr("shared.stage.tracing_enabled", lambda: False)
    broker, sender, _ = stage
    traced = record(0, ticket("T-1"), [("traceparent", PARENT.encode())])
    await broker.handle(Batch([traced, record(1, ticket("T-2"))]))

    assert [(topic, key) for topic, key, _, _ in sender.sent] == [("out", b"T-1"), ("out", b"T-2")]
    first, second = (dict(headers) for _, _, _, headers in sender.sent)
    assert first["content-type"] == second["content-type"] == b"application/json"
    assert first["trace_id"] == TRACE_ID.encode()
    # Without a tracer provider the record names its producer's span, or the ticket's root.
    assert first["traceparent"] == PARENT.encode()
    assert second["traceparent"] == f"00-{TRACE_ID}-{TRACE_ID[:16]}-01".encode()


async def test_a_batch_logs_one_info_line_and_one_debug_line_per_event_with_its_context(
    stage: tuple[FakeBroker, FakeSender, StageMetrics], lines: list[dict[str, Any]]
) -> None:
    broker, _, _ = stage
    await broker.handle(Batch([record(7, ticket("T-1")), record(8, ticket("T-2"))]))

    info = [line for line in lines if line["level"] == "INFO"]
    assert len(info) == 1
    assert info[0]["records"] == 2
    assert info[0]["published"] == {"out": 2}
    debug = [line for line in lines if line["message"].startswith("published")]
    assert [(d["ticket_id"], d["offset"]) for d in debug] == [("T-1", 7), ("T-2", 8)]
    for line in debug:
        assert line["trace_id"] == TRACE_ID
        assert (line["topic"], line["partition"], line["service"]) == ("in", 0, "policy")


async def test_a_batch_times_its_work_apart_from_waiting_for_the_brokers_acknowledgements(
    lines: list[dict[str, Any]],
) -> None:
    broker, _, metrics = subscribed(SlowAcks(seconds=0.2))
    await broker.handle(Batch([record(0, ticket("T-1")), record(1, ticket("T-2"))]))

    (info,) = [line for line in lines if line["level"] == "INFO"]
    assert info["ms"] >= 200
    assert info["work_ms"] < info["ms"] - 150
    registry = metrics.registry
    assert registry.get_sample_value("triageflow_batch_work_seconds_count") == 1
    assert registry.get_sample_value("triageflow_batch_work_seconds_sum") == pytest.approx(
        info["work_ms"] / 1000
    )


class SlowAcks(FakeSender):
    """A broker that acknowledges every record `seconds` after it was sent."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    async def send(
        self, topic: str, value: bytes, *, key: bytes, headers: Headers
    ) -> asyncio.Future[Any]:
        self.sent.append((topic, key, value, headers))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(self.seconds, future.set_result, None)
        return future


async def test_a_dead_letter_is_logged_as_an_error_and_counted_by_stage_and_reason(
    stage: tuple[FakeBroker, FakeSender, StageMetrics], lines: list[dict[str, Any]]
) -> None:
    broker, sender, metrics = stage
    await broker.handle(Batch([record(0, ticket("T-1")), record(1, b"{broken")]))

    assert [topic for topic, _, _, _ in sender.sent] == ["out", "dlq"]
    errors = [line for line in lines if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["offset"] == 1
    registry = metrics.registry
    assert registry.get_sample_value("triageflow_messages_in_total", {"topic": "in"}) == 2
    assert registry.get_sample_value("triageflow_messages_out_total", {"topic": "out"}) == 1
    dead = {"stage": "policy", "reason": "processing_error"}
    assert registry.get_sample_value("triageflow_dead_letters_total", dead) == 1


@pytest.mark.parametrize(
    ("trace_id", "parent"),
    [
        (TRACE_ID, PARENT),
        (TRACE_ID, None),
        (TRACE_ID, f"00-{'1' * 32}-00f067aa0ba902b7-01"),  # another trace's parent
        (TRACE_ID, "garbage"),
        ("0000000000000000" + TRACE_ID[16:], None),  # a root span id of zero
        ("0" * 32, None),  # the invalid trace id
        ("not-a-trace-id", None),
    ],
)
def test_the_untraced_traceparent_is_what_a_no_op_tracer_would_give(
    trace_id: str, parent: str | None
) -> None:
    tracer = trace.NoOpTracerProvider().get_tracer("test")
    with tracer.start_as_current_span("x", context=_parent(trace_id, parent)) as span:
        expected = traceparent_of(span, trace_id)
    assert untraced_traceparent(trace_id, parent) == expected
