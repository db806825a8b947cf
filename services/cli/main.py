"""The `triageflow` operator command line."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console

from services.cli.audit_cmd import audit_app
from services.cli.calibrate import calibrate_command
from services.cli.dlq import dlq_app
from services.cli.drift_cmd import drift_app
from services.cli.evaluate import eval_command
from services.cli.improve import compare_command, learn_command, promote_command, rollback_command
from services.cli.report import report
from services.cli.settings import CliSettings
from shared.contracts import CONTROL_EVENT_TYPES, EVENT_TYPES, Escalation, WorkItem
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topics import Topics, ensure_topics

if TYPE_CHECKING:
    from services.audit.repository import PostgresAuditRepository

app = typer.Typer(help="triageflow: AI ticket triage over Kafka.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
policy_app = typer.Typer(help="Decision policies.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
db_app = typer.Typer(help="The audit database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(dlq_app, name="dlq")
app.add_typer(audit_app, name="audit")
app.command()(report)
app.command("eval")(eval_command)
app.command("calibrate")(calibrate_command)
app.command("learn")(learn_command)
app.command("compare")(compare_command)
app.command("promote")(promote_command)
app.command("rollback")(rollback_command)
app.add_typer(drift_app, name="drift")


@asynccontextmanager
async def audit_store() -> AsyncIterator[PostgresAuditRepository]:
    """Open the audit store for one command."""
    from services.audit.repository import PostgresAuditRepository, connect_pool

    pool = await connect_pool(DatabaseSettings().dsn(), min_size=1, max_size=2)
    try:
        yield PostgresAuditRepository(pool)
    finally:
        await pool.close()


out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@topics_app.command("create")
def topics_create(
    queue: Annotated[
        list[str] | None, typer.Option("--queue", help="Extra queue names (queue.<name>).")
    ] = None,
) -> None:
    """Create every pipeline topic and queue topic that does not exist yet."""
    kafka = KafkaSettings()
    topics = Topics(kafka.topic_prefix)
    names = [*topics.pipeline(), *(topics.queue(q) for q in default_queues() + (queue or []))]
    created = asyncio.run(ensure_topics(kafka, names))
    out.print(
        f"[green]topics ready[/green] on {kafka.bootstrap_servers}: "
        f"{len(names)} wanted, {len(created)} created "
        f"({kafka.partitions} partitions, replication {kafka.replication_factor})"
    )


def default_queues() -> list[str]:
    """Return the queue names of the default routing table."""
    from services.router.routing import load_default_routing

    return sorted(load_default_routing().queue_names())


@app.command()
def publish(
    files: Annotated[list[Path] | None, typer.Argument(help="JSONL or CSV files.")] = None,
    sample: Annotated[bool, typer.Option(help="Publish the shipped sample tickets.")] = False,
    rate: Annotated[float | None, typer.Option(help="Messages per second (default: max).")] = None,
) -> None:
    """Publish tickets from JSONL/CSV files (or the samples) to the inbound topic."""
    from rich.progress import Progress

    from services.cli.publishing import publish_records, read_records, sample_tickets_path

    paths = list(files or []) + ([sample_tickets_path()] if sample else [])
    if not paths:
        err.print("nothing to publish: give files or --sample")
        raise typer.Exit(2)
    kafka = KafkaSettings()
    records = [r for path in paths for r in read_records(path)]
    topic = Topics(kafka.topic_prefix).inbound
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task(f"publishing to {topic}", total=len(records))
        sent = asyncio.run(
            publish_records(
                kafka, topic, records, rate=rate, progress=lambda n: bar.advance(task, n)
            )
        )
    out.print(f"published {sent} messages to {topic}")


@policy_app.command("check")
def policy_check(
    file: Annotated[Path, typer.Argument(help="Policy YAML file.", exists=True, dir_okay=False)],
) -> None:
    """Validate a policy file and explain what it does; exit 1 naming every problem."""
    from services.policy import PolicyError, explain_policy, load_policy

    try:
        policy = load_policy(file)
    except PolicyError as error:
        err.print(f"[red]invalid policy[/red]\n{error}", highlight=False)
        raise typer.Exit(1) from error
    out.print(explain_policy(policy), highlight=False, markup=False)
    unknown = sorted(set(policy.policy.categories) - set(known_categories()))
    if unknown:
        err.print(f"[yellow]warning[/yellow]: categories not in the taxonomy: {', '.join(unknown)}")


def known_categories() -> list[str]:
    """Return the category names of the shipped taxonomy."""
    from services.router.routing import load_default_routing

    return sorted(load_default_routing().categories)


@app.command()
def schemas(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write into.")] = Path(
        "docs/schemas"
    ),
) -> None:
    """Write the JSON Schema of every event (and the work item) as files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    models: dict[str, type[BaseModel]] = {
        **EVENT_TYPES,
        **CONTROL_EVENT_TYPES,
        "work_item": WorkItem,
        "escalation": Escalation,
    }
    for name, model in models.items():
        path = out_dir / f"{name}.schema.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2) + "\n")
    out.print(f"wrote {len(models)} schemas to {out_dir}")


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending audit-store migrations (run as the schema owner)."""
    from services.audit.migrate import apply_migrations

    url = DatabaseSettings().dsn()
    applied = apply_migrations(url)
    out.print(f"migrations applied: {', '.join(applied) if applied else 'none pending'}")


@app.command()
def trail(
    ticket_id: Annotated[str, typer.Argument(help="The ticket id.")],
    as_json: Annotated[bool, typer.Option("--json", help="The events, in order, as JSON.")] = False,
) -> None:
    """Show a ticket's causal chain: what arrived, what the model said, who decided, where."""
    from services.cli.render import trail_table

    async def fetch() -> list[dict[str, Any]]:
        async with audit_store() as store:
            return await store.trail_events(ticket_id)

    events = asyncio.run(fetch())
    if not events:
        err.print(f"no recorded events for ticket {ticket_id!r}")
        raise typer.Exit(1)
    if as_json:
        out.print_json(json.dumps(events))
        return
    out.print(trail_table(ticket_id, events))


@app.command()
def up(
    classifiers: Annotated[int, typer.Option(help="Copies of the classifier.")] = 1,
    policies: Annotated[int, typer.Option(help="Copies of the policy service.")] = 1,
    routers: Annotated[int, typer.Option(help="Copies of the router.")] = 1,
    audits: Annotated[int, typer.Option(help="Copies of the audit consumer.")] = 1,
) -> None:
    """Start the services in the background (logs and pids under the state dir)."""
    from services.cli import processes

    state = CliSettings().state_dir
    copies = {"classifier": classifiers, "policy": policies, "router": routers, "audit": audits}
    started = processes.start(state, copies=copies)
    problems = processes.wait_ready(processes.running(state))
    for process in processes.running(state):
        out.print(
            f"{process.service}-{process.copy}: pid {process.pid}, "
            f"http://127.0.0.1:{process.port}/metrics, log {process.log}"
        )
    if problems:
        err.print("[red]not ready:[/red] " + "; ".join(problems))
        raise typer.Exit(1)
    out.print(f"[green]services ready[/green] ({len(started)} started)")


@app.command()
def down() -> None:
    """Stop the services started by `up` (SIGTERM, then SIGKILL after a deadline)."""
    from services.cli import processes

    stopped = processes.stop(CliSettings().state_dir)
    out.print(f"stopped {len(stopped)} service processes")


@app.command()
def demo(
    rate: Annotated[float, typer.Option(help="Tickets per second to publish.")] = 200.0,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every ticket.")] = 300.0,
    keep_running: Annotated[bool, typer.Option(help="Leave the services running.")] = False,
) -> None:
    """Run the main job: all services, a stream of sample tickets, a summary."""
    from services.cli.demo import run_demo

    code = run_demo(out, err, rate=rate, timeout=timeout, keep_running=keep_running)
    raise typer.Exit(code)


def main() -> None:
    """Entry point of the console script."""
    app()


if __name__ == "__main__":
    main()
