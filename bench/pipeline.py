"""Pipeline benchmark: triageflow measured against a bare aiokafka chain of the same shape.

    make bench          # or: .venv/bin/python bench/pipeline.py [--tickets N] [--seconds S]

One run, on the local Kafka and PostgreSQL, of three scenarios, each in its own topic
namespace (`bench-<run>-<scenario>.`), consumer groups and fresh database:

* raw       bench/raw_chain.py: three aiokafka hops (inbound → classified → decided →
            queue + routed) and a sink that only counts every topic (the audit's place),
            with the pipeline's message sizes, partitions, batch and producer settings;
* plumbing  the four triageflow services, the classifier answering a constant
            (bench/constant_backend.py), the audit writing to PostgreSQL;
* pipeline  the four services with the default local classifier, then a second classifier.

For each: sustained throughput (publish everything, then count completions: a ticket is
complete when its work item is on a queue topic *and* its four events are in the audit
store), open-loop latency at half that rate, and CPU seconds per 1,000 tickets of every
process. Also the audit writer's insert rate alone, latency against load for the
pipeline, and one vs two classifiers. Writes bench/results.json and bench/results.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.audit.migrate import apply_migrations
from services.audit.repository import PostgresAuditRepository, connect_pool, to_row
from services.cli import processes
from services.cli.main import default_queues
from services.cli.publishing import read_records, sample_tickets_path
from shared.codec import InvalidMessage
from shared.contracts import TicketReceived
from shared.kafka import admin_client_kwargs, client_kwargs, producer_kwargs
from shared.settings import KafkaSettings
from shared.stage import Incoming, decode_record
from shared.topics import Topics, ensure_topics

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
EVENTS_PER_TICKET = 4  # received, classified, decided, routed: what "audited" means
CLK_TCK = os.sysconf("SC_CLK_TCK")
_DRAINS: set[asyncio.Task[bytes]] = set()  # keeps the pipe-draining tasks alive


def log(message: str) -> None:
    """Progress on stderr; the results go to files."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")


# ------------------------------------------------------------------------- tickets


def ticket_templates() -> list[dict[str, Any]]:
    """Return the sample tickets that are valid `ticket.received` events (no junk)."""
    valid = []
    for record in read_records(sample_tickets_path()):
        incoming = Incoming("bench", 0, 0, record.key, record.value, timestamp_ms=1)
        try:
            decode_record(incoming, TicketReceived)
        except InvalidMessage:
            continue
        data = json.loads(record.value)
        for derived in ("event_id", "trace_id", "occurred_at"):
            data.pop(derived, None)
        valid.append(data)
    return valid


def make_tickets(templates: list[dict[str, Any]], tag: str, count: int) -> list[tuple[str, bytes]]:
    """Return `count` (ticket id, JSON bytes) pairs cycling through the templates."""
    tickets = []
    for index in range(count):
        ticket_id = f"{tag}-{index:06d}"
        data = templates[index % len(templates)] | {"ticket_id": ticket_id}
        tickets.append((ticket_id, json.dumps(data, ensure_ascii=False).encode()))
    return tickets


# ------------------------------------------------------------------------- processes


@dataclass
class Proc:
    """One process this benchmark started."""

    name: str
    process: asyncio.subprocess.Process
    log: Path
    port: int | None = None
    lines: list[str] = field(default_factory=list)

    def cpu_seconds(self) -> float:
        """Return user + system CPU seconds the process used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK


# The infrastructure's processes, by command name: their CPU belongs to the budget too.
INFRA_COMMANDS = {"java": "kafka broker", "postgres": "postgresql"}


def infra_cpu_seconds() -> dict[str, float]:
    """Return CPU seconds used so far by the Kafka broker (java) and PostgreSQL processes.

    PostgreSQL's backends live as long as the services' pools, so a before/after difference
    covers a run; a backend that exits in between loses its share (an underestimate).
    """
    totals = dict.fromkeys(INFRA_COMMANDS.values(), 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # the process ended while we looked
        command = text[text.find("(") + 1 : text.rfind(")")]
        name = INFRA_COMMANDS.get(command)
        if name is not None:
            fields = text.rsplit(")", 1)[1].split()
            totals[name] += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return totals


def machine_jiffies() -> tuple[int, int]:
    """Return (busy, total) CPU jiffies of the machine; niced work counts as idle.

    Niced work (other engineers' batch jobs) yields to the benchmark, so what is left
    measures whether the benchmark itself saturated the cores.
    """
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    busy = user + system + irq + softirq + steal
    return busy, busy + nice + idle + iowait


def free_port() -> int:
    """Return a TCP port nobody listens on now (other engineers run services here too)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def spawn(name: str, argv: list[str], env: dict[str, str], logs: Path) -> Proc:
    """Start one process with its output in `logs/<name>.log`."""
    path = logs / f"{name}.log"
    with path.open("ab") as sink:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env={**os.environ, **env}, stdout=sink, stderr=sink
        )
    return Proc(name, process, path)


async def spawn_piped(name: str, argv: list[str], env: dict[str, str], logs: Path) -> Proc:
    """Start one raw-chain process whose stdout the benchmark reads."""
    path = logs / f"{name}.log"
    with path.open("ab") as sink:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=sink,
        )
    return Proc(name, process, path)


async def spawn_service(
    service: str, copy: int, *, env: dict[str, str], logs: Path, argv: list[str] | None = None
) -> Proc:
    """Start one copy of a triageflow service on a free port, in its own consumer group."""
    port = free_port()
    prefix = f"TRIAGEFLOW_{service.upper()}_"
    own = env | {
        prefix + "HTTP_PORT": str(port),
        prefix + "INSTANCE_ID": f"bench-{service}-{copy}",
        prefix + "GROUP_ID": f"{env['TRIAGEFLOW_KAFKA_TOPIC_PREFIX']}{service}",
    }
    proc = await spawn(
        f"{service}-{copy}", argv or [PYTHON, "-m", f"services.{service}"], own, logs
    )
    proc.port = port
    return proc


async def wait_services(procs: Sequence[Proc]) -> None:
    """Wait until every service answers /health/ready, or fail."""
    wanted = [processes.ServiceProcess(p.name, 1, p.process.pid, p.port or 0, p.log) for p in procs]
    problems = await asyncio.to_thread(processes.wait_ready, wanted, timeout=180)
    if problems:
        raise RuntimeError("services not ready: " + "; ".join(problems))


async def stop_all(procs: Iterable[Proc]) -> None:
    """SIGTERM the processes this benchmark started; SIGKILL what does not exit in 20 s."""
    procs = [p for p in procs if p.process.returncode is None]
    for proc in procs:
        proc.process.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            await asyncio.wait_for(proc.process.wait(), timeout=20)
        except TimeoutError:
            proc.process.kill()
            await proc.process.wait()


# ------------------------------------------------------------------------- completion


class Tracker:
    """Knows when each ticket is complete: on a queue topic and (if audited) recorded."""

    def __init__(self, audited: bool) -> None:
        self.audited = audited
        self.queue_seen: dict[str, float] = {}
        self.audit_count: dict[str, int] = {}
        self.audit_last: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.sink_counts: list[tuple[float, int]] = []
        self._tasks: list[asyncio.Task[None]] = []

    def _check(self, ticket: str) -> None:
        if ticket in self.done or ticket not in self.queue_seen:
            return
        if not self.audited:
            self.done[ticket] = self.queue_seen[ticket]
        elif self.audit_count.get(ticket, 0) >= EVENTS_PER_TICKET:
            self.done[ticket] = max(self.queue_seen[ticket], self.audit_last[ticket])

    async def _queues(self, kafka: KafkaSettings, topics: list[str], ready: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            *topics,
            group_id=f"{kafka.topic_prefix}tracker",
            auto_offset_reset="earliest",
            **client_kwargs(kafka),
        )
        await consumer.start()
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=20, max_records=5000)
                if consumer.assignment():
                    ready.set()
                now = time.time()
                for records in batches.values():
                    for record in records:
                        ticket = (record.key or b"").decode()
                        self.queue_seen.setdefault(ticket, now)
                        self._check(ticket)
        finally:
            await consumer.stop()

    async def _audit(self, database_url: str) -> None:
        connection = await asyncpg.connect(database_url)
        last = 0
        try:
            while True:
                rows = await connection.fetch(
                    "SELECT seq, ticket_id FROM audit.trail_events WHERE seq > $1 "
                    "ORDER BY seq LIMIT 20000",
                    last,
                )
                now = time.time()
                for row in rows:
                    ticket = row["ticket_id"]
                    self.audit_count[ticket] = self.audit_count.get(ticket, 0) + 1
                    self.audit_last[ticket] = now
                    self._check(ticket)
                if rows:
                    last = rows[-1]["seq"]
                if len(rows) < 20000:
                    await asyncio.sleep(0.02)  # poll interval: bounds the error of "audited at"
        finally:
            await connection.close()

    async def _sink(self, proc: Proc) -> None:
        assert proc.process.stdout is not None
        async for line in proc.process.stdout:
            words = line.decode().split()
            if len(words) == 2 and words[0] == "count":
                self.sink_counts.append((time.time(), int(words[1])))

    async def start(
        self,
        kafka: KafkaSettings,
        queue_topics: list[str],
        *,
        database_url: str | None = None,
        sink: Proc | None = None,
    ) -> None:
        """Start following the queues (and the audit store or the raw sink)."""
        ready = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._queues(kafka, queue_topics, ready)))
        if database_url:
            self._tasks.append(asyncio.create_task(self._audit(database_url)))
        if sink:
            self._tasks.append(asyncio.create_task(self._sink(sink)))
        await asyncio.wait_for(ready.wait(), timeout=60)

    async def stop(self) -> None:
        """Stop following."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def sink_reached(self, count: int) -> float | None:
        """Return when the raw sink had counted `count` records, if it has."""
        return next((when for when, seen in self.sink_counts if seen >= count), None)

    async def wait(self, tickets: Sequence[str], *, sink_total: int | None, within_s: float) -> int:
        """Wait until every ticket is complete (or the deadline); return how many are."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            complete = all(t in self.done for t in tickets)
            if complete and (sink_total is None or self.sink_reached(sink_total)):
                break
            await asyncio.sleep(0.05)
        return sum(t in self.done for t in tickets)


# ------------------------------------------------------------------------- measurement


def percentile(values: Sequence[float], q: float) -> float:
    """Return the q-th percentile (0..100), nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class Scenario:
    """One scenario's processes and bookkeeping."""

    name: str
    kafka: KafkaSettings
    tracker: Tracker
    procs: list[Proc]
    producer: AIOKafkaProducer
    published: int = 0
    serial: int = 0
    profile_dir: Path | None = None

    @property
    def inbound(self) -> str:
        """The scenario's inbound topic."""
        return Topics(self.kafka.topic_prefix).inbound

    def sink_total(self) -> int | None:
        """How many records the raw sink must have counted once all is complete."""
        return self.published * EVENTS_PER_TICKET if self.name == "raw" else None

    def next_tag(self, label: str) -> str:
        """Return a fresh ticket id prefix."""
        self.serial += 1
        return f"{self.kafka.topic_prefix}{label}{self.serial}"


async def start_profilers(scenario: Scenario) -> list[asyncio.subprocess.Process]:
    """Sample every process of the scenario with py-spy (collapsed stacks, 100 Hz)."""
    assert scenario.profile_dir is not None
    scenario.profile_dir.mkdir(parents=True, exist_ok=True)
    spy = str(Path(PYTHON).with_name("py-spy"))
    profilers = []
    for proc in scenario.procs:
        output = scenario.profile_dir / f"{scenario.name}-{proc.name}.txt"
        profilers.append(
            await asyncio.create_subprocess_exec(
                *[spy, "record", "--pid", str(proc.process.pid), "--format", "raw"],
                *["--rate", "100", "--nonblocking", "--output", str(output)],
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )
    await asyncio.sleep(1)  # py-spy attaches
    return profilers


async def stop_profilers(profilers: list[asyncio.subprocess.Process]) -> None:
    """Stop py-spy (SIGINT makes it write its output)."""
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)
    for profiler in profilers:
        await asyncio.wait_for(profiler.wait(), timeout=30)


async def throughput(
    scenario: Scenario,
    templates: list[dict[str, Any]],
    count: int,
    *,
    within_s: float,
    profile: bool = False,
) -> dict[str, Any]:
    """Publish `count` tickets at once and measure completions per second and CPU."""
    tickets = make_tickets(templates, scenario.next_tag("t"), count)
    profilers = await start_profilers(scenario) if profile else []
    cpu_before = {p.name: p.cpu_seconds() for p in scenario.procs}
    infra_before = infra_cpu_seconds()
    busy_before, total_before = machine_jiffies()
    own_before = time.process_time()
    started = time.time()
    futures = [
        await scenario.producer.send(scenario.inbound, value, key=ticket.encode())
        for ticket, value in tickets
    ]
    await asyncio.gather(*futures)
    published_s = time.time() - started
    scenario.published += count
    ids = [t for t, _ in tickets]
    complete = await scenario.tracker.wait(ids, sink_total=scenario.sink_total(), within_s=within_s)
    cpu = {p.name: p.cpu_seconds() - cpu_before[p.name] for p in scenario.procs}
    cpu["bench (publisher + tracker)"] = time.process_time() - own_before
    cpu |= {name: s - infra_before[name] for name, s in infra_cpu_seconds().items()}
    busy_after, total_after = machine_jiffies()
    busy_share = (busy_after - busy_before) / max(total_after - total_before, 1)
    await stop_profilers(profilers)
    times = sorted(scenario.tracker.done[t] for t in ids if t in scenario.tracker.done)
    end = times[-1] if times else time.time()
    total = scenario.sink_total()
    if total is not None:
        end = max(end, scenario.tracker.sink_reached(total) or time.time())
    low, high = times[len(times) // 10], times[len(times) * 9 // 10 - 1]
    result = {
        "tickets": count,
        "complete": complete,
        "publish_s": round(published_s, 2),
        "wall_s": round(end - started, 2),
        "overall_tps": round(complete / (end - started), 1),
        # The middle 80 % of completions: the steady state, without start and drain.
        "sustained_tps": round((len(times) * 8 // 10) / max(high - low, 1e-6), 1),
        "cpu_s_per_1000": {name: round(s / count * 1000, 3) for name, s in cpu.items()},
        # Share of all cores busy (not niced) from publish to the last completion.
        "machine_busy_share": round(busy_share, 3),
    }
    log(f"{scenario.name}: throughput {result}")
    return result


async def publish_open_loop(
    producer: AIOKafkaProducer,
    topic: str,
    tickets: Sequence[tuple[str, bytes]],
    rate: float,
    start: float,
) -> dict[str, float]:
    """Publish `tickets` at `rate` per second from `start`; return each one's due time.

    Latency counts from the due time, not from when the send happened, so a publisher that
    falls behind cannot hide queueing (coordinated omission).
    """
    due: dict[str, float] = {}
    futures = []
    for index, (ticket, value) in enumerate(tickets):
        due[ticket] = start + index / rate
        delay = due[ticket] - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        futures.append(await producer.send(topic, value, key=ticket.encode()))
    await asyncio.gather(*futures)
    return due


async def latency(
    scenario: Scenario, templates: list[dict[str, Any]], rate: float, seconds: float
) -> dict[str, Any]:
    """Publish at a fixed rate (open loop) and return end-to-end latency percentiles."""
    count = max(50, int(rate * seconds))
    tickets = make_tickets(templates, scenario.next_tag("l"), count)
    start = time.time() + 0.1
    due = await publish_open_loop(scenario.producer, scenario.inbound, tickets, rate, start)
    achieved = count / max(time.time() - start, 1e-6)
    scenario.published += count
    complete = await scenario.tracker.wait(
        list(due), sink_total=scenario.sink_total(), within_s=60 + seconds
    )
    done = scenario.tracker.done
    values = [(done[t] - due[t]) * 1000 for t in due if t in done]
    result = {
        "rate_per_s": round(rate, 1),
        "achieved_publish_rate_per_s": round(achieved, 1),
        "tickets": count,
        "complete": complete,
        "p50_ms": round(percentile(values, 50), 1),
        "p95_ms": round(percentile(values, 95), 1),
        "p99_ms": round(percentile(values, 99), 1),
        "max_ms": round(max(values), 1),
        "mean_ms": round(statistics.fmean(values), 1),
        "hops": await hop_latencies(scenario, due, done),
    }
    log(f"{scenario.name}: latency {result}")
    return result


# Where the end-to-end latency goes: between the creation times (producer timestamps) of a
# ticket's records on consecutive topics. A stage's record is created after its processing
# and before its acknowledgement and offset commit, which therefore count to the next hop.
HOPS = (
    ("publisher (due → inbound record)", None, "inbound"),
    ("classifier (inbound → classified)", "inbound", "classified"),
    ("policy (classified → decided)", "classified", "decided"),
    ("router (decided → routed)", "decided", "routed"),
    ("audit and queue (routed → complete)", "routed", None),
)


async def record_times(kafka: KafkaSettings, topic: str, wanted: set[str]) -> dict[str, float]:
    """Return the creation time (s) of the first record of each wanted key on `topic`."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs(kafka))
    await consumer.start()
    times: dict[str, float] = {}
    try:
        # ensure_topics created it with the configured partition count
        assigned = [TopicPartition(topic, p) for p in range(kafka.partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for records in batches.values():
                for record in records:
                    key = (record.key or b"").decode()
                    if key in wanted:
                        times.setdefault(key, record.timestamp / 1000)
    finally:
        await consumer.stop()
    return times


async def hop_latencies(
    scenario: Scenario, due: dict[str, float], done: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Return p50/p99 (ms) of each hop of the tickets in `due` that completed."""
    topics = Topics(scenario.kafka.topic_prefix)
    wanted = {t for t in due if t in done}
    created = {
        name: await record_times(scenario.kafka, getattr(topics, name), wanted)
        for name in ("inbound", "classified", "decided", "routed")
    }
    hops: dict[str, dict[str, float]] = {}
    for label, start, end in HOPS:
        begin = due if start is None else created[start]
        finish = done if end is None else created[end]
        values = [(finish[t] - begin[t]) * 1000 for t in wanted if t in begin and t in finish]
        if values:
            hops[label] = {
                "p50_ms": round(percentile(values, 50), 1),
                "p99_ms": round(percentile(values, 99), 1),
            }
    return hops


async def measure(
    scenario: Scenario, templates: list[dict[str, Any]], args: argparse.Namespace, count: int
) -> dict[str, Any]:
    """Warm up, then throughput and latency at half of it."""
    warm = await throughput(scenario, templates, args.warmup, within_s=180)
    if warm["complete"] < args.warmup:
        raise RuntimeError(f"{scenario.name}: warm-up incomplete ({warm}); see the logs")
    best = await throughput(
        scenario, templates, count, within_s=300, profile=scenario.profile_dir is not None
    )
    half = await latency(scenario, templates, best["sustained_tps"] / 2, args.seconds)
    return {"throughput": best, "latency_at_half_load": half}


# ------------------------------------------------------------------------- infrastructure


@dataclass
class Infra:
    """What one scenario needs: a topic namespace, and for the services a database."""

    kafka: KafkaSettings
    database_url: str | None
    queue_topics: list[str]


async def create_database(base_url: str, name: str) -> str:
    """Create an empty database next to `base_url`'s and return its URL."""
    admin = await asyncpg.connect(base_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"{base_url.rpartition('/')[0]}/{name}"


async def drop_database(base_url: str, url: str) -> None:
    """Drop a database this benchmark created."""
    admin = await asyncpg.connect(base_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')
    finally:
        await admin.close()


async def delete_topics(kafka: KafkaSettings) -> None:
    """Delete the topics of this benchmark's namespace (the broker is shared)."""
    admin = AIOKafkaAdminClient(**admin_client_kwargs(kafka))
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(kafka.topic_prefix)]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


async def prepare(base: KafkaSettings, prefix: str, base_db: str | None) -> Infra:
    """Create the topics (and database, migrated) of one scenario."""
    kafka = base.model_copy(update={"topic_prefix": prefix})
    topics = Topics(prefix)
    queues = [topics.queue(q) for q in default_queues()]
    await ensure_topics(kafka, [*topics.pipeline(), *queues])
    url = None
    if base_db:
        url = await create_database(base_db, prefix.strip(".").replace("-", "_"))
        await asyncio.to_thread(apply_migrations, url)
    return Infra(kafka, url, queues)


async def message_sizes(kafka: KafkaSettings, per_topic: int = 300) -> dict[str, float]:
    """Return the mean record size (value + headers) on each pipeline topic."""
    topics = Topics(kafka.topic_prefix)
    sizes: dict[str, float] = {}
    for name, topic in (
        ("inbound", topics.inbound),
        ("classified", topics.classified),
        ("decided", topics.decided),
        ("routed", topics.routed),
    ):
        consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest", **client_kwargs(kafka))
        await consumer.start()
        values: list[int] = []
        headers: list[int] = []
        try:
            deadline = time.monotonic() + 10
            while len(values) < per_topic and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        values.append(len(record.value or b""))
                        headers.append(sum(len(k) + len(v) for k, v in record.headers or ()))
        finally:
            await consumer.stop()
        sizes[name] = round(statistics.fmean(values), 1) if values else 0.0
        sizes[f"{name}_headers"] = round(statistics.fmean(headers), 1) if headers else 0.0
    return sizes


# ------------------------------------------------------------------------- scenarios


def service_env(infra: Infra) -> dict[str, str]:
    """Return the environment every service of a scenario shares."""
    assert infra.database_url is not None
    return {
        "TRIAGEFLOW_KAFKA_BOOTSTRAP_SERVERS": infra.kafka.bootstrap_servers,
        "TRIAGEFLOW_KAFKA_TOPIC_PREFIX": infra.kafka.topic_prefix,
        "TRIAGEFLOW_DATABASE_URL": infra.database_url,
        "PYTHONPATH": str(ROOT),
    }


async def run_services(
    name: str, infra: Infra, logs: Path, *, constant: bool, classifiers: int = 1
) -> list[Proc]:
    """Start the four services of one scenario and wait until they answer."""
    env = service_env(infra)
    classifier_argv = [PYTHON, str(BENCH / "constant_backend.py")] if constant else None
    procs = [
        await spawn_service("classifier", copy, env=env, logs=logs, argv=classifier_argv)
        for copy in range(1, classifiers + 1)
    ]
    for service in ("policy", "router", "audit"):
        procs.append(await spawn_service(service, 1, env=env, logs=logs))
    await wait_services(procs)
    log(f"{name}: services ready")
    return procs


async def start_raw(infra: Infra, sizes: dict[str, float], logs: Path) -> list[Proc]:
    """Start the raw chain's three hops and its counting sink."""
    topics = Topics(infra.kafka.topic_prefix)
    prefix = infra.kafka.topic_prefix
    env = {
        "TRIAGEFLOW_KAFKA_BOOTSTRAP_SERVERS": infra.kafka.bootstrap_servers,
        "PYTHONPATH": str(ROOT),
    }
    script = [PYTHON, str(BENCH / "raw_chain.py")]

    def size(name: str) -> int:
        # The raw hops send the same three headers as the stages, so values match values.
        return int(sizes[name])

    hops = [
        ("hop-classifier", topics.inbound, [(topics.classified, size("classified"))]),
        ("hop-policy", topics.classified, [(topics.decided, size("decided"))]),
        (
            "hop-router",
            topics.decided,
            [(topics.queue("billing"), size("routed")), (topics.routed, size("routed"))],
        ),
    ]
    procs = []
    for name, source, outs in hops:
        argv = [*script, "hop", "--source", source, "--group", f"{prefix}{name}"]
        for topic, length in outs:
            argv += ["--out", f"{topic}:{length}"]
        procs.append(await spawn_piped(name, argv, env, logs))
    sink_argv = [*script, "sink", "--group", f"{prefix}sink"]
    for topic in topics.audited():
        sink_argv += ["--source", topic]
    procs.append(await spawn_piped("sink-audit", sink_argv, env, logs))
    for proc in procs:
        assert proc.process.stdout is not None
        line = await asyncio.wait_for(proc.process.stdout.readline(), timeout=60)
        if line.strip() != b"ready":
            raise RuntimeError(f"{proc.name} did not start: {line!r}; see {proc.log}")
    for proc in procs[:-1]:  # hops print nothing more; do not let their pipes fill
        assert proc.process.stdout is not None
        _DRAINS.add(asyncio.create_task(proc.process.stdout.read()))
    log("raw: chain ready")
    return procs


async def open_scenario(
    name: str,
    infra: Infra,
    procs: list[Proc],
    *,
    sink: Proc | None = None,
    profile_dir: Path | None = None,
) -> Scenario:
    """Start the tracker and the publisher of one scenario."""
    tracker = Tracker(audited=infra.database_url is not None)
    await tracker.start(infra.kafka, infra.queue_topics, database_url=infra.database_url, sink=sink)
    producer = AIOKafkaProducer(**producer_kwargs(infra.kafka))
    await producer.start()
    return Scenario(name, infra.kafka, tracker, procs, producer, profile_dir=profile_dir)


async def close_scenario(scenario: Scenario) -> None:
    """Stop the publisher, the tracker and the processes."""
    await scenario.producer.stop()
    await scenario.tracker.stop()
    await stop_all(scenario.procs)


async def recorded_payloads(source_url: str) -> list[tuple[str, int, dict[str, Any]]]:
    """Return (topic, partition, payload) of up to 4,000 events a pipeline run recorded."""
    source = await asyncpg.connect(source_url)
    try:
        records = await source.fetch(
            "SELECT topic, partition, kafka_offset, payload::text AS payload "
            "FROM audit.trail_events ORDER BY seq LIMIT 4000"
        )
    finally:
        await source.close()
    return [(r["topic"], r["partition"], json.loads(r["payload"])) for r in records]


def sample_payloads() -> list[tuple[str, int, dict[str, Any]]]:
    """Return one event of every type (the test suite's linked samples), as recorded."""
    from tests.factories import sample_events  # the benchmark runs from the repository

    topics = Topics("")
    by_type = {
        "ticket.received": topics.inbound,
        "ticket.classified": topics.classified,
        "ticket.decided": topics.decided,
        "ticket.routed": topics.routed,
        "ticket.dead_lettered": topics.deadletter,
        "ticket.dead_letter_replayed": topics.deadletter,
        "ticket.feedback": topics.feedback,
    }
    payloads = [event.model_dump(mode="json") for event in sample_events()]
    return [(by_type[p["event_type"]], 0, p) for p in payloads]


async def audit_insert_rate(
    payloads: Sequence[tuple[str, int, dict[str, Any]]], target_url: str, rows: int
) -> dict[str, Any]:
    """Insert `rows` events (the given payloads, fresh event ids) with the audit repository."""
    batch_size = 2000  # the audit consumer's batch_max_records
    events = []
    for index in range(rows):
        topic, partition, payload = payloads[index % len(payloads)]
        events.append(to_row(payload | {"event_id": str(uuid.uuid4())}, topic, partition, index))
    pool = await connect_pool(target_url, min_size=1, max_size=1)
    try:
        repository = PostgresAuditRepository(pool)
        await repository.insert(events[:batch_size])  # warm: staging table, plans
        started, cpu_before = time.perf_counter(), time.process_time()
        inserted = 0
        for offset in range(batch_size, rows, batch_size):
            inserted += await repository.insert(events[offset : offset + batch_size])
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
    finally:
        await pool.close()
    result = {
        "events": inserted,
        "batch": batch_size,
        "seconds": round(elapsed, 2),
        "events_per_s": round(inserted / elapsed, 1),
        # The writer's own CPU (encoding, COPY protocol); PostgreSQL's is not counted.
        "client_cpu_s_per_1000": round(cpu / max(inserted, 1) * 1000, 3),
        "mean_payload_bytes": round(statistics.fmean(len(json.dumps(p)) for _, _, p in payloads)),
    }
    log(f"audit writer alone: {result}")
    return result


# ------------------------------------------------------------------------- machine


def machine(load_before: tuple[float, float, float], pg_version: str) -> dict[str, Any]:
    """Describe where the numbers came from, including how busy the machine was."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": pg_version,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "note": "shared development machine: Kafka, PostgreSQL, the services and the "
        "benchmark's publisher share the cores with other engineers' work",
    }


async def server_versions(base_db: str, kafka: KafkaSettings) -> str:
    """Return PostgreSQL's version string."""
    connection = await asyncpg.connect(base_db)
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


# ------------------------------------------------------------------------- report


TARGETS = {
    "plumbing_ratio": (">=", 0.5),
    "pipeline_tps": (">=", 500),
    "p99_ms_at_half_load": ("<=", 250),
    "audit_events_per_s": (">=", 10_000),
}


def summarise(results: dict[str, Any]) -> None:
    """Add the headline keys and target verdicts."""
    s = results["scenarios"]
    results["raw_ceiling_tps"] = s["raw"]["throughput"]["sustained_tps"]
    results["plumbing_tps"] = s["plumbing"]["throughput"]["sustained_tps"]
    results["pipeline_tps"] = s["pipeline"]["throughput"]["sustained_tps"]
    results["plumbing_ratio"] = round(results["plumbing_tps"] / results["raw_ceiling_tps"], 3)
    results["p99_ms_at_half_load"] = s["pipeline"]["latency_at_half_load"]["p99_ms"]
    results["audit_events_per_s"] = results["audit_writer"]["events_per_s"]
    results["targets"] = {
        key: {
            "target": f"{op} {limit}",
            "value": results[key],
            "met": results[key] >= limit if op == ">=" else results[key] <= limit,
        }
        for key, (op, limit) in TARGETS.items()
    }


def markdown(results: dict[str, Any]) -> str:
    """Return the results as markdown tables."""
    m = results["machine"]
    lines = [
        "# Pipeline benchmark results",
        "",
        f"Run `{results['run']}` at {results['started_at']} by `make bench` "
        f"({results['tickets']} tickets per throughput run, {results['seconds']} s per latency "
        "run). Machine: "
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, PostgreSQL {m['postgresql']}, "
        f"Python {m['python']}; load average {m['load_average_before'][0]} before, "
        f"{m['load_average_after'][0]} after ({m['note']}).",
        "",
        "## Targets",
        "",
        "| measure | value | target | met |",
        "|---|---|---|---|",
    ]
    for key, target in results["targets"].items():
        met = "yes" if target["met"] else "**no**"
        lines.append(f"| {key} | {target['value']} | {target['target']} | {met} |")
    lines += [
        "",
        "## Scenarios (throughput: publish all at once; latency: open loop at half of it)",
        "",
        "| scenario | sustained tickets/s | overall tickets/s | p50 ms | p95 ms | p99 ms "
        "| at rate/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, scenario in results["scenarios"].items():
        t, lat = scenario["throughput"], scenario["latency_at_half_load"]
        lines.append(
            f"| {name} | {t['sustained_tps']} | {t['overall_tps']} | {lat['p50_ms']} "
            f"| {lat['p95_ms']} | {lat['p99_ms']} | {lat['rate_per_s']} |"
        )
    lines += ["", "## CPU seconds per 1,000 tickets, per process", ""]
    lines += ["| scenario | process | CPU s / 1,000 tickets |", "|---|---|---|"]
    for name, scenario in results["scenarios"].items():
        cpu = scenario["throughput"]["cpu_s_per_1000"]
        for process, seconds in cpu.items():
            lines.append(f"| {name} | {process} | {seconds} |")
        busy = scenario["throughput"].get("machine_busy_share")
        lines.append(f"| {name} | **all of the above** | **{round(sum(cpu.values()), 3)}** |")
        if busy is not None:
            lines.append(
                f"| {name} | machine busy (share of all cores, niced work excluded) | {busy:.0%} |"
            )
    lines += [
        "",
        "## Where the latency goes (at half load; between the records' creation times)",
        "",
        "| scenario | hop | p50 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    for name, scenario in results["scenarios"].items():
        for hop, value in scenario["latency_at_half_load"].get("hops", {}).items():
            lines.append(f"| {name} | {hop} | {value['p50_ms']} | {value['p99_ms']} |")
    sweep = results.get("rate_sweep", [])
    if sweep:
        lines += ["", "## Latency against load (full pipeline, one classifier)", ""]
        lines += ["| rate/s | % of max | p50 ms | p95 ms | p99 ms |", "|---|---|---|---|---|"]
        for row in sweep:
            lines.append(
                f"| {row['rate_per_s']} | {row['share_of_max']:.0%} | {row['p50_ms']} "
                f"| {row['p95_ms']} | {row['p99_ms']} |"
            )
    copies = results.get("classifier_copies", [])
    if copies:
        lines += ["", "## Classifier copies (full pipeline)", ""]
        lines += ["| classifiers | sustained tickets/s | CPU s / 1,000 (classifiers) |"]
        lines += ["|---|---|---|"]
        for row in copies:
            lines.append(f"| {row['copies']} | {row['sustained_tps']} | {row['classifier_cpu']} |")
    a = results["audit_writer"]
    lines += [
        "",
        "## Audit writer alone",
        "",
        f"{a['events']} events in batches of {a['batch']} through "
        f"`PostgresAuditRepository.insert` (payloads of ≈ {a['mean_payload_bytes']} bytes copied "
        f"from the pipeline run): **{a['events_per_s']} events/s**.",
        "",
        f"Message sizes (value bytes; headers): {results['message_sizes']}",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------- main


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every scenario and return the results."""
    base_kafka = KafkaSettings(bootstrap_servers=args.bootstrap)
    run_id = f"bench-{uuid.uuid4().hex[:6]}"
    logs = Path(args.logs) / run_id
    logs.mkdir(parents=True, exist_ok=True)
    log(f"run {run_id}; logs in {logs}")
    load_before = os.getloadavg()
    profile_dir = Path(args.profile) if args.profile else None
    templates = ticket_templates()
    results: dict[str, Any] = {
        "run": run_id,
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "tickets": args.tickets,
        "seconds": args.seconds,
        "scenarios": {},
    }
    infras: list[Infra] = []
    try:
        if args.only == "pipeline":
            results["scenarios"]["pipeline"] = await _profile_pipeline(base_kafka, run_id, args)
            return results
        if args.only == "audit":
            target = await prepare(base_kafka, f"{run_id}-audit.", args.database)
            infras.append(target)
            assert target.database_url is not None
            results["audit_writer"] = await audit_insert_rate(
                sample_payloads(), target.database_url, args.audit_rows
            )
            return results
        # 1. plumbing: the constant classifier (also gives the message sizes for the raw chain)
        plumbing = await prepare(base_kafka, f"{run_id}-plumbing.", args.database)
        infras.append(plumbing)
        procs = await run_services("plumbing", plumbing, logs, constant=True)
        scenario = await open_scenario("plumbing", plumbing, procs, profile_dir=profile_dir)
        try:
            results["scenarios"]["plumbing"] = await measure(
                scenario, templates, args, args.tickets
            )
        finally:
            await close_scenario(scenario)
        results["message_sizes"] = await message_sizes(plumbing.kafka)
        if args.only == "plumbing":
            return results

        # 2. the raw ceiling with the same sizes
        raw = await prepare(base_kafka, f"{run_id}-raw.", None)
        infras.append(raw)
        procs = await start_raw(raw, results["message_sizes"], logs)
        scenario = await open_scenario("raw", raw, procs, sink=procs[-1], profile_dir=profile_dir)
        try:
            results["scenarios"]["raw"] = await measure(
                scenario, templates, args, args.tickets * args.raw_factor
            )
        finally:
            await close_scenario(scenario)

        # 3. the full pipeline, its latency against load, then a second classifier
        full = await prepare(base_kafka, f"{run_id}-pipeline.", args.database)
        infras.append(full)
        procs = await run_services("pipeline", full, logs, constant=False)
        scenario = await open_scenario("pipeline", full, procs, profile_dir=profile_dir)
        try:
            measured = await measure(scenario, templates, args, args.tickets)
            results["scenarios"]["pipeline"] = measured
            best = measured["throughput"]["sustained_tps"]
            sweep = []
            for share in args.sweep:
                point = await latency(scenario, templates, best * share, args.seconds)
                sweep.append(point | {"share_of_max": share})
            results["rate_sweep"] = sorted(
                [*sweep, measured["latency_at_half_load"] | {"share_of_max": 0.5}],
                key=lambda row: row["share_of_max"],
            )
            copies = [_copies_row(1, measured["throughput"])]
            env = service_env(full)
            second = await spawn_service("classifier", 2, env=env, logs=logs)
            scenario.procs.append(second)
            await wait_services([second])
            await throughput(scenario, templates, args.warmup, within_s=180)  # rebalance, warm
            two = await throughput(scenario, templates, args.tickets, within_s=300)
            copies.append(_copies_row(2, two))
            results["classifier_copies"] = copies
        finally:
            await close_scenario(scenario)

        # 4. the audit writer alone, into a fresh database
        assert full.database_url is not None
        target = await prepare(base_kafka, f"{run_id}-audit.", args.database)
        infras.append(target)
        assert target.database_url is not None
        results["audit_writer"] = await audit_insert_rate(
            await recorded_payloads(full.database_url), target.database_url, args.audit_rows
        )
        pg_version = await server_versions(args.database, base_kafka)
    finally:
        if not args.keep:
            for infra in infras:
                await delete_topics(infra.kafka)
                if infra.database_url:
                    await drop_database(args.database, infra.database_url)
    results["machine"] = machine(load_before, pg_version)
    summarise(results)
    return results


async def _profile_pipeline(
    base_kafka: KafkaSettings, run_id: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Measure the full pipeline only (for profiling rounds); cleans up after itself."""
    full = await prepare(base_kafka, f"{run_id}-pipeline.", args.database)
    try:
        procs = await run_services("pipeline", full, Path(args.logs) / run_id, constant=False)
        profile_dir = Path(args.profile) if args.profile else None
        scenario = await open_scenario("pipeline", full, procs, profile_dir=profile_dir)
        try:
            return await measure(scenario, ticket_templates(), args, args.tickets)
        finally:
            await close_scenario(scenario)
    finally:
        await delete_topics(full.kafka)
        assert full.database_url is not None
        await drop_database(args.database, full.database_url)


def _copies_row(copies: int, measured: dict[str, Any]) -> dict[str, Any]:
    cpu = measured["cpu_s_per_1000"]
    return {
        "copies": copies,
        "sustained_tps": measured["sustained_tps"],
        "overall_tps": measured["overall_tps"],
        "classifier_cpu": round(sum(v for k, v in cpu.items() if k.startswith("classifier")), 3),
    }


def add_infrastructure_arguments(parser: argparse.ArgumentParser) -> None:
    """Add where Kafka, PostgreSQL and the service logs are (environment or local defaults)."""
    parser.add_argument(
        "--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    parser.add_argument(
        "--database",
        default=os.environ.get(
            "DATABASE_URL", "postgresql://triageflow:triageflow@127.0.0.1:5432/triageflow"
        ),
    )
    parser.add_argument("--logs", default="/tmp/triageflow-bench")


def main() -> None:
    """Parse arguments, run, write bench/results.json and bench/results.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=4000, help="per throughput run")
    parser.add_argument("--raw-factor", type=int, default=3, help="raw runs this many times more")
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=15.0, help="per latency run")
    parser.add_argument("--sweep", type=float, nargs="*", default=[0.25, 0.75, 0.9])
    parser.add_argument("--audit-rows", type=int, default=50_000)
    add_infrastructure_arguments(parser)
    parser.add_argument("--out", default=str(BENCH / "results"))
    parser.add_argument("--keep", action="store_true", help="keep topics and databases")
    parser.add_argument(
        "--profile", help="py-spy every process during the main throughput runs, into DIR"
    )
    parser.add_argument(
        "--only",
        choices=["plumbing", "pipeline", "audit"],
        help="one scenario (profiling), or the audit writer alone (sample payloads); no report",
    )
    args = parser.parse_args()
    results = asyncio.run(run(args))
    if args.only:
        shown = results["audit_writer"] if args.only == "audit" else results["scenarios"]
        log(json.dumps(shown, indent=2))
        return
    Path(f"{args.out}.json").write_text(json.dumps(results, indent=2) + "\n")
    Path(f"{args.out}.md").write_text(markdown(results))
    log(f"wrote {args.out}.json and {args.out}.md")
    for key, target in results["targets"].items():
        log(f"{key}: {target['value']} (target {target['target']}, met: {target['met']})")


if __name__ == "__main__":
    main()
