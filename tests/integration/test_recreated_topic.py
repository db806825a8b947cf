"""A recreated inbound topic restarts its offsets; no bad record may vanish from the trail.

The services stop, `tickets.inbound` is deleted and created again (a restore, a new
cluster, a reset staging topic), and the services start on the same audit database. The
next bad record lands at an offset an earlier bad record had: both must be dead-lettered
and audited as two entries.
"""

from __future__ import annotations

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.audit.repository import DeadLetterEntry, PostgresAuditRepository
from shared.kafka import admin_client_kwargs
from shared.settings import KafkaSettings
from shared.topics import Topics, ensure_topics
from tests.kafka_tools import publish
from tests.pipeline_harness import create_topics, pipeline_apps
from tests.running import running
from tests.waiting import eventually

pytestmark = pytest.mark.integration

KEY = b"RECREATED-1"  # one key: both records go to the same partition, at offset 0


async def _recreate(kafka: KafkaSettings, topic: str) -> None:
    """Delete `topic`, wait until the broker no longer lists it, and create it again."""
    admin = AIOKafkaAdminClient(**admin_client_kwargs(kafka))
    await admin.start()
    try:
        await admin.delete_topics([topic])

        async def listed() -> bool:
            return topic in await admin.list_topics()

        await eventually(listed, until=lambda present: not present, what=f"{topic} deleted")
    finally:
        await admin.close()
    await ensure_topics(kafka, [topic])


async def _letters(audit_store: PostgresAuditRepository, count: int) -> list[DeadLetterEntry]:
    return await eventually(
        lambda: audit_store.dead_letters(ticket_prefix=KEY.decode()),
        until=lambda letters: len(letters) >= count,
        timeout=90,
        what=f"{count} audited dead letters of {KEY.decode()}",
    )


async def test_a_bad_record_at_a_recreated_topics_old_offset_is_dead_lettered_and_audited(
    kafka_settings: KafkaSettings,
    fresh_database: str,
    audit_store: PostgresAuditRepository,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    models = tmp_path_factory.getbasetemp() / "models"
    topics: Topics = await create_topics(kafka_settings)
    async with running(*pipeline_apps(kafka_settings, fresh_database, models)):
        await publish(kafka_settings, topics.inbound, [(KEY, b'{"body": "first, cut')])
        (first,) = await _letters(audit_store, 1)

    await _recreate(kafka_settings, topics.inbound)
    async with running(*pipeline_apps(kafka_settings, fresh_database, models)):
        await publish(kafka_settings, topics.inbound, [(KEY, b'{"body": "second, cut')])
        letters = await _letters(audit_store, 2)

    assert len({letter.event_id for letter in letters}) == 2
    assert first.event_id in {letter.event_id for letter in letters}
    trail = await audit_store.trail_events(KEY.decode())
    # The case this is about: the second record sat where the first one had.
    assert {(e["original_partition"], e["original_offset"]) for e in trail} == {
        (trail[0]["original_partition"], 0)
    }
