"""Prometheus metrics every stage has; each service registers its own on top.

One `CollectorRegistry` per service app (not the global one), so in-process tests can run
several services side by side and read each one's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


@dataclass(frozen=True)
class StageMetrics:
    """Messages in and out, batch and work time, dead letters and consumer lag of a stage."""

    registry: CollectorRegistry
    messages_in: Counter
    messages_out: Counter
    batch_seconds: Histogram
    work_seconds: Histogram
    batch_size: Histogram
    dead_letters: Counter
    consumer_lag: Gauge
    failed_batches: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> StageMetrics:
        """Register the stage metrics in `registry`."""
        return cls(
            registry=registry,
            messages_in=Counter(
                "triageflow_messages_in", "Records consumed.", ["topic"], registry=registry
            ),
            messages_out=Counter(
                "triageflow_messages_out", "Records published.", ["topic"], registry=registry
            ),
            batch_seconds=Histogram(
                "triageflow_batch_processing_seconds",
                "Time to process and publish one consumed batch.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            work_seconds=Histogram(
                "triageflow_batch_work_seconds",
                "Time of one consumed batch in the stage's own work (decode, the model or rules,"
                " building events), without publishing and awaiting acknowledgements.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            batch_size=Histogram(
                "triageflow_batch_size",
                "Records per consumed batch.",
                buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000),
                registry=registry,
            ),
            dead_letters=Counter(
                "triageflow_dead_letters",
                "Records dead-lettered, by stage and reason.",
                ["stage", "reason"],
                registry=registry,
            ),
            consumer_lag=Gauge(
                "triageflow_consumer_lag",
                "Records behind the end of the partition, after the last batch.",
                ["topic", "partition"],
                registry=registry,
            ),
            failed_batches=Counter(
                "triageflow_failed_batches",
                "Batches that raised and will be redelivered.",
                registry=registry,
            ),
        )
