"""`triageflow dlq show|replay` on real Kafka and PostgreSQL, with the pipeline running.

Dead letters come from two places: malformed tickets the classifier refuses, and dead
letters of valid tickets that a stage gave up on (a processing error), published here
directly. A replay must re-validate, republish to the original topic with the original
key and a replay header, be recorded in the trail, and never make a second ticket trail.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from typer.testing import CliRunner, Result

from services.audit.repository import PostgresAuditRepository
from services.cli.dlq import REPLAY_HEADER
from services.cli.main import app
from shared.codec import encode
from shared.contracts import ProducerInfo, Stage
from shared.kafka import client_kwargs
from shared.settings import KafkaSettings
from shared.stage import Incoming, dead_letter
from shared.topics import Topics
from tests.kafka_tools import publish, read_until
from tests.pipeline_harness import create_topics, pipeline_apps
from tests.running import running
from tests.waiting import eventually

pytestmark = pytest.mark.integration

BODY = "I was charged twice for my order last week, please refund the duplicate payment."
ACTOR = "ops-alice"


@pytest.fixture
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache shared by the tests of the session (training happens once)."""
    return tmp_path_factory.getbasetemp() / "models"


@pytest.fixture
async def pipeline(
    kafka_settings: KafkaSettings, audit_database: str, model_cache: Path
) -> AsyncIterator[Topics]:
    """Every service running on this test's topics and database."""
    topics = await create_topics(kafka_settings)
    async with running(*pipeline_apps(kafka_settings, audit_database, model_cache)):
        yield topics


def _ticket(ticket_id: str) -> bytes:
    return json.dumps({"ticket_id": ticket_id, "body": BODY}).encode()


async def _failed_processing(kafka: KafkaSettings, topics: Topics, ticket_ids: list[str]) -> None:
    """Publish dead letters of valid tickets, as a stage that hit a processing error would."""
    letters = [
        dead_letter(
            Incoming(topics.inbound, 0, 1000 + n, tid.encode(), _ticket(tid)),
            stage=Stage.CLASSIFIER,
            error=TimeoutError("the model server did not answer"),
            producer=ProducerInfo(service="classifier"),
        )
        for n, tid in enumerate(ticket_ids)
    ]
    await publish(kafka, topics.deadletter, [(lt.ticket_id.encode(), encode(lt)) for lt in letters])


async def _dead_letter_id(audit_store: PostgresAuditRepository, ticket_id: str) -> str:
    entries = await eventually(
        lambda: audit_store.dead_letters(ticket_prefix=ticket_id),
        what=f"the dead letter of {ticket_id} in the trail",
    )
    return entries[0].event_id


async def _dlq(kafka: KafkaSettings, database_url: str, *args: str) -> Result:
    """Run `triageflow dlq ...` (in a thread: the command runs its own event loop)."""
    env = {
        "TRIAGEFLOW_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "TRIAGEFLOW_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
        "TRIAGEFLOW_DATABASE_URL": database_url,
        "TRIAGEFLOW_CLI_ACTOR": ACTOR,
    }
    return await asyncio.to_thread(CliRunner().invoke, app, ["dlq", *args], env=env)


async def _replay_headers(kafka: KafkaSettings, topic: str, count: int) -> list[str | None]:
    """Read `count` records of `topic` from the start; return their replay headers."""
    consumer = AIOKafkaConsumer(
        topic, **client_kwargs(kafka), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[str | None] = []
    try:
        while len(found) < count:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=500), timeout=30)
            for records in batch.values():
                found += [
                    next((v.decode() for k, v in r.headers if k == REPLAY_HEADER), None)
                    for r in records
                ]
    finally:
        await consumer.stop()
    return found


async def _kinds(audit_store: PostgresAuditRepository, ticket_id: str) -> list[str]:
    return [event["event_type"] for event in await audit_store.trail_events(ticket_id)]


async def test_a_dead_letter_valid_again_is_replayed_once_audited_and_makes_no_second_trail(
    kafka_settings: KafkaSettings,
    audit_database: str,
    audit_store: PostgresAuditRepository,
    pipeline: Topics,
) -> None:
    await _failed_processing(kafka_settings, pipeline, ["R-1"])
    letter_id = await _dead_letter_id(audit_store, "R-1")

    first = await _dlq(kafka_settings, audit_database, "replay", letter_id, "--note", "timeout")
    assert first.exit_code == 0, first.output
    complete = [
        "ticket.dead_lettered",
        "ticket.dead_letter_replayed",
        "ticket.received",
        "ticket.classified",
        "ticket.decided",
        "ticket.routed",
    ]
    await eventually(
        lambda: _kinds(audit_store, "R-1"),
        until=lambda kinds: sorted(kinds) == sorted(complete),
        what="the replayed ticket's trail",
    )
    again = await _dlq(kafka_settings, audit_database, "replay", letter_id)
    forced = await _dlq(kafka_settings, audit_database, "replay", letter_id, "--force")
    replays = await eventually(
        lambda: audit_store.replays_of(letter_id), until=lambda r: len(r) == 2, what="two replays"
    )
    inbound = await read_until(kafka_settings, [pipeline.inbound], lambda r: len(r) >= 2)
    headers = await _replay_headers(kafka_settings, pipeline.inbound, 2)
    shown = await _dlq(kafka_settings, audit_database, "show", letter_id)

    assert again.exit_code == 1
    assert "already_replayed" in again.output
    assert forced.exit_code == 0, forced.output
    # The same bytes are the same event: the forced replay added no second trail.
    kinds = await _kinds(audit_store, "R-1")
    assert sorted(kinds) == sorted([*complete, "ticket.dead_letter_replayed"])
    assert [(r["replay_number"], r["forced"], r["actor"]) for r in replays] == [
        (1, False, ACTOR),
        (2, True, ACTOR),
    ]
    record: dict[str, Any] = replays[0]
    assert record["causation_id"] == letter_id
    assert record["outcome"] == "republished"
    assert record["note"] == "timeout"
    assert (record["topic"], record["key"]) == (pipeline.inbound, "R-1")
    assert {(r.key, r.value) for r in inbound} == {(b"R-1", _ticket("R-1"))}
    assert headers == [letter_id, letter_id]
    assert shown.exit_code == 0, shown.output
    for expected in ("processing_error", "TimeoutError", "the model server did not answer"):
        assert expected in shown.output
    assert f"by {ACTOR}: republished" in shown.output
    assert '"ticket_id": "R-1"' in shown.output


async def test_a_dead_letter_still_invalid_is_refused_until_a_corrected_message_is_given(
    kafka_settings: KafkaSettings,
    audit_database: str,
    audit_store: PostgresAuditRepository,
    pipeline: Topics,
    tmp_path: Path,
) -> None:
    await publish(
        kafka_settings, pipeline.inbound, [(b"R-2", b'{"ticket_id": 7, "body": "refund"}')]
    )
    letter_id = await _dead_letter_id(audit_store, "R-2")
    corrected = tmp_path / "corrected.json"
    corrected.write_bytes(_ticket("R-2"))

    refused = await _dlq(kafka_settings, audit_database, "replay", letter_id)
    dry = await _dlq(
        kafka_settings, audit_database, "replay", letter_id, "--body-file", str(corrected),
        "--dry-run",
    )  # fmt: skip
    assert await audit_store.replays_of(letter_id) == []
    replayed = await _dlq(
        kafka_settings, audit_database, "replay", letter_id, "--body-file", str(corrected)
    )
    replays = await eventually(lambda: audit_store.replays_of(letter_id), what="the replay record")
    await eventually(
        lambda: _kinds(audit_store, "R-2"),
        until=lambda kinds: "ticket.routed" in kinds,
        what="the corrected ticket routed",
    )
    inbound = await read_until(kafka_settings, [pipeline.inbound], lambda r: len(r) >= 2)

    assert refused.exit_code == 1
    assert "still_invalid:schema_violation" in refused.output
    assert "ticket_id" in refused.output
    assert dry.exit_code == 0, dry.output
    assert "would replay" in dry.output
    assert replayed.exit_code == 0, replayed.output
    (record,) = replays
    assert record["outcome"] == "republished_corrected"
    assert base64.b64decode(record["corrected_bytes_b64"]) == _ticket("R-2")
    assert [r.value for r in inbound] == [b'{"ticket_id": 7, "body": "refund"}', _ticket("R-2")]


async def test_replaying_by_reason_takes_every_matching_dead_letter_and_nothing_else(
    kafka_settings: KafkaSettings,
    audit_database: str,
    audit_store: PostgresAuditRepository,
    pipeline: Topics,
) -> None:
    await _failed_processing(kafka_settings, pipeline, ["R-3", "R-4"])
    await publish(kafka_settings, pipeline.inbound, [(b"R-5", b"{not json")])
    for ticket_id in ("R-3", "R-4", "R-5"):
        await _dead_letter_id(audit_store, ticket_id)

    preview = await _dlq(
        kafka_settings, audit_database, "replay", "--reason", "processing_error", "--dry-run"
    )
    both = await _dlq(kafka_settings, audit_database, "replay", "--reason", "processing_error")
    for ticket_id in ("R-3", "R-4"):
        await eventually(
            lambda tid=ticket_id: _kinds(audit_store, tid),  # type: ignore[misc]
            until=lambda kinds: "ticket.routed" in kinds,
            what=f"{ticket_id} routed",
        )
    invalid = await _dlq(kafka_settings, audit_database, "replay", "--reason", "invalid_json")
    neither = await _dlq(kafka_settings, audit_database, "replay")
    listed = await _dlq(kafka_settings, audit_database, "list", "--ticket-prefix", "R-")

    assert preview.exit_code == 0, preview.output
    assert "would replay 2, refused 0" in preview.output
    assert both.exit_code == 0, both.output
    assert "replayed 2, refused 0" in both.output
    assert invalid.exit_code == 1
    assert "still_invalid:invalid_json" in invalid.output
    assert "ticket.routed" not in await _kinds(audit_store, "R-5")
    assert neither.exit_code == 2
    # The list names each dead letter by the id that show and replay take.
    for ticket_id in ("R-3", "R-4", "R-5"):
        assert await _dead_letter_id(audit_store, ticket_id) in listed.output
