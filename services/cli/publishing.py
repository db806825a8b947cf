"""Read tickets from JSONL or CSV files and publish them to the inbound topic."""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aiokafka import AIOKafkaProducer

from shared.kafka import producer_kwargs
from shared.settings import KafkaSettings


@dataclass(frozen=True)
class OutboundRecord:
    """One message to publish: key (the ticket id, if known) and the exact bytes."""

    key: bytes | None
    value: bytes


def sample_tickets_path() -> Path:
    """Return the path of the sample tickets shipped with triageflow."""
    return Path(str(resources.files("services.classifier").joinpath("data/sample_tickets.jsonl")))


def records_from_jsonl(path: Path) -> Iterator[OutboundRecord]:
    """Yield records from JSONL: objects are sent as JSON, `{"raw": ...}` verbatim."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            item = json.loads(line)
            if isinstance(item, dict) and set(item) <= {"raw", "key", "note"} and "raw" in item:
                key = item.get("key")
                yield OutboundRecord(
                    key.encode() if isinstance(key, str) else None,
                    str(item["raw"]).encode("utf-8", "surrogateescape"),
                )
                continue
            ticket_id = item.get("ticket_id") if isinstance(item, dict) else None
            yield OutboundRecord(
                ticket_id.encode() if isinstance(ticket_id, str) else None,
                json.dumps(item, ensure_ascii=False).encode("utf-8"),
            )


def records_from_csv(path: Path) -> Iterator[OutboundRecord]:
    """Yield records from CSV with columns ticket_id, body and optional ticket fields."""
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            ticket: dict[str, object] = {k: v for k, v in row.items() if v not in (None, "")}
            customer = {
                field: ticket.pop(f"customer_{field}")
                for field in ("id", "tier", "language")
                if f"customer_{field}" in ticket
            }
            if customer:
                ticket["customer"] = customer
            ticket_id = ticket.get("ticket_id")
            yield OutboundRecord(
                ticket_id.encode() if isinstance(ticket_id, str) else None,
                json.dumps(ticket, ensure_ascii=False).encode("utf-8"),
            )


def read_records(path: Path) -> list[OutboundRecord]:
    """Return the records of a `.jsonl` or `.csv` file."""
    if path.suffix == ".csv":
        return list(records_from_csv(path))
    return list(records_from_jsonl(path))


async def publish_records(
    kafka: KafkaSettings,
    topic: str,
    records: list[OutboundRecord],
    *,
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Publish records (at most `rate` per second if given); return how many were acked."""
    producer = AIOKafkaProducer(**producer_kwargs(kafka))
    await producer.start()
    started = time.monotonic()
    try:
        pending = []
        for index, record in enumerate(records):
            if rate:
                # Open-loop pacing: each message has its own due time from the start.
                delay = started + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            pending.append(await producer.send(topic, value=record.value, key=record.key))
            if progress:
                progress(1)
        for future in pending:
            await future
        return len(pending)
    finally:
        await producer.stop()
