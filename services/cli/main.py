"""The `triageflow` operator command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.console import Console

from shared.contracts import EVENT_TYPES, WorkItem
from shared.settings import KafkaSettings
from shared.topics import Topics, ensure_topics

app = typer.Typer(help="triageflow: AI ticket triage over Kafka.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")

out = Console()
err = Console(stderr=True)


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


@app.command()
def schemas(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write into.")] = Path(
        "docs/schemas"
    ),
) -> None:
    """Write the JSON Schema of every event (and the work item) as files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    models: dict[str, type[BaseModel]] = {**EVENT_TYPES, "work_item": WorkItem}
    for name, model in models.items():
        path = out_dir / f"{name}.schema.json"
        path.write_text(json.dumps(model.model_json_schema(), indent=2) + "\n")
    out.print(f"wrote {len(models)} schemas to {out_dir}")


@app.command()
def demo() -> None:
    """Run the main job: all services, a stream of sample tickets, a summary."""
    kafka = KafkaSettings()
    out.print(
        f"[green]infrastructure is up[/green]: Kafka at {kafka.bootstrap_servers}; "
        "the pipeline services are not wired yet, so no tickets flow."
    )


def main() -> None:
    """Entry point of the console script."""
    app()


if __name__ == "__main__":
    main()
