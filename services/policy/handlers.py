"""The policy service's Kafka handler: classified events in, decisions out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services.policy.caps import CapControl
from services.policy.engine import decide
from services.policy.model import LoadedPolicy
from shared.contracts import ProducerInfo, Stage, TicketClassified
from shared.stage import Incoming, Outgoing, decode_batch
from shared.topics import Topics


class PolicyHandler:
    """Decide every valid classification; dead-letter what is not one."""

    def __init__(
        self,
        policy: LoadedPolicy,
        *,
        topics: Topics,
        producer: ProducerInfo,
        clock: Callable[[], datetime],
        candidate: LoadedPolicy | None = None,
        caps: CapControl | None = None,
    ) -> None:
        self._policy = policy
        self._caps = caps or CapControl()
        self._candidate = candidate
        self._topics = topics
        self._producer = producer
        self._clock = clock

    async def __call__(self, batch: list[Incoming]) -> list[Outgoing]:
        """Handle one consumed batch."""
        valid, out = decode_batch(
            batch,
            TicketClassified,
            stage=Stage.POLICY,
            producer=self._producer,
            deadletter_topic=self._topics.deadletter,
        )
        now = self._clock()
        for record, classified in valid:
            decided = decide(
                classified,
                self._policy,
                producer=self._producer,
                now=now,
                candidate=self._candidate,
                caps=self._caps.caps,
            )
            out.append(Outgoing(self._topics.decided, decided.ticket_id, decided, cause=record))
        return out
