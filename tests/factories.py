"""Small builders of valid events for tests (no servers, no randomness)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from shared.contracts import (
    AttemptError,
    CategoryScore,
    ClassificationSummary,
    FeedbackGiven,
    Mode,
    ModelInfo,
    PolicyInfo,
    ProducerInfo,
    RuleFired,
    Signals,
    Stage,
    Thresholds,
    TicketClassified,
    TicketDeadLettered,
    TicketDecided,
    TicketReceived,
    TicketRouted,
    TicketSnapshot,
)
from shared.ids import derived_event_id

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def received(
    ticket_id: str = "T-1", body: str = "I was charged twice", **fields: object
) -> TicketReceived:
    """Return a valid inbound ticket."""
    return TicketReceived.model_validate({"ticket_id": ticket_id, "body": body, **fields})


def classified(
    ticket: TicketReceived | None = None,
    *,
    category: str = "billing",
    confidence: float = 0.97,
    runner_up: float = 0.02,
    **fields: object,
) -> TicketClassified:
    """Return a classification of `ticket`."""
    ticket = ticket or received()
    base: dict[str, object] = {
        "event_id": derived_event_id(ticket.event_id, "classifier"),
        "ticket_id": ticket.ticket_id,
        "trace_id": ticket.trace_id,
        "causation_id": ticket.event_id,
        "occurred_at": T0,
        "producer": ProducerInfo(service="classifier", version="test", instance="i-1"),
        "ticket": TicketSnapshot.of(ticket),
        "category": category,
        "confidence": confidence,
        "alternatives": (CategoryScore(category="refunds", confidence=runner_up),),
        "language": "en",
        "sentiment": "neutral",
        "sentiment_score": 0.0,
        "urgency": "normal",
        "signals": Signals(),
        "model": ModelInfo(name="tfidf-lr", version="abc123", backend="local"),
        "latency_ms": 1.5,
    }
    return TicketClassified.model_validate(base | fields)


def summary(event: TicketClassified) -> ClassificationSummary:
    """Return the classification summary of `event`."""
    return ClassificationSummary(
        event_id=event.event_id,
        category=event.category,
        confidence=event.confidence,
        alternatives=event.alternatives,
        language=event.language,
        sentiment=event.sentiment,
        urgency=event.urgency,
        model=event.model,
        degraded=event.degraded,
        injection_suspected=event.signals.injection_suspected,
        out_of_scope=event.signals.out_of_scope,
        pii_detected=event.signals.pii_detected,
    )


def sample_events() -> list[BaseModel]:
    """Return one valid event of every type, linked by causation."""
    ticket = received(
        subject="Double charge",
        channel="email",
        source="zendesk",
        customer={"id": "C-9", "tier": "vip", "language": "en"},
        metadata={"order": "A-1", "items": 2, "gift": False, "note": None},
        created_at=T0.isoformat(),
        occurred_at=T0.isoformat(),
    )
    clf = classified(ticket)
    decided = TicketDecided(
        event_id=derived_event_id(clf.event_id, "policy"),
        ticket_id=ticket.ticket_id,
        trace_id=ticket.trace_id,
        causation_id=clf.event_id,
        occurred_at=T0,
        producer=ProducerInfo(service="policy", version="test"),
        ticket=clf.ticket,
        classification=summary(clf),
        mode=Mode.ASSIST,
        rules_fired=(RuleFired(rule_id="vip-cap", reason="VIP customer", cap=Mode.ASSIST),),
        thresholds=Thresholds(autonomous=0.9, assist=0.5, ambiguity_margin=0.1),
        policy=PolicyInfo(
            name="default",
            version="1",
            content_hash="h",
            approved_by="ops",
            approved_at="2026-11-01",
        ),
        owner_team="billing-team",
    )
    routed = TicketRouted(
        event_id=derived_event_id(decided.event_id, "router"),
        ticket_id=ticket.ticket_id,
        trace_id=ticket.trace_id,
        causation_id=decided.event_id,
        occurred_at=T0,
        producer=ProducerInfo(service="router"),
        queue="billing",
        topic="queue.billing",
        priority="p2",
        sla_due_at=T0 + timedelta(hours=4),
        mode=Mode.ASSIST,
        human_handling=False,
        category="billing",
        work_item_id=derived_event_id(decided.event_id, "work_item"),
        routing_version="1:abc",
    )
    dead = TicketDeadLettered(
        event_id=derived_event_id("inbound:0:7", "deadletter"),
        ticket_id="T-bad",
        trace_id="0" * 32,
        occurred_at=T0,
        producer=ProducerInfo(service="classifier"),
        stage=Stage.CLASSIFIER,
        reason="invalid_json",
        error_type="InvalidMessage",
        error_message="Expecting value at line 1 column 1",
        original_topic="tickets.inbound",
        original_partition=0,
        original_offset=7,
        original_key="T-bad",
        original_bytes_b64="bm90IGpzb24=",
        attempts=(AttemptError(attempt=1, error_type="InvalidMessage", error_message="x", at=T0),),
    )
    feedback = FeedbackGiven(
        ticket_id=ticket.ticket_id,
        kind="override",
        decision_event_id=decided.event_id,
        actor="agent-7",
        correct_category="refunds",
        occurred_at=T0,
    )
    return [ticket, clf, decided, routed, dead, feedback]
