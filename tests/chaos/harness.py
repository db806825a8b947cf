"""The fault-injection harness: a ticket stream through two copies of every service while
services are SIGKILLed, PostgreSQL and Kafka restart; then an account of every ticket.

It starts its own Kafka (one broker, or the 3-node cluster) and PostgreSQL through
`deploy/local/infra.sh` in its own state dir and ports, so it never disturbs the shared
infrastructure and runs the same on a laptop and in CI. Everything is configured through
`TRIAGEFLOW_CHAOS_*` (see `ChaosSettings`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from loguru import logger
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.audit.migrate import apply_migrations
from services.cli import processes
from services.cli.main import default_queues
from services.cli.publishing import read_records, sample_tickets_path
from shared.codec import InvalidMessage, decode
from shared.contracts import TicketReceived
from shared.kafka import client_kwargs, producer_kwargs
from shared.settings import KafkaSettings
from shared.topics import Topics, ensure_topics

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "deploy" / "local" / "infra.sh"
TRAIL_STEPS = ("ticket.received", "ticket.classified", "ticket.decided", "ticket.routed")
KAFKA3_BOOTSTRAP = "127.0.0.1:19092,127.0.0.1:29092,127.0.0.1:39092"


class ChaosSettings(BaseSettings):
    """What a chaos run does and where its own infrastructure lives (`TRIAGEFLOW_CHAOS_`)."""

    model_config = SettingsConfigDict(env_prefix="TRIAGEFLOW_CHAOS_", frozen=True, extra="ignore")

    state_dir: Path = Field(default=REPO / ".local" / "chaos", description="infra.sh state dir.")
    kafka_port: int = Field(default=29192, description="The single broker's port.")
    kafka_controller_port: int = Field(default=29193)
    pg_port: int = Field(default=25432)
    http_port_offset: int = Field(default=20000, description="Shift of the services' ops ports.")
    tickets: int = Field(default=5000, ge=1, description="Distinct tickets published.")
    duplicate_share: float = Field(default=0.03, ge=0, le=1, description="Re-published share.")
    rate: float = Field(default=250.0, gt=0, description="Records per second.")
    copies: int = Field(default=2, ge=1, description="Copies of each service.")
    kills_per_copy: int = Field(default=1, ge=0, description="SIGKILLs of each service copy.")
    seed: int = Field(default=20261125)
    deadline_s: float = Field(default=420.0, description="Wait for every ticket after publishing.")
    recovery_s: float = Field(
        default=480.0,
        description="How long a crashed broker or database is started again until it answers.",
    )
    keep_infra: bool = Field(default=False, description="Leave the chaos infra running.")
    out_dir: Path = Field(default=REPO / "bench")


@dataclass
class Fault:
    """One injected fault: when (seconds from the start), what, and on what."""

    at_s: float
    kind: str
    target: str
    done_s: float | None = None
    ok: bool = True
    attempts: int = 0
    error: str = ""


@dataclass
class ChaosResult:
    """What `bench/chaos.json` holds."""

    variant: str
    brokers: int
    published: int
    routed: int
    dead_lettered: int
    lost: int
    incomplete_trails: int
    duplicate_audit_rows: int
    downstream_duplicates: int
    faults_injected: int
    records_sent: int
    republished_duplicates: int
    work_items_seen: int
    duration_s: float
    publish_s: float
    settle_s: float
    seed: int
    rate: float
    faults: list[Fault] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        return asdict(self)


class Infra:
    """The chaos run's own infrastructure, driven through `deploy/local/infra.sh`."""

    def __init__(self, settings: ChaosSettings, brokers: Literal[1, 3]) -> None:
        self.settings = settings
        self.brokers = brokers
        self.env = {
            **os.environ,
            "TRIAGEFLOW_STATE_DIR": str(settings.state_dir),
            "TRIAGEFLOW_KAFKA_PORT": str(settings.kafka_port),
            "TRIAGEFLOW_KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
            "TRIAGEFLOW_PG_PORT": str(settings.pg_port),
            # A broker restarted under full load on 2 cores can take longer than the default.
            "TRIAGEFLOW_KAFKA_START_TIMEOUT": os.environ.get(
                "TRIAGEFLOW_KAFKA_START_TIMEOUT", "240"
            ),
        }
        shared_jars = REPO / ".local" / "kafka" / "libs-4.1.2"
        if (shared_jars / ".complete").exists() and "TRIAGEFLOW_KAFKA_LIBS_DIR" not in os.environ:
            self.env["TRIAGEFLOW_KAFKA_LIBS_DIR"] = str(shared_jars)

    @property
    def bootstrap(self) -> str:
        """Bootstrap servers of the run's Kafka."""
        if self.brokers == 3:
            return KAFKA3_BOOTSTRAP
        return f"127.0.0.1:{self.settings.kafka_port}"

    @property
    def admin_url(self) -> str:
        """URL of the run's PostgreSQL as the local admin role."""
        return f"postgresql://triageflow:triageflow@127.0.0.1:{self.settings.pg_port}/triageflow"

    async def run(self, *args: str) -> None:
        """Run `infra.sh ARGS`; raise with its output when it fails."""
        process = await asyncio.create_subprocess_exec(
            "bash",
            str(INFRA),
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"infra.sh {' '.join(args)} failed:\n{output.decode()[-3000:]}")
        logger.info("infra.sh {}: ok", " ".join(args))

    async def up(self) -> None:
        """Start PostgreSQL and Kafka (one broker or three)."""
        await self.run("up", "postgres")
        await self.run("up", "kafka3" if self.brokers == 3 else "kafka")

    async def down(self) -> None:
        """Stop everything of the run's state dir."""
        await self.run("down")


def make_tickets(run: str, count: int) -> list[tuple[bytes, bytes]]:
    """Return `count` valid tickets (key, value) built from the shipped samples."""
    templates = []
    for record in read_records(sample_tickets_path()):
        try:
            data = json.loads(record.value)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        template = {k: v for k, v in data.items() if k not in ("event_id", "occurred_at")}
        try:  # only tickets the pipeline accepts: every one must reach a queue
            decode(json.dumps(template).encode(), TicketReceived)
        except InvalidMessage:
            continue
        templates.append(template)
    tickets = []
    for index in range(count):
        ticket_id = f"{run}-{index:05d}"
        value = templates[index % len(templates)] | {"ticket_id": ticket_id}
        tickets.append((ticket_id.encode(), json.dumps(value).encode()))
    return tickets


def with_duplicates(
    tickets: list[tuple[bytes, bytes]], share: float, rng: random.Random
) -> tuple[list[tuple[bytes, bytes]], int]:
    """Return the stream with a share of tickets sent again (same bytes) a little later."""
    stream = list(tickets)
    chosen = rng.sample(range(len(tickets)), int(len(tickets) * share))
    for index in sorted(chosen, reverse=True):
        later = min(len(stream), index + rng.randint(50, 1500))
        stream.insert(later, tickets[index])
    return stream, len(chosen)


async def publish_stream(
    kafka: KafkaSettings,
    topic: str,
    stream: list[tuple[bytes, bytes]],
    rate: float,
    give_up_s: float,
) -> set[str]:
    """Publish at `rate`, re-sending whatever the broker did not acknowledge; return keys acked.

    A record still unacknowledged `give_up_s` after publishing started is given up (and so
    missing from the result, which fails the run with its faults' errors instead of hanging).
    """
    producer = AIOKafkaProducer(**producer_kwargs(kafka) | {"request_timeout_ms": 15000})
    await producer.start()
    acked: set[str] = set()
    give_up_at = time.monotonic() + give_up_s

    async def deliver(key: bytes, value: bytes) -> None:
        # Upstream's own at-least-once: send until acknowledged (a re-send is a duplicate).
        while time.monotonic() < give_up_at:
            try:
                await asyncio.wait_for(
                    await producer.send(topic, value=value, key=key),
                    timeout=max(1.0, give_up_at - time.monotonic()),
                )
                acked.add(key.decode())
                return
            except (KafkaError, TimeoutError) as error:
                logger.warning("publish of {} failed ({!r}); sending again", key, error)
                await asyncio.sleep(0.5)
        logger.error("gave up publishing {} after {:.0f} s", key, give_up_s)

    started = time.monotonic()
    tasks = []
    try:
        for index, (key, value) in enumerate(stream):
            delay = started + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(deliver(key, value)))
        await asyncio.gather(*tasks)
    finally:
        await producer.stop()
    return acked


class ChaosRun:
    """One run: infrastructure, services, stream, faults, account."""

    def __init__(self, settings: ChaosSettings, *, brokers: Literal[1, 3]) -> None:
        self.settings = settings
        self.brokers = brokers
        self.infra = Infra(settings, brokers)
        self.rng = random.Random(settings.seed + brokers)
        self.run_id = f"chaos-{uuid.uuid4().hex[:6]}"
        self.prefix = f"{self.run_id}."
        self.database = f"chaos_{uuid.uuid4().hex[:10]}"
        self.services_dir = settings.state_dir / f"services-{self.run_id}"
        self.faults: list[Fault] = []
        self.stopping = False
        self.start_guard = threading.Lock()
        self.started = time.monotonic()
        self.kafka = KafkaSettings(
            bootstrap_servers=self.infra.bootstrap,
            topic_prefix=self.prefix,
            replication_factor=3 if brokers == 3 else 1,
            min_insync_replicas=2 if brokers == 3 else None,
        )

    @property
    def database_url(self) -> str:
        """URL of the run's own audit database."""
        return self.infra.admin_url.rsplit("/", 1)[0] + f"/{self.database}"

    def service_env(self) -> dict[str, str]:
        """Environment of every service copy."""
        env = {
            "TRIAGEFLOW_KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "TRIAGEFLOW_KAFKA_TOPIC_PREFIX": self.prefix,
            "TRIAGEFLOW_DATABASE_URL": self.database_url,
        }
        for service in processes.SERVICES:
            # Per-message INFO lines would cost more CPU than the work on 2 cores.
            env[f"TRIAGEFLOW_{service.upper()}_LOG_LEVEL"] = "WARNING"
        return env

    def copies(self) -> dict[str, int]:
        """How many copies of each service run."""
        return dict.fromkeys(processes.SERVICES, self.settings.copies)

    def now(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    async def prepare(self) -> None:
        """Start the infrastructure, create the database, migrate, create topics."""
        # Copies leaked by an earlier, interrupted run would hold the ops ports this run needs.
        for pid in _processes_with_env("TRIAGEFLOW_KAFKA_TOPIC_PREFIX", "chaos-", prefix=True):
            logger.warning("killing service process {} left by an earlier chaos run", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        await self.infra.up()
        admin = await asyncpg.connect(self.infra.admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await admin.close()
        await asyncio.to_thread(apply_migrations, self.database_url)
        topics = Topics(self.prefix)
        await ensure_topics(
            self.kafka, [*topics.pipeline(), *(topics.queue(q) for q in default_queues())]
        )

    def start_services(self) -> None:
        """Start every missing copy of every service (none once the run is being cleaned up)."""
        with self.start_guard:  # `stopping` cannot turn true while a start is under way
            if self.stopping:
                return
            processes.start(
                self.services_dir,
                copies=self.copies(),
                env=self.service_env(),
                port_offset=self.settings.http_port_offset,
            )

    async def wait_services_ready(self) -> None:
        """Wait until every copy answers /health/ready."""
        problems = await asyncio.to_thread(
            processes.wait_ready, processes.running(self.services_dir), timeout=120
        )
        if problems:
            raise RuntimeError("services not ready: " + "; ".join(problems))

    def schedule(self, window_s: float) -> list[tuple[float, str, str]]:
        """Return the seeded fault plan: (at, kind, target) within the publishing window."""
        plan = []
        for service in processes.SERVICES:
            for copy in range(1, self.settings.copies + 1):
                for _ in range(self.settings.kills_per_copy):
                    at = self.rng.uniform(0.05, 0.95) * window_s
                    plan.append((at, "sigkill", f"{service}-{copy}"))
        plan.append((self.rng.uniform(0.2, 0.4) * window_s, "restart", "postgres"))
        if self.brokers == 3:
            plan.append((self.rng.uniform(0.45, 0.55) * window_s, "kill-node", "2"))
        else:
            plan.append((self.rng.uniform(0.5, 0.7) * window_s, "crash-restart", "kafka"))
        return sorted(plan)

    async def inject(self, at: float, kind: str, target: str, origin: float) -> None:
        """Inject one fault at `at` seconds after `origin`."""
        await asyncio.sleep(max(0.0, origin + at - time.monotonic()))
        fault = Fault(at_s=round(time.monotonic() - origin, 2), kind=kind, target=target)
        self.faults.append(fault)
        try:
            if kind == "sigkill":
                await self.kill_and_restart(target)
            elif kind == "restart":
                try:
                    await self.infra.run("restart", target)
                except RuntimeError as error:
                    logger.warning("restart of {} failed, starting it: {}", target, error)
                    await self.recover(target, fault)
            elif kind == "crash-restart":
                # SIGKILL then start: harsher than a controlled shutdown, and quicker.
                await self.infra.run("kill", target)
                await self.recover(target, fault)
            else:
                await self.infra.run("kill-node", target)
        except Exception as error:
            fault.ok = False
            fault.error = str(error)[-2000:]
            logger.error("fault {} {} failed: {!r}", kind, target, error)
        fault.done_s = round(time.monotonic() - origin, 2)

    async def recover(self, target: str, fault: Fault) -> None:
        """Start `target` (kafka, postgres) until it answers, as an operator's supervisor would."""
        deadline = time.monotonic() + self.settings.recovery_s
        while True:
            fault.attempts += 1
            try:
                await self.infra.run("up", target)
                return
            except RuntimeError as error:
                fault.error = str(error)[-2000:]
                if time.monotonic() >= deadline:
                    raise
                logger.warning("start of {} failed (attempt {}): {}", target, fault.attempts, error)
                await asyncio.sleep(2.0)  # back off before the next start, as a supervisor does

    async def kill_and_restart(self, target: str) -> None:
        """SIGKILL one service copy, then start it again after a short random pause."""
        service, _, copy = target.rpartition("-")
        for process in processes.running(self.services_dir):
            if process.service == service and process.copy == int(copy):
                os.kill(process.pid, 9)
        await asyncio.sleep(self.rng.uniform(0.2, 3.0))
        await asyncio.to_thread(self.start_services)

    async def supervise(self) -> None:
        """Restart copies that died (killed, or exited when the broker was down): a supervisor."""
        while True:
            await asyncio.to_thread(self.start_services)
            await asyncio.sleep(1.0)  # the supervisor's period, as a Kubernetes restart would

    async def settle(self, pool: asyncpg.Pool, published: set[str]) -> tuple[set[str], set[str]]:
        """Wait until every published ticket is routed or dead-lettered in the audit store."""
        deadline = time.monotonic() + self.settings.deadline_s
        routed: set[str] = set()
        dead: set[str] = set()
        while time.monotonic() < deadline:
            rows = await pool.fetch(
                "SELECT DISTINCT ticket_id, event_type FROM audit.trail_events "
                "WHERE event_type IN ('ticket.routed', 'ticket.dead_lettered')"
            )
            routed = {r["ticket_id"] for r in rows if r["event_type"] == "ticket.routed"}
            dead = {r["ticket_id"] for r in rows if r["event_type"] == "ticket.dead_lettered"}
            if published <= routed | dead:
                break
            await asyncio.sleep(1.0)  # poll interval; the deadline bounds the wait
        return routed, dead

    async def read_queues(self) -> list[dict[str, Any]]:
        """Return every work item on the run's queue topics, read to their end."""
        topics = [Topics(self.prefix).queue(q) for q in default_queues()]
        consumer = AIOKafkaConsumer(
            **client_kwargs(self.kafka), enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in consumer.partitions_for_topic(topic) or await _partitions(consumer, topic)
            ]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            items: list[dict[str, Any]] = []
            pending = {tp for tp, end in ends.items() if end > 0}
            deadline = time.monotonic() + 120
            while pending and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                for tp, records in batch.items():
                    items.extend(json.loads(r.value) for r in records)
                    if records and records[-1].offset + 1 >= ends[tp]:
                        pending.discard(tp)
            return items
        finally:
            await consumer.stop()

    async def account(
        self, pool: asyncpg.Pool, published: set[str], dead: set[str]
    ) -> dict[str, int]:
        """Count what the result reports from the audit store and the queues."""
        items = [
            i
            for i in await self.read_queues()
            if str(i.get("ticket_id", "")).startswith(self.run_id)
        ]
        keys = Counter(str(i["idempotency_key"]) for i in items)
        on_queues = {str(i["ticket_id"]) for i in items}
        duplicate_ids = await pool.fetchval(
            "SELECT count(*) FROM (SELECT event_id FROM audit.trail_events "
            "GROUP BY event_id HAVING count(*) > 1) AS d"
        )
        extra_steps = await pool.fetchval(
            "SELECT coalesce(sum(n - 1), 0) FROM (SELECT ticket_id, event_type, count(*) AS n "
            "FROM audit.trail_events WHERE event_type = ANY($1::text[]) "
            "GROUP BY ticket_id, event_type HAVING count(*) > 1) AS d",
            list(TRAIL_STEPS),
        )
        steps = await pool.fetch(
            "SELECT ticket_id, array_agg(DISTINCT event_type) AS types FROM audit.trail_events "
            "WHERE event_type = ANY($1::text[]) GROUP BY ticket_id",
            list(TRAIL_STEPS),
        )
        complete = {r["ticket_id"] for r in steps if set(r["types"]) >= set(TRAIL_STEPS)}
        expected_trails = published - dead
        return {
            "routed": len(on_queues & published),
            "lost": len(published - (on_queues | dead)),
            "incomplete_trails": len(expected_trails - complete),
            "duplicate_audit_rows": int(duplicate_ids) + int(extra_steps),
            "downstream_duplicates": sum(n - 1 for n in keys.values() if n > 1),
            "work_items_seen": len(items),
        }

    async def execute(self) -> ChaosResult:
        """Run the whole scenario and return its result (infra left to `cleanup`)."""
        self.started = time.monotonic()
        await self.prepare()
        self.start_services()
        await self.wait_services_ready()
        tickets = make_tickets(self.run_id, self.settings.tickets)
        stream, duplicates = with_duplicates(tickets, self.settings.duplicate_share, self.rng)
        window = len(stream) / self.settings.rate
        origin = time.monotonic()
        injector = [
            asyncio.create_task(self.inject(at, kind, target, origin))
            for at, kind, target in self.schedule(window)
        ]
        supervisor = asyncio.create_task(self.supervise())
        logger.info("{}: {} records over {:.0f} s", self.run_id, len(stream), window)
        acked = await publish_stream(
            self.kafka,
            Topics(self.prefix).inbound,
            stream,
            self.settings.rate,
            give_up_s=window + self.settings.recovery_s + 120,
        )
        publish_s = time.monotonic() - origin
        await asyncio.gather(*injector)
        settle_started = time.monotonic()
        pool = await asyncpg.create_pool(self.database_url, min_size=1, max_size=2)
        try:
            _, dead = await self.settle(pool, acked)
            settle_s = time.monotonic() - settle_started
            counts = await self.account(pool, acked, dead)
        finally:
            await pool.close()
            supervisor.cancel()
        return ChaosResult(
            variant="kafka3" if self.brokers == 3 else "single",
            brokers=self.brokers,
            published=len(acked),
            dead_lettered=len(dead & acked),
            faults_injected=sum(1 for f in self.faults if f.ok),
            records_sent=len(stream),
            republished_duplicates=duplicates,
            duration_s=round(time.monotonic() - self.started, 1),
            publish_s=round(publish_s, 1),
            settle_s=round(settle_s, 1),
            seed=self.settings.seed,
            rate=self.settings.rate,
            faults=sorted(self.faults, key=lambda f: f.at_s),
            **counts,
        )

    def _stop_starting(self) -> None:
        with self.start_guard:
            self.stopping = True

    async def cleanup(self) -> None:
        """Stop the services; drop the database; stop the infra unless asked to keep it."""
        # Once `stopping` is set under the guard, no start is under way and none follows.
        await asyncio.to_thread(self._stop_starting)
        await asyncio.to_thread(processes.stop, self.services_dir)
        # Belt and braces: any process of this run that no pid file names (a leak would hold
        # its ops port and break the next run) is found by the topic prefix in its environment.
        for pid in _processes_with_env("TRIAGEFLOW_KAFKA_TOPIC_PREFIX", self.prefix):
            logger.warning("killing stray service process {} of {}", pid, self.run_id)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.settings.keep_infra:
            try:
                admin = await asyncpg.connect(self.infra.admin_url)
                try:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
                finally:
                    await admin.close()
            except (OSError, asyncpg.PostgresError) as error:
                logger.warning("could not drop {}: {!r}", self.database, error)
            return
        await self.infra.down()


def _processes_with_env(name: str, value: str, *, prefix: bool = False) -> list[int]:
    """Return the pids whose environment has `name=value` (or a value starting with `value`
    when `prefix`), read from Linux /proc (processes of other users are unreadable)."""
    wanted = f"{name}={value}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        variables = environ.split(b"\0")
        if wanted in variables or (prefix and any(v.startswith(wanted) for v in variables)):
            pids.append(int(entry.name))
    return pids


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


def write_result(result: ChaosResult, out_dir: Path) -> Path:
    """Write the result as JSON: bench/chaos.json (one broker) or bench/chaos-kafka3.json."""
    name = "chaos.json" if result.brokers == 1 else "chaos-kafka3.json"
    path = out_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return path
