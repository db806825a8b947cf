"""The router's pure decision: which queue, which priority, which SLA."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from services.router.routing import (
    RoutingError,
    escalate,
    load_default_routing,
    needs_escalation,
    parse_routing,
    route,
)
from shared.contracts import (
    FeedbackGiven,
    Mode,
    PolicyInfo,
    ProducerInfo,
    Signals,
    Thresholds,
    TicketDecided,
)
from shared.ids import derived_event_id
from shared.topics import Topics
from tests.factories import T0, classified, received, summary

PRODUCER = ProducerInfo(service="router")
TABLE = load_default_routing()


def decided(
    mode: Mode = Mode.AUTONOMOUS, *, tier: str = "standard", **classification: Any
) -> TicketDecided:
    """Return a decision on a classified ticket."""
    ticket = received(customer={"tier": tier})
    clf = classified(ticket, **classification)
    return TicketDecided(
        event_id=derived_event_id(clf.event_id, "policy"),
        ticket_id=clf.ticket_id,
        trace_id=clf.trace_id,
        causation_id=clf.event_id,
        producer=ProducerInfo(service="policy"),
        ticket=clf.ticket,
        classification=summary(clf),
        mode=mode,
        thresholds=Thresholds(autonomous=0.9, assist=0.5, ambiguity_margin=0.1),
        policy=PolicyInfo(
            name="p", version="1", content_hash="h", approved_by="a", approved_at="b"
        ),
        owner_team="billing-team",
    )


def test_a_category_goes_to_its_team_queue_with_its_default_priority() -> None:
    item, routed = route(decided(), TABLE, topics=Topics(), producer=PRODUCER, now=T0)

    assert (item.queue, routed.topic, item.priority) == ("billing", "queue.billing", "p3")
    assert routed.sla_due_at == T0 + timedelta(minutes=1440)
    assert not item.human_handling


def test_human_mode_goes_to_the_team_queue_flagged_for_a_human() -> None:
    item, routed = route(decided(Mode.HUMAN), TABLE, topics=Topics(), producer=PRODUCER, now=T0)

    assert item.queue == "billing"
    assert item.human_handling
    assert routed.human_handling


@pytest.mark.parametrize(
    "signals",
    [
        {"signals": Signals(out_of_scope=True)},
        {"signals": Signals(injection_suspected=True)},
        {"degraded": True, "degraded_reason": "llm down"},
        {"category": "astrology"},
    ],
)
def test_untrusted_classifications_go_to_the_fallback_triage_queue(
    signals: dict[str, Any],
) -> None:
    item, _ = route(
        decided(Mode.HUMAN, **signals), TABLE, topics=Topics(), producer=PRODUCER, now=T0
    )

    assert item.queue == "triage"


def test_the_most_urgent_matching_priority_rule_wins() -> None:
    vip = decided(tier="vip", urgency="critical")

    item, routed = route(vip, TABLE, topics=Topics(), producer=PRODUCER, now=T0)

    assert item.priority == routed.priority == "p1"
    assert routed.sla_due_at == T0 + timedelta(minutes=60)


def test_routing_ids_are_deterministic_and_linked_to_the_decision() -> None:
    decision = decided()

    first = route(decision, TABLE, topics=Topics(), producer=PRODUCER, now=T0)
    again = route(decision, TABLE, topics=Topics(), producer=PRODUCER, now=T0 + timedelta(1))

    assert first[0].idempotency_key == again[0].idempotency_key == first[1].work_item_id
    assert first[1].event_id == again[1].event_id
    assert first[1].causation_id == decision.event_id
    assert first[0].trail["decided_event_id"] == decision.event_id
    assert first[0].trail["received_event_id"] == decision.ticket.received_event_id


def test_work_item_carries_ticket_id_at_top_level_of_its_json() -> None:
    item, _ = route(decided(), TABLE, topics=Topics(), producer=PRODUCER, now=T0)

    assert item.model_dump(mode="json")["ticket_id"] == "T-1"


def test_routing_table_names_its_version_and_hash() -> None:
    assert TABLE.label.startswith("default-routing@1#")
    assert "triage" in TABLE.queue_names()


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("name: x\nversion: '1'\n", "fallback_queue"),
        ("name: x\nversion: '1'\nfallback_queue: Bad Queue!\n", "fallback_queue"),
        (
            "name: x\nversion: '1'\nfallback_queue: t\npriority_rules:\n"
            "  - {id: r1, when: [{field: nope, op: eq, value: 1}], priority: p1}\n",
            "unknown fields",
        ),
        ("name: [unclosed\n", "not valid YAML"),
        ("name: x\nversion: '1'\nfallback_queue: t\nsla_minutes: {p1: 5}\n", "sla_minutes"),
    ],
)
def test_broken_routing_tables_are_refused_naming_the_problem(text: str, mentions: str) -> None:
    with pytest.raises(RoutingError, match=mentions):
        parse_routing(text)


def _reaction(**fields: Any) -> FeedbackGiven:
    base: dict[str, Any] = {
        "ticket_id": "T-1",
        "kind": "customer_reaction",
        "decision_event_id": "d-1",
        "actor": "customer",
    }
    return FeedbackGiven.model_validate(base | fields)


@pytest.mark.parametrize(
    ("fields", "escalates"),
    [
        ({"negative_reply": True, "decision_mode": "autonomous"}, True),
        ({"csat": 1, "decision_mode": "autonomous"}, True),
        ({"csat": 2}, True),
        ({"csat": 4, "decision_mode": "autonomous"}, False),
        ({"negative_reply": True, "decision_mode": "human"}, False),
        ({"negative_reply": False, "csat": 5}, False),
    ],
)
def test_only_negative_reactions_to_ai_answers_are_escalated(
    fields: dict[str, Any], escalates: bool
) -> None:
    assert needs_escalation(_reaction(**fields)) is escalates


def test_an_escalation_goes_to_a_human_queue_and_is_recorded_as_routed() -> None:
    feedback = _reaction(negative_reply=True, decision_mode="autonomous")

    item, routed = escalate(feedback, TABLE, topics=Topics(), producer=PRODUCER, now=T0)

    assert item.queue == routed.queue == "triage"
    assert item.human_handling
    assert routed.human_handling
    assert routed.mode is Mode.HUMAN
    assert routed.reason == "negative_customer_reaction"
    assert routed.causation_id == feedback.event_id
    assert item.decision_event_id == "d-1"
    assert (
        routed.event_id
        == escalate(feedback, TABLE, topics=Topics(), producer=PRODUCER, now=T0)[1].event_id
    )
