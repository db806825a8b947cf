"""Plain aiokafka clients for tests: publish bytes, read a topic from the start."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.kafka import client_kwargs, producer_kwargs
from shared.settings import KafkaSettings


@dataclass(frozen=True)
class Record:
    """A consumed record, reduced to what tests look at."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


async def publish(
    kafka: KafkaSettings, topic: str, messages: list[tuple[bytes | None, bytes]]
) -> None:
    """Publish (key, value) pairs with a plain producer and wait for every ack."""
    producer = AIOKafkaProducer(**producer_kwargs(kafka))
    await producer.start()
    try:
        futures = [await producer.send(topic, value=value, key=key) for key, value in messages]
        for future in futures:
            await future
    finally:
        await producer.stop()


async def read_until(
    kafka: KafkaSettings,
    topics: list[str],
    done: Callable[[list[Record]], bool],
    *,
    timeout: float = 60.0,
) -> list[Record]:
    """Read `topics` from the beginning until `done(records)`; fail at the deadline."""
    consumer = AIOKafkaConsumer(
        *topics,
        **client_kwargs(kafka),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    try:
        while not done(records):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s reading {topics}: {len(records)} records"
                )
            batch = await consumer.getmany(timeout_ms=500)
            for items in batch.values():
                records.extend(
                    Record(r.topic, r.partition, r.offset, r.key, r.value) for r in items
                )
        return records
    finally:
        await consumer.stop()
