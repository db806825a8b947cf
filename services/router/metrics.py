"""The router's own Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from shared.contracts import TicketRouted
from shared.stage import Outgoing


class RouterMetrics:
    """Work routed, by queue, priority and mode."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.routed = Counter(
            "triageflow_routed",
            "Work items routed, by queue, priority and mode.",
            ["queue", "priority", "mode"],
            registry=registry,
        )

    def observe(self, outgoing: list[Outgoing]) -> None:
        """Count what a batch produced."""
        for message in outgoing:
            event = message.event
            if isinstance(event, TicketRouted):
                self.routed.labels(event.queue, event.priority, event.mode.value).inc()
