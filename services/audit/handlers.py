"""The audit consumer's handler: every event of every topic, written once to the trail.

Inbound records that are not valid tickets are not recorded here: the classifier
dead-letters them with the reason and the original bytes, and that dead letter is
recorded. Invalid feedback has no other consumer, so it is dead-lettered here.
"""

from __future__ import annotations

from loguru import logger
from pydantic import BaseModel
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from services.audit.repository import AuditRepository, AuditRow, to_row
from shared.codec import InvalidMessage
from shared.contracts import (
    FeedbackGiven,
    ProducerInfo,
    Stage,
    TicketClassified,
    TicketDeadLettered,
    TicketDecided,
    TicketReceived,
    TicketRouted,
)
from shared.stage import Incoming, Outgoing, dead_letter, decode_record
from shared.topics import Topics

# Errors worth waiting out: the database is down or restarting. Anything else is a bug
# and must surface (the batch is then redelivered, never silently skipped).
TRANSIENT = (OSError, ConnectionError)


def _transient_errors() -> tuple[type[BaseException], ...]:
    import asyncpg

    return (
        *TRANSIENT,
        asyncpg.PostgresConnectionError,
        asyncpg.CannotConnectNowError,
        asyncpg.InterfaceError,
        asyncpg.TooManyConnectionsError,
    )


class AuditHandler:
    """Record a batch of events; wait (without committing) while the database is down."""

    def __init__(
        self,
        repository: AuditRepository,
        *,
        topics: Topics,
        producer: ProducerInfo,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._repository = repository
        self._topics = topics
        self._producer = producer
        self._max_backoff_s = max_backoff_s
        self._models: dict[str, type[BaseModel]] = {
            topics.inbound: TicketReceived,
            topics.classified: TicketClassified,
            topics.decided: TicketDecided,
            topics.routed: TicketRouted,
            topics.deadletter: TicketDeadLettered,
            topics.feedback: FeedbackGiven,
        }

    def rows(self, batch: list[Incoming]) -> tuple[list[AuditRow], list[Outgoing]]:
        """Return the rows to record and the dead letters for invalid feedback."""
        rows: list[AuditRow] = []
        dead: list[Outgoing] = []
        for record in batch:
            model = self._models.get(record.topic)
            if model is None:
                continue
            try:
                event = decode_record(record, model)
                row = to_row(event, record.topic, record.partition, record.offset)
            except InvalidMessage as error:
                if record.topic == self._topics.feedback:
                    letter = dead_letter(
                        record, stage=Stage.FEEDBACK, error=error, producer=self._producer
                    )
                    dead.append(Outgoing(self._topics.deadletter, letter.ticket_id, letter))
                elif record.topic != self._topics.inbound:
                    logger.bind(
                        topic=record.topic, partition=record.partition, offset=record.offset
                    ).error("unrecordable event: {}", error)
                continue
            rows.append(row)
        return rows, dead

    async def __call__(self, batch: list[Incoming]) -> list[Outgoing]:
        """Handle one consumed batch: insert (retrying while the database is down)."""
        rows, dead = self.rows(batch)
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(_transient_errors()),
            wait=wait_exponential_jitter(multiplier=0.1, max=self._max_backoff_s),
            before_sleep=lambda state: logger.warning(
                "audit store unavailable (attempt {}): {}; not committing, retrying",
                state.attempt_number,
                state.outcome.exception() if state.outcome else None,
            ),
            reraise=True,
        ):
            with attempt:
                inserted = await self._repository.insert(rows)
        logger.debug("recorded {} of {} events ({} new)", len(rows), len(batch), inserted)
        return dead
