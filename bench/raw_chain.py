"""The raw Kafka ceiling: one hop of a bare aiokafka chain with the pipeline's topology.

    python bench/raw_chain.py hop  --source T --group G --out TOPIC:BYTES [--out ...]
    python bench/raw_chain.py sink --source T [--source ...] --group G

A hop consumes batches exactly like a triageflow stage (same batch size and wait, offsets
committed only after every output is acknowledged, same producer: acks=all, idempotent,
linger 5 ms) and publishes, for each record, one message of the given size per `--out`
topic, with the ticket's key and headers of the pipeline's size. It does nothing else: no
parsing, no validation, no logging, no spans. The sink only counts, and prints the running
count after each batch (`count N`) for the benchmark to read. Both print `ready` once they
own partitions.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.kafka import client_kwargs, producer_kwargs
from shared.settings import KafkaSettings, ServiceSettings

TRACE_ID = "0" * 32
HEADERS = [
    ("content-type", b"application/json"),
    ("trace_id", TRACE_ID.encode()),
    ("traceparent", f"00-{TRACE_ID}-{'0' * 16}-01".encode()),
]


def _say(line: str) -> None:
    # The benchmark reads these lines from stdout: a protocol, not a log.
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _value(key: bytes, size: int) -> bytes:
    head = b'{"ticket_id":"' + key + b'","pad":"'
    return head + b"x" * max(0, size - len(head) - 2) + b'"}'


async def _consumer(kafka: KafkaSettings, topics: list[str], group: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        *topics,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **client_kwargs(kafka),
    )
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)
    return consumer


async def hop(kafka: KafkaSettings, source: str, group: str, outs: list[tuple[str, int]]) -> None:
    """Consume `source`, publish one message per output for each record, commit, repeat."""
    batch = ServiceSettings()
    producer = AIOKafkaProducer(**producer_kwargs(kafka))
    await producer.start()
    consumer = await _consumer(kafka, [source], group)
    _say("ready")
    try:
        while True:
            fetched = await consumer.getmany(
                timeout_ms=batch.batch_timeout_ms, max_records=batch.batch_max_records
            )
            futures: list[Any] = []
            for records in fetched.values():
                for record in records:
                    key = record.key or b""
                    for topic, size in outs:
                        futures.append(
                            await producer.send(topic, _value(key, size), key=key, headers=HEADERS)
                        )
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


async def sink(kafka: KafkaSettings, sources: list[str], group: str, max_records: int) -> None:
    """Consume `sources` and count; print the running count after every batch."""
    consumer = await _consumer(kafka, sources, group)
    _say("ready")
    count = 0
    try:
        while True:
            fetched = await consumer.getmany(timeout_ms=50, max_records=max_records)
            if fetched:
                count += sum(len(records) for records in fetched.values())
                await consumer.commit()
                _say(f"count {count}")
    finally:
        await consumer.stop()


def main(argv: list[str]) -> None:
    """Run one hop or the sink until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=["hop", "sink"])
    parser.add_argument("--source", action="append", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--out", action="append", default=[], help="TOPIC:BYTES")
    parser.add_argument("--max-records", type=int, default=2000, help="sink batch size")
    args = parser.parse_args(argv)
    kafka = KafkaSettings()
    if args.role == "hop":
        outs = [(spec.rsplit(":", 1)[0], int(spec.rsplit(":", 1)[1])) for spec in args.out]
        asyncio.run(hop(kafka, args.source[0], args.group, outs))
    else:
        asyncio.run(sink(kafka, args.source, args.group, args.max_records))


if __name__ == "__main__":
    main(sys.argv[1:])
