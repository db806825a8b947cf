"""The router's Kafka handler: decided events in, work items and routed events out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services.router.routing import RoutingTable, escalate, needs_escalation, route
from shared.codec import InvalidMessage
from shared.contracts import FeedbackGiven, ProducerInfo, Stage, TicketDecided
from shared.stage import Incoming, Outgoing, decode_batch, decode_record
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
        """Handle one consumed batch: decisions are routed, bad reactions escalated."""
        feedback = [r for r in batch if r.topic == self._topics.feedback]
        decisions = [r for r in batch if r.topic != self._topics.feedback]
        return [*self._route(decisions), *self._escalate(feedback)]

    def _escalate(self, batch: list[Incoming]) -> list[Outgoing]:
        # Invalid feedback is dead-lettered by the audit consumer, its one owner; skip it here.
        out: list[Outgoing] = []
        now = self._clock()
        for record in batch:
            try:
                feedback = decode_record(record, FeedbackGiven)
            except InvalidMessage:
                continue
            if not needs_escalation(feedback):
                continue
            item, routed = escalate(
                feedback, self._table, topics=self._topics, producer=self._producer, now=now
            )
            out.append(Outgoing(routed.topic, item.ticket_id, item, cause=record))
            out.append(Outgoing(self._topics.routed, routed.ticket_id, routed, cause=record))
        return out

    def _route(self, batch: list[Incoming]) -> list[Outgoing]:
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
            out.append(Outgoing(routed.topic, item.ticket_id, item, cause=record))
            out.append(Outgoing(self._topics.routed, routed.ticket_id, routed, cause=record))
        return out
