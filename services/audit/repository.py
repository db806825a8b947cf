"""The audit store: every SQL statement of the audit service lives in this module.

    AuditRow                  one event as recorded, built by the pure `to_row`
    TrailEntry                one line of a ticket's trail (the `audit.ticket_trail` view)
    AuditRepository           the interface the consumer depends on (a Protocol)
    ├── PostgresAuditRepository   asyncpg; idempotent bulk insert through COPY
    └── FakeAuditRepository       in memory, for unit tests without a server

The schema (`audit.trail_events`, `audit.ticket_trail`) is made by the SQL migrations in
`migrations/`, applied by `services.audit.migrate.apply_migrations`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import asyncpg
import pydantic_core
from loguru import logger
from pydantic import BaseModel

from services.audit.verify import ChainRow, TicketChainRow
from shared.codec import InvalidMessage

if TYPE_CHECKING:
    # asyncpg's classes are generic only in its stubs.
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One event as the audit store records it (the database adds `seq` and `recorded_at`)."""

    event_id: str
    event_type: str
    ticket_id: str
    trace_id: str
    causation_id: str | None
    occurred_at: datetime
    topic: str
    partition: int
    kafka_offset: int
    producer_service: str
    schema_version: int
    payload: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True, slots=True)
class TrailEntry:
    """One event of a ticket's trail, in causal order (a row of `audit.ticket_trail`)."""

    ticket_id: str
    position: int
    seq: int
    occurred_at: datetime
    recorded_at: datetime
    event_type: str
    event_id: str
    causation_id: str | None
    producer_service: str
    summary: str | None
    hop_ms: float | None


class AuditRepository(Protocol):
    """Where the audit consumer records events."""

    async def insert(self, rows: Sequence[AuditRow]) -> int:
        """Record `rows`, skipping event ids already recorded; return how many were new."""
        ...

    async def trail(self, ticket_id: str) -> list[TrailEntry]:
        """Return the trail of one ticket in causal order (empty if unknown)."""
        ...

    async def count_events(self) -> int:
        """Return how many events are recorded."""
        ...


# ------------------------------------------------------------------------- to_row


def to_row(
    event: Mapping[str, Any] | BaseModel, topic: str, partition: int, offset: int
) -> AuditRow:
    """Return the row recording `event` consumed at topic/partition/offset.

    `event` is a validated event or its JSON form (`model_dump(mode="json")`): the raw
    inbound JSON may lack the ids the contract derives. Raises `InvalidMessage` when an
    envelope field is missing or has the wrong type. NUL characters, which PostgreSQL text
    cannot hold, are recorded as U+FFFD (here in the columns, by the codec in the payload).
    """
    payload = event.model_dump(mode="json") if isinstance(event, BaseModel) else event
    producer = payload.get("producer")
    return AuditRow(
        event_id=_text(payload, "event_id"),
        event_type=_text(payload, "event_type"),
        ticket_id=_text(payload, "ticket_id"),
        trace_id=_text(payload, "trace_id"),
        causation_id=_optional_text(payload, "causation_id"),
        occurred_at=_aware_datetime(payload.get("occurred_at")),
        topic=topic,
        partition=partition,
        kafka_offset=offset,
        producer_service=_text(producer if isinstance(producer, Mapping) else {}, "service"),
        schema_version=_integer(payload, "schema_version"),
        payload=payload,
    )


_NUL, _REPLACEMENT = "\x00", "\ufffd"
_INT4_MAX = 2**31 - 1


def _storable(value: Any) -> Any:
    """Return `value` with every NUL character in its strings replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace(_NUL, _REPLACEMENT)
    if isinstance(value, Mapping):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    return value


def _invalid(name: str, problem: str) -> InvalidMessage:
    return InvalidMessage("schema_violation", f"{name}: {problem}")


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise _invalid(name, "missing or not a non-empty string")
    return value.replace(_NUL, _REPLACEMENT)


def _optional_text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise _invalid(name, "not a string")
    return value.replace(_NUL, _REPLACEMENT) if value else None


def _integer(data: Mapping[str, Any], name: str) -> int:
    value = data.get(name)
    # bool is an int subclass; `true` is not a schema version.
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(name, "missing or not an integer")
    if not 0 <= value <= _INT4_MAX:
        raise _invalid(name, f"{value} is outside 0..{_INT4_MAX}")
    return value


def _aware_datetime(value: object) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise _invalid("occurred_at", "not an ISO 8601 timestamp") from exc
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise _invalid("occurred_at", "missing or not a timestamp with a time zone")
    return value


def unique_by_event_id(rows: Iterable[AuditRow]) -> list[AuditRow]:
    """Return `rows` without repeated event ids, keeping the first of each."""
    first: dict[str, AuditRow] = {}
    for row in rows:
        first.setdefault(row.event_id, row)
    return list(first.values())


# --------------------------------------------------------------------- PostgreSQL


# jsonb's binary wire format: a version byte, then the JSON text. Binary is what COPY
# (copy_records_to_table) needs; a text codec cannot be used there.
_JSONB_VERSION = b"\x01"


def _encode_json(value: Any) -> bytes:
    # pydantic-core serialises in Rust, several times faster than json.dumps, and also
    # accepts the datetimes and enums of a python-mode dump.
    return pydantic_core.to_json(value)


def _encode_jsonb(value: Any) -> bytes:
    data = _encode_json(value)
    # jsonb refuses \u0000, and one such ticket would fail every batch it is in. The search
    # is nearly free; the walk that replaces it runs only when it finds something.
    if b"\\u0000" in data:
        data = _encode_json(_storable(value))
    return _JSONB_VERSION + data


def _decode_jsonb(data: bytes) -> Any:
    if data[:1] != _JSONB_VERSION:
        raise ValueError(f"unsupported jsonb binary version {data[:1]!r}")
    return json.loads(data[1:])


async def init_connection(connection: Connection) -> None:
    """Make jsonb values arrive as Python objects and leave as JSON on `connection`."""
    await connection.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        format="binary",
    )


async def connect_pool(url: str, *, min_size: int = 1, max_size: int = 4) -> Pool:
    """Open an asyncpg pool to the audit database with the jsonb codec on every connection."""
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        server_settings={"application_name": "triageflow-audit"},
    )
    logger.info("audit database pool open (min {}, max {})", min_size, max_size)
    return pool


_STAGE_COLUMNS = (
    "event_id",
    "event_type",
    "ticket_id",
    "trace_id",
    "causation_id",
    "occurred_at",
    "topic",
    "partition",
    "kafka_offset",
    "producer_service",
    "schema_version",
    "payload",
)
_COLUMN_LIST = ", ".join(_STAGE_COLUMNS)

# A session-level staging table, created once per connection and emptied at every commit:
# COPY into it is the fastest way in, and INSERT ... SELECT from it can skip duplicates.
_CREATE_STAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS audit_trail_stage (
    event_id text, event_type text, ticket_id text, trace_id text, causation_id text,
    occurred_at timestamptz, topic text, partition integer, kafka_offset bigint,
    producer_service text, schema_version integer, payload jsonb
) ON COMMIT DELETE ROWS
"""

# The hash chain (migration audit_0004, services/audit/verify.py): every new row links to
# the row before it by seq. Writers append one batch at a time under this transaction-level
# advisory lock (released at commit); the COPY into the staging table happens before it.
CHAIN_LOCK_KEY = 0x7466_6175_6469_7431  # "tfaudit1": any fixed bigint shared by all writers
_LOCK_CHAIN = "SELECT pg_advisory_xact_lock($1)"

# Run after the lock, as its own statement: in READ COMMITTED it then sees every batch
# committed before ours. From the inside out: the staged rows in event_id order (the
# ORDER BY keeps that subquery apart), numbered (seq = chain order; a subquery with a
# volatile nextval is not merged into its outer query, so each number is drawn once),
# their digests as they will be stored (recorded_at is now(), the transaction's start),
# then linked from the newest recorded row_hash by the running aggregate chain_link.
# No ON CONFLICT: a row skipped there would leave a hole in the chain. A known event id
# fails the statement instead, and the batch is appended again without it.
_APPEND_STAGED = """
INSERT INTO audit.trail_events (seq, {columns}, recorded_at, prev_hash, row_hash)
SELECT seq, {columns}, now(), coalesce(lag(row_hash) OVER (ORDER BY seq), head), row_hash
FROM (
    SELECT digested.*, head.head,
           audit.chain_link(head.head, digested.digest) OVER (ORDER BY digested.seq) AS row_hash
    FROM (
        SELECT numbered.*, audit.row_digest(
            numbered.seq, numbered.event_id, numbered.event_type, numbered.ticket_id,
            numbered.trace_id, numbered.causation_id, numbered.occurred_at, now(),
            numbered.topic, numbered.partition, numbered.kafka_offset,
            numbered.producer_service, numbered.schema_version, numbered.payload
        ) AS digest
        FROM (
            SELECT {columns}, nextval('audit.trail_events_seq_seq') AS seq
            FROM (
                SELECT {columns}
                FROM pg_temp.audit_trail_stage AS s
                {where}
                ORDER BY s.event_id
            ) AS ordered
        ) AS numbered
    ) AS digested
    CROSS JOIN (
        SELECT coalesce(
            (SELECT row_hash FROM audit.trail_events ORDER BY seq DESC LIMIT 1),
            decode(repeat('00', 32), 'hex')
        ) AS head
    ) AS head
) AS linked
ORDER BY seq
"""
_APPEND_ALL_STAGED = _APPEND_STAGED.format(columns=_COLUMN_LIST, where="")
# After a batch hit a recorded event id (a redelivery): a correlated probe of the primary
# key per staged row, never a hash anti-join that would read the whole trail (the staging
# table has no statistics to plan with).
_APPEND_NEW_STAGED = _APPEND_STAGED.format(
    columns=_COLUMN_LIST,
    where="WHERE (SELECT 1 FROM audit.trail_events AS t WHERE t.event_id = s.event_id LIMIT 1)"
    " IS NULL",
)

_SELECT_TRAIL = """
SELECT ticket_id, position, seq, occurred_at, recorded_at, event_type, event_id,
       causation_id, producer_service, summary, hop_ms
FROM audit.ticket_trail
WHERE ticket_id = $1
ORDER BY position
"""

_COUNT_EVENTS = "SELECT count(*) FROM audit.trail_events"


def _stage_record(row: AuditRow) -> tuple[Any, ...]:
    return (
        row.event_id,
        row.event_type,
        row.ticket_id,
        row.trace_id,
        row.causation_id,
        row.occurred_at,
        row.topic,
        row.partition,
        row.kafka_offset,
        row.producer_service,
        row.schema_version,
        row.payload,
    )


def _affected(status: str) -> int:
    # asyncpg returns the command tag, e.g. "INSERT 0 998".
    return int(status.rsplit(" ", 1)[-1])


_SELECT_TRAIL_EVENTS = """
SELECT e.payload
FROM audit.ticket_trail AS t
JOIN audit.trail_events AS e USING (event_id)
WHERE t.ticket_id = $1
ORDER BY t.position
"""

_SELECT_DEAD_LETTERS = """
SELECT seq, event_id, ticket_id, occurred_at, payload ->> 'stage' AS stage,
       payload ->> 'reason' AS reason, payload ->> 'error_message' AS error_message,
       payload ->> 'original_topic' AS original_topic
FROM audit.trail_events
WHERE event_type = 'ticket.dead_lettered' AND starts_with(ticket_id, $1)
ORDER BY seq DESC
LIMIT $2
"""

_SELECT_EVENT = "SELECT payload FROM audit.trail_events WHERE event_id = $1"

_COUNT_BY_TYPE = """
SELECT event_type, count(*) AS n
FROM audit.trail_events
WHERE starts_with(ticket_id, $1)
GROUP BY event_type
"""

_MODES = """
SELECT payload ->> 'mode' AS key, count(*) AS n
FROM audit.trail_events
WHERE event_type = 'ticket.decided' AND starts_with(ticket_id, $1)
GROUP BY 1 ORDER BY 2 DESC
"""

_QUEUES = """
SELECT payload ->> 'queue' AS key, count(*) AS n
FROM audit.trail_events
WHERE event_type = 'ticket.routed' AND starts_with(ticket_id, $1)
GROUP BY 1 ORDER BY 2 DESC
"""

_DEAD_REASONS = """
SELECT (payload ->> 'stage') || ': ' || (payload ->> 'reason') AS key, count(*) AS n
FROM audit.trail_events
WHERE event_type = 'ticket.dead_lettered' AND starts_with(ticket_id, $1)
GROUP BY 1 ORDER BY 2 DESC
"""

# Time from the causing event to each event, by stage: where the pipeline spends time.
_HOPS = """
SELECT e.event_type AS key,
       count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95_ms,
       max(ms) AS max_ms
FROM (
    SELECT e.event_type,
           extract(epoch FROM e.occurred_at - c.occurred_at) * 1000 AS ms
    FROM audit.trail_events AS e
    JOIN audit.trail_events AS c ON c.event_id = e.causation_id
    WHERE starts_with(e.ticket_id, $1)
) AS e
GROUP BY 1 ORDER BY 1
"""

# Tickets accounted for: an inbound message ends routed or dead-lettered at the classifier.
_ACCOUNTED = """
SELECT
    (SELECT count(DISTINCT ticket_id) FROM audit.trail_events
     WHERE event_type = 'ticket.routed' AND starts_with(ticket_id, $1)) AS routed,
    (SELECT count(*) FROM audit.trail_events
     WHERE event_type = 'ticket.dead_lettered' AND starts_with(ticket_id, $1)
       AND payload ->> 'original_topic' LIKE '%tickets.inbound') AS dead_lettered_inbound,
    (SELECT count(*) FROM audit.trail_events
     WHERE event_type = 'ticket.dead_lettered' AND starts_with(ticket_id, $1)) AS dead_lettered
"""


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """One recorded dead letter."""

    seq: int
    event_id: str
    ticket_id: str
    occurred_at: datetime
    stage: str | None
    reason: str | None
    error_message: str | None
    original_topic: str | None


@dataclass(frozen=True, slots=True)
class HopStats:
    """Latency from cause to effect for one event type, in milliseconds."""

    event_type: str
    count: int
    p50_ms: float
    p95_ms: float
    max_ms: float


@dataclass(frozen=True, slots=True)
class PipelineSummary:
    """What happened to the tickets whose id starts with a prefix."""

    events_by_type: dict[str, int]
    modes: dict[str, int]
    queues: dict[str, int]
    dead_letter_reasons: dict[str, int]
    hops: list[HopStats]
    routed_tickets: int
    dead_lettered_inbound: int
    dead_letters: int


# ------------------------------------------------- hash chain and dead-letter replays
# Read side of the chain (migration audit_0004, pure checks in services/audit/verify.py)
# and the queries of `triageflow dlq show|replay`.

_DIGEST_OF_E = """audit.row_digest(
    e.seq, e.event_id, e.event_type, e.ticket_id, e.trace_id, e.causation_id, e.occurred_at,
    e.recorded_at, e.topic, e.partition, e.kafka_offset, e.producer_service,
    e.schema_version, e.payload
)"""

# Keyset pages in chain order: no long transaction, and each page is an index range.
_SELECT_CHAIN_PAGE = f"""
SELECT e.seq, e.event_id, e.ticket_id, e.prev_hash, e.row_hash, {_DIGEST_OF_E} AS digest
FROM audit.trail_events AS e
WHERE e.seq > $1
ORDER BY e.seq
LIMIT $2
"""

_SELECT_TICKET_CHAIN = f"""
SELECT e.seq, e.event_id, e.ticket_id, e.prev_hash, e.row_hash, {_DIGEST_OF_E} AS digest,
       before.seq AS predecessor_seq, before.row_hash AS predecessor_hash,
       after.seq AS successor_seq, after.prev_hash AS successor_prev_hash
FROM audit.trail_events AS e
LEFT JOIN LATERAL (
    SELECT seq, row_hash FROM audit.trail_events WHERE seq < e.seq ORDER BY seq DESC LIMIT 1
) AS before ON true
LEFT JOIN LATERAL (
    SELECT seq, prev_hash FROM audit.trail_events WHERE seq > e.seq ORDER BY seq LIMIT 1
) AS after ON true
WHERE e.ticket_id = $1
ORDER BY e.seq
"""

# Only run after a broken link was found: a scan, but it tells removal from reordering.
_SEQ_WITH_ROW_HASH = "SELECT min(seq) FROM audit.trail_events WHERE row_hash = $1"

_SELECT_DEAD_LETTERS_MATCHING = """
SELECT payload
FROM audit.trail_events
WHERE event_type = 'ticket.dead_lettered'
  AND ($1::text IS NULL OR payload ->> 'reason' = $1)
  AND ($2::text IS NULL OR payload ->> 'stage' = $2)
ORDER BY seq
LIMIT $3
"""

_SELECT_REPLAYS = """
SELECT payload
FROM audit.trail_events
WHERE causation_id = $1 AND event_type = 'ticket.dead_letter_replayed'
ORDER BY seq
"""


def _chain_row(record: asyncpg.Record) -> ChainRow:
    # A NULL hash (the NOT NULL constraint dropped behind the writer's back) is a mismatch.
    return ChainRow(
        seq=int(record["seq"]),
        event_id=str(record["event_id"]),
        ticket_id=str(record["ticket_id"]),
        prev_hash=bytes(record["prev_hash"] or b""),
        row_hash=bytes(record["row_hash"] or b""),
        digest=bytes(record["digest"] or b""),
    )


class PostgresAuditRepository:
    """The audit store in PostgreSQL (`audit.trail_events`), through an asyncpg pool."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def insert(self, rows: Sequence[AuditRow]) -> int:
        """Record `rows` in one transaction, skipping known event ids; return how many were new."""
        batch = unique_by_event_id(rows)
        if not batch:
            return 0
        # READ COMMITTED, whatever the server's default: the head must be read after the
        # chain lock is held, by a statement that sees every batch committed before it.
        async with (
            self._pool.acquire() as connection,
            connection.transaction(isolation="read_committed"),
        ):
            await connection.execute(_CREATE_STAGE)
            await connection.copy_records_to_table(
                "audit_trail_stage",
                schema_name="pg_temp",
                columns=_STAGE_COLUMNS,
                records=[_stage_record(row) for row in batch],
            )
            await connection.execute(_LOCK_CHAIN, CHAIN_LOCK_KEY)
            # Most batches are new: skip probing each event id first, and pay for it only
            # when a redelivered batch brings recorded ones (the savepoint is rolled back).
            try:
                async with connection.transaction():
                    inserted = _affected(await connection.execute(_APPEND_ALL_STAGED))
            except asyncpg.UniqueViolationError:
                inserted = _affected(await connection.execute(_APPEND_NEW_STAGED))
        logger.debug("audit insert: {} rows, {} new", len(rows), inserted)
        return inserted

    async def trail(self, ticket_id: str) -> list[TrailEntry]:
        """Return the trail of one ticket in causal order (empty if unknown)."""
        records = await self._pool.fetch(_SELECT_TRAIL, ticket_id)
        return [TrailEntry(**dict(record)) for record in records]

    async def count_events(self) -> int:
        """Return how many events are recorded."""
        count = await self._pool.fetchval(_COUNT_EVENTS)
        return int(count)

    async def trail_events(self, ticket_id: str) -> list[dict[str, Any]]:
        """Return the full events of one ticket's trail, in causal order."""
        records = await self._pool.fetch(_SELECT_TRAIL_EVENTS, ticket_id)
        return [dict(record["payload"]) for record in records]

    async def event(self, event_id: str) -> dict[str, Any] | None:
        """Return one recorded event by id, or None."""
        payload = await self._pool.fetchval(_SELECT_EVENT, event_id)
        return dict(payload) if payload is not None else None

    async def dead_letters(
        self, *, ticket_prefix: str = "", limit: int = 50
    ) -> list[DeadLetterEntry]:
        """Return the most recent dead letters, newest first."""
        records = await self._pool.fetch(_SELECT_DEAD_LETTERS, ticket_prefix, limit)
        return [DeadLetterEntry(**dict(record)) for record in records]

    async def summary(self, *, ticket_prefix: str = "") -> PipelineSummary:
        """Return counts by mode, queue and dead-letter reason, and hop latencies."""
        async with self._pool.acquire() as connection:

            async def counts(sql: str) -> dict[str, int]:
                rows = await connection.fetch(sql, ticket_prefix)
                return {str(row[0]): int(row[1]) for row in rows}

            by_type = await counts(_COUNT_BY_TYPE)
            modes = await counts(_MODES)
            queues = await counts(_QUEUES)
            reasons = await counts(_DEAD_REASONS)
            hops = [
                HopStats(
                    r["key"],
                    int(r["n"]),
                    float(r["p50_ms"]),
                    float(r["p95_ms"]),
                    float(r["max_ms"]),
                )
                for r in await connection.fetch(_HOPS, ticket_prefix)
            ]
            accounted = await connection.fetchrow(_ACCOUNTED, ticket_prefix)
        assert accounted is not None
        return PipelineSummary(
            events_by_type=by_type,
            modes=modes,
            queues=queues,
            dead_letter_reasons=reasons,
            hops=hops,
            routed_tickets=int(accounted["routed"]),
            dead_lettered_inbound=int(accounted["dead_lettered_inbound"]),
            dead_letters=int(accounted["dead_lettered"]),
        )

    # ------------------------------------------- hash chain and dead-letter replays

    async def chain_page(self, *, after_seq: int, limit: int) -> list[ChainRow]:
        """Return up to `limit` rows after `after_seq` in chain order, digests recomputed now."""
        records = await self._pool.fetch(_SELECT_CHAIN_PAGE, after_seq, limit)
        return [_chain_row(record) for record in records]

    async def ticket_chain(self, ticket_id: str) -> list[TicketChainRow]:
        """Return one ticket's rows with their neighbours in the chain."""
        records = await self._pool.fetch(_SELECT_TICKET_CHAIN, ticket_id)
        return [
            TicketChainRow(
                row=_chain_row(record),
                predecessor_hash=record["predecessor_hash"],
                predecessor_seq=record["predecessor_seq"],
                successor_prev_hash=record["successor_prev_hash"],
                successor_seq=record["successor_seq"],
            )
            for record in records
        ]

    async def seq_with_row_hash(self, row_hash: bytes) -> int | None:
        """Return the seq of the row whose hash is `row_hash`, if any (a full scan)."""
        seq = await self._pool.fetchval(_SEQ_WITH_ROW_HASH, row_hash)
        return int(seq) if seq is not None else None

    async def dead_letters_matching(
        self, *, reason: str | None = None, stage: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Return recorded dead letters (whole events) with this reason and stage, oldest first."""
        records = await self._pool.fetch(_SELECT_DEAD_LETTERS_MATCHING, reason, stage, limit)
        return [dict(record["payload"]) for record in records]

    async def replays_of(self, dead_letter_id: str) -> list[dict[str, Any]]:
        """Return the recorded replays of one dead letter, oldest first."""
        records = await self._pool.fetch(_SELECT_REPLAYS, dead_letter_id)
        return [dict(record["payload"]) for record in records]


# ------------------------------------------------------------------------ in memory


class FakeAuditRepository:
    """An in-memory audit store that behaves like the PostgreSQL one, for unit tests.

    `batches` keeps every `insert` call's rows as given; set `failure` to make the next
    inserts raise it (a database outage) without recording anything.
    """

    def __init__(self) -> None:
        self._recorded: dict[str, _Recorded] = {}
        self.batches: list[list[AuditRow]] = []
        self.failure: Exception | None = None

    @property
    def rows(self) -> list[AuditRow]:
        """Return every recorded row, in recording order."""
        return [recorded.row for recorded in self._recorded.values()]

    async def insert(self, rows: Sequence[AuditRow]) -> int:
        """Record `rows`, skipping known event ids; return how many were new."""
        if self.failure is not None:
            raise self.failure
        self.batches.append(list(rows))
        recorded_at = datetime.now(UTC)
        new = [row for row in unique_by_event_id(rows) if row.event_id not in self._recorded]
        # Same recording order as the SQL insert (ORDER BY event_id).
        for row in sorted(new, key=lambda r: r.event_id):
            self._recorded[row.event_id] = _Recorded(len(self._recorded) + 1, recorded_at, row)
        return len(new)

    async def trail(self, ticket_id: str) -> list[TrailEntry]:
        """Return the trail of one ticket in causal order, as `audit.ticket_trail` does."""
        events = {
            r.row.event_id: r for r in self._recorded.values() if r.row.ticket_id == ticket_id
        }
        ordered = sorted(events.values(), key=lambda recorded: _causal_key(recorded, events))
        entries: list[TrailEntry] = []
        previous: datetime | None = None
        for position, recorded in enumerate(ordered, start=1):
            occurred_at = recorded.row.occurred_at
            hop = None if previous is None else (occurred_at - previous).total_seconds() * 1e3
            entries.append(_trail_entry(position, recorded, hop))
            previous = occurred_at
        return entries

    async def count_events(self) -> int:
        """Return how many events are recorded."""
        return len(self._recorded)


@dataclass(frozen=True, slots=True)
class _Recorded:
    seq: int
    recorded_at: datetime
    row: AuditRow


def _trail_entry(position: int, recorded: _Recorded, hop_ms: float | None) -> TrailEntry:
    row = recorded.row
    return TrailEntry(
        ticket_id=row.ticket_id,
        position=position,
        seq=recorded.seq,
        occurred_at=row.occurred_at,
        recorded_at=recorded.recorded_at,
        event_type=row.event_type,
        event_id=row.event_id,
        causation_id=row.causation_id,
        producer_service=row.producer_service,
        summary=event_summary(row.event_type, row.payload),
        hop_ms=hop_ms,
    )


_STAGE_RANK = {
    "ticket.received": 0,
    "ticket.classified": 1,
    "ticket.decided": 2,
    "ticket.routed": 3,
    "ticket.dead_lettered": 4,
    "ticket.feedback": 5,
}


def _parent_id(row: AuditRow) -> str | None:
    # Feedback has no causation id; the decision it judges is its cause in the trail.
    parent = row.causation_id or row.payload.get("decision_event_id")
    return parent if isinstance(parent, str) else None


def _causal_key(
    recorded: _Recorded, events: Mapping[str, _Recorded]
) -> tuple[datetime, int, int, int]:
    """Mirror of the ORDER BY of `audit.ticket_trail`: placement, depth, stage, seq."""
    row = recorded.row
    rank = _STAGE_RANK.get(row.event_type, len(_STAGE_RANK))
    causal_at, depth, node, seen = row.occurred_at, 0, row, {row.event_id}
    # Walk up to the root: an event without a recorded cause (or its own cause).
    while (cause := _parent_id(node)) not in (None, node.event_id) and cause in events:
        if cause in seen:
            # A causation cycle: SQL cannot reach it from a root and places it by itself.
            return row.occurred_at, 0, rank, recorded.seq
        seen.add(cause)
        node = events[cause].row
        causal_at, depth = max(causal_at, node.occurred_at), depth + 1
    return causal_at, depth, rank, recorded.seq


def event_summary(event_type: str, payload: Mapping[str, Any]) -> str | None:
    """Mirror of SQL `audit.event_summary`: one short line about an event."""
    get = payload.get
    match event_type:
        case "ticket.received":
            customer = get("customer")
            tier = customer.get("tier") if isinstance(customer, Mapping) else None
            channel, source = _sql_text(get("channel")), _sql_text(get("source"))
            return f"{channel} from {source}, tier {_sql_text(tier)}"
        case "ticket.classified":
            line = f"{_sql_text(get('category'))} {_two_decimals(get('confidence'))}"
            if get("degraded") is True:
                line += f", degraded: {_sql_text(get('degraded_reason'))}"
            return line
        case "ticket.decided":
            rules = get("rules_fired")
            ids = [
                _sql_text(rule.get("rule_id"))
                for rule in (rules if isinstance(rules, list | tuple) else ())
                if isinstance(rule, Mapping) and rule.get("rule_id") is not None
            ]
            return _sql_text(get("mode")) + (f" ({', '.join(ids)})" if ids else "")
        case "ticket.routed":
            return f"queue {_sql_text(get('queue'))}, {_sql_text(get('priority'))}"
        case "ticket.dead_lettered":
            return f"{_sql_text(get('stage'))}: {_sql_text(get('reason'))}"
        case "ticket.feedback":
            return f"{_sql_text(get('kind'))} by {_sql_text(get('actor'))}"
        case _:
            return None


def _sql_text(value: object) -> str:
    """Render a JSON value as `format('%s', payload ->> key)` does (NULL becomes '')."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return _encode_json(value).decode("utf-8")


def _two_decimals(value: object) -> str:
    # Rounds like PostgreSQL's to_char on numeric (half away from zero), not like float.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ""
    return str(Decimal(repr(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


# ------------------------------------------------------------------ outcome metrics
#
# How decisions turned out, judged by later feedback. The definitions live in SQL
# (migration audit_0005_outcomes: audit.decision_outcomes, audit.outcome_metrics,
# audit.dead_letter_rate; docs/outcomes.md); this section only reads them.

GROUPINGS = ("all", "category", "model", "policy")
MODES = ("autonomous", "assist", "human")


@dataclass(frozen=True, slots=True)
class MinutesPerTicket:
    """Agent minutes one ticket takes in each mode: the basis of the time saved."""

    human: float = 8.0
    assist: float = 5.0
    autonomous: float = 0.5


@dataclass(frozen=True, slots=True)
class ModeOutcome:
    """One row of `audit.outcome_metrics`: a group, a time bucket and a mode (or `all`).

    Rates are None where their denominator is 0: no data is not 0%.
    """

    group_key: str
    bucket_start: datetime
    mode: str
    decisions: int = 0
    share: float | None = None
    judged: int = 0
    judged_correct: int = 0
    judged_precision: float | None = None
    overridden: int = 0
    override_rate: float | None = None
    override_rate_all: float | None = None
    negative_reactions: int = 0
    escalated: int = 0
    resolution_reported: int = 0
    resolved: int = 0
    resolution_rate: float | None = None
    reopen_base: int = 0
    reopened: int = 0
    reopen_rate: float | None = None
    csat_responses: int = 0
    csat_mean: float | None = None
    handle_time_reported: int = 0
    handle_time_mean_seconds: float | None = None
    minutes_saved: float = 0.0

    @classmethod
    def empty(cls, group_key: str, bucket_start: datetime, mode: str) -> ModeOutcome:
        """Return the row of a mode without decisions: zero counts, no rates."""
        return cls(group_key, bucket_start, mode)


@dataclass(frozen=True, slots=True)
class OutcomeGroup:
    """Every mode's outcomes for one group (a category, model or policy) in one bucket."""

    key: str
    bucket_start: datetime
    modes: Mapping[str, ModeOutcome] = field(hash=False)

    @property
    def total(self) -> ModeOutcome:
        """Return the outcomes of all modes together."""
        return self.mode("all")

    def mode(self, mode: str) -> ModeOutcome:
        """Return one mode's outcomes (empty when the group has no such decision)."""
        if mode in self.modes:
            return self.modes[mode]
        # A mode the group never used has a share of 0%; a group without decisions has none.
        return ModeOutcome(self.key, self.bucket_start, mode, share=0.0 if self.modes else None)


@dataclass(frozen=True, slots=True)
class DeadLetterRate:
    """Dead letters per inbound message in a window (`audit.dead_letter_rate`)."""

    inbound_messages: int
    dead_letters: int
    inbound_dead_letters: int
    rate: float | None
    by_stage: Mapping[str, int] = field(hash=False)


@dataclass(frozen=True, slots=True)
class VersionSeen:
    """A model or policy version that made decisions in a window."""

    kind: str
    key: str
    detail: str
    decisions: int
    first_decided_at: datetime
    last_decided_at: datetime


@dataclass(frozen=True, slots=True)
class OutcomeReport:
    """Outcome metrics of the decisions made in [since, until)."""

    since: datetime
    until: datetime
    minutes: MinutesPerTicket
    bucket: timedelta | None
    total: OutcomeGroup
    groups: Mapping[str, list[OutcomeGroup]] = field(hash=False)
    timeline: list[OutcomeGroup] = field(hash=False)
    timeline_by_category: list[OutcomeGroup] = field(hash=False)
    dead_letters: DeadLetterRate
    unmatched_feedback: int
    versions: list[VersionSeen] = field(hash=False)


_OUTCOME_METRICS = """
SELECT * FROM audit.outcome_metrics($1, $2, $3, $4, $5, $6, $7)
"""

_DEAD_LETTER_RATE = """
SELECT inbound_messages, dead_letters, inbound_dead_letters, dead_letter_rate
FROM audit.dead_letter_rate($1, $2)
"""

_DEAD_LETTERS_BY_STAGE = """
SELECT coalesce(payload ->> 'stage', '?') AS stage, count(*) AS n
FROM audit.trail_events
WHERE event_type = 'ticket.dead_lettered' AND occurred_at >= $1 AND occurred_at < $2
GROUP BY 1 ORDER BY 2 DESC, 1
"""

# Feedback that judges a decision the store has not recorded cannot count anywhere.
_UNMATCHED_FEEDBACK = """
SELECT count(*)
FROM audit.feedback AS f
WHERE f.given_at >= $1 AND f.given_at < $2
  AND NOT EXISTS (
      SELECT FROM audit.trail_events AS d
      WHERE d.event_id = f.decision_event_id AND d.event_type = 'ticket.decided'
  )
"""

_VERSIONS_SEEN = """
SELECT 'model' AS kind, model AS key, coalesce(model_backend, '') AS detail,
       count(*) AS decisions, min(decided_at) AS first_decided_at,
       max(decided_at) AS last_decided_at
FROM audit.decisions
WHERE decided_at >= $1 AND decided_at < $2
GROUP BY model, model_backend
UNION ALL
SELECT 'policy', policy,
       concat_ws(', ', 'sha256 ' || left(policy_content_hash, 12),
                 'approved by ' || policy_approved_by),
       count(*), min(decided_at), max(decided_at)
FROM audit.decisions
WHERE decided_at >= $1 AND decided_at < $2
GROUP BY policy, policy_content_hash, policy_approved_by
ORDER BY kind, first_decided_at, key
"""


def _number(value: Decimal | float | None) -> float | None:
    # numeric arrives as Decimal; a rate with no denominator as NULL.
    return None if value is None else float(value)


def _mode_outcome(record: asyncpg.Record) -> ModeOutcome:
    return ModeOutcome(
        group_key=str(record["group_key"]),
        bucket_start=record["bucket_start"],
        mode=str(record["mode"]),
        decisions=int(record["decisions"]),
        share=_number(record["share"]),
        judged=int(record["judged"]),
        judged_correct=int(record["judged_correct"]),
        judged_precision=_number(record["judged_precision"]),
        overridden=int(record["overridden"]),
        override_rate=_number(record["override_rate"]),
        override_rate_all=_number(record["override_rate_all"]),
        negative_reactions=int(record["negative_reactions"]),
        escalated=int(record["escalated"]),
        resolution_reported=int(record["resolution_reported"]),
        resolved=int(record["resolved"]),
        resolution_rate=_number(record["resolution_rate"]),
        reopen_base=int(record["reopen_base"]),
        reopened=int(record["reopened"]),
        reopen_rate=_number(record["reopen_rate"]),
        csat_responses=int(record["csat_responses"]),
        csat_mean=_number(record["csat_mean"]),
        handle_time_reported=int(record["handle_time_reported"]),
        handle_time_mean_seconds=_number(record["handle_time_mean_seconds"]),
        minutes_saved=float(record["minutes_saved"]),
    )


def group_outcomes(rows: Iterable[ModeOutcome]) -> list[OutcomeGroup]:
    """Return the rows of `audit.outcome_metrics` gathered by group and bucket, in order."""
    groups: dict[tuple[str, datetime], dict[str, ModeOutcome]] = {}
    for row in rows:
        groups.setdefault((row.group_key, row.bucket_start), {})[row.mode] = row
    return [OutcomeGroup(key, start, modes) for (key, start), modes in groups.items()]


class PostgresOutcomeStore:
    """Outcome metrics read from the audit store's views (read-only; the reader role will do)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def metrics(
        self,
        since: datetime,
        until: datetime,
        *,
        group_by: str = "all",
        bucket: timedelta | None = None,
        minutes: MinutesPerTicket | None = None,
    ) -> list[OutcomeGroup]:
        """Return the outcomes of decisions made in [since, until) by group (and bucket)."""
        by = await self.metrics_by(since, until, (group_by,), bucket=bucket, minutes=minutes)
        return by[group_by]

    async def metrics_by(
        self,
        since: datetime,
        until: datetime,
        groupings: Sequence[str],
        *,
        bucket: timedelta | None = None,
        minutes: MinutesPerTicket | None = None,
    ) -> dict[str, list[OutcomeGroup]]:
        """Return the outcomes for several groupings at once (one pass over the decisions)."""
        unknown = [name for name in groupings if name not in GROUPINGS]
        if unknown or not groupings:
            raise ValueError(f"group_by must be among {', '.join(GROUPINGS)}, not {unknown}")
        minutes = minutes or MinutesPerTicket()
        records = await self._pool.fetch(
            _OUTCOME_METRICS,
            since,
            until,
            ",".join(groupings),
            bucket,
            Decimal(str(minutes.human)),
            Decimal(str(minutes.assist)),
            Decimal(str(minutes.autonomous)),
        )
        by: dict[str, list[ModeOutcome]] = {name: [] for name in groupings}
        for record in records:
            by[record["dimension"]].append(_mode_outcome(record))
        return {name: group_outcomes(rows) for name, rows in by.items()}

    async def dead_letter_rate(self, since: datetime, until: datetime) -> DeadLetterRate:
        """Return dead letters per inbound message in [since, until), and by stage."""
        async with self._pool.acquire() as connection:
            rate = await connection.fetchrow(_DEAD_LETTER_RATE, since, until)
            stages = await connection.fetch(_DEAD_LETTERS_BY_STAGE, since, until)
        assert rate is not None  # an aggregate always returns a row
        return DeadLetterRate(
            inbound_messages=int(rate["inbound_messages"]),
            dead_letters=int(rate["dead_letters"]),
            inbound_dead_letters=int(rate["inbound_dead_letters"]),
            rate=_number(rate["dead_letter_rate"]),
            by_stage={str(r["stage"]): int(r["n"]) for r in stages},
        )

    async def unmatched_feedback(self, since: datetime, until: datetime) -> int:
        """Return how many feedback events given in the window judge an unrecorded decision."""
        return int(await self._pool.fetchval(_UNMATCHED_FEEDBACK, since, until))

    async def versions(self, since: datetime, until: datetime) -> list[VersionSeen]:
        """Return the model and policy versions that decided in the window."""
        records = await self._pool.fetch(_VERSIONS_SEEN, since, until)
        return [VersionSeen(**dict(record)) for record in records]

    async def report(
        self,
        since: datetime,
        until: datetime,
        *,
        groupings: Sequence[str] = ("category",),
        bucket: timedelta | None = None,
        minutes: MinutesPerTicket | None = None,
    ) -> OutcomeReport:
        """Return the whole report: totals, the groupings asked for, and a timeline if bucketed."""
        minutes = minutes or MinutesPerTicket()
        whole = await self.metrics_by(since, until, ("all", *groupings), minutes=minutes)
        total = whole["all"]
        timeline: list[OutcomeGroup] = []
        timeline_by_category: list[OutcomeGroup] = []
        if bucket is not None:
            timed = await self.metrics_by(
                since, until, ("all", "category"), bucket=bucket, minutes=minutes
            )
            timeline, timeline_by_category = timed["all"], timed["category"]
        return OutcomeReport(
            since=since,
            until=until,
            minutes=minutes,
            bucket=bucket,
            total=total[0] if total else OutcomeGroup("all", since, {}),
            groups={name: whole[name] for name in groupings},
            timeline=timeline,
            timeline_by_category=timeline_by_category,
            dead_letters=await self.dead_letter_rate(since, until),
            unmatched_feedback=await self.unmatched_feedback(since, until),
            versions=await self.versions(since, until),
        )


# ---------------------------------------------------------------- labelled decisions
#
# Judged decisions as labelled examples for threshold calibration
# (services/policy/calibration.py, `triageflow calibrate`): the category and confidence
# the model gave, and whether later feedback found the decision correct (the definition of
# audit.decision_outcomes.judged_correct, docs/outcomes.md). Degraded classifications are
# left out: the policy never lets them act alone, whatever their confidence.


@dataclass(frozen=True, slots=True)
class LabelledDecision:
    """One judged decision: category, confidence, whether it was right, and which model."""

    category: str
    confidence: float
    correct: bool
    model: str
    mode: str
    decided_at: datetime


_LABELLED_DECISIONS = """
SELECT category, confidence, judged_correct AS correct, model, mode, decided_at
FROM audit.decision_outcomes
WHERE judged AND NOT degraded AND category IS NOT NULL AND confidence IS NOT NULL
  AND decided_at >= $1 AND decided_at < $2
  AND ($3::text IS NULL OR model = $3)
ORDER BY decided_at, decision_event_id
"""


async def labelled_decisions(
    pool: Pool, since: datetime, until: datetime, *, model: str | None = None
) -> list[LabelledDecision]:
    """Return the judged, non-degraded decisions made in [since, until) (of one model if given)."""
    records = await pool.fetch(_LABELLED_DECISIONS, since, until, model)
    return [
        LabelledDecision(
            category=str(r["category"]),
            confidence=float(r["confidence"]),
            correct=bool(r["correct"]),
            model=str(r["model"]),
            mode=str(r["mode"]),
            decided_at=r["decided_at"],
        )
        for r in records
    ]


# ------------------------------------------------------------------ continuous improvement
# Control events (model promotions, shadow candidates, drift caps) are recorded in the same
# hash-chained trail as ticket events. They concern no ticket: the `ticket_id` column holds
# `control:<key>` (so `triageflow trail control:classifier.model` shows a key's history)
# and the payload, the event as published, has no `ticket_id`.

CONTROL_SUBJECT_PREFIX = "control:"
CONTROL_EVENT_TYPES = (
    "model.promoted",
    "model.rolled_back",
    "model.candidate_set",
    "category.capped",
    "category.reenabled",
)


def control_row(event: BaseModel, topic: str, partition: int, offset: int) -> AuditRow:
    """Return the trail row recording a control event consumed at topic/partition/offset."""
    payload = event.model_dump(mode="json")
    producer = payload.get("producer")
    return AuditRow(
        event_id=_text(payload, "event_id"),
        event_type=_text(payload, "event_type"),
        ticket_id=CONTROL_SUBJECT_PREFIX + _text(payload, "key"),
        # One trace per control event: it starts no ticket's journey.
        trace_id=_text(payload, "event_id").replace("-", ""),
        causation_id=_optional_text(payload, "causation_id"),
        occurred_at=_aware_datetime(payload.get("occurred_at")),
        topic=topic,
        partition=partition,
        kafka_offset=offset,
        producer_service=_text(producer if isinstance(producer, Mapping) else {}, "service"),
        schema_version=_integer(payload, "schema_version"),
        payload=payload,
    )


_SELECT_CONTROL_EVENTS = """
SELECT payload FROM audit.trail_events
WHERE event_type = ANY($1::text[]) AND occurred_at < $2
ORDER BY seq
"""


async def control_events(pool: Pool, *, until: datetime | None = None) -> list[dict[str, Any]]:
    """Return every recorded control event (before `until` if given), in recording order."""
    records = await pool.fetch(
        _SELECT_CONTROL_EVENTS, list(CONTROL_EVENT_TYPES), until or datetime.now(UTC)
    )
    return [dict(r["payload"]) for r in records]


@dataclass(frozen=True, slots=True)
class JudgedTicket:
    """A judged decision with the ticket's text: what the learner and comparisons read."""

    decision_event_id: str
    subject: str
    body: str
    category: str
    mode: str
    judged_correct: bool
    overridden: bool
    ever_resolved: bool
    correct_category: str | None
    decided_at: datetime
    last_feedback_at: datetime
    model_version: str | None
    shadow_mode: str | None
    shadow_category: str | None
    shadow_model_version: str | None


_SELECT_JUDGED_TICKETS = """
SELECT o.decision_event_id, o.category, o.mode, o.judged_correct, o.overridden,
       o.ever_resolved, o.decided_at, o.last_feedback_at, o.model_version,
       d.payload #>> '{ticket,subject}' AS subject,
       d.payload #>> '{ticket,body}' AS body,
       d.payload #>> '{shadow,mode}' AS shadow_mode,
       d.payload #>> '{shadow,category}' AS shadow_category,
       d.payload #>> '{shadow,model,version}' AS shadow_model_version,
       (SELECT f.correct_category FROM audit.feedback AS f
         WHERE f.decision_event_id = o.decision_event_id AND f.correct_category IS NOT NULL
         ORDER BY f.given_at DESC, f.seq DESC LIMIT 1) AS correct_category
FROM audit.decision_outcomes AS o
JOIN audit.trail_events AS d ON d.event_id = o.decision_event_id
WHERE o.judged AND NOT o.degraded AND o.category IS NOT NULL
  AND o.decided_at >= $1 AND o.decided_at < $2
ORDER BY o.decided_at, o.decision_event_id
"""


async def judged_tickets(pool: Pool, since: datetime, until: datetime) -> list[JudgedTicket]:
    """Return the judged, non-degraded decisions made in [since, until), with their text."""
    records = await pool.fetch(_SELECT_JUDGED_TICKETS, since, until)
    return [
        JudgedTicket(
            decision_event_id=str(r["decision_event_id"]),
            subject=r["subject"] or "",
            body=r["body"] or "",
            category=str(r["category"]),
            mode=str(r["mode"]),
            judged_correct=bool(r["judged_correct"]),
            overridden=bool(r["overridden"]),
            ever_resolved=bool(r["ever_resolved"]),
            correct_category=r["correct_category"],
            decided_at=r["decided_at"],
            last_feedback_at=r["last_feedback_at"],
            model_version=r["model_version"],
            shadow_mode=r["shadow_mode"],
            shadow_category=r["shadow_category"],
            shadow_model_version=r["shadow_model_version"],
        )
        for r in records
    ]


@dataclass(frozen=True, slots=True)
class ShadowDecisionRow:
    """One decision made while a candidate model ran in shadow, with its judgement if any."""

    mode: str
    category: str
    shadow_mode: str
    shadow_category: str
    shadow_model_version: str
    model_version: str | None
    judged_correct: bool | None
    correct_category: str | None


_SELECT_SHADOW_DECISIONS = """
SELECT o.mode, o.category, o.model_version, o.judged_correct,
       e.payload #>> '{shadow,mode}' AS shadow_mode,
       e.payload #>> '{shadow,category}' AS shadow_category,
       e.payload #>> '{shadow,model,version}' AS shadow_model_version,
       (SELECT f.correct_category FROM audit.feedback AS f
         WHERE f.decision_event_id = o.decision_event_id AND f.correct_category IS NOT NULL
         ORDER BY f.given_at DESC, f.seq DESC LIMIT 1) AS correct_category
FROM audit.decision_outcomes AS o
JOIN audit.trail_events AS e ON e.event_id = o.decision_event_id
WHERE o.decided_at >= $1 AND o.decided_at < $2 AND NOT o.degraded
  AND e.payload #>> '{shadow,model,version}' IS NOT NULL
  AND ($3::text IS NULL OR e.payload #>> '{shadow,model,version}' = $3)
ORDER BY o.decided_at, o.decision_event_id
"""


async def shadow_decisions(
    pool: Pool, since: datetime, until: datetime, *, candidate_version: str | None = None
) -> list[ShadowDecisionRow]:
    """Return decisions made in [since, until) with a candidate model's shadow decision."""
    records = await pool.fetch(_SELECT_SHADOW_DECISIONS, since, until, candidate_version)
    return [
        ShadowDecisionRow(
            mode=str(r["mode"]),
            category=str(r["category"]),
            shadow_mode=str(r["shadow_mode"]),
            shadow_category=str(r["shadow_category"]),
            shadow_model_version=str(r["shadow_model_version"]),
            model_version=r["model_version"],
            judged_correct=r["judged_correct"],
            correct_category=r["correct_category"],
        )
        for r in records
    ]


@dataclass(frozen=True, slots=True)
class ModelInForce:
    """A model version set by a control event: the live one or the one in shadow."""

    # None: the classifiers' configured model (after a rollback to it).
    version: str | None
    event_type: str
    since: datetime
    actor: str
    reason: str
    forced: bool = False


@dataclass(frozen=True, slots=True)
class ActiveCap:
    """A category the drift guard holds at `cap` until a human re-enables it."""

    category: str
    cap: str
    since: datetime
    actor: str
    target: float
    autonomous_judged: int
    autonomous_correct: int
    precision_upper: float | None
    override_rate: float | None
    baseline_override_rate: float | None
    triggers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ControlSnapshot:
    """The control state the audit trail shows in force at `as_of`."""

    as_of: datetime
    # None: no promotion or rollback recorded; classifiers use their configured model.
    live_model: ModelInForce | None
    # None: no candidate in shadow.
    candidate: ModelInForce | None
    caps: tuple[ActiveCap, ...]


_SELECT_LATEST_CONTROL = """
SELECT DISTINCT ON (ticket_id) payload
FROM audit.trail_events
WHERE event_type = ANY($1::text[]) AND occurred_at < $2
ORDER BY ticket_id, occurred_at DESC, seq DESC
"""


async def control_snapshot(pool: Pool, as_of: datetime) -> ControlSnapshot:
    """Return the live model, the shadow candidate and the active caps at `as_of`."""
    records = await pool.fetch(_SELECT_LATEST_CONTROL, list(CONTROL_EVENT_TYPES), as_of)
    latest = [dict(r["payload"]) for r in records]
    live = candidate = None
    caps: list[ActiveCap] = []
    for event in latest:
        kind = str(event["event_type"])
        if kind in ("model.promoted", "model.rolled_back"):
            live = _model_in_force(event)
        elif kind == "model.candidate_set" and event.get("version") is not None:
            candidate = _model_in_force(event)
        elif kind == "category.capped":
            evidence = event.get("evidence") or {}
            caps.append(
                ActiveCap(
                    category=str(event["category"]),
                    cap=str(event.get("cap", "assist")),
                    since=_aware_datetime(event.get("occurred_at")),
                    actor=str(event.get("actor", "")),
                    target=float(evidence.get("target", 0.0)),
                    autonomous_judged=int(evidence.get("autonomous_judged", 0)),
                    autonomous_correct=int(evidence.get("autonomous_correct", 0)),
                    precision_upper=evidence.get("precision_upper"),
                    override_rate=evidence.get("override_rate"),
                    baseline_override_rate=evidence.get("baseline_override_rate"),
                    triggers=tuple(evidence.get("triggers", ())),
                )
            )
    return ControlSnapshot(
        as_of=as_of,
        live_model=live,
        candidate=candidate,
        caps=tuple(sorted(caps, key=lambda c: c.category)),
    )


def _model_in_force(event: Mapping[str, Any]) -> ModelInForce:
    version = event.get("version")
    return ModelInForce(
        version=None if version is None else str(version),
        event_type=str(event["event_type"]),
        since=_aware_datetime(event.get("occurred_at")),
        actor=str(event.get("actor", "")),
        reason=str(event.get("reason") or ""),
        forced=bool(event.get("forced", False)),
    )
