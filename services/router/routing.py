"""The routing table (YAML) and the pure routing decision.

Category → queue, priority rules (declarative conditions), SLA per priority, and a
fallback queue for what no team owns. Human-mode tickets go to their category's team
queue flagged for human handling; tickets whose category cannot be trusted (unknown to
the table, out of scope, suspected injection, degraded classification) go to the
fallback triage queue.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.conditions import Condition, unknown_fields
from shared.contracts import (
    Escalation,
    FeedbackGiven,
    FeedbackKind,
    Mode,
    ProducerInfo,
    TicketDecided,
    TicketRouted,
    WorkItem,
)
from shared.ids import derived_event_id
from shared.topics import Topics

Priority = Literal["p1", "p2", "p3", "p4"]
PRIORITIES: tuple[Priority, ...] = ("p1", "p2", "p3", "p4")
NEGATIVE_CSAT = 2  # CSAT at or below this (1-5 scale) counts as a negative reaction
DEFAULT_SLA_MINUTES: dict[Priority, int] = {"p1": 60, "p2": 240, "p3": 1440, "p4": 4320}

CONTEXT_FIELDS = frozenset(
    {
        "mode",
        "ticket.customer_tier",
        "ticket.channel",
        "ticket.source",
        "classification.category",
        "classification.confidence",
        "classification.urgency",
        "classification.sentiment",
        "classification.language",
        "classification.degraded",
        "classification.out_of_scope",
        "classification.injection_suspected",
    }
)


class RoutingError(ValueError):
    """A routing table that cannot be used, with the reason."""


class CategoryRoute(BaseModel):
    """Where one category's tickets go."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", description="Queue name.")
    priority: Priority | None = Field(default=None, description="Default priority override.")


class PriorityRule(BaseModel):
    """Raise the priority of tickets matching every condition."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    when: tuple[Condition, ...] = Field(min_length=1)
    priority: Priority


class RoutingTable(BaseModel):
    """A versioned routing table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    fallback_queue: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    default_priority: Priority = "p3"
    sla_minutes: dict[Priority, int] = Field(default_factory=lambda: dict(DEFAULT_SLA_MINUTES))
    categories: dict[str, CategoryRoute] = Field(default_factory=dict)
    priority_rules: tuple[PriorityRule, ...] = ()
    escalation_queue: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="Where negative reactions to AI answers go; default: the fallback queue.",
    )
    escalation_priority: Priority = "p2"
    content_hash: str = Field(default="", description="sha256 of the file (set on load).")

    @model_validator(mode="after")
    def _complete(self) -> RoutingTable:
        missing = [p for p in PRIORITIES if p not in self.sla_minutes]
        if missing:
            raise ValueError(f"sla_minutes lacks {missing}")
        for rule in self.priority_rules:
            bad = unknown_fields(list(rule.when), CONTEXT_FIELDS)
            if bad:
                raise ValueError(f"priority rule {rule.id!r} names unknown fields {bad}")
        return self

    @property
    def label(self) -> str:
        """Return `name@version#hash` for events."""
        return f"{self.name}@{self.version}#{self.content_hash[:12]}"

    @property
    def escalations_to(self) -> str:
        """Return the queue that receives escalations."""
        return self.escalation_queue or self.fallback_queue

    def queue_names(self) -> set[str]:
        """Return every queue the table can route to."""
        return {self.fallback_queue, self.escalations_to} | {
            c.queue for c in self.categories.values()
        }


def parse_routing(text: str, *, source: str = "routing table") -> RoutingTable:
    """Parse and validate a routing table, or raise `RoutingError` naming the problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RoutingError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RoutingError(f"{source}: expected a mapping at the top level")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    try:
        return RoutingTable.model_validate({**data, "content_hash": digest})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RoutingError(f"{source}: {where}: {first['msg']}") from exc


def load_routing(path: Path) -> RoutingTable:
    """Load a routing table from a YAML file."""
    return parse_routing(path.read_text(encoding="utf-8"), source=str(path))


@cache
def load_default_routing() -> RoutingTable:
    """Return the routing table shipped with triageflow."""
    text = resources.files("services.router").joinpath("default_routing.yaml").read_text()
    return parse_routing(text, source="default_routing.yaml")


def routing_context(decided: TicketDecided) -> dict[str, Any]:
    """Return the fields priority rules may test."""
    c = decided.classification
    return {
        "mode": decided.mode.value,
        "ticket.customer_tier": decided.ticket.customer_tier,
        "ticket.channel": decided.ticket.channel,
        "ticket.source": decided.ticket.source,
        "classification.category": c.category,
        "classification.confidence": c.confidence,
        "classification.urgency": c.urgency,
        "classification.sentiment": c.sentiment,
        "classification.language": c.language,
        "classification.degraded": c.degraded,
        "classification.out_of_scope": c.out_of_scope,
        "classification.injection_suspected": c.injection_suspected,
    }


def _untrusted_category(decided: TicketDecided, table: RoutingTable) -> bool:
    c = decided.classification
    return (
        c.category not in table.categories or c.out_of_scope or c.injection_suspected or c.degraded
    )


def route(
    decided: TicketDecided,
    table: RoutingTable,
    *,
    topics: Topics,
    producer: ProducerInfo,
    now: datetime,
) -> tuple[WorkItem, TicketRouted]:
    """Return the work item for the destination queue and the ticket.routed event."""
    if _untrusted_category(decided, table):
        queue, base_priority = table.fallback_queue, table.default_priority
    else:
        target = table.categories[decided.classification.category]
        queue, base_priority = target.queue, target.priority or table.default_priority
    context = routing_context(decided)
    matched = [r.priority for r in table.priority_rules if all(c.holds(context) for c in r.when)]
    priority = min([base_priority, *matched])  # "p1" < "p2": the most urgent wins
    sla_due_at = now + timedelta(minutes=table.sla_minutes[priority])
    human = decided.mode is Mode.HUMAN
    work_item_id = derived_event_id(decided.event_id, "work_item")
    routed_id = derived_event_id(decided.event_id, "router")
    item = WorkItem(
        ticket_id=decided.ticket_id,
        idempotency_key=work_item_id,
        queue=queue,
        priority=priority,
        sla_due_at=sla_due_at,
        mode=decided.mode,
        human_handling=human,
        ticket=decided.ticket,
        classification=decided.classification,
        decision={
            "event_id": decided.event_id,
            "mode": decided.mode.value,
            "rules_fired": [r.model_dump(mode="json") for r in decided.rules_fired],
            "policy": decided.policy.model_dump(mode="json"),
            "owner_team": decided.owner_team,
        },
        trail={
            "trace_id": decided.trace_id,
            "received_event_id": decided.ticket.received_event_id,
            "classified_event_id": decided.classification.event_id,
            "decided_event_id": decided.event_id,
            "routed_event_id": routed_id,
        },
        routed_at=now,
    )
    routed = TicketRouted(
        event_id=routed_id,
        ticket_id=decided.ticket_id,
        trace_id=decided.trace_id,
        causation_id=decided.event_id,
        occurred_at=now,
        producer=producer,
        queue=queue,
        topic=topics.queue(queue),
        priority=priority,
        sla_due_at=sla_due_at,
        mode=decided.mode,
        human_handling=human,
        category=decided.classification.category,
        work_item_id=work_item_id,
        routing_version=table.label,
    )
    return item, routed


def needs_escalation(feedback: FeedbackGiven) -> bool:
    """Return whether feedback is a customer's negative reaction to an AI answer.

    When the sender does not say which mode the judged decision had, escalate anyway:
    an unknown case involves a human.
    """
    negative = feedback.negative_reply is True or (
        feedback.csat is not None and feedback.csat <= NEGATIVE_CSAT
    )
    return (
        feedback.kind is FeedbackKind.CUSTOMER_REACTION
        and negative
        and feedback.decision_mode in (Mode.AUTONOMOUS, None)
    )


def escalate(
    feedback: FeedbackGiven,
    table: RoutingTable,
    *,
    topics: Topics,
    producer: ProducerInfo,
    now: datetime,
) -> tuple[Escalation, TicketRouted]:
    """Return the escalation for a human queue and its ticket.routed event."""
    queue, priority = table.escalations_to, table.escalation_priority
    sla_due_at = now + timedelta(minutes=table.sla_minutes[priority])
    key = derived_event_id(feedback.event_id, "escalation")
    reason = (
        f"negative customer reaction (csat {feedback.csat}, negative reply "
        f"{feedback.negative_reply}) to a {feedback.decision_mode or 'possibly autonomous'} answer"
    )
    item = Escalation(
        ticket_id=feedback.ticket_id,
        idempotency_key=key,
        queue=queue,
        priority=priority,
        sla_due_at=sla_due_at,
        reason=reason,
        feedback_event_id=feedback.event_id,
        decision_event_id=feedback.decision_event_id,
        trace_id=feedback.trace_id,
        routed_at=now,
    )
    routed = TicketRouted(
        event_id=derived_event_id(feedback.event_id, "router"),
        ticket_id=feedback.ticket_id,
        trace_id=feedback.trace_id,
        causation_id=feedback.event_id,
        occurred_at=now,
        producer=producer,
        queue=queue,
        topic=topics.queue(queue),
        priority=priority,
        sla_due_at=sla_due_at,
        mode=Mode.HUMAN,
        human_handling=True,
        category=feedback.correct_category or "unknown",
        work_item_id=key,
        routing_version=table.label,
        reason="negative_customer_reaction",
    )
    return item, routed
