"""Tamper evidence on a real PostgreSQL: the hash chain and `triageflow audit verify`.

Tampering needs what the writer does not have: the tests act as the schema owner, switch
the append-only trigger off, change the trail behind the writer's back, and switch it on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import secrets
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner, Result
from yoyo import get_backend, read_migrations

from services.audit.migrate import MIGRATIONS_DIR, apply_migrations, yoyo_url
from services.audit.repository import AuditRow, PostgresAuditRepository, connect_pool, to_row
from services.audit.verify import GENESIS, link_hash
from services.cli.main import app
from tests.factories import received, sample_events

pytestmark = pytest.mark.integration

OWNER = "triageflow_audit_owner"
WRITER = "triageflow_audit_writer"


def _rows(count: int, *, ticket: str = "T-{n}", start: int = 0) -> list[AuditRow]:
    """Inbound tickets T-0, T-1, ... (one row each) with distinct content."""
    return [
        to_row(
            received(ticket_id=ticket.format(n=n), body=f"ticket number {n}"),
            "tickets.inbound",
            n % 3,
            n,
        )
        for n in range(start, start + count)
    ]


@pytest.fixture
async def store(audit_database: str) -> AsyncIterator[PostgresAuditRepository]:
    """The audit store, as the migrating role, with 30 rows recorded in three batches."""
    pool = await connect_pool(audit_database, min_size=1, max_size=2)
    repository = PostgresAuditRepository(pool)
    for start in (0, 10, 20):
        await repository.insert(_rows(10, start=start))
    yield repository
    await pool.close()


async def _tamper(database_url: str, *statements: str) -> None:
    """Run statements as the owner with the append-only trigger off (what an insider could)."""
    connection = await asyncpg.connect(database_url)
    try:
        async with connection.transaction():
            await connection.execute(f"SET LOCAL ROLE {OWNER}")
            await connection.execute(
                "ALTER TABLE audit.trail_events DISABLE TRIGGER trail_events_append_only"
            )
            for statement in statements:
                await connection.execute(statement)
            await connection.execute(
                "ALTER TABLE audit.trail_events ENABLE TRIGGER trail_events_append_only"
            )
    finally:
        await connection.close()


async def _verify(database_url: str, *args: str) -> Result:
    """Run `triageflow audit verify` against the database (in a thread: it runs its own loop)."""
    return await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["audit", "verify", *args],
        env={"TRIAGEFLOW_DATABASE_URL": database_url},
    )


async def _seq_of(store: PostgresAuditRepository, ticket_id: str) -> int:
    rows = await store.ticket_chain(ticket_id)
    return rows[0].row.seq


async def test_an_untouched_trail_verifies_and_prints_its_head(
    store: PostgresAuditRepository, audit_database: str
) -> None:
    head = (await store.chain_page(after_seq=29, limit=1))[0]

    result = await _verify(audit_database)

    assert result.exit_code == 0, result.output
    assert "chain intact: 30 rows" in result.output
    assert head.row_hash.hex() in result.output


async def test_every_row_links_to_the_one_before_it_from_the_genesis_hash(
    store: PostgresAuditRepository,
) -> None:
    rows = await store.chain_page(after_seq=0, limit=100)

    assert [row.seq for row in rows] == list(range(1, 31))
    assert rows[0].prev_hash == GENESIS
    for previous, row in itertools.pairwise(rows):
        assert row.prev_hash == previous.row_hash
    assert all(row.row_hash == link_hash(row.prev_hash, row.digest) for row in rows)


async def test_a_payload_changed_behind_the_writers_back_is_reported_at_that_row(
    store: PostgresAuditRepository, audit_database: str
) -> None:
    seq = await _seq_of(store, "T-12")
    await _tamper(
        audit_database,
        "UPDATE audit.trail_events SET payload = jsonb_set(payload, '{body}', '\"refund me\"') "
        "WHERE ticket_id = 'T-12'",
    )

    result = await _verify(audit_database)

    assert result.exit_code == 1
    assert f"chain broken (changed) at seq {seq}" in result.output
    assert "ticket T-12" in result.output


async def test_a_column_changed_behind_the_writers_back_is_reported(
    store: PostgresAuditRepository, audit_database: str
) -> None:
    seq = await _seq_of(store, "T-3")
    await _tamper(
        audit_database,
        "UPDATE audit.trail_events SET recorded_at = recorded_at + interval '1 hour' "
        "WHERE ticket_id = 'T-3'",
    )

    result = await _verify(audit_database)

    assert result.exit_code == 1
    assert f"chain broken (changed) at seq {seq}" in result.output


async def test_a_removed_row_is_reported_at_the_row_after_it(
    store: PostgresAuditRepository, audit_database: str
) -> None:
    seq = await _seq_of(store, "T-20")
    await _tamper(audit_database, "DELETE FROM audit.trail_events WHERE ticket_id = 'T-20'")

    result = await _verify(audit_database)

    assert result.exit_code == 1
    assert f"chain broken (unlinked) at seq {seq + 1}" in result.output
    assert "was removed or changed" in result.output


async def test_a_changed_row_whose_own_hash_was_recomputed_breaks_the_next_link(
    store: PostgresAuditRepository, audit_database: str
) -> None:
    seq = await _seq_of(store, "T-5")
    await _tamper(
        audit_database,
        "UPDATE audit.trail_events SET payload = jsonb_set(payload, '{body}', '\"x\"') "
        "WHERE ticket_id = 'T-5'",
        """UPDATE audit.trail_events SET row_hash = sha256(prev_hash || audit.row_digest(
               seq, event_id, event_type, ticket_id, trace_id, causation_id, occurred_at,
               recorded_at, topic, partition, kafka_offset, producer_service, schema_version,
               payload))
           WHERE ticket_id = 'T-5'""",
    )

    whole = await _verify(audit_database)
    one_ticket = await _verify(audit_database, "--ticket", "T-5")

    assert whole.exit_code == 1
    assert f"chain broken (unlinked) at seq {seq + 1}" in whole.output
    assert one_ticket.exit_code == 1
    assert f"chain broken (changed) at seq {seq}" in one_ticket.output


async def test_two_rows_that_swapped_places_are_reported_as_reordered(
    store: PostgresAuditRepository, audit_database: str
) -> None:
    first, second = await _seq_of(store, "T-7"), await _seq_of(store, "T-8")
    await _tamper(
        audit_database,
        f"UPDATE audit.trail_events SET seq = -1 WHERE seq = {first}",
        f"UPDATE audit.trail_events SET seq = {first} WHERE seq = {second}",
        f"UPDATE audit.trail_events SET seq = {second} WHERE seq = -1",
    )

    result = await _verify(audit_database)

    assert result.exit_code == 1
    assert "reordered" in result.output


async def test_cutting_off_the_newest_rows_is_caught_by_a_recorded_head(
    store: PostgresAuditRepository, audit_database: str
) -> None:
    head = (await store.chain_page(after_seq=29, limit=1))[0].row_hash.hex()
    await _tamper(audit_database, "DELETE FROM audit.trail_events WHERE seq > 27")

    without_anchor = await _verify(audit_database)
    with_anchor = await _verify(audit_database, "--anchor", head)

    assert without_anchor.exit_code == 0, "a cut tail alone leaves a valid chain"
    assert with_anchor.exit_code == 1
    assert "chain broken (anchor_missing)" in with_anchor.output


async def test_verifying_one_ticket_checks_only_its_rows_and_their_links(
    store: PostgresAuditRepository, audit_database: str
) -> None:
    await _tamper(
        audit_database,
        "UPDATE audit.trail_events SET trace_id = 'forged' WHERE ticket_id = 'T-25'",
    )

    untouched = await _verify(audit_database, "--ticket", "T-24")
    forged = await _verify(audit_database, "--ticket", "T-25")
    unknown = await _verify(audit_database, "--ticket", "T-nobody")

    assert untouched.exit_code == 0, untouched.output
    assert "ticket T-24: 1 rows intact" in untouched.output
    assert forged.exit_code == 1
    assert "chain broken (changed)" in forged.output
    assert unknown.exit_code == 1
    assert "no recorded events" in unknown.output


async def test_concurrent_writers_extend_one_unbroken_chain(
    store: PostgresAuditRepository, audit_database: str
) -> None:
    pools = [await connect_pool(audit_database, min_size=1, max_size=1) for _ in range(3)]
    try:
        batches = [_rows(50, ticket=f"C{w}-{{n}}") for w in range(3)]
        # Overlapping batches too: every writer also brings rows another one inserts.
        overlap = _rows(5, ticket="shared-{n}")
        inserted = await asyncio.gather(
            *(
                PostgresAuditRepository(pool).insert(batch + overlap)
                for pool, batch in zip(pools, batches, strict=True)
            )
        )
    finally:
        for pool in pools:
            await pool.close()

    assert sum(inserted) == 3 * 50 + 5
    result = await _verify(audit_database)
    assert result.exit_code == 0, result.output
    assert f"chain intact: {30 + 155} rows" in result.output


async def test_a_writer_login_extends_the_chain_but_still_cannot_change_or_remove_rows(
    store: PostgresAuditRepository, audit_database: str
) -> None:
    name, password = f"tf_verify_{uuid.uuid4().hex[:10]}", secrets.token_hex(16)
    admin = await asyncpg.connect(audit_database)
    await admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE {WRITER}")
    try:
        host = audit_database.split("@", 1)[1]
        writer_pool = await connect_pool(f"postgresql://{name}:{password}@{host}", max_size=1)
        try:
            assert await PostgresAuditRepository(writer_pool).insert(_rows(5, start=100)) == 5
            for statement in (
                "UPDATE audit.trail_events SET row_hash = prev_hash",
                "DELETE FROM audit.trail_events WHERE seq = 1",
                "ALTER TABLE audit.trail_events DISABLE TRIGGER trail_events_append_only",
            ):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await writer_pool.execute(statement)
        finally:
            await writer_pool.close()
    finally:
        await admin.execute(f"DROP ROLE {name}")
        await admin.close()

    result = await _verify(audit_database)
    assert result.exit_code == 0, result.output
    assert "chain intact: 35 rows" in result.output


def _migrate_until(database_url: str, last: str, folder: Path) -> None:
    for migration in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if migration.name.split(".")[0] <= last:
            shutil.copy(migration, folder)
    backend = get_backend(yoyo_url(database_url))
    try:
        with backend.lock():
            backend.apply_migrations(backend.to_apply(read_migrations(str(folder))))
    finally:
        backend.connection.close()


async def test_rows_recorded_before_the_chain_existed_join_it_in_order(
    fresh_database: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(_migrate_until, fresh_database, "audit_0003_ticket_trail", tmp_path)
    connection = await asyncpg.connect(fresh_database)
    try:
        for n, event in enumerate(sample_events()):
            row = dataclasses.asdict(to_row(event, "tickets.test", 0, n))
            columns = [c for c in row if c != "payload"]
            await connection.execute(
                f"INSERT INTO audit.trail_events ({', '.join(columns)}, payload) "
                f"VALUES ({', '.join(f'${i + 1}' for i in range(len(columns)))}, "
                f"${len(columns) + 1}::jsonb)",
                *(row[c] for c in columns),
                event.model_dump_json(),
            )
    finally:
        await connection.close()

    await asyncio.to_thread(apply_migrations, fresh_database)
    pool = await connect_pool(fresh_database, min_size=1, max_size=1)
    try:
        await PostgresAuditRepository(pool).insert(_rows(3))
    finally:
        await pool.close()

    result = await _verify(fresh_database)
    assert result.exit_code == 0, result.output
    assert f"chain intact: {len(sample_events()) + 3} rows" in result.output
