"""The consume → transform → publish loop every stateless stage shares.

A stage receives a batch of raw Kafka records, turns each into zero or more outgoing
messages (its own events, or a dead letter when a record cannot be processed), and the
runtime publishes them all and waits for every broker acknowledgement. Only then does the
handler return, and only then does faststream commit the batch's offsets
(`AckPolicy.NACK_ON_ERROR`): a crash before that redelivers the batch, and the
deterministic event ids make the replay recognisable downstream.

A batch that fails is retried in process with bounded exponential backoff (`RetryPolicy`),
without committing. After `max_attempts` failures the batch is bisected to find the
record(s) that fail on their own; each is dead-lettered with every attempt's error, the
others are published, and the batch is committed: one bad record never blocks a
partition. Transient errors (Kafka unavailable, `TransientError` raised by a stage whose
dependency is down) are never dead-lettered: the batch is redelivered after a backoff,
for as long as the outage lasts, and each handler call stays short so the consumer keeps
polling within `max.poll.interval.ms`.

Records are taken raw (custom parser and decoder): a message with broken JSON, a lying
content-type or undecodable headers must reach the stage's own validation, which
dead-letters it with a reason, instead of failing inside the framework and blocking the
partition.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.message import StreamMessage
from loguru import logger
from pydantic import BaseModel

from shared.codec import MAX_MESSAGE_BYTES, InvalidMessage, decode, encode
from shared.contracts import (
    AttemptError,
    DeadLetterReplayed,
    ProducerInfo,
    Stage,
    TicketDeadLettered,
    TicketReceived,
)
from shared.ids import bytes_digest, content_event_id, derived_event_id, trace_id_for
from shared.kafka import producer_kwargs
from shared.logging import message_context
from shared.metrics import StageMetrics
from shared.tracing import ticket_span, traceparent_of, tracing_enabled, untraced_traceparent

if TYPE_CHECKING:
    from aiokafka.structs import RecordMetadata

    from shared.settings import KafkaSettings

JSON_HEADERS = {"content-type": "application/json"}
_CONTENT_TYPE = ("content-type", b"application/json")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Incoming:
    """One consumed record, as a stage sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str] = field(default_factory=dict)
    timestamp_ms: int | None = None

    @classmethod
    def of(cls, record: ConsumerRecord[Any, Any]) -> Incoming:
        """Return the stage's view of an aiokafka record."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers={k: v.decode("utf-8", "replace") for k, v in record.headers or ()},
            timestamp_ms=record.timestamp if record.timestamp and record.timestamp > 0 else None,
        )

    @property
    def coordinates(self) -> str:
        """Return `topic:partition:offset`, unique per record while its topic lives."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def identity(self) -> str:
        """Return a name for this record that no other record gets, and redelivery keeps.

        Coordinates alone repeat once a topic is recreated (offsets restart at 0: a new
        cluster, a reset staging topic); the record's timestamp and a digest of its key and
        value tell a new record at an old offset apart.
        """
        key, value = bytes_digest(self.key or b""), bytes_digest(self.value or b"")
        return f"{self.coordinates}|{self.timestamp_ms}|{key}|{value}"


@dataclass(frozen=True)
class Outgoing:
    """One message to publish: an event, its topic and its key (the ticket id)."""

    topic: str
    key: str
    event: BaseModel
    headers: dict[str, str] = field(default_factory=dict)
    cause: Incoming | None = None


Process = Callable[[list[Incoming]], Awaitable[list[Outgoing]]]
Publish = Callable[[Sequence[Outgoing]], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


class TransientError(Exception):
    """Raised by a stage whose dependency is down: redeliver the batch, never dead-letter."""


# Kafka errors (broker down, leader moving, producer closing at shutdown) say nothing about
# the records: waiting them out is right. Everything else counts as a failed attempt.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    KafkaError,
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing batch is tried, and how long to wait in between."""

    max_attempts: int = 3
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 5.0

    def backoff(self, attempt: int) -> float:
        """Return the wait after failed attempt number `attempt` (1-based), capped."""
        return float(min(self.backoff_max_s, self.backoff_initial_s * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class DeadLetterTarget:
    """Where a stage dead-letters the records that keep failing, and in whose name."""

    stage: Stage
    producer: ProducerInfo
    topic: str


def guess_ticket_id(record: Incoming) -> str:
    """Return the best ticket id for a record that may not parse: key, JSON field, digest."""
    if record.key:
        key = record.key.decode("utf-8", "replace").strip()
        if key:
            return key[:200]
    try:
        data = json.loads(record.value or b"")
        if isinstance(data, dict) and isinstance(data.get("ticket_id"), str) and data["ticket_id"]:
            return str(data["ticket_id"])[:200]
    except (ValueError, RecursionError):
        pass
    return f"unknown-{bytes_digest(record.value or b'')}"


# A dead letter must fit in one Kafka message (1 MB by default) although base64 makes the
# bytes a third longer: it keeps the first MAX_MESSAGE_BYTES (anything longer is refused as
# too large anyway); the whole message stays in its topic at the recorded offset.
MAX_KEPT_BYTES = MAX_MESSAGE_BYTES
# What a dead letter may weigh: the kept bytes in base64 and the envelope around them.
DEAD_LETTER_MAX_BYTES = MAX_KEPT_BYTES * 4 // 3 + 64 * 1024


def dead_letter(
    record: Incoming,
    *,
    stage: Stage,
    error: InvalidMessage | Exception,
    producer: ProducerInfo,
    cause_event_id: str | None = None,
    trace_id: str | None = None,
    attempts: Sequence[AttemptError] = (),
) -> TicketDeadLettered:
    """Return the dead letter for a record a stage gives up on, keeping its bytes."""
    reason = error.reason if isinstance(error, InvalidMessage) else "processing_error"
    detail = error.detail if isinstance(error, InvalidMessage) else str(error)
    # Without an event id to derive from, the record itself is the cause (why not its
    # coordinates alone: `Incoming.identity`).
    cause = cause_event_id or record.identity
    event_id = derived_event_id(cause, f"deadletter:{stage.value}")
    if not attempts:
        attempts = (AttemptError(attempt=1, error_type=type(error).__name__, error_message=detail),)
    value = record.value or b""
    return TicketDeadLettered(
        event_id=event_id,
        ticket_id=guess_ticket_id(record),
        trace_id=trace_id or record.headers.get("trace_id") or trace_id_for(cause),
        causation_id=cause_event_id,
        producer=producer,
        stage=stage,
        reason=reason,
        error_type=type(error).__name__,
        error_message=detail[:2000],
        original_topic=record.topic,
        original_partition=record.partition,
        original_offset=record.offset,
        original_key=record.key.decode("utf-8", "replace") if record.key is not None else None,
        original_bytes_b64=base64.b64encode(value[:MAX_KEPT_BYTES]).decode("ascii"),
        original_size=len(value),
        original_truncated=len(value) > MAX_KEPT_BYTES,
        attempts=tuple(attempts),
    )


def _inbound_defaults(record: Incoming) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def fill(data: dict[str, Any]) -> dict[str, Any]:
        if data.get("occurred_at") or record.timestamp_ms is None:
            return data
        # The id is derived from the content as sent, before the timestamp is added, so a
        # re-published duplicate (a new record timestamp) keeps its id.
        data = {"event_id": data.get("event_id") or content_event_id(data), **data}
        when = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
        return data | {"occurred_at": when.isoformat()}

    return fill


def decode_record(record: Incoming, model: type[M]) -> M:
    """Decode one record into `model`, or raise `InvalidMessage`.

    An upstream ticket without `occurred_at` takes the Kafka record's timestamp, so every
    consumer of the same record (classifier, audit) sees the same time.
    """
    prepare = _inbound_defaults(record) if model is TicketReceived else None
    # Dead letters (and replay records) carry a message in base64 plus an envelope.
    carries_bytes = model is TicketDeadLettered or model is DeadLetterReplayed
    limit = DEAD_LETTER_MAX_BYTES if carries_bytes else MAX_MESSAGE_BYTES
    return decode(record.value, model, max_bytes=limit, prepare=prepare)


def decode_batch(
    batch: Sequence[Incoming],
    model: type[M],
    *,
    stage: Stage,
    producer: ProducerInfo,
    deadletter_topic: str,
) -> tuple[list[tuple[Incoming, M]], list[Outgoing]]:
    """Split a batch into records that are valid `model` events and dead letters."""
    valid: list[tuple[Incoming, M]] = []
    dead: list[Outgoing] = []
    for record in batch:
        try:
            valid.append((record, decode_record(record, model)))
        except InvalidMessage as error:
            letter = dead_letter(record, stage=stage, error=error, producer=producer)
            logger.bind(
                **message_context(
                    ticket_id=letter.ticket_id,
                    trace_id=letter.trace_id,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                )
            ).warning("dead-lettered: {}", error)
            dead.append(Outgoing(deadletter_topic, letter.ticket_id, letter, cause=record))
    return valid, dead


Headers = list[tuple[str, bytes]]


class Sender(Protocol):
    """Hands one record to a Kafka producer; the returned future resolves when acknowledged."""

    async def send(
        self, topic: str, value: bytes, *, key: bytes, headers: Headers
    ) -> asyncio.Future[RecordMetadata]:
        """Queue one record for sending (waits only while the producer's buffer is full)."""
        ...


class RecordSender:
    """The stage's own durable aiokafka producer, started on the first batch.

    faststream's `broker.publish` costs several times the aiokafka `send` it wraps (a
    publish command and the middleware chain per message); the stage counts what it
    publishes in its own `StageMetrics`. A start that fails raises a Kafka error, which
    the stage treats like any transient one (redelivered, never dead-lettered).
    """

    def __init__(self, kafka: KafkaSettings, *, client_id: str) -> None:
        self._options = producer_kwargs(kafka) | {"client_id": client_id}
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def send(
        self, topic: str, value: bytes, *, key: bytes, headers: Headers
    ) -> asyncio.Future[RecordMetadata]:
        """Queue one record; the future resolves when the broker acknowledged it."""
        producer = self._producer or await self._start()
        future: asyncio.Future[RecordMetadata] = await producer.send(
            topic, value, key=key, headers=headers
        )
        return future

    async def _start(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(**self._options)
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def stop(self) -> None:
        """Flush and close the producer (after the broker stopped its handlers)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()


def record_headers(message: Outgoing, *, service: str, traced: bool) -> Headers:
    """Return the Kafka headers of one outgoing record: content type, trace id, traceparent.

    The `traceparent` names the span in which this service handled the ticket (see
    shared/tracing.py); that span is recorded only when a tracer provider is installed.
    """
    trace_id = trace_of(message.event)
    parent = message.cause.headers.get("traceparent") if message.cause else None
    if traced:
        with ticket_span(
            f"{service} {message.topic}",
            trace_id=trace_id,
            traceparent=parent,
            ticket_id=message.key,
            event_type=str(getattr(message.event, "event_type", "")),
        ) as span:
            traceparent = traceparent_of(span, trace_id)
    else:
        traceparent = untraced_traceparent(trace_id, parent)
    if message.headers:  # a stage's own headers may override the defaults, as before
        named = JSON_HEADERS | {"trace_id": trace_id} | message.headers
        if traceparent:
            named["traceparent"] = traceparent
        return [(name, value.encode()) for name, value in named.items()]
    headers = [_CONTENT_TYPE, ("trace_id", trace_id.encode())]
    if traceparent:
        headers.append(("traceparent", traceparent.encode()))
    return headers


async def publish_all(
    sender: Sender, messages: Sequence[Outgoing], *, service: str = "triageflow"
) -> None:
    """Send every message at once, then wait until the broker acknowledged all of them."""
    traced = tracing_enabled()
    futures = []
    for message in messages:
        headers = record_headers(message, service=service, traced=traced)
        key = message.key.encode("utf-8")
        futures.append(
            await sender.send(message.topic, encode(message.event), key=key, headers=headers)
        )
    if futures:
        await asyncio.gather(*futures)


def _attempt(number: int, error: BaseException) -> AttemptError:
    return AttemptError(
        attempt=number, error_type=type(error).__name__, error_message=str(error)[:2000]
    )


def _event_id_of(record: Incoming) -> str | None:
    try:
        data = json.loads(record.value or b"")
    except (ValueError, RecursionError):
        return None
    event_id = data.get("event_id") if isinstance(data, dict) else None
    return event_id if isinstance(event_id, str) and event_id else None


async def _isolate_one(
    record: Incoming,
    process: Process,
    *,
    policy: RetryPolicy,
    target: DeadLetterTarget,
    inherited: Sequence[AttemptError],
    sleep: Sleep,
) -> list[Outgoing]:
    attempts = list(inherited)
    last: Exception = RuntimeError("no attempt made")
    for own in range(1, policy.max_attempts + 1):
        try:
            return await process([record])
        except TRANSIENT_ERRORS:
            raise
        except Exception as error:
            last = error
            attempts.append(_attempt(len(attempts) + 1, error))
            if own < policy.max_attempts:
                await sleep(policy.backoff(own))
    letter = dead_letter(
        record,
        stage=target.stage,
        error=last,
        producer=target.producer,
        cause_event_id=_event_id_of(record),
        attempts=attempts,
    )
    logger.bind(
        **message_context(
            ticket_id=letter.ticket_id,
            trace_id=letter.trace_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
    ).error("dead-lettered after {} attempts: {}", len(attempts), last)
    return [Outgoing(target.topic, letter.ticket_id, letter, cause=record)]


async def _isolate(
    records: list[Incoming],
    process: Process,
    *,
    policy: RetryPolicy,
    target: DeadLetterTarget,
    inherited: Sequence[AttemptError],
    sleep: Sleep,
    known_failing: bool = False,
) -> list[Outgoing]:
    """Bisect a failing batch: process what succeeds, dead-letter the records that fail."""
    if len(records) == 1:
        return await _isolate_one(
            records[0], process, policy=policy, target=target, inherited=inherited, sleep=sleep
        )
    if not known_failing:
        try:
            return await process(records)
        except TRANSIENT_ERRORS:
            raise
        except Exception:
            pass  # one of its halves holds a failing record
    middle = len(records) // 2
    first = await _isolate(
        records[:middle], process, policy=policy, target=target, inherited=inherited, sleep=sleep
    )
    second = await _isolate(
        records[middle:], process, policy=policy, target=target, inherited=inherited, sleep=sleep
    )
    return first + second


async def process_with_retries(
    records: list[Incoming],
    process: Process,
    publish: Publish,
    *,
    policy: RetryPolicy,
    target: DeadLetterTarget | None,
    sleep: Sleep = asyncio.sleep,
) -> list[Outgoing]:
    """Process and publish a batch, retrying; dead-letter records that keep failing.

    Transient errors propagate at once (the caller redelivers). Without a `target` a batch
    that fails `max_attempts` times raises its last error (redelivered, never skipped).
    """
    errors: list[AttemptError] = []
    for number in range(1, policy.max_attempts + 1):
        try:
            outgoing = await process(records)
            await publish(outgoing)
            return outgoing
        except TRANSIENT_ERRORS:
            raise
        except Exception as error:
            errors.append(_attempt(number, error))
            logger.warning(
                "batch of {} records failed (attempt {} of {}): {!r}",
                len(records),
                number,
                policy.max_attempts,
                error,
            )
            if number == policy.max_attempts and target is None:
                raise
            if number < policy.max_attempts:
                await sleep(policy.backoff(number))
    assert target is not None
    outgoing = await _isolate(
        records,
        process,
        policy=policy,
        target=target,
        inherited=errors,
        sleep=sleep,
        known_failing=True,
    )
    await publish(outgoing)
    return outgoing


def trace_of(event: BaseModel) -> str:
    """Return the ticket's trace id carried by an event or a work item."""
    trace_id = getattr(event, "trace_id", None)
    if trace_id is None:
        trace_id = (getattr(event, "trail", None) or {}).get("trace_id", "")
    return str(trace_id)


def _log_published(service: str, message: Outgoing) -> None:
    # DEBUG, with the context as keyword arguments: loguru binds them to the line's `extra`
    # only when a sink takes DEBUG, so at INFO the line costs a level check.
    cause = message.cause
    logger.debug(
        "published {event_type} to {destination}",
        event_type=getattr(message.event, "event_type", "work item"),
        destination=message.topic,
        service=service,
        **message_context(
            ticket_id=message.key,
            trace_id=trace_of(message.event),
            topic=cause.topic if cause else "",
            partition=cause.partition if cause else -1,
            offset=cause.offset if cause else -1,
        ),
    )


def _log_batch(
    records: Sequence[Incoming], outgoing: Sequence[Outgoing], seconds: float, work: float
) -> None:
    """Log one INFO line per batch: records in, messages out per topic, dead letters, times."""
    out = Counter(message.topic for message in outgoing)
    dead = sum(isinstance(message.event, TicketDeadLettered) for message in outgoing)
    logger.info(
        "batch of {records} records: published {published} ({dead_letters} dead-lettered)"
        " in {ms:.1f} ms ({work_ms:.1f} ms of work)",
        records=len(records),
        published=dict(out),
        dead_letters=dead,
        ms=seconds * 1000,
        work_ms=work * 1000,
    )


def _count(
    metrics: StageMetrics, records: Sequence[Incoming], outgoing: Sequence[Outgoing]
) -> None:
    """Count records in and out per topic (one increment per topic and batch)."""
    for topic, number in Counter(record.topic for record in records).items():
        metrics.messages_in.labels(topic).inc(number)
    for topic, number in Counter(message.topic for message in outgoing).items():
        metrics.messages_out.labels(topic).inc(number)
    letters = Counter(
        (message.event.stage.value, message.event.reason)
        for message in outgoing
        if isinstance(message.event, TicketDeadLettered)
    )
    for (stage, reason), number in letters.items():
        metrics.dead_letters.labels(stage, reason).inc(number)


def _record_lag(metrics: StageMetrics, msg: KafkaMessage, records: list[Incoming]) -> None:
    consumer = getattr(msg, "consumer", None)
    highwater = getattr(consumer, "highwater", None)
    if highwater is None:
        return
    last: dict[tuple[str, int], int] = {}
    for record in records:
        last[(record.topic, record.partition)] = record.offset
    for (topic, partition), offset in last.items():
        end = highwater(TopicPartition(topic, partition))
        if end is not None:
            metrics.consumer_lag.labels(topic, str(partition)).set(max(0, end - offset - 1))


def _decodable(headers: Sequence[tuple[str, bytes]] | None) -> bool:
    try:
        for _, value in headers or ():
            value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def _raw_parser(
    record: tuple[ConsumerRecord[Any, Any], ...],
    original: Callable[[tuple[ConsumerRecord[Any, Any], ...]], Awaitable[StreamMessage[Any]]],
) -> StreamMessage[Any]:
    # faststream decodes headers as strict UTF-8; hostile headers would raise there,
    # outside any handler, and block the partition. Make them decodable first (copying
    # only the records that need it: nearly all headers are valid).
    cleaned = tuple(
        r
        if _decodable(r.headers)
        else dataclasses.replace(
            r, headers=[(k, v.decode("utf-8", "replace").encode()) for k, v in r.headers or ()]
        )
        for r in record
    )
    return await original(cleaned)


async def _raw_decoder(message: StreamMessage[Any]) -> Any:
    # The handler's one argument is the message itself: asking faststream to inject it
    # (`msg: KafkaMessage`, a Context dependency) resolves it in a worker thread per batch.
    return message


def subscribe_stage(
    broker: KafkaBroker,
    *,
    topics: Sequence[str],
    group_id: str,
    process: Process,
    max_records: int,
    batch_timeout_ms: int,
    title: str,
    metrics: StageMetrics,
    sender: Sender,
    observe: Callable[[list[Outgoing]], None] | None = None,
    retry: RetryPolicy | None = None,
    dead_letters: DeadLetterTarget | None = None,
) -> None:
    """Register a batch subscriber that runs `process` and publishes its output via `sender`.

    With `dead_letters`, records that fail `retry.max_attempts` times are dead-lettered
    there; without, a failing batch is redelivered until it succeeds.
    """
    policy = retry or RetryPolicy()
    transient_failures = 0
    work = 0.0  # seconds of the current batch spent in `process`, not in publishing

    async def timed(records: list[Incoming]) -> list[Outgoing]:
        nonlocal work
        started = time.perf_counter()
        try:
            return await process(records)
        finally:
            work += time.perf_counter() - started

    async def publish(outgoing: Sequence[Outgoing]) -> None:
        await publish_all(sender, outgoing, service=title)

    async def handle(msg: Any) -> None:
        nonlocal transient_failures, work
        records = [Incoming.of(r) for r in msg.raw_message]
        started, work = time.perf_counter(), 0.0
        with logger.contextualize(service=title):
            try:
                outgoing = await process_with_retries(
                    records, timed, publish, policy=policy, target=dead_letters
                )
            except TRANSIENT_ERRORS as error:
                metrics.failed_batches.inc()
                transient_failures += 1
                delay = policy.backoff(transient_failures)
                logger.warning(
                    "batch of {} records hit a transient error ({!r}); redelivered in {:.1f} s",
                    len(records),
                    error,
                    delay,
                )
                # Backing off here keeps an outage from becoming a hot redelivery loop.
                await asyncio.sleep(delay)
                raise
            except Exception:
                metrics.failed_batches.inc()
                logger.exception("batch of {} records failed; it will be redelivered", len(records))
                raise
            transient_failures = 0
            elapsed = time.perf_counter() - started
            _log_batch(records, outgoing, elapsed, work)
        metrics.batch_seconds.observe(elapsed)
        metrics.work_seconds.observe(work)
        metrics.batch_size.observe(len(records))
        _count(metrics, records, outgoing)
        for message in outgoing:
            _log_published(title, message)
        if observe is not None:
            observe(outgoing)
        _record_lag(metrics, msg, records)

    broker.subscriber(
        *topics,
        group_id=group_id,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=batch_timeout_ms,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        parser=_raw_parser,
        decoder=_raw_decoder,
        title=title,
    )(handle)
