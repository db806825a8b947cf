"""The audit store on a real PostgreSQL: migrations, idempotent inserts, privileges, the trail."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pydantic_core
import pytest
from loguru import logger

from services.audit.migrate import apply_migrations
from services.audit.repository import (
    AuditRepository,
    AuditRow,
    FakeAuditRepository,
    PostgresAuditRepository,
    TrailEntry,
    connect_pool,
    to_row,
)
from tests.factories import received, sample_events

pytestmark = pytest.mark.integration

WRITER = "triageflow_audit_writer"
READER = "triageflow_audit_reader"
MIGRATIONS = [
    "audit_0001_roles",
    "audit_0002_trail_events",
    "audit_0003_ticket_trail",
    "audit_0004_hash_chain",
    "audit_0005_outcomes",
]

LoginAs = Callable[[str], Awaitable[str]]


def _rows() -> list[AuditRow]:
    return [
        to_row(event, "tickets.test", 0, offset) for offset, event in enumerate(sample_events())
    ]


def _with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


@pytest.fixture
async def pool(audit_database: str) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    """A pool connected as the migrating role (a member of the owner role)."""
    pool = await connect_pool(audit_database, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def login_as(audit_database: str) -> AsyncIterator[LoginAs]:
    """Create throwaway login roles that are members of a group role; drop them afterwards."""
    created: list[str] = []

    async def create(group_role: str) -> str:
        name, password = f"tf_audit_test_{uuid.uuid4().hex[:12]}", secrets.token_hex(16)
        admin = await asyncpg.connect(audit_database)
        try:
            await admin.execute(
                f"CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE {group_role}"
            )
        finally:
            await admin.close()
        created.append(name)
        return _with_credentials(audit_database, name, password)

    yield create
    admin = await asyncpg.connect(audit_database)
    try:
        for name in created:
            await admin.execute(f"DROP ROLE IF EXISTS {name}")
    finally:
        await admin.close()


@asynccontextmanager
async def _extra_database(admin_url: str) -> AsyncIterator[str]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"{admin_url.rpartition('/')[0]}/{name}"
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# ------------------------------------------------------------------------- migrations


async def test_migrations_apply_to_a_fresh_database_and_reapplying_is_a_no_op(
    fresh_database: str,
) -> None:
    assert await asyncio.to_thread(apply_migrations, fresh_database) == MIGRATIONS
    assert await asyncio.to_thread(apply_migrations, fresh_database) == []

    connection = await asyncpg.connect(fresh_database)
    try:
        owner = await connection.fetchval(
            "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'audit'"
        )
        tables = await connection.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'audit'"
        )
    finally:
        await connection.close()
    assert owner == "triageflow_audit_owner"
    assert tables == 1


async def test_migrations_apply_concurrently_to_two_databases_of_one_cluster(
    database_url: str, fresh_database: str
) -> None:
    # Roles are cluster-wide: both databases create or reuse the same group roles.
    async with _extra_database(database_url) as other:
        applied = await asyncio.gather(
            asyncio.to_thread(apply_migrations, fresh_database),
            asyncio.to_thread(apply_migrations, other),
        )
    assert list(applied) == [MIGRATIONS, MIGRATIONS]


async def test_the_trail_view_and_its_columns_are_documented_in_the_database(
    pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    view_comment = await pool.fetchval("SELECT obj_description('audit.ticket_trail'::regclass)")
    undocumented = await pool.fetch(
        """
        SELECT c.table_name, c.column_name
        FROM information_schema.columns AS c
        WHERE c.table_schema = 'audit'
          AND col_description(
                format('%I.%I', c.table_schema, c.table_name)::regclass, c.ordinal_position
              ) IS NULL
        """
    )
    assert "causal order" in view_comment
    assert [tuple(r) for r in undocumented] == []


# ---------------------------------------------------------------------------- inserts


async def test_sample_events_are_stored_once_and_reinserting_inserts_nothing(
    pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    repository = PostgresAuditRepository(pool)
    rows = _rows()

    assert await repository.insert(rows) == len(rows)
    assert await repository.insert(rows) == 0
    assert await repository.insert(rows + rows[::-1]) == 0
    assert await repository.count_events() == len(rows)

    stored = await pool.fetch("SELECT event_id, payload FROM audit.trail_events ORDER BY seq")
    assert {r["event_id"]: r["payload"] for r in stored} == {
        row.event_id: row.payload for row in rows
    }


async def test_a_batch_with_internal_duplicates_stores_each_event_once(
    pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    repository = PostgresAuditRepository(pool)
    first, *rest = _rows()
    replayed = dataclasses.replace(first, topic="tickets.replay", kafka_offset=99)

    assert await repository.insert([first, replayed, first, *rest, *rest]) == 1 + len(rest)
    assert await repository.insert([replayed]) == 0
    # The first copy of a duplicated event is the one recorded.
    topic = await pool.fetchval(
        "SELECT topic FROM audit.trail_events WHERE event_id = $1", first.event_id
    )
    assert topic == first.topic


async def test_an_empty_batch_inserts_nothing(pool: asyncpg.Pool[asyncpg.Record]) -> None:
    assert await PostgresAuditRepository(pool).insert([]) == 0


async def test_a_nul_character_is_recorded_as_a_replacement_instead_of_failing_the_batch(
    pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    # PostgreSQL text cannot hold NUL; upstream bodies can. Text that merely reads
    # "\\u0000" must survive unchanged.
    event = received(ticket_id="T-\x00", body="paste\x00from a pdf \\u0000")
    rows = [to_row(event, "tickets.inbound", 0, 0), *_rows()]

    assert await PostgresAuditRepository(pool).insert(rows) == len(rows)

    stored = await pool.fetchrow(
        "SELECT ticket_id, payload FROM audit.trail_events WHERE event_id = $1", event.event_id
    )
    assert stored is not None
    assert stored["ticket_id"] == "T-\ufffd"
    assert stored["payload"]["body"] == "paste\ufffdfrom a pdf \\u0000"


async def test_columns_that_contradict_the_payload_are_refused(
    pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    row = dataclasses.replace(_rows()[0], ticket_id="T-other")

    with pytest.raises(asyncpg.CheckViolationError):
        await PostgresAuditRepository(pool).insert([row])


# ------------------------------------------------------------------------- privileges


async def test_a_writer_login_can_insert_and_read_but_never_change_or_remove_rows(
    pool: asyncpg.Pool[asyncpg.Record], login_as: LoginAs
) -> None:
    writer_pool = await connect_pool(await login_as(WRITER), min_size=1, max_size=1)
    try:
        writer = PostgresAuditRepository(writer_pool)
        assert await writer.insert(_rows()) == len(_rows())
        assert len(await writer.trail("T-1")) == 5
        for statement in (
            "UPDATE audit.trail_events SET ticket_id = 'T-x'",
            "DELETE FROM audit.trail_events",
            "TRUNCATE audit.trail_events",
            "ALTER TABLE audit.trail_events DISABLE TRIGGER trail_events_append_only",
            "SELECT setval('audit.trail_events_seq_seq', 1)",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError) as refused:
                await writer_pool.execute(statement)
            assert "permission denied" in str(refused.value) or "must be owner" in str(
                refused.value
            ), statement
    finally:
        await writer_pool.close()
    assert await PostgresAuditRepository(pool).count_events() == len(_rows())


async def test_even_the_owner_cannot_update_delete_or_truncate_the_trail(
    pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    await PostgresAuditRepository(pool).insert(_rows())

    for statement in (
        "UPDATE audit.trail_events SET ticket_id = 'T-x'",
        "DELETE FROM audit.trail_events WHERE ticket_id = 'T-1'",
        "TRUNCATE audit.trail_events",
    ):
        async with pool.acquire() as connection:
            await connection.execute("SET ROLE triageflow_audit_owner")
            try:
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    await connection.execute(statement)
            finally:
                await connection.execute("RESET ROLE")
    assert await PostgresAuditRepository(pool).count_events() == len(_rows())


async def test_a_reader_login_can_read_the_trail_but_not_insert(
    pool: asyncpg.Pool[asyncpg.Record], login_as: LoginAs
) -> None:
    await PostgresAuditRepository(pool).insert(_rows())
    reader_pool = await connect_pool(await login_as(READER), min_size=1, max_size=1)
    try:
        reader = PostgresAuditRepository(reader_pool)
        assert len(await reader.trail("T-1")) == 5
        assert await reader.count_events() == len(_rows())
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await reader.insert([dataclasses.replace(_rows()[0], event_id="e-new")])
    finally:
        await reader_pool.close()


# ------------------------------------------------------------------------------ trail


async def assert_sample_trail(repository: AuditRepository) -> None:
    """The shared contract of every AuditRepository's trail, checked on the sample chain."""
    rows = _rows()
    by_type = {row.event_type: row for row in rows}
    # Recorded in reverse, in two batches: the trail's order must come from causation.
    await repository.insert(rows[3:][::-1])
    await repository.insert(rows[:3][::-1])

    trail = await repository.trail("T-1")

    assert [(e.position, e.event_type, e.summary) for e in trail] == [
        (1, "ticket.received", "email from zendesk, tier vip"),
        (2, "ticket.classified", "billing 0.97"),
        (3, "ticket.decided", "assist (vip-cap)"),
        (4, "ticket.routed", "queue billing, p2"),
        (5, "ticket.feedback", "override by agent-7"),
    ]
    assert [e.event_id for e in trail] == [by_type[e.event_type].event_id for e in trail]
    assert [e.causation_id for e in trail] == [by_type[e.event_type].causation_id for e in trail]
    assert trail[0].hop_ms is None
    for previous, entry in itertools.pairwise(trail):
        expected_ms = (entry.occurred_at - previous.occurred_at).total_seconds() * 1000
        assert entry.hop_ms == pytest.approx(expected_ms, abs=0.001)
    bad = [(e.event_type, e.summary) for e in await repository.trail("T-bad")]
    assert bad[0] == ("ticket.dead_lettered", "classifier: invalid_json")
    assert [event_type for event_type, _ in bad] == [
        "ticket.dead_lettered",
        "ticket.dead_letter_replayed",
    ], "the replay follows the dead letter it replayed"
    assert await repository.trail("T-unknown") == []


async def test_the_trail_view_lists_the_sample_chain_in_causal_order(
    pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    await assert_sample_trail(PostgresAuditRepository(pool))


async def test_the_fake_repository_keeps_the_same_trail_contract() -> None:
    await assert_sample_trail(FakeAuditRepository())


def _odd_rows() -> list[AuditRow]:
    """A trail no pipeline should produce: skewed clocks, causation cycles, a lost cause."""
    base = _rows()[1]
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def event(event_id: str, cause: str | None, seconds: int, kind: str) -> AuditRow:
        envelope = {"event_id": event_id, "event_type": kind, "ticket_id": "T-odd"}
        payload = {**base.payload, **envelope, "causation_id": cause}
        return to_row(
            payload | {"occurred_at": (at + timedelta(seconds=seconds)).isoformat()},
            "tickets.test",
            0,
            seconds,
        )

    return [
        event("root", None, 10, "ticket.received"),
        event("early-child", "root", 5, "ticket.classified"),
        event("grandchild", "early-child", 6, "ticket.decided"),
        event("sibling", "root", 10, "ticket.dead_lettered"),
        event("a", "b", 2, "ticket.classified"),
        event("b", "a", 1, "ticket.classified"),
        event("self", "self", 3, "ticket.routed"),
        event("of-self", "self", 0, "ticket.routed"),
        event("orphan", "never-recorded", 4, "ticket.archived"),
    ]


async def test_the_fake_and_postgres_trails_are_identical(
    pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    fake, real, rows = FakeAuditRepository(), PostgresAuditRepository(pool), _rows()
    for repository in (fake, real):
        await repository.insert(rows[::-1])
        await repository.insert(_odd_rows())

    def comparable(entries: list[TrailEntry]) -> list[TrailEntry]:
        return [dataclasses.replace(e, recorded_at=datetime.min) for e in entries]

    for ticket_id in ("T-1", "T-bad", "T-odd"):
        assert comparable(await fake.trail(ticket_id)) == comparable(await real.trail(ticket_id))


async def test_a_trail_query_uses_the_ticket_index_not_a_walk_of_every_ticket(
    pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    plan = await pool.fetch(
        "EXPLAIN (COSTS OFF) SELECT * FROM audit.ticket_trail WHERE ticket_id = 'T-1'"
    )
    text = "\n".join(line[0] for line in plan)
    assert "trail_events_ticket_id_idx" in text
    assert "Seq Scan" not in text


# -------------------------------------------------------------------------- benchmark


PAYLOAD_BYTES = 800


def _benchmark_rows(count: int) -> list[AuditRow]:
    """Return `count` inbound tickets whose JSON is PAYLOAD_BYTES long."""
    template: dict[str, Any] = sample_events()[0].model_dump(mode="json")
    template["body"] = ""
    # Event ids below are uuid strings, as long as the template's: the size carries over.
    template["body"] = "x" * (PAYLOAD_BYTES - len(pydantic_core.to_json(template)))
    rows = []
    for offset in range(count):
        event_id = str(uuid.uuid4())
        payload = {**template, "event_id": event_id, "ticket_id": f"T-{offset % 10_000:05d}"}
        rows.append(to_row(payload, "tickets.inbound", offset % 6, offset))
    return rows


async def test_insert_rate_of_50k_events_in_batches_of_1000(
    pool: asyncpg.Pool[asyncpg.Record], request: pytest.FixtureRequest
) -> None:
    rows = _benchmark_rows(50_000)
    payload_bytes = len(pydantic_core.to_json(rows[0].payload))
    assert abs(payload_bytes - PAYLOAD_BYTES) < 16
    repository = PostgresAuditRepository(pool)

    started = time.perf_counter()
    inserted = 0
    for start in range(0, len(rows), 1_000):
        inserted += await repository.insert(rows[start : start + 1_000])
    elapsed = time.perf_counter() - started

    assert inserted == await repository.count_events() == len(rows)
    rate = len(rows) / elapsed
    message = (
        f"audit insert: {len(rows):,} events of ~{payload_bytes} B in batches of 1,000: "
        f"{elapsed:.2f} s, {rate:,.0f} events/s"
    )
    logger.info(message)
    request.node.user_properties.append(("insert_events_per_second", round(rate)))
    _show(request, message)


def _show(request: pytest.FixtureRequest, line: str) -> None:
    """Write a measurement to the terminal even while pytest captures output."""
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(f"\n{line}")
