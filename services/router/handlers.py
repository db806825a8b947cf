"""The router's Kafka handler: decided events in, work items and routed events out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from loguru import logger

from services.router.routing import RoutingTable, route
from shared.contracts import ProducerInfo, Stage, TicketDecided
from shared.logging import message_context
from shared.stage import Incoming, Outgoing, decode_batch
from shared.topics import Topics


class RouterHandler:
    """Route every valid decision; dead-letter what is not one."""

    def __init__(
        self,
        table: RoutingTable,
        *,
        topics: Topics,
        producer: ProducerInfo,
        clock: Callable[[], datetime],
    ) -> None:
        self._table = table
        self._topics = topics
        self._producer = producer
        self._clock = clock

    async def __call__(self, batch: list[Incoming]) -> list[Outgoing]:
        """Handle one consumed batch."""
        valid, out = decode_batch(
            batch,
            TicketDecided,
            stage=Stage.ROUTER,
            producer=self._producer,
            deadletter_topic=self._topics.deadletter,
        )
        now = self._clock()
        for record, decided in valid:
            item, routed = route(
                decided, self._table, topics=self._topics, producer=self._producer, now=now
            )
            out.append(Outgoing(routed.topic, item.ticket_id, item))
            out.append(Outgoing(self._topics.routed, routed.ticket_id, routed))
            logger.bind(
                **message_context(
                    ticket_id=decided.ticket_id,
                    trace_id=decided.trace_id,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                )
            ).debug("routed to {} ({})", routed.queue, routed.priority)
        return out
