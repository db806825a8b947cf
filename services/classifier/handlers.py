"""The classifier's Kafka handler: inbound tickets in, classifications out.

Anything that is not a valid ticket is dead-lettered with its reason and original bytes.
If the model itself fails, each ticket still gets a classification — flagged degraded,
with the reason — which the policy always sends to a human. No ticket is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from loguru import logger

from services.classifier.backends.base import AsyncBackend, Backend
from services.classifier.domain import classify_async, unclassified
from services.classifier.shadow import with_shadow
from services.classifier.signals import unusual_envelope
from shared.contracts import ProducerInfo, Stage, TicketClassified, TicketReceived
from shared.logging import message_context
from shared.stage import Incoming, Outgoing, decode_batch
from shared.topics import Topics


class ClassifierHandler:
    """Classify every valid ticket of a batch in one model call."""

    def __init__(
        self,
        backend: Backend | AsyncBackend,
        *,
        topics: Topics,
        producer: ProducerInfo,
        clock: Callable[[], datetime],
        candidate: Backend | None = None,
    ) -> None:
        self._backend = backend
        self._candidate = candidate
        self._topics = topics
        self._producer = producer
        self._clock = clock

    @property
    def model(self) -> Backend | AsyncBackend:
        """Return the live model."""
        return self._backend

    @property
    def candidate(self) -> Backend | None:
        """Return the model running in shadow, if any."""
        return self._candidate

    def use_model(self, backend: Backend | AsyncBackend) -> None:
        """Classify the next batches with `backend` (a promotion or rollback)."""
        logger.info("live model now {} {}", backend.info.name, backend.info.version)
        self._backend = backend

    def use_candidate(self, candidate: Backend | None) -> None:
        """Run `candidate` in shadow beside the live model (None: stop shadowing)."""
        logger.info("shadow model now {}", candidate.info.version if candidate else None)
        self._candidate = candidate

    async def __call__(self, batch: list[Incoming]) -> list[Outgoing]:
        """Handle one consumed batch."""
        valid, out = decode_batch(
            batch,
            TicketReceived,
            stage=Stage.CLASSIFIER,
            producer=self._producer,
            deadletter_topic=self._topics.deadletter,
        )
        tickets = [ticket for _, ticket in valid]
        if not tickets:
            return out
        now = self._clock()
        # What the contract ignores (key, headers, unknown fields) is seen only here.
        envelopes = [unusual_envelope(r.key, r.headers, r.value) for r, _ in valid]
        try:
            # A sync backend (local) is called inline, as before; an async one is awaited.
            results = await classify_async(
                tickets, self._backend, producer=self._producer, now=now, envelopes=envelopes
            )
        except Exception as error:  # the model failed: degrade to a human, never drop
            logger.exception("classifier backend failed; degrading {} tickets", len(tickets))
            reason = f"backend {self._backend.info.backend} failed: {type(error).__name__}: {error}"
            results = [
                unclassified(t, reason=reason, producer=self._producer, now=now, envelope=e)
                for t, e in zip(tickets, envelopes, strict=True)
            ]
        results = self._shadowed(results)
        for (record, _), classified in zip(valid, results, strict=True):
            out.append(
                Outgoing(self._topics.classified, classified.ticket_id, classified, cause=record)
            )
            # Keyword arguments, not bind(): at INFO the line costs a level check only.
            logger.debug(
                "classified {category} ({confidence:.2f})",
                category=classified.category,
                confidence=classified.confidence,
                **message_context(
                    ticket_id=classified.ticket_id,
                    trace_id=classified.trace_id,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                ),
            )
        return out

    def _shadowed(self, results: list[TicketClassified]) -> list[TicketClassified]:
        """Attach the candidate's view; a failing candidate never touches live results."""
        candidate = self._candidate
        if candidate is None:
            return results
        try:
            return with_shadow(results, candidate)
        except Exception:
            logger.exception("shadow model {} failed; batch recorded without it", candidate.info)
            return results
