"""Hot model changes from the control topic: promotions, rollbacks, shadow candidates.

Every classifier copy follows the control topic (`shared.control.ControlReader`) and loads
the named version from the model registry; the next batch is classified with it, without
a restart. A version that cannot be loaded leaves the current model in place (logged): a
bad artefact must not take the classifier down.
"""

from __future__ import annotations

import asyncio

from loguru import logger

from services.classifier.backends.base import AsyncBackend, Backend
from services.classifier.handlers import ClassifierHandler
from services.learning.registry import ModelRegistry
from shared.contracts import ControlEvent, ModelCandidateSet, ModelPromoted, ModelRolledBack


class ModelControl:
    """Apply model control events to one classifier handler."""

    def __init__(
        self,
        handler: ClassifierHandler,
        registry: ModelRegistry,
        *,
        configured: Backend | AsyncBackend,
        hot_swap: bool = True,
    ) -> None:
        self._handler = handler
        self._registry = registry
        self._configured = configured
        # Only the local backend is a registry model; an llm/cascade classifier keeps its
        # backend and can still shadow a candidate.
        self._hot_swap = hot_swap

    async def on_change(self, event: ControlEvent) -> None:
        """Swap the live model or the shadow candidate as `event` says."""
        if isinstance(event, ModelPromoted | ModelRolledBack):
            if not self._hot_swap:
                logger.warning(
                    "{} {} ignored: backend is not local", event.event_type, event.version
                )
                return
            live = await self._load(event.version) if event.version else self._configured
            if live is not None:
                self._handler.use_model(live)
        elif isinstance(event, ModelCandidateSet):
            if event.version is None:
                self._handler.use_candidate(None)
                return
            candidate = await self._load(event.version)
            if candidate is not None:
                self._handler.use_candidate(candidate)

    async def _load(self, version: str) -> Backend | None:
        try:
            # Loading unpickles a model: seconds of CPU that must not stall the event loop.
            return await asyncio.to_thread(self._registry.load, version)
        except Exception:
            logger.exception("model {} cannot be loaded; keeping the current one", version)
            return None
