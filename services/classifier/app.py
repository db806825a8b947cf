"""The classifier's composition root."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from faststream.asgi import AsgiFastStream
from prometheus_client import CollectorRegistry
from threadpoolctl import threadpool_limits

from services.classifier.backends.base import AsyncBackend, Backend
from services.classifier.backends.breaker import CircuitBreaker, export_state
from services.classifier.backends.cascade import CascadeBackend
from services.classifier.backends.llm import FallbackBackend, LlmBackend, LlmOptions, llm_client
from services.classifier.backends.local import LocalModel, default_model, train_local_cached
from services.classifier.control import ModelControl, local_part_swapper
from services.classifier.data import EXAMPLES, shipped
from services.classifier.handlers import ClassifierHandler
from services.classifier.metrics import ClassifierMetrics
from services.classifier.settings import ClassifierSettings
from services.classifier.taxonomy import default_taxonomy, load_taxonomy
from services.learning.registry import ModelRegistry
from shared.contracts import utc_now
from shared.control import follow_control_topic
from shared.metrics import StageMetrics
from shared.service import producer_info, stage_app
from shared.topics import Topics

SERVICE = "classifier"


def limit_compute_threads(threads: int) -> threadpool_limits | None:
    """Cap this process's BLAS and OpenMP thread pools at `threads` (0: leave them as they are).

    Returns the limiter, whose `restore_original_limits()` undoes it.
    """
    return threadpool_limits(limits=threads) if threads > 0 else None


def load_backend(
    settings: ClassifierSettings, *, registry: CollectorRegistry | None = None
) -> Backend | AsyncBackend:
    """Return the configured backend: local, hybrid, llm (local fallback) or cascade."""
    if settings.backend == "hybrid":
        # Imported here: onnxruntime and the MiniLM weights load only when chosen.
        from services.classifier.backends.hybrid import train_hybrid_cached

        model = train_hybrid_cached(
            settings.examples_csv or shipped(EXAMPLES), settings.model_cache_dir
        )
        model.warm_up()  # its encoder is built now, not by the first batch
        return model
    local = _local_model(settings)
    if settings.backend == "local":
        return local
    llm = _llm_backend(settings, labels=local.labels)
    if registry is not None:
        export_state(llm.breaker, registry, name="llm")
    if settings.backend == "cascade":
        return CascadeBackend(local, llm, low=settings.cascade_low, high=settings.cascade_high)
    return FallbackBackend(llm, local)


def _local_model(settings: ClassifierSettings) -> LocalModel:
    """Return the local model, trained from the examples (cached on disk)."""
    if settings.examples_csv is not None:
        return train_local_cached(settings.examples_csv, settings.model_cache_dir)
    return default_model(settings.model_cache_dir)


def _llm_backend(settings: ClassifierSettings, *, labels: tuple[str, ...]) -> LlmBackend:
    taxonomy = (
        load_taxonomy(settings.taxonomy_yaml) if settings.taxonomy_yaml else default_taxonomy()
    )
    # The local model answers when the LLM cannot: both must speak the same categories.
    if set(taxonomy.names) != set(labels):
        raise ValueError(
            f"taxonomy {taxonomy.name} categories {sorted(taxonomy.names)} differ from the "
            f"local model's labels {sorted(labels)}; set taxonomy_yaml to match examples_csv"
        )
    if settings.llm_api_key is None:  # settings validation refuses this; mypy cannot know
        raise ValueError(f"backend {settings.backend} needs llm_api_key")
    options = LlmOptions(
        model=settings.llm_model,
        timeout_s=settings.llm_timeout_s,
        max_retries=settings.llm_max_retries,
        backoff_initial_s=settings.llm_backoff_initial_s,
        backoff_max_s=settings.llm_backoff_max_s,
        concurrency=settings.llm_concurrency,
        redact_pii=settings.llm_redact_pii,
        max_input_chars=settings.llm_max_input_chars,
        confidence=settings.llm_confidence,
        reported_confidence=settings.llm_reported_confidence_map,
    )
    client = llm_client(
        base_url=settings.llm_base_url,
        api_key=settings.llm_api_key.get_secret_value(),
        timeout_s=settings.llm_timeout_s,
    )
    breaker = CircuitBreaker(
        failure_threshold=settings.llm_breaker_failures,
        cooldown_s=settings.llm_breaker_cooldown_s,
    )
    return LlmBackend(client, taxonomy, options, breaker=breaker)


def build_app(
    settings: ClassifierSettings,
    *,
    backend: Backend | AsyncBackend | None = None,
    clock: Callable[[], datetime] = utc_now,
    registry: CollectorRegistry | None = None,
) -> AsgiFastStream:
    """Wire the classifier: backend, handler, subscriber, ops endpoints."""
    registry = registry or CollectorRegistry()
    topics = Topics(settings.kafka.topic_prefix)
    configured = backend or load_backend(settings, registry=registry)
    handler = ClassifierHandler(
        configured,
        topics=topics,
        producer=producer_info(SERVICE, settings),
        clock=clock,
    )
    app = stage_app(
        settings,
        service=SERVICE,
        topics=[topics.inbound],
        process=handler,
        description="Classifies inbound tickets: category, confidence, signals.",
        metrics=StageMetrics.create(registry),
        observe=ClassifierMetrics(registry).observe,
    )
    if settings.model_registry_dir is not None:
        _follow_control_topic(app, settings, handler, configured, settings.model_registry_dir)
    return app


def _follow_control_topic(
    app: AsgiFastStream,
    settings: ClassifierSettings,
    handler: ClassifierHandler,
    configured: Backend | AsyncBackend,
    registry_dir: Path,
) -> None:
    """Apply promotions and shadow candidates from the control topic, from before the first
    batch (start-up waits until the topic is read to its end) until shutdown."""
    control = ModelControl(
        handler,
        ModelRegistry(registry_dir),
        configured=configured,
        compose=local_part_swapper(configured),
        cache_dir=settings.model_cache_dir,
    )
    follow_control_topic(app, settings.kafka, control.on_change)
