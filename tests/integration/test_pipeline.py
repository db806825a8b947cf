"""The whole pipeline on real Kafka and PostgreSQL: upstream event → queue + complete trail."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.audit.migrate import apply_migrations
from services.audit.repository import PostgresAuditRepository, connect_pool
from services.classifier.app import build_app as build_classifier
from services.classifier.settings import ClassifierSettings
from shared.kafka import admin_client_kwargs
from shared.settings import KafkaSettings
from tests.kafka_tools import Record, publish, read_until
from tests.pipeline_harness import create_topics as _topics
from tests.pipeline_harness import pipeline_apps as _apps
from tests.pipeline_harness import queue_topics as _queue_topics
from tests.running import running
from tests.waiting import eventually

pytestmark = pytest.mark.integration

TICKETS = [
    ("my card was charged twice for the same order, please fix the invoice", "billing"),
    ("I want my money back for the broken headphones, refund please", "refunds"),
    ("I cannot log in, the password reset email never arrives", "account_access"),
    ("the app crashes every time I open the settings page", "bug_report"),
    ("your whole website is down, nobody on our team can reach it", "outage"),
    ("how do I export my data to a csv file?", "how_to"),
    ("please add a dark mode to the dashboard", "feature_request"),
    ("my parcel has not arrived yet, the tracking number shows no update", "shipping"),
    ("please cancel my subscription at the end of this month", "cancellation"),
    ("someone used my account to make purchases I did not authorise", "security_fraud"),
]


@pytest.fixture
async def audit_database(fresh_database: str) -> str:
    """A fresh, migrated audit database."""
    apply_migrations(fresh_database)
    return fresh_database


@pytest.fixture
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache shared by the tests of this module (training happens once)."""
    return tmp_path_factory.getbasetemp() / "models"


def _by_ticket(records: list[Record]) -> Counter[str]:
    return Counter(json.loads(r.value or b"")["ticket_id"] for r in records)


async def test_every_ticket_reaches_exactly_one_queue_with_a_complete_trail(
    kafka_settings: KafkaSettings, audit_database: str, model_cache: Path
) -> None:
    topics = await _topics(kafka_settings)
    tickets = [(f"T-{i:03d}", text) for i, (text, _) in enumerate(TICKETS * 3)]
    await publish(
        kafka_settings,
        topics.inbound,
        [
            (tid.encode(), json.dumps({"ticket_id": tid, "body": text}).encode())
            for tid, text in tickets
        ],
    )

    async with running(*_apps(kafka_settings, audit_database, model_cache)):
        queued = await read_until(
            kafka_settings,
            _queue_topics(topics),
            lambda got: len(_by_ticket(got)) >= len(tickets),
            timeout=90,
        )
        pool = await connect_pool(audit_database)
        try:
            store = PostgresAuditRepository(pool)
            await eventually(
                store.count_events, until=lambda n: n >= 4 * len(tickets), what="audit rows"
            )
            trails = {tid: await store.trail_events(tid) for tid, _ in tickets}
        finally:
            await pool.close()

    assert set(_by_ticket(queued)) == {tid for tid, _ in tickets}
    assert all(count == 1 for count in _by_ticket(queued).values()), "exactly one queue each"
    assert all(r.key == json.loads(r.value or b"")["ticket_id"].encode() for r in queued)
    for tid, events in trails.items():
        kinds = [e["event_type"] for e in events]
        assert kinds == ["ticket.received", "ticket.classified", "ticket.decided", "ticket.routed"]
        for cause, effect in itertools.pairwise(events):
            assert effect["causation_id"] == cause["event_id"], f"{tid}: broken causal chain"
        decided = events[2]
        assert decided["policy"]["content_hash"]
        assert decided["classification"]["model"]["version"]


async def test_malformed_inputs_are_dead_lettered_and_good_tickets_behind_them_still_flow(
    kafka_settings: KafkaSettings, audit_database: str, model_cache: Path
) -> None:
    topics = await _topics(kafka_settings)
    bad = [
        (b"B-1", b"{this is not json"),
        (b"B-2", b'{"ticket_id": 7, "body": "wrong type"}'),
        (b"B-3", json.dumps({"ticket_id": "B-3", "body": "x" * 30_000}).encode()),
        (b"B-4", b'{"ticket_id": "B-4", "body": ""}'),
        (b"B-5", b'{"ticket_id": "B-5", "body": "\xff\xfe invalid utf-8"}'),
    ]
    good = [(b"G-1", json.dumps({"ticket_id": "G-1", "body": TICKETS[0][0]}).encode())]
    await publish(kafka_settings, topics.inbound, [*bad, *good])

    async with running(*_apps(kafka_settings, audit_database, model_cache)):
        dead = await read_until(kafka_settings, [topics.deadletter], lambda r: len(r) >= len(bad))
        queued = await read_until(kafka_settings, _queue_topics(topics), lambda r: len(r) >= 1)
        pool = await connect_pool(audit_database)
        try:
            store = PostgresAuditRepository(pool)
            recorded = await eventually(
                lambda: store.dead_letters(limit=20),
                until=lambda rows: len(rows) >= len(bad),
                what="dead letters in the trail",
            )
        finally:
            await pool.close()

    reasons = {json.loads(r.value or b"")["ticket_id"]: json.loads(r.value or b"") for r in dead}
    assert reasons["B-1"]["reason"] == "invalid_json"
    assert reasons["B-2"]["reason"] == "schema_violation"
    assert "ticket_id" in reasons["B-2"]["error_message"]
    assert "body" in reasons["B-3"]["error_message"]
    assert "empty" in reasons["B-4"]["error_message"]
    assert reasons["B-5"]["reason"] == "invalid_utf8"
    assert all(letter["stage"] == "classifier" for letter in reasons.values())
    assert {json.loads(r.value or b"")["ticket_id"] for r in queued} == {"G-1"}
    assert {row.ticket_id for row in recorded} == {"B-1", "B-2", "B-3", "B-4", "B-5"}


STRICT_POLICY = b"""
name: strict
version: "7"
approved_by: ops-lead
approved_at: "2026-11-25"
default_owner_team: support
defaults: {autonomous: 0.0, assist: 0.0, ambiguity_margin: 0.0}
kill_switch: false
categories:
  billing: {owner_team: billing-ops, never_autonomous: true}
  shipping: {owner_team: logistics, kill_switch: true}
rules:
  - id: vip-cap
    description: VIP customers get a person in the loop
    when: [{field: ticket.customer_tier, op: in, value: [vip]}]
    cap: assist
"""


async def test_policy_rules_decide_the_modes_on_the_live_pipeline(
    kafka_settings: KafkaSettings, audit_database: str, model_cache: Path
) -> None:
    topics = await _topics(kafka_settings)
    tickets: dict[str, tuple[dict[str, Any], str]] = {
        "P-billing": ({"body": TICKETS[0][0]}, "assist"),
        "P-shipping": ({"body": TICKETS[7][0]}, "human"),
        "P-vip": ({"body": TICKETS[5][0], "customer": {"tier": "vip"}}, "assist"),
        "P-plain": ({"body": TICKETS[5][0]}, "autonomous"),
    }
    await publish(
        kafka_settings,
        topics.inbound,
        [
            (tid.encode(), json.dumps({"ticket_id": tid, **fields}).encode())
            for tid, (fields, _) in tickets.items()
        ],
    )

    apps = _apps(kafka_settings, audit_database, model_cache, policy_yaml=STRICT_POLICY)
    async with running(*apps):
        decided = await read_until(
            kafka_settings, [topics.decided], lambda r: len(r) >= len(tickets)
        )

    modes = {(event := json.loads(r.value or b""))["ticket_id"]: event["mode"] for r in decided}
    assert modes == {tid: mode for tid, (_, mode) in tickets.items()}
    policy = json.loads(decided[0].value or b"")["policy"]
    assert (policy["name"], policy["version"], policy["approved_by"]) == ("strict", "7", "ops-lead")


async def test_two_classifier_copies_share_the_partitions_and_process_everything(
    kafka_settings: KafkaSettings, model_cache: Path
) -> None:
    topics = await _topics(kafka_settings)
    tickets = [(f"S-{i:03d}", TICKETS[i % len(TICKETS)][0]) for i in range(60)]
    settings = ClassifierSettings(
        kafka=kafka_settings, group_id=f"{topics.prefix}clf", model_cache_dir=model_cache
    )
    first = build_classifier(settings.model_copy(update={"instance_id": "clf-1"}))
    second = build_classifier(settings.model_copy(update={"instance_id": "clf-2"}))

    async with running(first, second):
        admin = AIOKafkaAdminClient(**admin_client_kwargs(kafka_settings))
        await admin.start()
        try:

            async def members() -> int:
                (response,) = await admin.describe_consumer_groups([settings.group_id])
                # Raw DescribeGroups response: (error, group_id, state, type, protocol, members)
                return len(response.groups[0][5])

            await eventually(members, until=lambda n: n == 2, what="two group members")
        finally:
            await admin.close()
        await publish(
            kafka_settings,
            topics.inbound,
            [
                (tid.encode(), json.dumps({"ticket_id": tid, "body": b}).encode())
                for tid, b in tickets
            ],
        )
        classified = await read_until(
            kafka_settings, [topics.classified], lambda r: len(r) >= len(tickets)
        )

    producers = Counter(json.loads(r.value or b"")["producer"]["instance"] for r in classified)
    assert set(producers) == {"clf-1", "clf-2"}, producers
    assert {json.loads(r.value or b"")["ticket_id"] for r in classified} == {t for t, _ in tickets}
