"""Fixtures for real infrastructure.

Kafka and PostgreSQL come from `KAFKA_BOOTSTRAP_SERVERS` and `DATABASE_URL`. Where they
are unset and a Docker engine answers, testcontainers starts them; otherwise tests that
need them fail in CI (`CI=true`) and are skipped locally with the reason. Never silently.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import KafkaSettings
from tests.waiting import eventually

if TYPE_CHECKING:
    from services.audit.repository import PostgresAuditRepository


class TestEnvironment(BaseSettings):
    """What the test run was given by its environment (no prefix: the CI conventions)."""

    __test__ = False
    model_config = SettingsConfigDict(extra="ignore")

    kafka_bootstrap_servers: str | None = None
    database_url: str | None = None
    ci: bool = Field(default=False)


ENV = TestEnvironment()


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception:
        return False
    return True


def _unavailable(what: str) -> None:
    message = f"no {what}: set it in the environment (make infra-up; source deploy/local/env.sh)"
    if ENV.ci:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a real Kafka broker."""
    if ENV.kafka_bootstrap_servers:
        yield ENV.kafka_bootstrap_servers
        return
    if not _docker_answers():
        _unavailable("KAFKA_BOOTSTRAP_SERVERS and no Docker engine")
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer().with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """URL of a real PostgreSQL server where the test role may create databases."""
    if ENV.database_url:
        yield ENV.database_url
        return
    if not _docker_answers():
        _unavailable("DATABASE_URL and no Docker engine")
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:16", driver=None) as pg:
        yield pg.get_connection_url()


@pytest.fixture
def topic_prefix() -> str:
    """A fresh topic namespace for one test."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, topic_prefix: str) -> KafkaSettings:
    """Kafka settings pointing at the real broker with this test's fresh topics."""
    return KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, partitions=3)


@pytest.fixture
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards."""
    import asyncpg

    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = database_url.rpartition("/")
    yield f"{base}/{name}"
    admin = await asyncpg.connect(database_url)
    try:

        async def dropped() -> bool:
            # FORCE may not end another role's session (the audit writer's, say) unless we
            # hold pg_signal_backend; a pool just closed leaves such sessions for a moment.
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except asyncpg.InsufficientPrivilegeError:
                return False
            return True

        await eventually(dropped, timeout=60, interval=0.5, what=f"dropping {name}")
    finally:
        await admin.close()


@pytest.fixture
async def audit_database(fresh_database: str) -> str:
    """A fresh database with every audit migration applied."""
    import asyncio

    from services.audit.migrate import apply_migrations

    await asyncio.to_thread(apply_migrations, fresh_database)
    return fresh_database


@pytest.fixture
async def audit_store(audit_database: str) -> AsyncIterator[PostgresAuditRepository]:
    """The audit store on a fresh, migrated database (connected as the migrating role)."""
    from services.audit.repository import PostgresAuditRepository, connect_pool

    pool = await connect_pool(audit_database, min_size=1, max_size=2)
    yield PostgresAuditRepository(pool)
    await pool.close()
