"""Security on real infrastructure: Kafka over SASL_SSL (SCRAM-SHA-512), PostgreSQL over
verified TLS, least-privilege database roles, and no secret in the logs of a run.

Needs the secure local components (`deploy/local/infra.sh up secure`, part of
`make infra-up`): a second broker whose only client listener is SASL_SSL, TLS on the local
PostgreSQL, and the login role `triageflow_tls` that may connect over TLS only. Their client
settings (random passwords, the throwaway CA) are read from the 0600 env files `up` writes in
the state dir. Missing, the tests fail in CI (`CI=true`) and are skipped locally.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import certifi
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from loguru import logger
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.audit.app import build_app as build_audit
from services.audit.migrate import apply_migrations
from services.audit.repository import PostgresAuditRepository, connect_pool, to_row
from services.audit.settings import AuditSettings
from services.router.app import build_app as build_router
from services.router.settings import RouterSettings
from shared.codec import encode
from shared.kafka import producer_kwargs
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topics import Topics, ensure_topics
from tests.conftest import ENV
from tests.factories import decided, received, sample_events
from tests.kafka_tools import publish, read_until
from tests.running import running
from tests.waiting import eventually

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
OWNER = "triageflow_audit_owner"
WRITER = "triageflow_audit_writer"
READER = "triageflow_audit_reader"
TLS_ROLE = "triageflow_tls"  # made by `infra.sh up postgres-tls`; pg_hba refuses it without TLS

LoginAs = Callable[[str], Awaitable[DatabaseSettings]]


class _StateDir(BaseSettings):
    """Where deploy/local/infra.sh keeps its state (the same variable and default)."""

    model_config = SettingsConfigDict(extra="ignore")

    state_dir: Path = Field(default=REPO_ROOT / ".local", validation_alias="TRIAGEFLOW_STATE_DIR")


@dataclasses.dataclass(frozen=True)
class Secure:
    """Client settings of the secure local components, as written by `infra.sh up secure`."""

    kafka: dict[str, str]  # TRIAGEFLOW_KAFKA_* without the prefix, lower case
    database: dict[str, str]  # TRIAGEFLOW_DATABASE_* without the prefix, lower case

    @property
    def cafile(self) -> Path:
        """The throwaway local CA that issued the broker's and PostgreSQL's certificates."""
        return Path(self.kafka["ssl_cafile"])

    @property
    def sasl_password(self) -> str:
        """The client user's SCRAM password."""
        return self.kafka["sasl_password"]

    @property
    def tls_role_password(self) -> str:
        """The TLS-only login role's password."""
        return urlsplit(self.database["url"]).password or ""


def _read_env_file(path: Path, prefix: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and words[1].startswith(prefix):
            name, _, value = words[1].partition("=")
            values[name.removeprefix(prefix).lower()] = value
    return values


def _unavailable(message: str) -> None:
    if ENV.ci:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def secure() -> Secure:
    """The secure components' client settings; fails in CI, skips locally, when missing."""
    state = _StateDir().state_dir
    kafka_env = state / "kafka-secure" / "env-secure.sh"
    database_env = state / "postgres-tls" / "env-secure.sh"
    missing = [str(path) for path in (kafka_env, database_env) if not path.is_file()]
    if missing:
        _unavailable(
            f"no secure infrastructure ({', '.join(missing)} missing): "
            "run `deploy/local/infra.sh up secure` (part of `make infra-up`)"
        )
    return Secure(
        kafka=_read_env_file(kafka_env, "TRIAGEFLOW_KAFKA_"),
        database=_read_env_file(database_env, "TRIAGEFLOW_DATABASE_"),
    )


def _kafka(secure: Secure, **overrides: Any) -> KafkaSettings:
    # model_validate, not the constructor: the environment (the plain broker of the
    # Makefile's TRIAGEFLOW_KAFKA_*) must not leak in.
    return KafkaSettings.model_validate(secure.kafka | {"partitions": 1} | overrides)


@pytest.fixture
def secure_kafka(secure: Secure, topic_prefix: str) -> KafkaSettings:
    """Settings of the SASL_SSL broker, as the configured client user, with fresh topics."""
    kafka = _kafka(secure, topic_prefix=topic_prefix)
    assert kafka.security_protocol == "SASL_SSL"
    assert kafka.sasl_mechanism == "SCRAM-SHA-512"
    return kafka


def _on_database(url: str, database_of: str, *, user: str | None = None, password: str = "") -> str:
    """Return `url` pointing at the database of `database_of`, optionally as another login."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}:{password}@{netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc, path=urlsplit(database_of).path))


def _verified(secure: Secure, url: str) -> DatabaseSettings:
    return DatabaseSettings(url=SecretStr(url), sslmode="verify-full", sslrootcert=secure.cafile)


@pytest.fixture
async def admin_db(secure: Secure, fresh_database: str) -> DatabaseSettings:
    """A fresh database, migrated over verified TLS by the migrating (owner-member) role."""
    admin = _verified(secure, fresh_database)
    await asyncio.to_thread(apply_migrations, admin.dsn())
    connection = await asyncpg.connect(admin.dsn())
    try:
        # Roles are cluster-wide: the TLS-only login stays a writer (idempotent, never revoked).
        await connection.execute(f"GRANT {WRITER} TO {TLS_ROLE}")
    finally:
        await connection.close()
    return admin


@pytest.fixture
def tls_db(secure: Secure, admin_db: DatabaseSettings) -> DatabaseSettings:
    """The TLS-only writer login on the fresh database, verifying the server (verify-full)."""
    url = _on_database(secure.database["url"], admin_db.url.get_secret_value())
    return _verified(secure, url)


@pytest.fixture
async def login_as(secure: Secure, admin_db: DatabaseSettings) -> AsyncIterator[LoginAs]:
    """Create throwaway logins in a group role (over TLS); drop them afterwards."""
    created: list[str] = []

    async def create(group_role: str) -> DatabaseSettings:
        name, password = f"tf_sec_test_{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
        admin = await asyncpg.connect(admin_db.dsn())
        try:
            await admin.execute(
                f"CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE {group_role}"
            )
        finally:
            await admin.close()
        created.append(name)
        url = admin_db.url.get_secret_value()
        return _verified(secure, _on_database(url, url, user=name, password=password))

    yield create
    admin = await asyncpg.connect(admin_db.dsn())
    try:
        for name in created:
            await admin.execute(f"DROP ROLE IF EXISTS {name}")
    finally:
        await admin.close()


async def _ssl_of_session(db: DatabaseSettings) -> tuple[bool, str]:
    connection = await asyncpg.connect(db.dsn())
    try:
        row = await connection.fetchrow(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        )
    finally:
        await connection.close()
    assert row is not None
    return row["ssl"], row["version"]


# ------------------------------------------------------------------ Kafka SASL_SSL


async def test_a_decision_is_routed_and_audited_over_sasl_ssl_and_verified_tls(
    secure_kafka: KafkaSettings, tls_db: DatabaseSettings
) -> None:
    topics = Topics(secure_kafka.topic_prefix)
    await ensure_topics(secure_kafka, [*topics.pipeline(), topics.queue("billing")])
    decision = decided(category="billing")
    await publish(secure_kafka, topics.decided, [(b"T-1", encode(decision))])
    prefix = topics.prefix
    router = build_router(RouterSettings(kafka=secure_kafka, group_id=f"{prefix}router"))
    audit = build_audit(
        AuditSettings(kafka=secure_kafka, group_id=f"{prefix}audit", database=tls_db)
    )

    async with running(router, audit):
        queued = await read_until(secure_kafka, [topics.queue("billing")], lambda r: len(r) >= 1)
        pool = await connect_pool(tls_db.dsn(), min_size=1, max_size=1)
        try:
            trail = await eventually(
                lambda: PostgresAuditRepository(pool).trail("T-1"),
                until=lambda t: len(t) >= 2,
                timeout=60,
                what="the decision and its routing in the trail",
            )
        finally:
            await pool.close()

    assert json.loads(queued[0].value or b"")["ticket_id"] == "T-1"
    assert [entry.event_type for entry in trail] == ["ticket.decided", "ticket.routed"]
    assert await _ssl_of_session(tls_db) == (True, "TLSv1.3")


@pytest.mark.parametrize(
    ("case", "overrides", "logged"),
    [
        ("wrong password", {"sasl_password": "not-the-password"}, "SaslAuthenticationFailed"),
        ("plaintext client", {"security_protocol": "PLAINTEXT"}, "closed"),
        ("SASL without TLS", {"security_protocol": "SASL_PLAINTEXT"}, "closed"),
        ("untrusted server", {"ssl_cafile": certifi.where()}, "CERTIFICATE_VERIFY_FAILED"),
    ],
)
async def test_the_secure_broker_refuses_a_client_at_once_and_says_why(
    secure: Secure,
    caplog: pytest.LogCaptureFixture,
    case: str,
    overrides: dict[str, str],
    logged: str,
) -> None:
    kafka = _kafka(secure, **overrides)
    producer = AIOKafkaProducer(**producer_kwargs(kafka))

    try:
        with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
            # Refused, not hanging: aiokafka gives up on the only bootstrap server at once.
            await asyncio.wait_for(producer.start(), timeout=30)
    finally:
        await producer.stop()

    assert logged in caplog.text, case
    assert secure.sasl_password not in caplog.text


async def test_a_service_with_a_wrong_sasl_password_fails_to_start(
    secure_kafka: KafkaSettings,
) -> None:
    wrong = secure_kafka.model_copy(update={"sasl_password": SecretStr(uuid.uuid4().hex)})
    router = build_router(RouterSettings(kafka=wrong, group_id=f"{wrong.topic_prefix}router"))

    with pytest.raises(KafkaConnectionError):
        async with running(router):
            pass


# ------------------------------------------------------------------- PostgreSQL TLS


async def test_the_audit_store_is_reached_over_tls_verifying_the_server_name(
    tls_db: DatabaseSettings,
) -> None:
    rows = [to_row(event, "tickets.test", 0, n) for n, event in enumerate(sample_events())]
    pool = await connect_pool(tls_db.dsn(), min_size=1, max_size=1)
    try:
        assert await PostgresAuditRepository(pool).insert(rows) == len(rows)
        session = await pool.fetchrow("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    finally:
        await pool.close()
    assert session is not None
    assert session["ssl"] is True


async def test_the_tls_only_role_is_refused_without_tls(tls_db: DatabaseSettings) -> None:
    plaintext = tls_db.model_copy(update={"sslmode": "disable"})

    with pytest.raises(asyncpg.InvalidAuthorizationSpecificationError, match="no encryption"):
        await asyncpg.connect(plaintext.dsn())


async def test_a_server_the_client_does_not_trust_is_refused(tls_db: DatabaseSettings) -> None:
    # The public CAs did not issue the local server certificate.
    untrusted = tls_db.model_copy(update={"sslrootcert": Path(certifi.where())})

    with pytest.raises(ssl.SSLCertVerificationError, match="CERTIFICATE_VERIFY_FAILED"):
        await asyncpg.connect(untrusted.dsn())


# ------------------------------------------------------------------ least privilege

# Each must be refused with "permission denied" / "must be owner" (SQLSTATE 42501).
WRITER_FORBIDDEN = (
    "UPDATE audit.trail_events SET ticket_id = 'T-x'",
    "DELETE FROM audit.trail_events",
    "TRUNCATE audit.trail_events",
    "DROP TABLE audit.trail_events",
    "ALTER TABLE audit.trail_events ADD COLUMN note text",
    "ALTER TABLE audit.trail_events DISABLE TRIGGER trail_events_append_only",
    "CREATE TABLE audit.scratch (x int)",
    "CREATE VIEW audit.scratch AS SELECT 1 AS x",
    "CREATE TABLE public.scratch (x int)",
    "CREATE SCHEMA scratch",
    "DROP SCHEMA audit CASCADE",
    "SELECT setval('audit.trail_events_seq_seq', 1)",
    f"SET ROLE {OWNER}",
)
READER_FORBIDDEN = (
    "INSERT INTO audit.trail_events SELECT * FROM audit.trail_events LIMIT 1",
    "UPDATE audit.trail_events SET ticket_id = 'T-x'",
    "DELETE FROM audit.trail_events",
    "TRUNCATE audit.trail_events",
    "CREATE TABLE audit.scratch (x int)",
    "SELECT nextval('audit.trail_events_seq_seq')",
    f"SET ROLE {WRITER}",
)

PUBLIC_MAY_READ = """
SELECT coalesce(bool_or(acl.grantee = 0), false)
FROM pg_class, aclexplode(pg_class.relacl) AS acl
WHERE pg_class.oid = 'audit.trail_events'::regclass
"""


async def _refused(
    pool: asyncpg.Pool[asyncpg.Record], statements: tuple[str, ...]
) -> dict[str, str]:
    """Run each statement; return those NOT refused for lack of privilege, with what happened."""
    allowed: dict[str, str] = {}
    for statement in statements:
        try:
            await pool.execute(statement)
        except asyncpg.InsufficientPrivilegeError:
            continue
        except asyncpg.PostgresError as error:
            allowed[statement] = f"{type(error).__name__}: {error}"
        else:
            allowed[statement] = "succeeded"
    return allowed


@pytest.fixture
async def recorded(admin_db: DatabaseSettings) -> int:
    """The sample events, recorded by the migrating role; returns how many."""
    rows = [to_row(event, "tickets.test", 0, n) for n, event in enumerate(sample_events())]
    pool = await connect_pool(admin_db.dsn(), min_size=1, max_size=1)
    try:
        return await PostgresAuditRepository(pool).insert(rows)
    finally:
        await pool.close()


async def test_the_writer_may_only_insert_and_read_the_trail(
    login_as: LoginAs, recorded: int
) -> None:
    writer = await login_as(WRITER)
    pool = await connect_pool(writer.dsn(), min_size=1, max_size=1)
    try:
        store = PostgresAuditRepository(pool)
        assert await store.insert([to_row(received("T-2"), "tickets.test", 1, 0)]) == 1
        assert len(await store.trail("T-1")) == 5
        assert await _refused(pool, WRITER_FORBIDDEN) == {}
        # Without the grant option PostgreSQL only warns ("no privileges were granted").
        await pool.execute("GRANT SELECT ON audit.trail_events TO PUBLIC")
        assert await pool.fetchval(PUBLIC_MAY_READ) is False
        assert await store.count_events() == recorded + 1
    finally:
        await pool.close()


async def test_the_reader_may_only_read_the_trail(login_as: LoginAs, recorded: int) -> None:
    reader = await login_as(READER)
    pool = await connect_pool(reader.dsn(), min_size=1, max_size=1)
    try:
        store = PostgresAuditRepository(pool)
        assert len(await store.trail("T-1")) == 5
        assert await _refused(pool, READER_FORBIDDEN) == {}
        assert await store.count_events() == recorded
    finally:
        await pool.close()


def _database_env(db: DatabaseSettings) -> dict[str, str]:
    return {
        "TRIAGEFLOW_DATABASE_URL": db.url.get_secret_value(),
        "TRIAGEFLOW_DATABASE_SSLMODE": str(db.sslmode),
        "TRIAGEFLOW_DATABASE_SSLROOTCERT": str(db.sslrootcert),
    }


def _migrate(db: DatabaseSettings) -> subprocess.CompletedProcess[str]:
    """Run `triageflow db migrate` with the database settings in its environment."""
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "db", "migrate"],
        cwd=REPO_ROOT,
        env={"PATH": "/usr/bin:/bin", **_database_env(db)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@contextlib.asynccontextmanager
async def _empty_database(admin: DatabaseSettings) -> AsyncIterator[str]:
    """A new database without migrations; its URL as the admin role."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(admin.dsn())
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    yield _on_database(admin.url.get_secret_value(), f"/{name}")

    async def drop() -> bool:
        # No FORCE: the admin may not end other roles' sessions; wait for them to go.
        connection = await asyncpg.connect(admin.dsn())
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        except asyncpg.ObjectInUseError:
            return False
        finally:
            await connection.close()
        return True

    await eventually(drop, timeout=30, what=f"database {name} dropped")


async def test_the_cli_applies_migrations_over_verified_tls_as_the_owner_member(
    secure: Secure, admin_db: DatabaseSettings
) -> None:
    # The writer's refusals (CREATE SCHEMA / VIEW / TABLE) are in WRITER_FORBIDDEN above.
    async with _empty_database(admin_db) as url:
        verified = _verified(secure, url)
        untrusted = verified.model_copy(update={"sslrootcert": Path(certifi.where())})
        refused = await asyncio.to_thread(_migrate, untrusted)
        applied = await asyncio.to_thread(_migrate, verified)

    # The CLI verifies the server with the configured CA: the public CAs are refused.
    assert refused.returncode != 0
    assert "certificate verify failed" in refused.stderr
    assert applied.returncode == 0, applied.stderr
    assert "migrations applied: audit_0001_roles" in applied.stdout


# ------------------------------------------------------------------ no secret in logs


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _service_env(kafka: KafkaSettings, db: DatabaseSettings, group_id: str) -> dict[str, str]:
    """The environment of a service process: every setting, secrets included, as env vars."""
    env = {
        "PATH": "/usr/bin:/bin",
        "TRIAGEFLOW_AUDIT_GROUP_ID": group_id,
        "TRIAGEFLOW_AUDIT_HTTP_PORT": str(_free_port()),
        "TRIAGEFLOW_AUDIT_LOG_LEVEL": "DEBUG",
        "TRIAGEFLOW_AUDIT_LOG_JSON": "true",
        "TRIAGEFLOW_AUDIT_GRACEFUL_TIMEOUT_S": "5",
        "TRIAGEFLOW_DATABASE_URL": db.url.get_secret_value(),
        "TRIAGEFLOW_DATABASE_SSLMODE": str(db.sslmode),
        "TRIAGEFLOW_DATABASE_SSLROOTCERT": str(db.sslrootcert),
    }
    for name, value in kafka.model_dump(exclude_none=True).items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"TRIAGEFLOW_KAFKA_{name.upper()}"] = str(value)
    return env


@dataclasses.dataclass(frozen=True)
class ServiceRun:
    """One `python -m services.audit` process and the file its output goes to."""

    process: subprocess.Popen[bytes]
    log_file: Path

    def log(self) -> str:
        """Everything the process wrote so far (stdout and stderr)."""
        return self.log_file.read_text(errors="replace")

    async def until_logged(self, text: str, *, timeout: float = 60) -> None:
        """Wait until `text` is in the log (or the process ended), then stop the process."""

        def done() -> bool:
            return self.process.poll() is not None or text in self.log()

        await eventually(lambda: asyncio.to_thread(done), timeout=timeout, what=repr(text))
        await self.stop()

    async def stop(self) -> int:
        """SIGTERM, wait for the exit; return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, 30)


@pytest.fixture
def audit_service(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], ServiceRun]]:
    """Start `python -m services.audit` with exactly the given environment."""
    runs: list[ServiceRun] = []

    def start(env: dict[str, str]) -> ServiceRun:
        log_file = tmp_path / f"audit-{len(runs)}.log"
        with log_file.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "services.audit"],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        runs.append(ServiceRun(process, log_file))
        return runs[-1]

    yield start
    for run in runs:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait(timeout=10)


async def test_a_run_of_the_audit_service_never_logs_its_secrets(
    secure: Secure,
    secure_kafka: KafkaSettings,
    tls_db: DatabaseSettings,
    audit_service: Callable[[dict[str, str]], ServiceRun],
) -> None:
    topics = Topics(secure_kafka.topic_prefix)
    await ensure_topics(secure_kafka, topics.audited())
    events = [received(f"T-{n}") for n in range(5)]
    env = _service_env(secure_kafka, tls_db, f"{topics.prefix}audit")
    wrong_db_password, wrong_sasl_password = uuid.uuid4().hex, uuid.uuid4().hex
    url = tls_db.url.get_secret_value()
    wrong_url = _on_database(url, url, user=TLS_ROLE, password=wrong_db_password)

    # A run that works: events flow from the SASL_SSL broker into PostgreSQL over TLS.
    good = audit_service(env)
    await publish(secure_kafka, topics.inbound, [(e.ticket_id.encode(), encode(e)) for e in events])
    pool = await connect_pool(tls_db.dsn(), min_size=1, max_size=1)
    try:
        await eventually(
            PostgresAuditRepository(pool).count_events,
            until=lambda n: n == len(events),
            timeout=90,
            what="the service to record every event",
        )
    finally:
        await pool.close()
    # uvicorn re-raises the signal once it has shut down gracefully.
    assert await good.stop() in (0, -signal.SIGTERM)
    # Runs that fail: a wrong database password, a wrong SASL password.
    bad_db = audit_service(env | {"TRIAGEFLOW_DATABASE_URL": wrong_url})
    await bad_db.until_logged("password authentication failed")
    bad_sasl = audit_service(env | {"TRIAGEFLOW_KAFKA_SASL_PASSWORD": wrong_sasl_password})
    await bad_sasl.until_logged("SaslAuthenticationFailed")

    logs = {name: run.log() for name, run in [("good", good), ("db", bad_db), ("sasl", bad_sasl)]}
    assert "recorded ticket.received" in logs["good"]
    assert "Application shutdown complete" in logs["good"]
    assert "password authentication failed" in logs["db"]
    assert "SaslAuthenticationFailed" in logs["sasl"]
    for secret in (
        secure.sasl_password,
        secure.tls_role_password,
        wrong_db_password,
        wrong_sasl_password,
    ):
        for name, log in logs.items():
            assert secret not in log, f"a configured secret is in the {name} run's log"


def test_settings_never_show_their_secrets(secure: Secure) -> None:
    kafka = _kafka(secure)
    db = DatabaseSettings(url=SecretStr(secure.database["url"]), sslmode="verify-full")
    audit = AuditSettings(kafka=kafka, database=db)

    shown = [
        text
        for settings in (kafka, db, audit)
        for text in (repr(settings), str(settings), settings.model_dump_json())
    ]
    captured: list[str] = []
    sink = logger.add(captured.append, serialize=True)
    try:
        logger.info("settings {} {}", kafka, audit)
        logger.bind(settings=audit.model_dump()).info("bound settings")
    finally:
        logger.remove(sink)

    for text in [*shown, *captured]:
        assert secure.sasl_password not in text
        assert secure.tls_role_password not in text
    assert secure.tls_role_password in db.dsn(), "dsn() is what connects: it holds the secret"
