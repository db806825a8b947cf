"""Every topic name in one place, and their explicit creation."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

if TYPE_CHECKING:
    from shared.settings import KafkaSettings

QUEUE_PREFIX = "queue."


@dataclass(frozen=True)
class Topics:
    """Topic names, optionally prefixed (a per-test or per-tenant namespace)."""

    prefix: str = ""

    @property
    def inbound(self) -> str:
        """Tickets from upstream systems."""
        return f"{self.prefix}tickets.inbound"

    @property
    def classified(self) -> str:
        """ticket.classified events."""
        return f"{self.prefix}tickets.classified"

    @property
    def decided(self) -> str:
        """ticket.decided events."""
        return f"{self.prefix}tickets.decided"

    @property
    def routed(self) -> str:
        """ticket.routed events."""
        return f"{self.prefix}tickets.routed"

    @property
    def deadletter(self) -> str:
        """ticket.dead_lettered events."""
        return f"{self.prefix}tickets.deadletter"

    @property
    def feedback(self) -> str:
        """ticket.feedback events from downstream."""
        return f"{self.prefix}tickets.feedback"

    def queue(self, name: str) -> str:
        """Return the topic of downstream queue `name`."""
        return f"{self.prefix}{QUEUE_PREFIX}{name}"

    def pipeline(self) -> list[str]:
        """Return the pipeline's own topics (not the queues)."""
        return [
            self.inbound,
            self.classified,
            self.decided,
            self.routed,
            self.deadletter,
            self.feedback,
        ]

    def audited(self) -> list[str]:
        """Return the topics the audit consumer records."""
        return self.pipeline()


async def ensure_topics(kafka: KafkaSettings, names: list[str]) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    from shared.kafka import admin_client_kwargs

    admin = AIOKafkaAdminClient(**admin_client_kwargs(kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        configs: dict[str, str] = {}
        if kafka.min_insync_replicas:
            configs["min.insync.replicas"] = str(kafka.min_insync_replicas)
        wanted = [
            NewTopic(
                name=name,
                num_partitions=kafka.partitions,
                replication_factor=kafka.replication_factor,
                topic_configs=configs,
            )
            for name in dict.fromkeys(names)
            if name not in existing
        ]
        if not wanted:
            return []
        # A concurrent creator may win the race; the topics then exist, which is the goal.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(wanted)
        return [t.name for t in wanted]
    finally:
        await admin.close()
