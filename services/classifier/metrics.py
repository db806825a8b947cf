"""The classifier's own Prometheus metrics, observed from the events it publishes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from shared.contracts import TicketClassified
from shared.metrics import CONFIDENCE_BUCKETS
from shared.stage import Outgoing


class ClassifierMetrics:
    """Classifications by category, confidence, and fallbacks (degraded answers)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.classifications = Counter(
            "triageflow_classifications",
            "Tickets classified, by category, backend and degraded flag.",
            ["category", "backend", "degraded"],
            registry=registry,
        )
        self.confidence = Histogram(
            "triageflow_classification_confidence",
            "Calibrated confidence of the chosen category.",
            buckets=CONFIDENCE_BUCKETS,
            registry=registry,
        )
        self.fallbacks = Counter(
            "triageflow_classifier_fallbacks",
            "Classifications produced by a fallback path (degraded), by backend that answered.",
            ["backend"],
            registry=registry,
        )
        self.signals = Counter(
            "triageflow_classification_signals",
            "Signals raised: pii, injection, out_of_scope.",
            ["signal"],
            registry=registry,
        )

    def observe(self, outgoing: list[Outgoing]) -> None:
        """Count what a batch produced."""
        for message in outgoing:
            event = message.event
            if not isinstance(event, TicketClassified):
                continue
            self.classifications.labels(
                event.category, event.model.backend, str(event.degraded).lower()
            ).inc()
            self.confidence.observe(event.confidence)
            if event.degraded:
                self.fallbacks.labels(event.model.backend).inc()
            for name, raised in (
                ("pii", event.signals.pii_detected),
                ("injection", event.signals.injection_suspected),
                ("out_of_scope", event.signals.out_of_scope),
            ):
                if raised:
                    self.signals.labels(name).inc()
