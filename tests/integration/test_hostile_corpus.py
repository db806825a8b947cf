"""The hostile corpus through the real pipeline: every case accounted for, none lost.

Every message of tests/hostile/corpus.jsonl is published to the inbound topic of a running
classifier, policy, router and audit consumer. Each must end exactly as the corpus says:
dead-lettered with its reason and its bytes kept whole, or routed to a human with the rule
that decided it and the reason it recorded. The benign variants (tests/hostile/benign.jsonl)
go through the same run and must flow without a human being forced and be recorded
unchanged (a guard against over-blocking). The services must keep going (good tickets
published after the corpus, one per partition, still flow), and the figures are printed
and written to bench/hostile-summary.json.
"""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from services.audit.migrate import apply_migrations
from services.audit.repository import connect_pool
from shared.codec import InvalidMessage
from shared.kafka import producer_kwargs
from shared.settings import KafkaSettings
from shared.stage import MAX_KEPT_BYTES
from tests.hostile.corpus import BENIGN, Case, read_corpus, show
from tests.pipeline_harness import create_topics, pipeline_apps
from tests.running import running
from tests.waiting import eventually

pytestmark = pytest.mark.integration

SUMMARY = Path(__file__).resolve().parents[2] / "bench" / "hostile-summary.json"
GOOD_BODY = "I was charged twice for my order last week, please refund the duplicate payment."

_RECORDED = """
SELECT ticket_id, event_type, payload
FROM audit.trail_events
WHERE event_type IN ('ticket.received', 'ticket.decided', 'ticket.routed', 'ticket.dead_lettered')
"""


@pytest.fixture
async def audit_database(fresh_database: str) -> str:
    """A fresh, migrated audit database."""
    apply_migrations(fresh_database)
    return fresh_database


@pytest.fixture
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache shared by the tests of the session (training happens once)."""
    return tmp_path_factory.getbasetemp() / "models"


@dataclass
class Trail:
    """What the audit store holds about one ticket id."""

    received: list[dict[str, Any]] = field(default_factory=list)
    decided: list[dict[str, Any]] = field(default_factory=list)
    routed: list[dict[str, Any]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)


Outbound = tuple[bytes | None, bytes | None, tuple[tuple[str, bytes], ...], int | None]


async def _publish(kafka: KafkaSettings, topic: str, records: list[Outbound]) -> None:
    """Publish (key, value, headers, partition) records exactly as given; wait for acks."""
    producer = AIOKafkaProducer(**producer_kwargs(kafka))
    await producer.start()
    try:
        sent = [
            await producer.send(
                topic, value=value, key=key, headers=list(headers), partition=partition
            )
            for key, value, headers, partition in records
        ]
        for future in sent:
            await future
    finally:
        await producer.stop()


async def _trails(database_url: str) -> dict[str, Trail]:
    pool = await connect_pool(database_url, min_size=1, max_size=1)
    try:
        rows = await pool.fetch(_RECORDED)
    finally:
        await pool.close()
    trails: dict[str, Trail] = defaultdict(Trail)
    for row in rows:
        kind = str(row["event_type"]).removeprefix("ticket.").replace("dead_lettered", "dead")
        getattr(trails[row["ticket_id"]], kind).append(dict(row["payload"]))
    return trails


@dataclass
class Progress:
    """The trail so far, and the ticket ids that have not reached their end yet."""

    missing: list[str]
    trails: dict[str, Trail] = field(repr=False)


async def _progress(database_url: str, cases: dict[str, Case], good: list[str]) -> Progress:
    trails = await _trails(database_url)

    def ended(tid: str) -> bool:
        case = cases.get(tid)
        if case is not None and case.dead_letter_reason is not None:
            return len(trails[tid].dead) >= case.copies
        return bool(trails[tid].routed)

    return Progress([tid for tid in [*cases, *good] if not ended(tid)], trails)


def _storable(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def _check(case: Case, trail: Trail) -> tuple[str, list[str]]:
    """Return the case's outcome label and every way it differs from the expectation."""
    problems: list[str] = []
    if case.dead_letter_reason is not None:
        reasons = sorted({d["reason"] for d in trail.dead})
        if len(trail.dead) != case.copies:
            problems.append(f"{len(trail.dead)} dead letters for {case.copies} records")
        if reasons != [case.dead_letter_reason]:
            problems.append(f"dead-lettered as {reasons}")
        value = case.value or b""
        for letter in trail.dead:
            kept = base64.b64decode(letter["original_bytes_b64"])
            # Beyond what one Kafka message holds, the first MAX_KEPT_BYTES are kept.
            whole = kept == value and not letter["original_truncated"]
            cut = letter["original_truncated"] and kept == value[:MAX_KEPT_BYTES]
            if not (whole or cut) or letter["original_size"] != len(value):
                problems.append("the dead letter does not keep the original bytes")
            if letter["stage"] != "classifier" or not letter["error_message"]:
                problems.append(f"dead letter from {letter['stage']} without a message")
        if trail.routed or trail.received:
            problems.append("an invalid message was also routed or recorded as a ticket")
        return f"dead_letter:{','.join(reasons)}", problems

    if len(trail.routed) != 1 or len(trail.decided) != 1 or len(trail.received) != 1:
        problems.append(
            f"{len(trail.received)} received, {len(trail.decided)} decided, "
            f"{len(trail.routed)} routed: a trail must have one of each"
        )
    if not trail.routed or not trail.decided:
        return "missing", problems
    decided, routed = trail.decided[0], trail.routed[0]
    rules = [rule["rule_id"] for rule in decided["rules_fired"]]
    if case.expect == "human" and (decided["mode"] != "human" or not routed["human_handling"]):
        problems.append(f"mode {decided['mode']} (rules {rules}), expected human")
    if case.expect_rule is not None and case.expect_rule not in rules:
        problems.append(f"rule {case.expect_rule} did not fire (rules {rules})")
    elif case.expect_reason is not None:
        reason = next(
            r["reason"] for r in decided["rules_fired"] if r["rule_id"] == case.expect_rule
        )
        if case.expect_reason not in reason:
            problems.append(f"{case.expect_reason!r} not in the recorded reason {reason!r}")
    if case.expect == "flows" and (decided["mode"] == "human" or "unusual-input" in rules):
        problems.append(f"a benign variant was held back: {decided['mode']} (rules {rules})")
    sent = case.decodes()
    assert not isinstance(sent, InvalidMessage)
    if trail.received and trail.received[0].get("body") != _storable(sent.body):
        problems.append("the recorded body differs from the body sent")
    label = decided["mode"]
    if decided["mode"] == "human":
        label = f"human:{min(rules, key=_weight, default='?')}"
    return label, problems


# The reason a human route is counted under when several rules sent it there.
_FIRST_REASONS = (
    "safety.injection",
    "unsupported-language",
    "unusual-input",
    "safety.out_of_scope",
)


def _weight(rule_id: str) -> tuple[int, str]:
    if rule_id in _FIRST_REASONS:
        return _FIRST_REASONS.index(rule_id), rule_id
    return len(_FIRST_REASONS) + rule_id.startswith("threshold."), rule_id


async def test_every_hostile_case_is_dead_lettered_or_routed_with_its_reason_and_none_is_lost(
    kafka_settings: KafkaSettings,
    audit_database: str,
    model_cache: Path,
    request: pytest.FixtureRequest,
) -> None:
    cases = read_corpus()
    benign = read_corpus(BENIGN)
    by_ticket = {case.ticket_id(): case for case in [*cases, *benign]}
    topics = await create_topics(kafka_settings)
    records: list[Outbound] = [
        (c.key, c.value, c.headers, None) for c in [*cases, *benign] for _ in range(c.copies)
    ]
    good = [f"hostile-trailing-good-{p}" for p in range(kafka_settings.partitions)]
    behind: list[Outbound] = [
        (tid.encode(), json.dumps({"ticket_id": tid, "body": GOOD_BODY}).encode(), (), p)
        for p, tid in enumerate(good)
    ]

    async with running(*pipeline_apps(kafka_settings, audit_database, model_cache)):
        await _publish(kafka_settings, topics.inbound, records)
        # One good ticket per partition, after every hostile record: each partition's
        # consumers must have got past all of them for these to be routed.
        await _publish(kafka_settings, topics.inbound, behind)
        progress = await eventually(
            lambda: _progress(audit_database, by_ticket, good),
            until=lambda p: not p.missing,
            timeout=240,
            interval=0.5,
            what="every hostile case and the good tickets behind them in the trail",
        )
    trails = progress.trails

    outcomes: Counter[str] = Counter()
    benign_outcomes: Counter[str] = Counter()
    by_category: dict[str, Counter[str]] = defaultdict(Counter)
    failures = []
    for tid, case in by_ticket.items():
        label, problems = _check(case, trails[tid])
        (benign_outcomes if case.expect == "flows" else outcomes)[label] += 1
        by_category[case.category][label] += 1
        failures += [f"{case.id} ({case.note}): {p}" for p in problems]
    summary = {
        "cases": len(cases),
        "benign_variants": len(benign),
        "records_published": len(records),
        "outcomes": dict(outcomes.most_common()),
        "benign_outcomes": dict(benign_outcomes.most_common()),
        "by_category": {k: dict(v.most_common()) for k, v in sorted(by_category.items())},
        "failures": failures,
    }
    SUMMARY.parent.mkdir(exist_ok=True)
    SUMMARY.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    show(
        request,
        [
            f"hostile corpus: {len(cases)} cases and {len(benign)} benign variants, "
            f"{len(records)} records; {len(failures)} unexpected; figures in {SUMMARY}",
            *(f"  {count:4d}  {label}" for label, count in outcomes.most_common()),
            "benign variants:",
            *(f"  {count:4d}  {label}" for label, count in benign_outcomes.most_common()),
        ],
    )

    assert failures == [], "\n".join(failures)
    assert all(len(trails[g].routed) == 1 for g in good), "good tickets behind the corpus"
