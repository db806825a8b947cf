"""The main job: start the services, stream the sample tickets, wait, summarise, stop."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.audit.migrate import apply_migrations
from services.audit.repository import PipelineSummary, PostgresAuditRepository, connect_pool
from services.cli import processes
from services.cli.publishing import (
    OutboundRecord,
    publish_records,
    read_records,
    sample_tickets_path,
)
from services.cli.render import summary_tables
from services.cli.settings import CliSettings
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topics import Topics


def tag_records(records: list[OutboundRecord], run: str) -> list[OutboundRecord]:
    """Give every record a ticket id unique to this run, so runs never mix in the counts."""
    tagged = []
    for index, record in enumerate(records):
        ticket_id = f"{run}-{index:04d}"
        value = record.value
        try:
            data = json.loads(value)
        except (ValueError, UnicodeDecodeError, RecursionError):
            data = None
        if isinstance(data, dict) and isinstance(data.get("ticket_id"), str):
            data["ticket_id"] = ticket_id
            value = json.dumps(data, ensure_ascii=False).encode("utf-8")
        tagged.append(OutboundRecord(ticket_id.encode(), value))
    return tagged


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


async def _wait_accounted(
    store: PostgresAuditRepository,
    run: str,
    expected: int,
    progress: Progress,
    *,
    within_s: float,
) -> PipelineSummary:
    task = progress.add_task("routed or dead-lettered", total=expected)
    deadline = time.monotonic() + within_s
    while True:
        summary = await store.summary(ticket_prefix=f"{run}-")
        done = summary.routed_tickets + summary.dead_lettered_inbound
        progress.update(task, completed=done)
        if done >= expected or time.monotonic() > deadline:
            return summary
        await asyncio.sleep(0.5)  # poll interval; the deadline bounds the wait


async def _stream(
    out: Console, run: str, records: list[OutboundRecord], *, rate: float, within_s: float
) -> PipelineSummary:
    kafka = KafkaSettings()
    pool = await connect_pool(DatabaseSettings().dsn(), min_size=1, max_size=2)
    try:
        store = PostgresAuditRepository(pool)
        with _progress(out) as progress:
            task = progress.add_task("published to tickets.inbound", total=len(records))
            waiting = asyncio.create_task(
                _wait_accounted(store, run, len(records), progress, within_s=within_s)
            )
            await publish_records(
                kafka,
                Topics(kafka.topic_prefix).inbound,
                records,
                rate=rate,
                progress=lambda n: progress.advance(task, n),
            )
            return await waiting
    finally:
        await pool.close()


def run_demo(out: Console, err: Console, *, rate: float, timeout: float, keep_running: bool) -> int:
    """Run the demo; return the exit code (0 when every ticket is accounted for)."""
    state = CliSettings().state_dir
    apply_migrations(DatabaseSettings().dsn())
    copies = {"classifier": 2, "policy": 1, "router": 1, "audit": 1}
    processes.start(state, copies=copies)
    problems = processes.wait_ready(processes.running(state), timeout=120)
    if problems:
        err.print("[red]services not ready:[/red] " + "; ".join(problems))
        processes.stop(state)
        return 1
    out.print(
        "[green]services ready[/green]: "
        + ", ".join(f"{p.service}-{p.copy}" for p in processes.running(state))
    )
    run = f"demo-{uuid.uuid4().hex[:6]}"
    records = tag_records(read_records(sample_tickets_path()), run)
    out.print(f"run [bold]{run}[/bold]: {len(records)} sample tickets at {rate:.0f}/s")
    started = time.monotonic()
    try:
        summary = asyncio.run(_stream(out, run, records, rate=rate, within_s=timeout))
    finally:
        if not keep_running:
            processes.stop(state)
    elapsed = time.monotonic() - started
    for table in summary_tables(summary):
        out.print(table)
    accounted = summary.routed_tickets + summary.dead_lettered_inbound
    out.print(
        f"{len(records)} published, {summary.routed_tickets} routed, "
        f"{summary.dead_lettered_inbound} dead-lettered at intake: "
        f"{accounted} of {len(records)} accounted for in {elapsed:.1f} s. "
        f"Look at one: triageflow trail {run}-0000"
    )
    if accounted < len(records):
        err.print(f"[red]{len(records) - accounted} tickets not accounted for[/red]")
        return 1
    return 0
