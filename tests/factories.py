"""Small builders of valid events for tests (no servers, no randomness)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
from pydantic import BaseModel

from services.classifier.backends.minilm import Vectors
from shared.contracts import (
    AttemptError,
    CategoryScore,
    ClassificationSummary,
    DeadLetterReplayed,
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
from shared.stage import Incoming

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
    replayed = DeadLetterReplayed(
        event_id=derived_event_id(dead.event_id, "replay:1"),
        ticket_id=dead.ticket_id,
        trace_id=dead.trace_id,
        causation_id=dead.event_id,
        occurred_at=T0,
        producer=ProducerInfo(service="cli"),
        actor="ops-lead",
        outcome="republished_corrected",
        replay_number=1,
        dead_letter_stage=Stage.CLASSIFIER,
        dead_letter_reason="invalid_json",
        topic="tickets.inbound",
        partition=0,
        offset=8,
        key="T-bad",
        replayed_event_id="e-corrected",
        corrected_bytes_b64="e30=",
    )
    return [ticket, clf, decided, routed, dead, feedback, replayed]


def decided(
    ticket: TicketReceived | None = None,
    *,
    category: str = "billing",
    mode: Mode = Mode.ASSIST,
    model_version: str = "abc123",
    policy_version: str = "1",
    at: datetime = T0,
    **fields: object,
) -> TicketDecided:
    """Return a decision on `ticket`, classified as `category` by model `model_version`."""
    ticket = ticket or received()
    clf = classified(
        ticket,
        category=category,
        occurred_at=at,
        model=ModelInfo(name="tfidf-lr", version=model_version, backend="local"),
    )
    base: dict[str, object] = {
        "event_id": derived_event_id(clf.event_id, "policy"),
        "ticket_id": ticket.ticket_id,
        "trace_id": ticket.trace_id,
        "causation_id": clf.event_id,
        "occurred_at": at,
        "producer": ProducerInfo(service="policy", version="test"),
        "ticket": clf.ticket,
        "classification": summary(clf),
        "mode": mode,
        "thresholds": Thresholds(autonomous=0.9, assist=0.5, ambiguity_margin=0.1),
        "policy": PolicyInfo(
            name="default",
            version=policy_version,
            content_hash=f"sha-of-policy-{policy_version}",
            approved_by="ops-lead",
            approved_at="2026-11-01",
        ),
        "owner_team": f"{category}-team",
    }
    return TicketDecided.model_validate(base | fields)


def routed(decision: TicketDecided, queue: str | None = None, **fields: object) -> TicketRouted:
    """Return the routing of `decision` to `queue` (default: its category's queue)."""
    queue = queue or decision.classification.category
    base: dict[str, object] = {
        "event_id": derived_event_id(decision.event_id, "router"),
        "ticket_id": decision.ticket_id,
        "trace_id": decision.trace_id,
        "causation_id": decision.event_id,
        "occurred_at": decision.occurred_at,
        "producer": ProducerInfo(service="router"),
        "queue": queue,
        "topic": f"queue.{queue}",
        "priority": "p3",
        "sla_due_at": decision.occurred_at + timedelta(hours=8),
        "mode": decision.mode,
        "human_handling": decision.mode is not Mode.AUTONOMOUS,
        "category": decision.classification.category,
        "work_item_id": derived_event_id(decision.event_id, "work_item"),
        "routing_version": "1:test",
    }
    return TicketRouted.model_validate(base | fields)


def dead_lettered(
    ticket_id: str = "T-bad",
    *,
    stage: Stage = Stage.CLASSIFIER,
    original_topic: str = "tickets.inbound",
    offset: int = 0,
    at: datetime = T0,
) -> TicketDeadLettered:
    """Return a dead letter of the message at `original_topic` offset `offset`."""
    record = Incoming(original_topic, 0, offset, ticket_id.encode(), b"not json")
    return TicketDeadLettered(
        # Named as `shared.stage.dead_letter` names it: by the record's identity.
        event_id=derived_event_id(record.identity, f"deadletter:{stage.value}"),
        ticket_id=ticket_id,
        trace_id="0" * 32,
        occurred_at=at,
        producer=ProducerInfo(service=stage.value),
        stage=stage,
        reason="invalid_json",
        error_type="InvalidMessage",
        error_message="Expecting value at line 1 column 1",
        original_topic=original_topic,
        original_partition=0,
        original_offset=offset,
        original_key=ticket_id,
        original_bytes_b64="bm90IGpzb24=",
    )


class HashEncoder:
    """Stands in for MiniLM: a fixed random unit vector per text (no model, no cost)."""

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> Vectors:
        vectors: Vectors = np.stack(
            [np.random.default_rng(zlib.crc32(t.encode())).normal(size=384) for t in texts]
        ).astype(np.float32)
        unit: Vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return unit
