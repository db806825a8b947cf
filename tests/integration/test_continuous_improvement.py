"""Continuous improvement on real Kafka and PostgreSQL: hot model swaps from the control
topic, shadow classification, audited control events, and the drift guard capping a
category whose feedback turns bad."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from faststream.asgi import AsgiFastStream

from services.audit.app import build_app as build_audit
from services.audit.migrate import apply_migrations
from services.audit.repository import connect_pool, control_events
from services.audit.settings import AuditSettings
from services.classifier.app import build_app as build_classifier
from services.classifier.backends.local import Examples, LocalModel, fit
from services.classifier.settings import ClassifierSettings
from services.cli.drift_cmd import check_once
from services.learning.dataset import Judgement, build_dataset
from services.learning.registry import ModelRegistry
from services.policy.app import build_app as build_policy
from services.policy.settings import PolicySettings
from shared.codec import encode
from shared.contracts import (
    CategoryReenabled,
    FeedbackGiven,
    FeedbackKind,
    Mode,
    ModelCandidateSet,
    ModelPromoted,
    ModelRolledBack,
    ProducerInfo,
    cap_key,
)
from shared.control import publish_control
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topics import Topics
from tests.factories import classified, decided, received
from tests.kafka_tools import Record, publish, read_until
from tests.pipeline_harness import create_topics
from tests.running import running
from tests.waiting import eventually

pytestmark = pytest.mark.integration

CLI = ProducerInfo(service="cli")
TEXTS = {
    "billing": ["charged twice on my card", "invoice amount is wrong", "refund my payment"],
    "login": ["cannot log in to my account", "password reset link broken", "locked out"],
}
_tickets = itertools.count()


def model(extra: str = "") -> LocalModel:
    """Return a tiny model; `extra` changes its training data, hence its version."""
    items = [(t + extra, label) for label, texts in TEXTS.items() for t in texts]
    return fit(Examples(tuple(t for t, _ in items), tuple(lb for _, lb in items), f"sha{extra}"))


def registered(registry: Path, live: LocalModel) -> str:
    """Register `live` as a version and return it."""
    dataset = build_dataset([Judgement("x", "billing", "base")])
    return (
        ModelRegistry(registry)
        .publish(live, dataset, parent_version=None, metrics={}, now=datetime.now(UTC))
        .version
    )


async def classify_one(kafka: KafkaSettings, topics: Topics) -> dict[str, object]:
    """Publish one new ticket and return its classification as JSON."""
    ticket = received(ticket_id=f"T-{next(_tickets)}", body="I was charged twice")
    await publish(kafka, topics.inbound, [(ticket.ticket_id.encode(), encode(ticket))])
    records = await read_until(kafka, [topics.classified], _has(ticket.ticket_id), timeout=30)
    return next(json.loads(r.value or b"") for r in records if r.key == ticket.ticket_id.encode())


def _has(ticket_id: str) -> Callable[[list[Record]], bool]:
    return lambda records: any(r.key == ticket_id.encode() for r in records)


async def migrated(url: str) -> str:
    """Apply the audit migrations to a fresh database."""
    await asyncio.to_thread(apply_migrations, url)
    return url


def audit_app(kafka: KafkaSettings, url: str) -> AsgiFastStream:
    """Return an audit consumer in the test's own group."""
    return build_audit(
        AuditSettings(
            kafka=kafka, group_id=f"{kafka.topic_prefix}aud", database=DatabaseSettings(url=url)
        )
    )


async def recorded_control(url: str) -> list[dict[str, object]]:
    """Return the control events the audit store recorded."""
    pool = await connect_pool(url, min_size=1, max_size=1)
    try:
        return await control_events(pool)
    finally:
        await pool.close()


async def test_classifiers_follow_promotions_rollbacks_and_shadow_candidates_all_audited(
    kafka_settings: KafkaSettings, fresh_database: str, tmp_path: Path
) -> None:
    topics = await create_topics(kafka_settings)
    url = await migrated(fresh_database)
    base, better = model(), model(" please")
    version = registered(tmp_path, better)
    promoted = ModelPromoted(event_id="p-1", producer=CLI, actor="ops", version=version)
    # Promoted before the classifier starts: start-up reads the control topic to its end.
    await publish_control(kafka_settings, promoted)
    classifier = build_classifier(
        ClassifierSettings(
            kafka=kafka_settings,
            group_id=f"{kafka_settings.topic_prefix}clf",
            model_registry_dir=tmp_path,
        ),
        backend=base,
    )
    async with running(classifier, audit_app(kafka_settings, url)):
        first = await classify_one(kafka_settings, topics)
        assert first["model"]["version"] == version  # type: ignore[index]

        await publish_control(
            kafka_settings,
            ModelRolledBack(
                event_id="r-1", producer=CLI, actor="ops", version=None, rolled_back_version=version
            ),
        )
        await eventually(
            lambda: classify_one(kafka_settings, topics),
            until=lambda c: c["model"]["version"] == base.info.version,  # type: ignore[index]
            what="the rolled-back (configured) model",
        )
        await publish_control(
            kafka_settings,
            ModelCandidateSet(event_id="c-1", producer=CLI, actor="learner", version=version),
        )
        shadowed = await eventually(
            lambda: classify_one(kafka_settings, topics),
            until=lambda c: c.get("shadow") is not None,
            what="a classification with a shadow candidate",
        )
        assert shadowed["shadow"]["model"]["version"] == version  # type: ignore[index]
        assert shadowed["model"]["version"] == base.info.version  # type: ignore[index]

        trail = await eventually(
            lambda: recorded_control(url), until=lambda rows: len(rows) == 3, what="3 audited"
        )
    assert [row["event_type"] for row in trail] == [
        "model.promoted",
        "model.rolled_back",
        "model.candidate_set",
    ]


def feedback(decision_id: str, ticket_id: str, *, right: bool) -> FeedbackGiven:
    """Return an agent's judgement: confirmed and resolved, or overridden."""
    if right:
        return FeedbackGiven(
            ticket_id=ticket_id,
            kind=FeedbackKind.RESOLUTION,
            decision_event_id=decision_id,
            actor="agent-1",
            resolved=True,
        )
    return FeedbackGiven(
        ticket_id=ticket_id,
        kind=FeedbackKind.OVERRIDE,
        decision_event_id=decision_id,
        actor="agent-1",
        correct_category="refunds",
    )


async def decide_one(kafka: KafkaSettings, topics: Topics) -> dict[str, object]:
    """Publish a confident billing classification and return the policy's decision."""
    ticket = received(ticket_id=f"C-{next(_tickets)}", body="I was charged twice")
    event = classified(ticket, category="billing", confidence=0.999, runner_up=0.0)
    await publish(kafka, topics.classified, [(ticket.ticket_id.encode(), encode(event))])
    records = await read_until(kafka, [topics.decided], _has(ticket.ticket_id), timeout=30)
    return next(json.loads(r.value or b"") for r in records if r.key == ticket.ticket_id.encode())


async def test_the_drift_guard_caps_a_category_whose_feedback_turns_bad_until_re_enabled(
    kafka_settings: KafkaSettings,
    fresh_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topics = await create_topics(kafka_settings)
    url = await migrated(fresh_database)
    monkeypatch.setenv("TRIAGEFLOW_KAFKA_BOOTSTRAP_SERVERS", kafka_settings.bootstrap_servers)
    monkeypatch.setenv("TRIAGEFLOW_KAFKA_TOPIC_PREFIX", kafka_settings.topic_prefix)
    monkeypatch.setenv("TRIAGEFLOW_DATABASE_URL", url)
    now = datetime.now(UTC)
    # 30 autonomous billing decisions in the last hour; agents override 12 of them.
    decisions = [
        decided(
            received(ticket_id=f"D-{i}", body=f"charge {i}"),
            category="billing",
            mode=Mode.AUTONOMOUS,
            at=now - timedelta(minutes=30),
        )
        for i in range(30)
    ]
    judgements = [feedback(d.event_id, d.ticket_id, right=i >= 12) for i, d in enumerate(decisions)]
    policy = build_policy(
        PolicySettings(kafka=kafka_settings, group_id=f"{kafka_settings.topic_prefix}pol")
    )
    async with running(policy, audit_app(kafka_settings, url)):
        assert (await decide_one(kafka_settings, topics))["mode"] == "autonomous"
        await publish(
            kafka_settings, topics.decided, [(d.ticket_id.encode(), encode(d)) for d in decisions]
        )
        await publish(
            kafka_settings, topics.feedback, [(f.ticket_id.encode(), encode(f)) for f in judgements]
        )

        async def check() -> list[str]:
            return await check_once(
                target=0.95,
                window=timedelta(hours=1),
                baseline=timedelta(hours=24),
                min_judged=20,
                override_jump=0.2,
                actor="drift-guard",
                now=datetime.now(UTC),
            )

        # The guard caps billing once the audit consumer has recorded the feedback.
        assert await eventually(check, what="the drift guard to cap billing") == ["billing"]
        capped = await eventually(
            lambda: decide_one(kafka_settings, topics),
            until=lambda d: d["mode"] == "assist",
            what="a capped billing decision",
        )
        rule = next(r for r in capped["rules_fired"] if r["rule_id"] == "drift-guard")  # type: ignore[attr-defined]
        assert "18/30 autonomous correct" in rule["reason"]
        assert await check() == []  # already capped: not capped twice

        await publish_control(
            kafka_settings,
            CategoryReenabled(
                event_id="re-1",
                key=cap_key("billing"),
                producer=CLI,
                actor="ops-lead",
                category="billing",
            ),
        )
        await eventually(
            lambda: decide_one(kafka_settings, topics),
            until=lambda d: d["mode"] == "autonomous",
            what="billing autonomous again",
        )
        trail = await eventually(
            lambda: recorded_control(url), until=lambda rows: len(rows) == 2, what="2 audited"
        )
    assert [(r["event_type"], r["category"]) for r in trail] == [
        ("category.capped", "billing"),
        ("category.reenabled", "billing"),
    ]
    assert trail[0]["evidence"]["triggers"] == ["precision", "override_jump"]  # type: ignore[index]
