"""Hot model changes from the control topic: promotions, rollbacks, shadow candidates.

Every classifier copy follows the control topic (`shared.control.ControlReader`) and loads
the named version from the model registry, has it classify one text, and classifies the next
batch with it, without a restart. A version that cannot be loaded or cannot classify leaves
the current model in place (logged): a bad artefact must not take the classifier down.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from loguru import logger

from services.classifier.backends.base import AsyncBackend, Backend
from services.classifier.backends.cascade import CascadeBackend
from services.classifier.backends.hybrid import HybridModel
from services.classifier.backends.llm import FallbackBackend
from services.classifier.backends.local import LocalModel
from services.classifier.handlers import ClassifierHandler
from services.learning.registry import ModelRegistry
from shared.contracts import ControlEvent, ModelCandidateSet, ModelPromoted, ModelRolledBack

Compose = Callable[[Backend], Backend | AsyncBackend]


def local_part(configured: Backend | AsyncBackend) -> Backend | None:
    """Return the trainable model inside `configured` (itself, a cascade's local model, an
    LLM's fallback), or None when it has none."""
    if isinstance(configured, LocalModel | HybridModel):
        return configured
    if isinstance(configured, CascadeBackend):
        return configured.local
    if isinstance(configured, FallbackBackend):
        return configured.fallback
    return None


def local_part_swapper(configured: Backend | AsyncBackend) -> Compose | None:
    """Return how a promoted (local, registry) model takes the place of the local model in
    `configured`, or None when `configured` has no local part a registry model can replace.

    local and hybrid: the promoted model itself (`triageflow learn` trains the kind its
    `TRIAGEFLOW_LEARN_BACKEND` names); cascade: the same LLM and band around it; llm: the
    same LLM with it as the fallback.
    """
    if isinstance(configured, LocalModel | HybridModel):
        return lambda model: model
    if isinstance(configured, CascadeBackend):
        llm, low, high = configured.llm, configured.low, configured.high
        return lambda model: CascadeBackend(model, llm, low=low, high=high)
    if isinstance(configured, FallbackBackend):
        primary = configured.primary
        return lambda model: FallbackBackend(primary, model)
    return None


class OtherKind(Exception):
    """A version to serve live is not of the kind this classifier serves."""


class ModelControl:
    """Apply model control events to one classifier handler."""

    def __init__(
        self,
        handler: ClassifierHandler,
        registry: ModelRegistry,
        *,
        configured: Backend | AsyncBackend,
        compose: Compose | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self._handler = handler
        self._registry = registry
        # Where a hybrid model builds its encoder (the classifier's model cache).
        self._cache_dir = cache_dir
        self._configured = configured
        # The model kind a live model must be (None: any): the configured one never changes.
        own = local_part(configured)
        self._kind = None if own is None else own.info.name
        # How a promoted model becomes the live backend; None: promotions are ignored (the
        # candidate is still shadowed).
        self._compose = compose

    async def on_change(self, event: ControlEvent) -> None:
        """Swap the live model or the shadow candidate as `event` says."""
        if isinstance(event, ModelPromoted | ModelRolledBack):
            if self._compose is None:
                logger.warning(
                    "{} {} ignored: the {} backend has no registry model to replace",
                    event.event_type,
                    event.version,
                    self._configured.info.backend,
                )
                return
            if event.version is None:
                self._handler.use_model(self._configured)
                return
            model = await self._load(event.version, live=True)
            if model is not None:
                self._handler.use_model(self._compose(model))
        elif isinstance(event, ModelCandidateSet):
            if event.version is None:
                self._handler.use_candidate(None)
                return
            candidate = await self._load(event.version, live=False)
            if candidate is not None:
                self._handler.use_candidate(candidate)

    async def _load(self, version: str, *, live: bool) -> Backend | None:
        try:
            # Loading unpickles a model: seconds of CPU that must not stall the event loop.
            return await asyncio.to_thread(self._ready, version, live=live)
        except OtherKind as error:
            logger.error("{}", error)
        except Exception:
            logger.exception(
                "model {} cannot be loaded or cannot classify; keeping the current one", version
            )
        return None

    def _ready(self, version: str, *, live: bool) -> Backend:
        """Load `version` and warm it up: a model that cannot classify here (a hybrid whose
        encoder cannot be built, say) is refused before it takes traffic, and the first batch
        does not pay for building what it builds lazily. A model to serve live must be of the
        kind this copy serves: a promotion never turns a `local` classifier into a `hybrid`
        one, or back (a shadow candidate may be of either kind: that is how a kind is tried
        before a deployment switches to it)."""
        if live and self._kind is not None:
            kind = self._registry.manifest(version).model_name
            if kind != self._kind:
                raise OtherKind(
                    f"model {version} ignored: it is a {kind} model and this classifier serves"
                    f" {self._kind} models (TRIAGEFLOW_CLASSIFIER_BACKEND); learn with the same"
                    " kind (TRIAGEFLOW_LEARN_BACKEND) or switch the classifiers' backend"
                )
        model = self._registry.load(version, cache_dir=self._cache_dir)
        model.warm_up()
        return model
