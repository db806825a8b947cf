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
from shared.contracts import ProducerInfo, Stage, TicketReceived
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
    ) -> None:
        self._backend = backend
        self._topics = topics
        self._producer = producer
        self._clock = clock

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
        try:
            # A sync backend (local) is called inline, as before; an async one is awaited.
            results = await classify_async(tickets, self._backend, producer=self._producer, now=now)
        except Exception as error:  # the model failed: degrade to a human, never drop
            logger.exception("classifier backend failed; degrading {} tickets", len(tickets))
            reason = f"backend {self._backend.info.backend} failed: {type(error).__name__}: {error}"
            results = [
                unclassified(t, reason=reason, producer=self._producer, now=now) for t in tickets
            ]
        for (record, _), classified in zip(valid, results, strict=True):
            out.append(
                Outgoing(self._topics.classified, classified.ticket_id, classified, cause=record)
            )
            logger.bind(
                **message_context(
                    ticket_id=classified.ticket_id,
                    trace_id=classified.trace_id,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                )
            ).debug("classified {} ({:.2f})", classified.category, classified.confidence)
        return out
