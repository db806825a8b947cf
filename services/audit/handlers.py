"""The audit consumer's handler: every event of every topic, written once to the trail.

Inbound records that are not valid tickets are not recorded here: the classifier
dead-letters them with the reason and the original bytes, and that dead letter is
recorded. Invalid feedback has no other consumer, so it is dead-lettered here.
"""

from __future__ import annotations

import json
from collections import Counter

from loguru import logger
from pydantic import BaseModel
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from services.audit.repository import AuditRepository, AuditRow, control_row, to_row
from shared.codec import InvalidMessage
from shared.contracts import (
    DeadLetterReplayed,
    FeedbackGiven,
    ProducerInfo,
    Stage,
    TicketClassified,
    TicketDeadLettered,
    TicketDecided,
    TicketReceived,
    TicketRouted,
)
from shared.control import decode_control
from shared.logging import message_context
from shared.stage import Incoming, Outgoing, TransientError, dead_letter, decode_record
from shared.topics import Topics
from shared.tracing import ticket_span, tracing_enabled

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


_REPLAYED = "ticket.dead_letter_replayed"


def _event_type(raw: bytes | None) -> object:
    """Return the `event_type` of a JSON object message, or None."""
    if not raw or _REPLAYED.encode() not in raw:
        return None  # the cheap answer for every dead letter
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return data.get("event_type") if isinstance(data, dict) else None


class AuditHandler:
    """Record a batch of events; wait (without committing) while the database is down."""

    def __init__(
        self,
        repository: AuditRepository,
        *,
        topics: Topics,
        producer: ProducerInfo,
        max_backoff_s: float = 5.0,
        max_wait_s: float = 60.0,
    ) -> None:
        self._repository = repository
        self._max_wait_s = max_wait_s
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
            if record.topic == self._topics.control:
                rows.extend(_control_rows(record))
                continue
            model = self._model_for(record)
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

    def _model_for(self, record: Incoming) -> type[BaseModel] | None:
        # The dead-letter topic carries dead letters and the records of their replays.
        if record.topic == self._topics.deadletter and _event_type(record.value) == _REPLAYED:
            return DeadLetterReplayed
        return self._models.get(record.topic)

    async def __call__(self, batch: list[Incoming]) -> list[Outgoing]:
        """Handle one consumed batch: insert (retrying while the database is down)."""
        rows, dead = self.rows(batch)
        # The wait is bounded so the consumer polls again well within max.poll.interval.ms
        # (300 s): past it the batch goes back uncommitted and is redelivered, for as long
        # as the outage lasts (TransientError is never dead-lettered).
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(_transient_errors()),
                wait=wait_exponential_jitter(multiplier=0.1, max=self._max_backoff_s),
                stop=stop_after_delay(self._max_wait_s),
                before_sleep=lambda state: logger.warning(
                    "audit store unavailable (attempt {}): {}; not committing, retrying",
                    state.attempt_number,
                    state.outcome.exception() if state.outcome else None,
                ),
                reraise=True,
            ):
                with attempt:
                    inserted = await self._repository.insert(rows)
        except _transient_errors() as error:
            raise TransientError(f"audit store unavailable: {error!r}") from error
        _log_recorded(rows, inserted)
        if tracing_enabled():  # spans cost context bookkeeping even when nothing records them
            traceparents = {
                (r.topic, r.partition, r.offset): r.headers.get("traceparent") for r in batch
            }
            for row in rows:
                key = (row.topic, row.partition, row.kafka_offset)
                _trace_recorded(row, traceparents.get(key))
        for row in rows:
            _log_row(row)
        return dead


def _log_recorded(rows: list[AuditRow], inserted: int) -> None:
    """Log one INFO line per batch: how many events of each type, how many were new."""
    if rows:
        kinds = Counter(row.event_type for row in rows)
        logger.info(
            "recorded {} ({} new)", ", ".join(f"{k} x{n}" for k, n in kinds.items()), inserted
        )


def _log_row(row: AuditRow) -> None:
    # DEBUG, context as keyword arguments: bound to the line only when a sink takes DEBUG.
    logger.debug(
        "recorded {event_type} {event_id}",
        event_type=row.event_type,
        event_id=row.event_id,
        **message_context(
            ticket_id=row.ticket_id,
            trace_id=row.trace_id,
            topic=row.topic,
            partition=row.partition,
            offset=row.kafka_offset,
        ),
    )


def _control_rows(record: Incoming) -> list[AuditRow]:
    """Return the row of a control event; an invalid one is logged (nothing acted on it)."""
    try:
        event = decode_control(record.value)
    except InvalidMessage as error:
        logger.bind(topic=record.topic, partition=record.partition, offset=record.offset).error(
            "unrecordable control event: {}", error
        )
        return []
    return [control_row(event, record.topic, record.partition, record.offset)]


def _trace_recorded(row: AuditRow, traceparent: str | None) -> None:
    """Trace the recording of one event, in its ticket's trace."""
    with ticket_span(
        "audit record", trace_id=row.trace_id, traceparent=traceparent, event_type=row.event_type
    ):
        pass
