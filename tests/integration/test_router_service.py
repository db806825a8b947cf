"""The router service on a real broker: decisions in, work items and routed events out."""

from __future__ import annotations

import json

import pytest

from services.router.app import build_app
from services.router.settings import RouterSettings
from shared.codec import encode
from shared.contracts import FeedbackGiven
from shared.settings import KafkaSettings
from shared.topics import Topics, ensure_topics
from tests.kafka_tools import publish, read_until
from tests.running import running
from tests.unit.test_routing import decided

pytestmark = pytest.mark.integration


async def test_router_publishes_work_items_keyed_by_ticket_and_dead_letters_garbage(
    kafka_settings: KafkaSettings,
) -> None:
    topics = Topics(kafka_settings.topic_prefix)
    await ensure_topics(
        kafka_settings, [*topics.pipeline(), topics.queue("billing"), topics.queue("triage")]
    )
    decision = decided()
    await publish(
        kafka_settings,
        topics.decided,
        [(b"T-1", encode(decision)), (b"T-junk", b"{not json"), (b"T-1", encode(decision))],
    )
    app = build_app(RouterSettings(kafka=kafka_settings, group_id=f"{topics.prefix}router"))

    async with running(app):
        queued = await read_until(kafka_settings, [topics.queue("billing")], lambda r: len(r) >= 2)
        routed = await read_until(kafka_settings, [topics.routed], lambda r: len(r) >= 2)
        dead = await read_until(kafka_settings, [topics.deadletter], lambda r: len(r) >= 1)

    item = json.loads(queued[0].value or b"")
    assert item["ticket_id"] == "T-1"
    assert queued[0].key == b"T-1"
    assert {json.loads(r.value or b"")["idempotency_key"] for r in queued} == {
        item["idempotency_key"]
    }, "a redelivered decision yields the same idempotency key"
    assert len({json.loads(r.value or b"")["event_id"] for r in routed}) == 1
    letter = json.loads(dead[0].value or b"")
    assert (letter["stage"], letter["reason"], letter["ticket_id"]) == (
        "router",
        "invalid_json",
        "T-junk",
    )


async def test_a_negative_reaction_to_an_autonomous_answer_goes_to_a_human_queue_at_once(
    kafka_settings: KafkaSettings,
) -> None:
    topics = Topics(kafka_settings.topic_prefix)
    await ensure_topics(kafka_settings, [*topics.pipeline(), topics.queue("triage")])
    angry = FeedbackGiven(
        ticket_id="T-9",
        kind="customer_reaction",
        decision_event_id="d-9",
        decision_mode="autonomous",
        actor="customer",
        negative_reply=True,
    )
    happy = FeedbackGiven(
        ticket_id="T-8", kind="customer_reaction", decision_event_id="d-8", actor="c", csat=5
    )
    await publish(
        kafka_settings,
        topics.feedback,
        [(b"T-8", encode(happy)), (b"T-9", encode(angry)), (b"T-7", b"{broken")],
    )
    app = build_app(RouterSettings(kafka=kafka_settings, group_id=f"{topics.prefix}router"))

    async with running(app):
        queued = await read_until(kafka_settings, [topics.queue("triage")], lambda r: len(r) >= 1)
        routed = await read_until(kafka_settings, [topics.routed], lambda r: len(r) >= 1)

    item = json.loads(queued[0].value or b"")
    assert (item["kind"], item["ticket_id"], item["human_handling"]) == ("escalation", "T-9", True)
    event = json.loads(routed[0].value or b"")
    assert (event["reason"], event["mode"], event["causation_id"]) == (
        "negative_customer_reaction",
        "human",
        angry.event_id,
    )
    assert len(queued) == 1, "positive feedback and broken feedback are not escalated"
