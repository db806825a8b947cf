"""The policy service's own Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from shared.contracts import TicketDecided
from shared.stage import Outgoing


class PolicyMetrics:
    """Decisions by mode and category, and which rules fire."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "triageflow_decisions",
            "Decisions, by mode, category and policy version.",
            ["mode", "category", "policy_version"],
            registry=registry,
        )
        self.rules = Counter(
            "triageflow_rules_fired",
            "Policy constraints that fired.",
            ["rule_id"],
            registry=registry,
        )

    def observe(self, outgoing: list[Outgoing]) -> None:
        """Count what a batch produced."""
        for message in outgoing:
            event = message.event
            if not isinstance(event, TicketDecided):
                continue
            self.decisions.labels(
                event.mode.value, event.classification.category, event.policy.version
            ).inc()
            for rule in event.rules_fired:
                self.rules.labels(rule.rule_id).inc()
