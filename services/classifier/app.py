"""The classifier's composition root."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from faststream.asgi import AsgiFastStream
from prometheus_client import CollectorRegistry

from services.classifier.backends.base import Backend
from services.classifier.backends.local import default_model, train_local_cached
from services.classifier.handlers import ClassifierHandler
from services.classifier.settings import ClassifierSettings
from shared.contracts import utc_now
from shared.service import producer_info, stage_app
from shared.topics import Topics

SERVICE = "classifier"


def load_backend(settings: ClassifierSettings) -> Backend:
    """Return the configured backend, trained from the examples (cached on disk)."""
    if settings.examples_csv is not None:
        return train_local_cached(settings.examples_csv, settings.model_cache_dir)
    return default_model(settings.model_cache_dir)


def build_app(
    settings: ClassifierSettings,
    *,
    backend: Backend | None = None,
    clock: Callable[[], datetime] = utc_now,
    registry: CollectorRegistry | None = None,
) -> AsgiFastStream:
    """Wire the classifier: backend, handler, subscriber, ops endpoints."""
    topics = Topics(settings.kafka.topic_prefix)
    handler = ClassifierHandler(
        backend or load_backend(settings),
        topics=topics,
        producer=producer_info(SERVICE, settings),
        clock=clock,
    )
    return stage_app(
        settings,
        service=SERVICE,
        topics=[topics.inbound],
        process=handler,
        description="Classifies inbound tickets: category, confidence, signals.",
        registry=registry,
    )
