"""Every contract survives a trip through a real Kafka topic."""

from __future__ import annotations

import pytest

from shared.codec import decode, encode
from shared.settings import KafkaSettings
from shared.topics import Topics, ensure_topics
from tests.factories import sample_events
from tests.kafka_tools import publish, read_until
from tests.waiting import eventually

pytestmark = pytest.mark.integration


async def test_every_contract_round_trips_through_a_real_topic(
    kafka_settings: KafkaSettings,
) -> None:
    topic = Topics(kafka_settings.topic_prefix).inbound
    await ensure_topics(kafka_settings, [topic])
    events = sample_events()

    await publish(
        kafka_settings,
        topic,
        [(e.model_dump()["ticket_id"].encode(), encode(e)) for e in events],
    )
    records = await read_until(kafka_settings, [topic], lambda got: len(got) >= len(events))

    assert sorted(r.value or b"" for r in records) == sorted(encode(e) for e in events)
    by_type = {type(e): e for e in events}
    for record in records:
        for model, original in by_type.items():
            if record.value == encode(original):
                assert decode(record.value, model) == original


async def test_topics_are_created_explicitly_with_the_configured_partitions_and_control_compacted(
    kafka_settings: KafkaSettings,
) -> None:
    topics = Topics(kafka_settings.topic_prefix)
    wanted = [*topics.pipeline(), topics.queue("billing")]

    created = await ensure_topics(kafka_settings, wanted)
    again = await ensure_topics(kafka_settings, wanted)

    assert sorted(created) == sorted(wanted)
    assert again == []
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from shared.kafka import admin_client_kwargs

    admin = AIOKafkaAdminClient(**admin_client_kwargs(kafka_settings))
    await admin.start()
    try:
        described = await admin.describe_topics(wanted)
        control = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topics.control)]
        )
    finally:
        await admin.close()
    partitions = {d["topic"]: len(d["partitions"]) for d in described}
    assert partitions == dict.fromkeys(wanted, 3) | {topics.control: 1}
    config = {entry[0]: entry[1] for entry in control[0].resources[0][4]}
    assert config["cleanup.policy"] == "compact"
    # a week before compaction may drop a superseded control event the audit has not read
    assert config["min.compaction.lag.ms"] == str(7 * 24 * 3600 * 1000)


async def topic_settings(kafka: KafkaSettings, topic: str) -> dict[str, str]:
    """Return the effective settings of `topic`."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from shared.kafka import admin_client_kwargs

    admin = AIOKafkaAdminClient(**admin_client_kwargs(kafka))
    await admin.start()
    try:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    return {entry[0]: entry[1] for entry in described[0].resources[0][4]}


async def create_by_hand(kafka: KafkaSettings, topic: str, configs: dict[str, str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from shared.kafka import admin_client_kwargs

    admin = AIOKafkaAdminClient(**admin_client_kwargs(kafka))
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=1, replication_factor=1, topic_configs=configs)]
        )
        # The broker lists a new topic a moment after creating it.
        await eventually(admin.list_topics, until=lambda names: topic in names, what=topic)
    finally:
        await admin.close()


async def test_an_existing_control_topic_gets_compaction_and_the_lag_and_keeps_its_own_settings(
    kafka_settings: KafkaSettings,
) -> None:
    topics = Topics(kafka_settings.topic_prefix)
    await create_by_hand(
        kafka_settings,
        topics.control,
        {"cleanup.policy": "delete", "retention.ms": "123456789", "max.message.bytes": "200000"},
    )

    created = await ensure_topics(kafka_settings, [topics.control, topics.inbound])
    settings = await topic_settings(kafka_settings, topics.control)

    assert created == [topics.inbound]
    assert settings["cleanup.policy"] == "compact"
    assert settings["min.compaction.lag.ms"] == str(7 * 24 * 3600 * 1000)
    assert (settings["retention.ms"], settings["max.message.bytes"]) == ("123456789", "200000")


async def test_a_longer_compaction_lag_an_operator_chose_is_kept(
    kafka_settings: KafkaSettings,
) -> None:
    topics = Topics(kafka_settings.topic_prefix)
    month = str(30 * 24 * 3600 * 1000)
    await create_by_hand(
        kafka_settings,
        topics.control,
        {"cleanup.policy": "compact", "min.compaction.lag.ms": month},
    )

    await ensure_topics(kafka_settings, [topics.control])

    assert (await topic_settings(kafka_settings, topics.control))["min.compaction.lag.ms"] == month
