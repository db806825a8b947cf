"""Outcome metrics on a real PostgreSQL: a scripted scenario with known figures.

Ten decisions in the window (two categories, two model versions, two policy versions,
known modes, over two days), one decision before it, their feedback, and dead letters.
Every expected figure below is worked out by hand from the table in `scenario_rows`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest
from pydantic import BaseModel

from services.audit.migrate import apply_migrations
from services.audit.repository import (
    AuditRow,
    MinutesPerTicket,
    ModeOutcome,
    OutcomeGroup,
    PostgresAuditRepository,
    PostgresOutcomeStore,
    connect_pool,
    to_row,
)
from shared.contracts import (
    FeedbackGiven,
    Mode,
    Stage,
    TicketDecided,
    TicketReceived,
    TicketRouted,
)
from shared.ids import derived_event_id
from tests.factories import dead_lettered, decided, received, routed

pytestmark = pytest.mark.integration

DAY1 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DAY2 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
BEFORE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SINCE = datetime(2026, 11, 23, tzinfo=UTC)
UNTIL = datetime(2026, 11, 25, tzinfo=UTC)
HOUR = timedelta(hours=1)

AUTO, ASSIST, HUMAN = Mode.AUTONOMOUS, Mode.ASSIST, Mode.HUMAN

# ticket: category, mode, model version, policy version, decided at
DECISIONS: dict[str, tuple[str, Mode, str, str, datetime]] = {
    "D1": ("billing", AUTO, "m1", "1", DAY1),
    "D2": ("billing", AUTO, "m1", "2", DAY1),
    "D3": ("billing", AUTO, "m2", "1", DAY2),
    "D4": ("billing", ASSIST, "m2", "2", DAY2),
    "D5": ("billing", HUMAN, "m1", "1", DAY1),
    "D6": ("shipping", AUTO, "m1", "2", DAY1),
    "D7": ("shipping", AUTO, "m2", "1", DAY2),
    "D8": ("shipping", ASSIST, "m1", "2", DAY1),
    "D9": ("shipping", HUMAN, "m2", "1", DAY2),
    "D10": ("shipping", AUTO, "m2", "2", DAY2),
    "D0": ("billing", AUTO, "m1", "1", BEFORE),  # outside the window
}

# ticket: feedback as (hours after the decision, kind, fields)
FEEDBACK: dict[str, list[tuple[float, str, dict[str, object]]]] = {
    # judged correct: resolved, happy customer
    "D1": [
        (1, "resolution", {"resolved": True, "handle_time_seconds": 120}),
        (2, "customer_reaction", {"csat": 5}),
    ],
    # category overridden
    "D2": [
        (1, "override", {"correct_category": "refunds"}),
        (2, "resolution", {"resolved": True, "handle_time_seconds": 300}),
    ],
    # a negative reply to the autonomous answer (the router escalates it, see
    # scenario_events); the agent then confirms the original queue: not an override
    "D3": [
        (1, "customer_reaction", {"negative_reply": True}),
        (2, "override", {"correct_queue": "billing"}),
    ],
    # the agent confirms the queue: not an override
    "D4": [
        (1, "override", {"correct_queue": "billing"}),
        (2, "resolution", {"resolved": True, "handle_time_seconds": 240}),
        (3, "customer_reaction", {"csat": 4}),
    ],
    # resolved, then reopened, and an unhappy customer
    "D5": [
        (1, "resolution", {"resolved": True, "handle_time_seconds": 600}),
        (2, "reopened", {}),
        (3, "customer_reaction", {"csat": 2}),
    ],
    # resolved, then reopened
    "D6": [
        (1, "resolution", {"resolved": True, "handle_time_seconds": 60}),
        (5, "reopened", {}),
    ],
    # the agent confirms the category; unresolved at first, resolved later (latest counts)
    "D7": [
        (1, "override", {"correct_category": "shipping"}),
        (2, "resolution", {"resolved": False, "handle_time_seconds": 100}),
        (3, "resolution", {"resolved": True, "handle_time_seconds": 50}),
        (4, "customer_reaction", {"csat": 4}),
    ],
    # queue overridden, not resolved
    "D8": [
        (1, "override", {"correct_queue": "returns"}),
        (2, "resolution", {"resolved": False, "handle_time_seconds": 420}),
    ],
    # feedback after the window still judges a decision made in it
    "D9": [
        (25, "customer_reaction", {"csat": 3}),
        (26, "resolution", {"resolved": True, "handle_time_seconds": 480}),
    ],
    "D0": [(1, "override", {"correct_category": "refunds"})],
}


def decision_of(ticket_id: str) -> tuple[TicketReceived, TicketDecided]:
    """Return the ticket and the decision on it, as the scenario table says."""
    category, mode, model, policy, at = DECISIONS[ticket_id]
    ticket = received(ticket_id, occurred_at=at.isoformat())
    decision = decided(
        ticket, category=category, mode=mode, model_version=model, policy_version=policy, at=at
    )
    return ticket, decision


def feedback_event(ticket_id: str, hours: float, kind: str, fields: dict[str, object]) -> BaseModel:
    """Return one feedback event on the decision of `ticket_id`."""
    _, decision = decision_of(ticket_id)
    return FeedbackGiven.model_validate(
        {
            "ticket_id": ticket_id,
            "kind": kind,
            "decision_event_id": decision.event_id,
            "actor": "customer" if kind == "customer_reaction" else "agent-7",
            "occurred_at": decision.occurred_at + hours * HOUR,
            **fields,
        }
    )


def escalation_of(feedback: BaseModel) -> TicketRouted:
    """Return the router's re-routing of a negative reaction to a human queue."""
    assert isinstance(feedback, FeedbackGiven)
    _, decision = decision_of(feedback.ticket_id)
    return routed(
        decision,
        "escalations",
        event_id=derived_event_id(feedback.event_id, "router"),
        causation_id=feedback.event_id,
        occurred_at=feedback.occurred_at,
        mode=Mode.HUMAN,
        human_handling=True,
        reason="negative_customer_reaction",
    )


def scenario_events() -> list[BaseModel]:
    """Return every event of the scenario (tickets, decisions, routing, feedback, dead letters)."""
    events: list[BaseModel] = []
    for ticket_id in DECISIONS:
        ticket, decision = decision_of(ticket_id)
        events += [ticket, decision, routed(decision)]
        events += [feedback_event(ticket_id, *item) for item in FEEDBACK.get(ticket_id, [])]
    negative = feedback_event("D3", *FEEDBACK["D3"][0])
    events.append(escalation_of(negative))
    events.append(
        FeedbackGiven(
            ticket_id="D404",
            kind="reopened",
            decision_event_id="no-such-decision",
            actor="agent-7",
            occurred_at=DAY2,
        )
    )
    events.append(dead_lettered("X1", stage=Stage.CLASSIFIER, offset=1, at=DAY2))
    events.append(
        dead_lettered(
            "X2", stage=Stage.POLICY, original_topic="tickets.classified", offset=2, at=DAY1
        )
    )
    return events


def scenario_rows() -> list[AuditRow]:
    """Return the scenario as audit rows."""
    return [to_row(e, "tickets.test", 0, offset) for offset, e in enumerate(scenario_events())]


@pytest.fixture(scope="module")
async def scenario_database(database_url: str) -> AsyncIterator[str]:
    """A new database, migrated, holding the scenario (one feedback event sent twice).

    Shared by this module's tests, which only read: one database instead of one per test.
    """
    name = f"test_outcomes_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"{database_url.rpartition('/')[0]}/{name}"
    try:
        await asyncio.to_thread(apply_migrations, url)
        pool = await connect_pool(url, min_size=1, max_size=1)
        try:
            audit = PostgresAuditRepository(pool)
            assert await audit.insert(scenario_rows()) == len(scenario_rows())
            again = feedback_event("D9", 25, "customer_reaction", {"csat": 3})
            assert await audit.insert([to_row(again, "tickets.test", 0, 99)]) == 0
        finally:
            await pool.close()
        yield url
    finally:
        admin = await asyncpg.connect(database_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def outcome_store(scenario_database: str) -> AsyncIterator[PostgresOutcomeStore]:
    """The outcome queries on the scenario's database."""
    pool = await connect_pool(scenario_database, min_size=1, max_size=2)
    try:
        yield PostgresOutcomeStore(pool)
    finally:
        await pool.close()


def figures(outcome: ModeOutcome) -> dict[str, object]:
    """Return the counts and rates of one row, rates rounded for comparison."""

    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    return {
        "decisions": outcome.decisions,
        "share": rounded(outcome.share),
        "judged": outcome.judged,
        "correct": outcome.judged_correct,
        "precision": rounded(outcome.judged_precision),
        "overridden": outcome.overridden,
        "override_rate": rounded(outcome.override_rate),
        "override_rate_all": rounded(outcome.override_rate_all),
        "negative": outcome.negative_reactions,
        "escalated": outcome.escalated,
        "resolution": (outcome.resolved, outcome.resolution_reported),
        "reopen": (outcome.reopened, outcome.reopen_base),
        "csat": (outcome.csat_responses, rounded(outcome.csat_mean)),
        "handle_s": (outcome.handle_time_reported, rounded(outcome.handle_time_mean_seconds)),
        "minutes_saved": outcome.minutes_saved,
    }


def by_key(groups: list[OutcomeGroup]) -> dict[str, OutcomeGroup]:
    """Return groups by key (one bucket per group expected)."""
    assert len({g.key for g in groups}) == len(groups)
    return {group.key: group for group in groups}


async def test_totals_of_the_window_match_the_hand_counted_figures(
    outcome_store: PostgresOutcomeStore,
) -> None:
    [total] = await outcome_store.metrics(SINCE, UNTIL)

    assert total.key == "all"
    assert figures(total.total) == {
        "decisions": 10,
        "share": 1.0,
        "judged": 9,
        "correct": 4,
        "precision": round(4 / 9, 4),
        "overridden": 2,
        "override_rate": round(2 / 9, 4),
        "override_rate_all": 0.2,
        "negative": 2,
        "escalated": 1,
        "resolution": (7, 8),
        "reopen": (2, 7),
        "csat": (5, 3.6),
        "handle_s": (8, 296.25),
        "minutes_saved": 51.0,
    }
    assert figures(total.mode("autonomous")) == {
        "decisions": 6,
        "share": 0.6,
        "judged": 5,
        "correct": 2,
        "precision": 0.4,
        "overridden": 1,
        "override_rate": 0.2,
        "override_rate_all": round(1 / 6, 4),
        "negative": 1,
        "escalated": 1,
        "resolution": (4, 4),
        "reopen": (1, 4),
        "csat": (2, 4.5),
        "handle_s": (4, 157.5),
        "minutes_saved": 45.0,
    }
    assert figures(total.mode("assist")) == {
        "decisions": 2,
        "share": 0.2,
        "judged": 2,
        "correct": 1,
        "precision": 0.5,
        "overridden": 1,
        "override_rate": 0.5,
        "override_rate_all": 0.5,
        "negative": 0,
        "escalated": 0,
        "resolution": (1, 2),
        "reopen": (0, 1),
        "csat": (1, 4.0),
        "handle_s": (2, 330.0),
        "minutes_saved": 6.0,
    }
    assert figures(total.mode("human")) == {
        "decisions": 2,
        "share": 0.2,
        "judged": 2,
        "correct": 1,
        "precision": 0.5,
        "overridden": 0,
        "override_rate": 0.0,
        "override_rate_all": 0.0,
        "negative": 1,
        "escalated": 0,
        "resolution": (2, 2),
        "reopen": (1, 2),
        "csat": (2, 2.5),
        "handle_s": (2, 540.0),
        "minutes_saved": 0.0,
    }


async def test_figures_by_category(outcome_store: PostgresOutcomeStore) -> None:
    groups = by_key(await outcome_store.metrics(SINCE, UNTIL, group_by="category"))

    assert sorted(groups) == ["billing", "shipping"]
    billing, shipping = groups["billing"], groups["shipping"]
    assert [billing.mode(m).decisions for m in ("autonomous", "assist", "human")] == [3, 1, 1]
    assert [shipping.mode(m).decisions for m in ("autonomous", "assist", "human")] == [3, 1, 1]
    assert (billing.mode("autonomous").judged_correct, billing.mode("autonomous").judged) == (1, 3)
    assert (shipping.mode("autonomous").judged_correct, shipping.mode("autonomous").judged) == (
        1,
        2,
    )
    assert figures(billing.total) | {"share": None} == {
        "decisions": 5,
        "share": None,
        "judged": 5,
        "correct": 2,
        "precision": 0.4,
        "overridden": 1,
        "override_rate": 0.2,
        "override_rate_all": 0.2,
        "negative": 2,
        "escalated": 1,
        "resolution": (4, 4),
        "reopen": (1, 4),
        "csat": (3, round(11 / 3, 4)),
        "handle_s": (4, 315.0),
        "minutes_saved": 25.5,
    }
    assert figures(shipping.total) | {"share": None} == {
        "decisions": 5,
        "share": None,
        "judged": 4,
        "correct": 2,
        "precision": 0.5,
        "overridden": 1,
        "override_rate": 0.25,
        "override_rate_all": 0.2,
        "negative": 0,
        "escalated": 0,
        "resolution": (3, 4),
        "reopen": (1, 3),
        "csat": (2, 3.5),
        "handle_s": (4, 277.5),
        "minutes_saved": 25.5,
    }


async def test_a_negative_reaction_to_an_autonomous_answer_counts_against_its_category(
    outcome_store: PostgresOutcomeStore,
) -> None:
    billing = by_key(await outcome_store.metrics(SINCE, UNTIL, group_by="category"))["billing"]

    # D3's feedback is the negative reply and a confirmation of its queue (the escalation
    # to a human queue is no override): judged, and not correct.
    autonomous = billing.mode("autonomous")
    assert (autonomous.negative_reactions, autonomous.escalated) == (1, 1)
    assert (autonomous.judged_correct, autonomous.judged) == (1, 3)
    assert autonomous.overridden == 1  # D2's category; not D3


async def test_figures_by_model_version(outcome_store: PostgresOutcomeStore) -> None:
    groups = by_key(await outcome_store.metrics(SINCE, UNTIL, group_by="model"))

    assert sorted(groups) == ["tfidf-lr@m1", "tfidf-lr@m2"]
    m1, m2 = groups["tfidf-lr@m1"], groups["tfidf-lr@m2"]
    assert [m1.mode(m).decisions for m in ("autonomous", "assist", "human")] == [3, 1, 1]
    assert [m2.mode(m).decisions for m in ("autonomous", "assist", "human")] == [3, 1, 1]
    assert (m1.mode("autonomous").judged_correct, m1.mode("autonomous").judged) == (1, 3)
    assert (m2.mode("autonomous").judged_correct, m2.mode("autonomous").judged) == (1, 2)
    assert (m1.total.judged_correct, m1.total.judged, m1.total.overridden) == (1, 5, 2)
    assert (m2.total.judged_correct, m2.total.judged, m2.total.overridden) == (3, 4, 0)
    assert m2.total.override_rate == 0.0
    assert (m1.total.negative_reactions, m2.total.negative_reactions) == (1, 1)


async def test_figures_by_policy_version(outcome_store: PostgresOutcomeStore) -> None:
    groups = by_key(await outcome_store.metrics(SINCE, UNTIL, group_by="policy"))

    assert sorted(groups) == ["default@1", "default@2"]
    p1, p2 = groups["default@1"], groups["default@2"]
    assert [p1.mode(m).decisions for m in ("autonomous", "assist", "human")] == [3, 0, 2]
    assert [p2.mode(m).decisions for m in ("autonomous", "assist", "human")] == [3, 2, 0]
    assert p1.mode("autonomous").judged_precision == pytest.approx(2 / 3)
    assert p2.mode("autonomous").judged_precision == 0.0
    assert p1.mode("assist").share == 0.0  # no assist decision under policy 1: no row
    assert (p1.total.judged_correct, p1.total.judged, p1.total.overridden) == (3, 5, 0)
    assert (p2.total.judged_correct, p2.total.judged, p2.total.overridden) == (1, 4, 2)
    assert p2.total.override_rate == 0.5
    assert p2.total.override_rate_all == 0.4
    assert p1.total.minutes_saved == 22.5
    assert p2.total.minutes_saved == 28.5


async def test_daily_buckets_show_each_days_mode_mix_precision_and_overrides(
    outcome_store: PostgresOutcomeStore,
) -> None:
    days = await outcome_store.metrics(SINCE, UNTIL, bucket=timedelta(days=1))

    assert [day.bucket_start for day in days] == [SINCE, SINCE + timedelta(days=1)]
    first, second = days
    assert [first.mode(m).decisions for m in ("autonomous", "assist", "human")] == [3, 1, 1]
    assert first.mode("autonomous").judged_precision == pytest.approx(1 / 3)
    assert (first.total.overridden, first.total.judged) == (2, 5)
    assert [second.mode(m).decisions for m in ("autonomous", "assist", "human")] == [3, 1, 1]
    assert second.mode("autonomous").judged_precision == 0.5
    assert (second.total.overridden, second.total.judged) == (0, 4)


async def test_the_window_selects_decisions_by_when_they_were_made(
    outcome_store: PostgresOutcomeStore,
) -> None:
    [day2] = await outcome_store.metrics(SINCE + timedelta(days=1), UNTIL)
    [everything] = await outcome_store.metrics(BEFORE, UNTIL)
    nothing = await outcome_store.metrics(UNTIL, UNTIL + timedelta(days=7))

    assert day2.total.decisions == 5
    assert everything.total.decisions == 11
    assert (everything.total.overridden, everything.total.judged) == (3, 10)
    assert nothing == []


async def test_dead_letter_rate_counts_malformed_inbound_messages_as_inbound(
    outcome_store: PostgresOutcomeStore,
) -> None:
    window = await outcome_store.dead_letter_rate(SINCE, UNTIL)
    day2 = await outcome_store.dead_letter_rate(SINCE + timedelta(days=1), UNTIL)

    assert (window.dead_letters, window.inbound_messages, window.inbound_dead_letters) == (
        2,
        11,
        1,
    )
    assert window.rate == pytest.approx(2 / 11)
    assert dict(window.by_stage) == {"classifier": 1, "policy": 1}
    assert (day2.dead_letters, day2.inbound_messages) == (1, 6)


async def test_report_gathers_groupings_versions_and_unmatched_feedback(
    outcome_store: PostgresOutcomeStore,
) -> None:
    report = await outcome_store.report(
        SINCE,
        UNTIL,
        groupings=("category", "model", "policy"),
        bucket=timedelta(days=1),
        minutes=MinutesPerTicket(human=10, assist=4, autonomous=1),
    )

    assert report.total.total.decisions == 10
    # 6 autonomous x (10 - 1) + 2 assist x (10 - 4)
    assert report.total.total.minutes_saved == 66.0
    assert sorted(report.groups) == ["category", "model", "policy"]
    assert len(report.timeline) == 2
    assert sorted({g.key for g in report.timeline_by_category}) == ["billing", "shipping"]
    assert report.unmatched_feedback == 1
    assert [(v.kind, v.key, v.decisions) for v in report.versions] == [
        ("model", "tfidf-lr@m1", 5),
        ("model", "tfidf-lr@m2", 5),
        ("policy", "default@1", 5),
        ("policy", "default@2", 5),
    ]
    assert report.versions[2].detail == "sha256 sha-of-polic, approved by ops-lead"


async def test_an_unknown_grouping_is_refused_by_the_database_too(
    outcome_store: PostgresOutcomeStore, scenario_database: str
) -> None:
    with pytest.raises(ValueError, match="group_by"):
        await outcome_store.metrics(SINCE, UNTIL, group_by="team")
    connection = await asyncpg.connect(scenario_database)
    try:
        with pytest.raises(asyncpg.InvalidParameterValueError, match="group_by"):
            await connection.fetch(
                "SELECT * FROM audit.outcome_metrics($1, $2, 'team')", SINCE, UNTIL
            )
    finally:
        await connection.close()


async def test_the_reader_role_may_query_every_outcome_view_and_function(
    scenario_database: str,
) -> None:
    name, password = f"tf_outcomes_reader_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    admin = await asyncpg.connect(scenario_database)
    try:
        await admin.execute(
            f"CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE triageflow_audit_reader"
        )
        host = scenario_database.split("@", 1)[1]
        reader = await asyncpg.connect(f"postgresql://{name}:{password}@{host}")
        try:
            assert await reader.fetchval("SELECT count(*) FROM audit.decisions") == 11
            assert await reader.fetchval("SELECT count(*) FROM audit.feedback") == 24
            assert await reader.fetchval("SELECT count(*) FROM audit.decision_outcomes") == 11
            precision = await reader.fetchval(
                "SELECT judged_precision FROM audit.outcome_metrics($1, $2) "
                "WHERE mode = 'autonomous'",
                SINCE,
                UNTIL,
            )
            assert precision == Decimal("0.4")
            rate = await reader.fetchrow(
                "SELECT * FROM audit.dead_letter_rate($1, $2)", SINCE, UNTIL
            )
            assert rate is not None
            assert (rate["dead_letters"], rate["inbound_messages"]) == (2, 11)
        finally:
            await reader.close()
    finally:
        await admin.execute(f"DROP ROLE IF EXISTS {name}")
        await admin.close()
