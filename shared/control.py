"""The control topic: publish a control event, and follow the latest event of every key.

Every copy of a service runs its own `ControlReader`: it reads the compacted,
single-partition control topic from the beginning *without* a consumer group (so every
copy sees every event, and none commits offsets), keeps the latest event per key, and
calls back on every change. `start` returns once the reader has caught up with the end
offset it found at start-up, so a service that starts after a promotion classifies its
first ticket with the promoted model.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from loguru import logger
from pydantic import BaseModel, ConfigDict

from shared.codec import InvalidMessage, decode, encode
from shared.contracts import CONTROL_EVENT_TYPES, ControlEvent
from shared.kafka import client_kwargs, producer_kwargs
from shared.topics import Topics

if TYPE_CHECKING:
    from faststream.asgi import AsgiFastStream

    from shared.settings import KafkaSettings

OnChange = Callable[[ControlEvent], Awaitable[None] | None]


class _Envelope(BaseModel):
    """Just enough of a control event to pick its model."""

    model_config = ConfigDict(extra="ignore")
    event_type: str


def decode_control(raw: bytes | None) -> ControlEvent:
    """Parse one control record into its event type, or raise `InvalidMessage` saying why."""
    envelope = decode(raw, _Envelope)
    model = CONTROL_EVENT_TYPES.get(envelope.event_type)
    if model is None:
        raise InvalidMessage("unknown_event_type", f"no control event {envelope.event_type!r}")
    return decode(raw, model)


async def publish_control(kafka: KafkaSettings, event: ControlEvent) -> None:
    """Publish `event` to the control topic under its key; return once the broker acked it."""
    producer = AIOKafkaProducer(**producer_kwargs(kafka))
    await producer.start()
    try:
        await producer.send_and_wait(
            Topics(kafka.topic_prefix).control, value=encode(event), key=event.key.encode()
        )
    finally:
        await producer.stop()


class ControlReader:
    """Follow the control topic: latest event per key, a callback on every change."""

    def __init__(
        self, kafka: KafkaSettings, *, on_change: OnChange, poll_timeout_ms: int = 500
    ) -> None:
        self._kafka = kafka
        self._on_change = on_change
        self._poll_timeout_ms = poll_timeout_ms
        self._latest: dict[str, ControlEvent] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._partition = TopicPartition(Topics(kafka.topic_prefix).control, 0)

    @property
    def latest(self) -> Mapping[str, ControlEvent]:
        """Return the latest event of every key seen so far."""
        return dict(self._latest)

    async def start(self, *, catch_up_timeout_s: float = 30.0) -> None:
        """Read the topic up to its current end (applying every event), then follow it."""
        consumer = AIOKafkaConsumer(
            **client_kwargs(self._kafka), group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        self._consumer = consumer
        if await self._assign():
            end = (await consumer.end_offsets([self._partition]))[self._partition]
            async with asyncio.timeout(catch_up_timeout_s):
                while await consumer.position(self._partition) < end:
                    await self._poll_once()
            logger.info("control topic read up to offset {}: {} keys", end, len(self._latest))
        else:
            # No control topic yet (`triageflow topics create` makes it): nothing is in force.
            logger.warning("control topic {} does not exist yet; waiting for it", self._partition)
        self._task = asyncio.create_task(self._follow(), name="control-reader")

    async def _assign(self) -> bool:
        """Assign the control partition from its beginning, if the topic exists."""
        assert self._consumer is not None
        if self._partition.topic not in await self._consumer.topics():
            return False
        self._consumer.assign([self._partition])
        await self._consumer.seek_to_beginning(self._partition)
        return True

    async def stop(self) -> None:
        """Stop following the topic."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                if not self._consumer.assignment() and not await self._assign():
                    await asyncio.sleep(self._poll_timeout_ms / 1000)
                    continue
                await self._poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a broker hiccup must not stop a service from following
                logger.exception("control topic: poll failed; retrying")
                await asyncio.sleep(1.0)

    async def _poll_once(self) -> None:
        assert self._consumer is not None
        batch = await self._consumer.getmany(self._partition, timeout_ms=self._poll_timeout_ms)
        for record in batch.get(self._partition, []):
            try:
                event = decode_control(record.value)
            except InvalidMessage as error:
                # Nothing acts on an invalid control event; the audit consumer logs it too.
                logger.bind(topic=record.topic, offset=record.offset).error(
                    "ignored invalid control event: {}", error
                )
                continue
            await self._apply(event)

    async def _apply(self, event: ControlEvent) -> None:
        if self._latest.get(event.key) == event:
            return
        self._latest[event.key] = event
        logger.info("control {} {} by {}", event.key, event.event_type, event.actor)
        result = self._on_change(event)
        if result is not None:
            await result


def follow_control_topic(app: AsgiFastStream, kafka: KafkaSettings, on_change: OnChange) -> None:
    """Read the control topic for the life of `app`: start-up waits until it is read to its
    end, so the state in force applies from the first batch; shutdown stops the reader."""
    reader = ControlReader(kafka, on_change=on_change)

    @app.on_startup
    async def read_control_topic() -> None:
        await reader.start()

    @app.after_shutdown
    async def stop_reading_control_topic() -> None:
        await reader.stop()
