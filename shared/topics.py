"""Every topic name in one place, and their explicit creation."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError
from loguru import logger

if TYPE_CHECKING:
    from shared.settings import KafkaSettings

QUEUE_PREFIX = "queue."
CONTROL_TOPIC = "triageflow.control"


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

    @property
    def control(self) -> str:
        """Control events (model promotions, category caps): compacted, one partition, keyed
        by what they control, so a service starting up reads the latest state of each key."""
        return f"{self.prefix}{CONTROL_TOPIC}"

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
            self.control,
        ]

    def audited(self) -> list[str]:
        """Return the topics the audit consumer records (every pipeline topic)."""
        return self.pipeline()


async def ensure_topics(kafka: KafkaSettings, names: list[str]) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    An existing control topic also gets the settings the control reader relies on (see
    `_reconcile_control_topic`); no other existing topic is altered.
    """
    from shared.kafka import admin_client_kwargs

    admin = AIOKafkaAdminClient(**admin_client_kwargs(kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        for name in dict.fromkeys(names):
            if name in existing and name.endswith(CONTROL_TOPIC):
                await _reconcile_control_topic(admin, name)
        configs: dict[str, str] = {}
        if kafka.min_insync_replicas:
            configs["min.insync.replicas"] = str(kafka.min_insync_replicas)
        wanted = [
            NewTopic(
                name=name,
                replication_factor=kafka.replication_factor,
                **_layout(name, kafka.partitions, configs),
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


# Compaction keeps only the latest event per key, but never one younger than a week: an
# audit consumer that lagged (or was down) still records every control event in the trail.
CONTROL_MIN_COMPACTION_LAG_MS = 7 * 24 * 3600 * 1000
CONTROL_TOPIC_CONFIGS = {
    "cleanup.policy": "compact",
    "min.compaction.lag.ms": str(CONTROL_MIN_COMPACTION_LAG_MS),
}


# DescribeConfigs' `config_source` of a setting made on the topic itself.
_TOPIC_SETTING = 1


async def _reconcile_control_topic(admin: AIOKafkaAdminClient, name: str) -> None:
    """Make an existing control topic compacted with at least the week's compaction lag.

    A control topic created before these settings (or by hand) could otherwise delete or
    compact away a promotion that a copy starting later, or a lagging audit, still needs.
    AlterConfigs replaces a topic's whole set of own settings, so the ones it has are sent
    back with the change; a longer lag an operator chose is kept.
    """
    described = (await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)]))[0]
    entries = described.resources[0][4]
    effective = {entry[0]: entry[1] for entry in entries}
    # Version 0 of the response has `is_default` where later ones have `config_source`.
    own = {
        entry[0]: entry[1]
        for entry in entries
        if (not entry[3] if described.API_VERSION == 0 else entry[3] == _TOPIC_SETTING)
    }
    changes: dict[str, str] = {}
    if effective.get("cleanup.policy") != CONTROL_TOPIC_CONFIGS["cleanup.policy"]:
        changes["cleanup.policy"] = CONTROL_TOPIC_CONFIGS["cleanup.policy"]
    if int(effective.get("min.compaction.lag.ms") or 0) < CONTROL_MIN_COMPACTION_LAG_MS:
        changes["min.compaction.lag.ms"] = str(CONTROL_MIN_COMPACTION_LAG_MS)
    if not changes:
        return
    altered = await admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, configs=own | changes)]
    )
    for error_code, error_message, *_ in altered[0].resources:
        if error_code:
            raise RuntimeError(f"cannot alter control topic {name}: {error_message}")
    before = {key: effective.get(key) for key in changes}
    logger.warning("control topic {} had {}; now {}", name, before, changes)


def _layout(name: str, partitions: int, configs: dict[str, str]) -> dict[str, Any]:
    """Return partitions and configs of topic `name`: the control topic is compacted and has
    one partition (its events are few, and a total order keeps "latest per key" simple)."""
    if name.endswith(CONTROL_TOPIC):
        return {
            "num_partitions": 1,
            "topic_configs": configs | CONTROL_TOPIC_CONFIGS,
        }
    return {"num_partitions": partitions, "topic_configs": configs}
