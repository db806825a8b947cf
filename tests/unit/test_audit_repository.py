"""The audit store's pure parts and its in-memory fake (no server)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.audit.repository import (
    AuditRow,
    FakeAuditRepository,
    event_summary,
    to_row,
    unique_by_event_id,
)
from shared.codec import InvalidMessage
from tests.factories import T0, sample_events


def _json_events() -> list[dict[str, Any]]:
    return [event.model_dump(mode="json") for event in sample_events()]


def _rows() -> list[AuditRow]:
    return [to_row(event, "tickets.test", 0, offset) for offset, event in enumerate(_json_events())]


# ----------------------------------------------------------------------------- to_row


def test_to_row_takes_the_envelope_from_the_event_and_the_position_from_kafka() -> None:
    event = _json_events()[1]

    row = to_row(event, "tickets.classified", 3, 42)

    assert row == AuditRow(
        event_id=event["event_id"],
        event_type="ticket.classified",
        ticket_id="T-1",
        trace_id=event["trace_id"],
        causation_id=event["causation_id"],
        occurred_at=T0,
        topic="tickets.classified",
        partition=3,
        kafka_offset=42,
        producer_service="classifier",
        schema_version=1,
        payload=event,
    )


def test_to_row_keeps_the_whole_event_as_the_payload() -> None:
    for event in _json_events():
        assert to_row(event, "t", 0, 0).payload == event


def test_to_row_of_a_validated_event_equals_to_row_of_its_json() -> None:
    for event in sample_events():
        assert to_row(event, "t", 1, 2) == to_row(event.model_dump(mode="json"), "t", 1, 2)


def test_to_row_gives_upstream_events_no_cause() -> None:
    received = _json_events()[0]

    assert to_row(received, "tickets.inbound", 0, 0).causation_id is None
    assert to_row({**received, "causation_id": ""}, "tickets.inbound", 0, 0).causation_id is None


def test_to_row_accepts_a_python_mode_dump_with_datetimes() -> None:
    event = sample_events()[2]

    assert to_row(event.model_dump(), "t", 0, 0).occurred_at == T0


@pytest.mark.parametrize(
    "field", ["event_id", "event_type", "ticket_id", "trace_id", "occurred_at", "schema_version"]
)
def test_to_row_refuses_an_event_missing_an_envelope_field(field: str) -> None:
    event = _json_events()[1]
    del event[field]

    with pytest.raises(InvalidMessage) as refused:
        to_row(event, "t", 0, 0)
    assert refused.value.reason == "schema_violation"
    assert field in refused.value.detail


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", ""),
        ("event_id", 7),
        ("causation_id", 7),
        ("schema_version", True),
        ("schema_version", "1"),
        ("occurred_at", "yesterday"),
        ("occurred_at", "2026-11-25T12:00:00"),
        ("producer", "classifier"),
        ("producer", {"version": "1"}),
    ],
)
def test_to_row_refuses_an_envelope_field_of_the_wrong_type(field: str, value: object) -> None:
    event = {**_json_events()[1], field: value}

    with pytest.raises(InvalidMessage, match="schema_violation"):
        to_row(event, "t", 0, 0)


def test_to_row_replaces_nul_characters_that_postgresql_text_cannot_hold() -> None:
    event = {**_json_events()[0], "ticket_id": "T-\x001", "causation_id": "c\x00"}

    row = to_row(event, "tickets.inbound", 0, 0)

    assert (row.ticket_id, row.causation_id) == ("T-\ufffd1", "c\ufffd")


def test_to_row_refuses_a_schema_version_postgresql_cannot_store() -> None:
    with pytest.raises(InvalidMessage, match="schema_version"):
        to_row({**_json_events()[0], "schema_version": 2**31}, "t", 0, 0)


def test_unique_by_event_id_keeps_the_first_of_each_in_order() -> None:
    a, b, c = _rows()[:3]
    a_again = dataclasses.replace(a, topic="tickets.replay")

    assert unique_by_event_id([a, b, a_again, c, b]) == [a, b, c]


# ---------------------------------------------------------------------------- summary


def test_a_degraded_classification_says_why() -> None:
    payload = {"category": "billing", "confidence": 0.5, "degraded": True}

    assert event_summary("ticket.classified", payload | {"degraded_reason": "llm timeout"}) == (
        "billing 0.50, degraded: llm timeout"
    )
    # A missing value reads as SQL's format('%s', NULL) does: empty.
    assert event_summary("ticket.classified", payload) == "billing 0.50, degraded: "


def test_confidence_is_rounded_half_up_like_postgresql() -> None:
    assert event_summary("ticket.classified", {"category": "x", "confidence": 0.125}) == "x 0.13"
    assert event_summary("ticket.classified", {"category": "x", "confidence": "high"}) == "x "


def test_a_decision_lists_every_rule_that_fired_in_order() -> None:
    rules = [{"rule_id": "vip-cap"}, {"reason": "no id"}, "junk", {"rule_id": "negative"}]

    assert event_summary("ticket.decided", {"mode": "human", "rules_fired": rules}) == (
        "human (vip-cap, negative)"
    )
    assert event_summary("ticket.decided", {"mode": "autonomous", "rules_fired": []}) == (
        "autonomous"
    )


def test_an_unknown_event_type_has_no_summary() -> None:
    assert event_summary("ticket.archived", {"anything": 1}) is None


# ------------------------------------------------------------------------------- fake


async def test_the_fake_records_each_event_once_within_and_across_batches() -> None:
    repository, rows = FakeAuditRepository(), _rows()

    assert await repository.insert(rows + rows[:2]) == len(rows)
    assert await repository.insert(rows) == 0
    assert await repository.count_events() == len(rows)
    assert {row.event_id for row in repository.rows} == {row.event_id for row in rows}
    assert [len(batch) for batch in repository.batches] == [len(rows) + 2, len(rows)]


async def test_the_fake_assigns_seq_in_event_id_order_within_a_batch_like_postgres() -> None:
    repository = FakeAuditRepository()
    await repository.insert(_rows())

    assert [row.event_id for row in repository.rows] == sorted(r.event_id for r in _rows())


async def test_a_failing_fake_records_nothing() -> None:
    repository = FakeAuditRepository()
    repository.failure = ConnectionError("database down")

    with pytest.raises(ConnectionError):
        await repository.insert(_rows())
    assert await repository.count_events() == 0


async def test_the_fake_trail_is_in_causal_order_with_summaries_and_hops() -> None:
    repository = FakeAuditRepository()
    rows = _rows()
    await repository.insert(rows[::-1])

    trail = await repository.trail("T-1")

    assert [(e.position, e.event_type, e.summary) for e in trail] == [
        (1, "ticket.received", "email from zendesk, tier vip"),
        (2, "ticket.classified", "billing 0.97"),
        (3, "ticket.decided", "assist (vip-cap)"),
        (4, "ticket.routed", "queue billing, p2"),
        (5, "ticket.feedback", "override by agent-7"),
    ]
    assert trail[0].hop_ms is None
    assert trail[2].hop_ms == 0.0
    assert await repository.trail("T-unknown") == []


async def test_an_effect_stamped_before_its_cause_still_follows_it() -> None:
    received, classified = _rows()[:2]
    received = dataclasses.replace(received, occurred_at=T0)
    classified = dataclasses.replace(classified, occurred_at=T0 - timedelta(seconds=2))
    repository = FakeAuditRepository()
    await repository.insert([classified, received])

    trail = await repository.trail("T-1")

    assert [e.event_type for e in trail] == ["ticket.received", "ticket.classified"]
    assert trail[1].hop_ms == -2000.0


async def test_events_on_a_causation_cycle_still_appear_in_the_trail() -> None:
    base = _rows()[1]
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def event(event_id: str, cause: str, seconds: int) -> AuditRow:
        payload = {**base.payload, "event_id": event_id, "causation_id": cause}
        return dataclasses.replace(
            base,
            event_id=event_id,
            causation_id=cause,
            occurred_at=at + timedelta(seconds=seconds),
            payload=payload,
        )

    repository = FakeAuditRepository()
    await repository.insert(
        [event("a", "b", 2), event("b", "a", 1), event("self", "self", 3), event("c", "self", 0)]
    )

    trail = await repository.trail("T-1")

    assert [e.event_id for e in trail] == ["b", "a", "self", "c"]
