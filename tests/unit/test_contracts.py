"""The event contracts: forgiving inbound, strict everything else, deterministic ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel

from shared.codec import InvalidMessage, decode, encode
from shared.contracts import (
    EVENT_TYPES,
    FeedbackGiven,
    Mode,
    TicketClassified,
    TicketReceived,
)
from shared.ids import derived_event_id
from tests.factories import sample_events


def test_minimal_inbound_json_is_accepted_and_defaulted() -> None:
    ticket = decode(b'{"ticket_id": "T-1", "body": "My card was charged twice"}', TicketReceived)

    assert ticket.ticket_id == "T-1"
    assert ticket.body == "My card was charged twice"
    assert ticket.subject == ""
    assert ticket.channel == "unknown"
    assert ticket.source == "unknown"
    assert ticket.customer.tier == "standard"
    assert ticket.customer.id is None
    assert ticket.metadata == {}
    assert ticket.event_type == "ticket.received"
    assert ticket.schema_version == 1
    assert ticket.producer.service == "upstream"
    assert ticket.occurred_at.tzinfo is not None
    assert len(ticket.event_id) == 36
    assert len(ticket.trace_id) == 32


def test_republished_duplicate_gets_the_same_event_id() -> None:
    raw = b'{"ticket_id": "T-1", "body": "hello", "subject": "hi"}'
    reordered = b'{"subject": "hi", "body": "hello", "ticket_id": "T-1"}'

    assert decode(raw, TicketReceived).event_id == decode(reordered, TicketReceived).event_id


def test_different_content_gets_a_different_event_id() -> None:
    first = decode(b'{"ticket_id": "T-1", "body": "hello"}', TicketReceived)
    second = decode(b'{"ticket_id": "T-1", "body": "hello again"}', TicketReceived)

    assert first.event_id != second.event_id


def test_upstream_event_id_and_trace_id_are_kept_when_given() -> None:
    ticket = TicketReceived(ticket_id="T-1", body="x", event_id="e-1", trace_id="t-1")

    assert (ticket.event_id, ticket.trace_id) == ("e-1", "t-1")


def test_inbound_ignores_unknown_fields() -> None:
    ticket = decode(b'{"ticket_id": "T-1", "body": "x", "priority": "urgent"}', TicketReceived)

    assert not hasattr(ticket, "priority")


@pytest.mark.parametrize(
    ("raw", "reason", "mentions"),
    [
        (b'{"body": "no id"}', "schema_violation", "ticket_id"),
        (b'{"ticket_id": "T-1"}', "schema_violation", "body"),
        (b'{"ticket_id": 42, "body": "x"}', "schema_violation", "ticket_id"),
        (b'{"ticket_id": "T-1", "body": ["x"]}', "schema_violation", "body"),
        (b'{"ticket_id": "T-1", "body": "   "}', "schema_violation", "empty"),
        (b'{"ticket_id": "T-1", "body": "x", "customer": {"tier": 3}}', "schema_violation", "tier"),
        (
            b'{"ticket_id": "T-1", "body": "x", "metadata": {"a": {"b": 1}}}',
            "schema_violation",
            "metadata",
        ),
        (
            b'{"ticket_id": "T-1", "body": "x", "occurred_at": "yesterday"}',
            "schema_violation",
            "occurred_at",
        ),
        (b'{"ticket_id": "T-1", "body": ', "invalid_json", "line 1"),
        (b"not json at all", "invalid_json", "Expecting value"),
        (b'["T-1", "body"]', "not_an_object", "list"),
        (b"", "empty_message", "empty"),
        (b'{"ticket_id": "T-1", "body": "\xff\xfe"}', "invalid_utf8", "byte"),
    ],
)
def test_bad_inbound_is_rejected_with_a_clear_reason(
    raw: bytes, reason: str, mentions: str
) -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode(raw, TicketReceived)

    assert caught.value.reason == reason
    assert mentions in caught.value.detail


def test_body_over_the_size_limit_is_rejected() -> None:
    raw = json.dumps({"ticket_id": "T-1", "body": "a" * 20_001}).encode()

    with pytest.raises(InvalidMessage) as caught:
        decode(raw, TicketReceived)

    assert caught.value.reason == "schema_violation"
    assert "body" in caught.value.detail


def test_message_over_the_byte_limit_is_rejected_before_parsing() -> None:
    with pytest.raises(InvalidMessage) as caught:
        decode(b"{" + b" " * 300_000 + b"}", TicketReceived)

    assert caught.value.reason == "too_large"


def test_deeply_nested_json_is_rejected_not_crashing() -> None:
    raw = b'{"ticket_id": "T-1", "body": "x", "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    with pytest.raises(InvalidMessage):
        decode(raw, TicketReceived, max_bytes=10**6)


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: e.event_type)
def test_every_event_round_trips_through_json(event: BaseModel) -> None:
    again = decode(encode(event), type(event))

    assert again == event


def test_every_event_type_has_a_sample() -> None:
    assert {e.model_dump()["event_type"] for e in sample_events()} == set(EVENT_TYPES)


def test_derived_events_refuse_unknown_fields() -> None:
    classified = next(e for e in sample_events() if isinstance(e, TicketClassified))
    data = json.loads(encode(classified)) | {"surprise": 1}

    with pytest.raises(InvalidMessage) as caught:
        decode(json.dumps(data).encode(), TicketClassified)

    assert "surprise" in caught.value.detail


def test_events_are_immutable() -> None:
    ticket = TicketReceived(ticket_id="T-1", body="x")

    with pytest.raises(ValueError, match="frozen"):
        ticket.body = "changed"  # type: ignore[misc]


def test_derived_ids_depend_only_on_cause_and_stage() -> None:
    assert derived_event_id("e-1", "classifier") == derived_event_id("e-1", "classifier")
    assert derived_event_id("e-1", "classifier") != derived_event_id("e-1", "policy")
    assert derived_event_id("e-1", "classifier") != derived_event_id("e-2", "classifier")


def test_feedback_must_carry_the_fields_of_its_kind() -> None:
    with pytest.raises(ValueError, match="lacks its fields"):
        FeedbackGiven(ticket_id="T-1", kind="override", decision_event_id="d-1", actor="agent-7")


def test_most_restrictive_mode_wins() -> None:
    assert Mode.lowest(Mode.AUTONOMOUS, Mode.ASSIST) is Mode.ASSIST
    assert Mode.lowest(Mode.ASSIST, Mode.HUMAN, Mode.AUTONOMOUS) is Mode.HUMAN


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        TicketReceived(ticket_id="T-1", body="x", occurred_at=datetime(2026, 1, 1))
    assert TicketReceived(ticket_id="T-1", body="x", occurred_at=datetime(2026, 1, 1, tzinfo=UTC))


def test_an_inbound_ticket_without_a_time_takes_the_record_timestamp_and_keeps_its_id() -> None:
    from shared.stage import Incoming, decode_record

    raw = b'{"ticket_id": "T-1", "body": "hello"}'
    first = Incoming("tickets.inbound", 0, 1, b"T-1", raw, timestamp_ms=1_764_072_000_000)
    again = Incoming("tickets.inbound", 3, 9, b"T-1", raw, timestamp_ms=1_764_075_600_000)

    one, two = decode_record(first, TicketReceived), decode_record(again, TicketReceived)

    assert one.occurred_at == datetime(2025, 11, 25, 12, 0, tzinfo=UTC)
    assert one.event_id == two.event_id == decode(raw, TicketReceived).event_id
    assert two.occurred_at > one.occurred_at


def test_schemas_command_writes_a_json_schema_per_event(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from services.cli.main import app

    result = CliRunner().invoke(app, ["schemas", "--out", str(tmp_path)])

    assert result.exit_code == 0, result.output
    written = {p.name.removesuffix(".schema.json") for p in tmp_path.glob("*.schema.json")}
    assert written >= {*EVENT_TYPES, "work_item"}
    received = json.loads((tmp_path / "ticket.received.schema.json").read_text())
    assert set(received["required"]) == {"ticket_id", "body"}
    assert received["properties"]["body"]["description"]
