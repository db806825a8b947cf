"""The classifier service alone, through Kafka: what issue #4's speed target is about.

    make bench-classifier-service   # or: .venv/bin/python bench/classifier_service.py
        [--backend local --backend hybrid] [--batch-max-records N ...] [--copies N ...]
        [--tickets N] [--dataset ../shared/datasets/banking77]

For each backend, number of copies and batch size: that many classifier copies (one
consumer group) consume `tickets.inbound` in batches and publish `ticket.classified` (the real
service: `python -m services.classifier`, text signals included, acks awaited, offsets
committed). Measured on the local Kafka:

* sustained tickets/s: publish N sample tickets at once, then the middle 80 % of the
  classified records' arrival times (start and drain left out);
* CPU ms per ticket of the service processes (all their threads): load-independent, so two
  idle cores sustain at most 2,000 / that;
* per-ticket latency at half of that rate, open loop: the classified record's creation time
  minus the due time of its ticket (queueing, batching, the model and the signals);
* classification time per batch (the service's own log line: decode, model, signals,
  publish and acknowledgement), p50/p99.

With `--dataset DIR` the service learns from `DIR/train.csv` and classifies the texts of
`DIR/test.csv` (Banking77: issue #4's real data) instead of the shipped examples and the
sample tickets; the model is trained once, before the copies start, into a cache they share.

Writes bench/classifier-service.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.pipeline import (
    BENCH,
    Proc,
    add_infrastructure_arguments,
    create_database,
    delete_topics,
    drop_database,
    log,
    machine,
    make_tickets,
    percentile,
    publish_open_loop,
    server_versions,
    spawn_service,
    stop_all,
    ticket_templates,
    wait_services,
)
from services.audit.migrate import apply_migrations
from services.classifier.app import load_backend
from services.classifier.backends.local import read_examples
from services.classifier.settings import ClassifierSettings
from shared.kafka import client_kwargs, producer_kwargs
from shared.settings import KafkaSettings, ServiceSettings
from shared.topics import Topics, ensure_topics

DEFAULT_BATCH: int = ServiceSettings.model_fields["batch_max_records"].default
# Saturation-run sizes: about 15 s of each backend's throughput, so start-up is noise.
TICKETS: dict[str, int] = {"local": 10_000, "hybrid": 4_000}


class Arrivals:
    """Counts `ticket.classified` records as they arrive, with their creation times."""

    def __init__(self) -> None:
        self.seen: dict[str, tuple[float, float]] = {}  # ticket → (arrived, created) in s
        self._task: asyncio.Task[None] | None = None

    async def start(self, kafka: KafkaSettings, topic: str) -> None:
        """Follow `topic` from its beginning until stopped."""
        consumer = AIOKafkaConsumer(
            topic,
            group_id=f"{kafka.topic_prefix}arrivals",
            auto_offset_reset="earliest",
            **client_kwargs(kafka),
        )
        await consumer.start()
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._follow(consumer, ready))
        await asyncio.wait_for(ready.wait(), timeout=60)

    async def _follow(self, consumer: AIOKafkaConsumer, ready: asyncio.Event) -> None:
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=20, max_records=10_000)
                if consumer.assignment():
                    ready.set()
                now = time.time()
                for records in batches.values():
                    for record in records:
                        ticket = (record.key or b"").decode()
                        self.seen.setdefault(ticket, (now, record.timestamp / 1000))
        finally:
            await consumer.stop()

    async def wait(self, tickets: list[str], within_s: float) -> int:
        """Wait until every ticket arrived (or the deadline); return how many did."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if all(t in self.seen for t in tickets):
                break
            await asyncio.sleep(0.05)  # polling a dict another task fills
        return sum(t in self.seen for t in tickets)

    async def stop(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def cpu_seconds(procs: list[Proc]) -> float:
    """Return the CPU seconds of the service's copies so far."""
    return sum(proc.cpu_seconds() for proc in procs)


def batch_times(log_path: Path, since: int) -> list[tuple[float, float]]:
    """Return (ms, ms of work) of every batch the service logged after byte `since`."""
    times = []
    with log_path.open("rb") as lines:
        lines.seek(since)
        for line in lines:
            if b'"batch of' not in line:
                continue
            try:
                fields = json.loads(line)
                times.append((float(fields["ms"]), float(fields["work_ms"])))
            except (ValueError, KeyError):
                continue
    return times


async def measure_backend(
    backend: str,
    batch_max_records: int,
    copies: int,
    saturating: int,
    base: KafkaSettings,
    database: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Start the classifier copies with `backend`; return throughput, CPU and latency."""
    run = f"bench-{uuid.uuid4().hex[:6]}-cls-{backend}."
    kafka = base.model_copy(update={"topic_prefix": run})
    topics = Topics(run)
    await ensure_topics(kafka, topics.pipeline())
    url = await create_database(database, run.strip(".").replace("-", "_"))
    await asyncio.to_thread(apply_migrations, url)  # the service's readiness checks nothing here
    logs = Path(args.logs) / run.strip(".")
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        "TRIAGEFLOW_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "TRIAGEFLOW_KAFKA_TOPIC_PREFIX": run,
        "TRIAGEFLOW_DATABASE_URL": url,
        "TRIAGEFLOW_CLASSIFIER_BACKEND": backend,
        "TRIAGEFLOW_CLASSIFIER_BATCH_MAX_RECORDS": str(batch_max_records),
        "PYTHONPATH": str(BENCH.parent),
    }
    if args.dataset is not None:
        env["TRIAGEFLOW_CLASSIFIER_EXAMPLES_CSV"] = str(args.dataset / "train.csv")
        env["TRIAGEFLOW_CLASSIFIER_MODEL_CACHE_DIR"] = str(args.model_cache)
    procs = [
        await spawn_service("classifier", copy, env=env, logs=logs) for copy in range(1, copies + 1)
    ]
    producer = AIOKafkaProducer(**producer_kwargs(kafka))
    arrivals = Arrivals()
    templates = dataset_templates(args.dataset) if args.dataset else ticket_templates()
    try:
        await wait_services(procs)
        await producer.start()
        await arrivals.start(kafka, topics.classified)

        async def publish(tag: str, count: int) -> list[str]:
            tickets = make_tickets(templates, f"{run}{tag}", count)
            sent = [await producer.send(topics.inbound, v, key=t.encode()) for t, v in tickets]
            await asyncio.gather(*sent)
            return [t for t, _ in tickets]

        warm = await publish("w", args.warmup)
        await arrivals.wait(warm, within_s=300)

        offsets = [proc.log.stat().st_size for proc in procs]
        cpu_before, started = cpu_seconds(procs), time.time()
        ids = await publish("t", saturating)
        complete = await arrivals.wait(ids, within_s=600)
        cpu = cpu_seconds(procs) - cpu_before
        times = sorted(arrivals.seen[t][0] for t in ids if t in arrivals.seen)
        low, high = times[len(times) // 10], times[len(times) * 9 // 10 - 1]
        sustained = (len(times) * 8 // 10) / max(high - low, 1e-6)
        batches = [t for p, o in zip(procs, offsets, strict=True) for t in batch_times(p.log, o)]

        rate = sustained / 2
        count = max(50, int(rate * args.seconds))
        tickets = make_tickets(templates, f"{run}l", count)
        start = time.time() + 0.1
        due = await publish_open_loop(producer, topics.inbound, tickets, rate, start)
        await arrivals.wait(list(due), within_s=120)
        latency = [(arrivals.seen[t][1] - due[t]) * 1000 for t in due if t in arrivals.seen]
    finally:
        await arrivals.stop()
        await producer.stop()
        await stop_all(procs)
        await delete_topics(kafka)
        await drop_database(database, url)
    whole, work = [b[0] for b in batches], [b[1] for b in batches]
    result = {
        "backend": backend,
        "batch_max_records": batch_max_records,
        "copies": copies,
        "tickets": saturating,
        "complete": complete,
        "wall_s": round(time.time() - started, 2),
        "sustained_tps": round(sustained, 1),
        "cpu_ms_per_ticket": round(cpu / max(complete, 1) * 1000, 3),
        "batch_ms_p50": round(percentile(whole, 50), 1) if whole else None,
        "batch_ms_p99": round(percentile(whole, 99), 1) if whole else None,
        "classification_ms_p50": round(percentile(work, 50), 1) if work else None,
        "classification_ms_p99": round(percentile(work, 99), 1) if work else None,
        "batch_size_mean": round(complete / max(len(batches), 1), 1),
        "latency_at_half_load": {
            "rate_per_s": round(rate, 1),
            "tickets": count,
            "p50_ms": round(percentile(latency, 50), 1),
            "p99_ms": round(percentile(latency, 99), 1),
        },
    }
    log(
        f"classifier service ({backend}, {copies} copies, batches <= {batch_max_records}): {result}"
    )
    return result


def dataset_templates(directory: Path) -> list[dict[str, Any]]:
    """Return one ticket per text of `directory/test.csv`, shaped like a sample ticket."""
    shape = ticket_templates()[0] | {"subject": "", "metadata": {}}
    return [shape | {"body": text} for text in read_examples(directory / "test.csv").texts]


def train_once(backend: str, directory: Path, cache: Path) -> None:
    """Train `backend` on `directory/train.csv` into `cache`, where the copies find it.

    Through the service's own `load_backend`, so the cached model is the one they load.
    """
    csv = directory / "train.csv"
    settings = ClassifierSettings(backend=backend, examples_csv=csv, model_cache_dir=cache)
    load_backend(settings)
    log(f"{backend} model for {csv} ready in {cache}")


def markdown(results: dict[str, Any]) -> str:
    """Return the results as a markdown table."""
    m = results["machine"]
    lines = [
        "# Classifier service benchmark",
        "",
        f"Run at {results['started_at']} by `make bench-classifier-service` "
        f"(per row: `tickets` sample tickets at once, then {results['seconds']} s open loop "
        f"at half the sustained rate). Machine: {m['cpu']}, {m['cores']} cores, Python "
        f"{m['python']}; load average {m['load_average_before'][0]} before.",
        "",
        f"Examples learnt and tickets classified: {results['data']}.",
        "",
        "Classifier copies (one consumer group), consuming from Kafka in batches and "
        "publishing with acknowledgements, text signals included. Targets (issue #4): "
        "≥ 500 tickets/s, p99 classification time ≤ 50 ms.",
        "",
        "Times per consumed batch while saturated, from the service's own log line (every"
        " ticket of a batch waits for all of it): *classification* is the batch's work"
        " (decode, model, signals, building the events), *batch* adds publishing and awaiting"
        " the broker's acknowledgements. `batch ≤` is `TRIAGEFLOW_CLASSIFIER_BATCH_MAX_RECORDS`;"
        " *mean* is the mean records per batch. Latency at half load is per ticket, end to"
        " end: due time to the classified record's creation.",
        "",
        "| backend | copies | batch ≤ (mean) | tickets | sustained tickets/s | CPU ms / ticket "
        "| classification ms p50 / p99 | batch ms p50 / p99 "
        "| latency at half load p50 / p99 ms (rate/s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["backends"]:
        lat = r["latency_at_half_load"]
        lines.append(
            f"| {r['backend']} | {r['copies']} | {r['batch_max_records']}"
            f" ({r['batch_size_mean']}) | {r['tickets']} | {r['sustained_tps']} "
            f"| {r['cpu_ms_per_ticket']} "
            f"| {r['classification_ms_p50']} / {r['classification_ms_p99']} "
            f"| {r['batch_ms_p50']} / {r['batch_ms_p99']} "
            f"| {lat['p50_ms']} / {lat['p99_ms']} ({lat['rate_per_s']}) |"
        )
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every requested backend, one after the other."""
    base = KafkaSettings(bootstrap_servers=args.bootstrap)
    results: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "seconds": args.seconds,
        "data": (
            f"`{args.dataset.name}` train.csv → test.csv texts"
            if args.dataset
            else "the shipped examples → the sample tickets"
        ),
        "backends": [],
    }
    load_before = os.getloadavg()
    for backend in args.backend or ["local"]:
        tickets = args.tickets or TICKETS[backend]
        if args.dataset is not None:
            await asyncio.to_thread(train_once, backend, args.dataset, args.model_cache)
        for copies in args.copies or [1]:
            for size in args.batch_max_records or [DEFAULT_BATCH]:
                result = await measure_backend(
                    backend, size, copies, tickets, base, args.database, args
                )
                results["backends"].append(result)
    results["machine"] = machine(load_before, await server_versions(args.database, base))
    return results


def main() -> None:
    """Parse arguments, run, write bench/classifier-service.{json,md}."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", action="append", choices=["local", "hybrid"])
    parser.add_argument(
        "--batch-max-records",
        type=int,
        action="append",
        help="records per consumed batch (repeat to compare; default: the service's default)",
    )
    parser.add_argument(
        "--copies", type=int, action="append", help="classifier copies, one group (default 1)"
    )
    parser.add_argument(
        "--tickets",
        type=int,
        help=f"tickets of the saturation run (default per backend: {TICKETS})",
    )
    parser.add_argument(
        "--dataset",
        type=Path,
        help="a directory with train.csv and test.csv (text,label): learn from the first, "
        "classify the texts of the second (default: shipped examples, sample tickets)",
    )
    parser.add_argument(
        "--model-cache",
        type=Path,
        default=BENCH.parent / ".local" / "bench-models",
        help="where --dataset models are trained to and loaded from",
    )
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=15.0)
    add_infrastructure_arguments(parser)
    parser.add_argument("--out", default=str(BENCH / "classifier-service"))
    args = parser.parse_args()
    results = asyncio.run(run(args))
    Path(f"{args.out}.json").write_text(json.dumps(results, indent=2) + "\n")
    Path(f"{args.out}.md").write_text(markdown(results))
    log(f"wrote {args.out}.json and {args.out}.md")


if __name__ == "__main__":
    main()
