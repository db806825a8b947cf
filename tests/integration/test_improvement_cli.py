"""`triageflow learn → compare → promote → rollback` through the CLI, on real Kafka and
PostgreSQL: feedback in the audit store becomes a registered version proposed for shadow
mode; the gate refuses it until shadow decisions are judged, then promotes it; rollback
returns to the base model. Every step is read back from the control topic."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from services.audit.migrate import apply_migrations
from services.audit.repository import (
    PostgresAuditRepository,
    connect_pool,
    control_row,
    to_row,
)
from services.cli.improve import control_state
from services.cli.main import app
from services.learning.registry import ModelRegistry
from services.learning.settings import LearnSettings
from shared.contracts import (
    CANDIDATE_KEY,
    MODEL_KEY,
    CategoryCapped,
    CategoryReenabled,
    ControlEvent,
    DriftEvidence,
    FeedbackGiven,
    FeedbackKind,
    Mode,
    ModelCandidateSet,
    ModelInfo,
    ModelPromoted,
    ModelRolledBack,
    ProducerInfo,
    ShadowDecision,
    TicketDecided,
    cap_key,
)
from shared.settings import KafkaSettings
from tests.factories import decided, received, routed
from tests.pipeline_harness import create_topics

pytestmark = pytest.mark.integration

BASE = {
    "billing": ["charged twice on my card", "invoice amount is wrong", "refund my payment"],
    "login": ["cannot log in to my account", "password reset link broken", "locked out"],
}
# What agents teach: a category the base examples do not have.
PLANS = [f"please upgrade my subscription plan {i} to the premium tier" for i in range(40)]
_offsets = itertools.count()


def cli(env: dict[str, str], *args: str) -> Any:
    """Run `triageflow ARGS` with `env`; return the result."""
    return CliRunner().invoke(app, list(args), env={**env, "COLUMNS": "200"})


async def store(url: str, events: list[BaseModel]) -> None:
    """Record events in the audit store as the audit consumer would."""
    pool = await connect_pool(url, min_size=1, max_size=1)
    try:
        rows = [to_row(e, "tickets.test", 0, next(_offsets)) for e in events]
        await PostgresAuditRepository(pool).insert(rows)
    finally:
        await pool.close()


def judged(decision: TicketDecided, *, correct_category: str | None) -> list[BaseModel]:
    """Return the decision, its routing and feedback: an override, or a resolution."""
    if correct_category is None:
        feedback = FeedbackGiven(
            ticket_id=decision.ticket_id,
            kind=FeedbackKind.RESOLUTION,
            decision_event_id=decision.event_id,
            actor="agent-1",
            resolved=True,
        )
    else:
        feedback = FeedbackGiven(
            ticket_id=decision.ticket_id,
            kind=FeedbackKind.OVERRIDE,
            decision_event_id=decision.event_id,
            actor="agent-1",
            correct_category=correct_category,
        )
    return [decision, routed(decision), feedback]


def taught(at: datetime) -> list[BaseModel]:
    """40 tickets the live model put in billing; agents said `plans`."""
    events: list[BaseModel] = []
    for i, text in enumerate(PLANS):
        ticket = received(ticket_id=f"L-{i}", body=text)
        decision = decided(ticket, category="billing", mode=Mode.ASSIST, at=at)
        events += [ticket, *judged(decision, correct_category="plans")]
    return events


def shadowed(version: str, at: datetime) -> list[BaseModel]:
    """Decisions with the candidate in shadow.

    20 the live side took alone, 5 of them audited (right); 60 it sent to agents, which
    the candidate would have taken alone, rightly. Each audited easy ticket stands for 4.
    """
    candidate = ModelInfo(name="tfidf-lr", version=version, backend="local")
    events: list[BaseModel] = []
    for i in range(80):
        easy = i < 20
        ticket = received(ticket_id=f"S-{i}", body=f"upgrade plan {i}")
        live = decided(
            ticket,
            category="plans" if easy else "billing",
            mode=Mode.AUTONOMOUS if easy else Mode.ASSIST,
            at=at,
        )
        shadow = ShadowDecision(
            mode=Mode.AUTONOMOUS,
            policy=live.policy,
            category="plans",
            confidence=0.99,
            model=candidate,
        )
        decision = live.model_copy(update={"shadow": shadow})
        if easy and i % 4:
            events += [ticket, decision, routed(decision)]
        else:
            events += [ticket, *judged(decision, correct_category=None if easy else "plans")]
    return events


def control(kafka: KafkaSettings) -> dict[str, ControlEvent]:
    """Return the latest control event per key."""
    return asyncio.run(control_state(LearnSettings(kafka=kafka)))


@pytest.fixture
def env(kafka_settings: KafkaSettings, fresh_database: str, tmp_path: Path) -> dict[str, str]:
    """CLI environment: fresh topics, a migrated database, a registry and base examples."""
    asyncio.run(create_topics(kafka_settings))
    apply_migrations(fresh_database)
    examples = tmp_path / "base.csv"
    examples.write_text(
        "text,label\n" + "".join(f"{t},{label}\n" for label, ts in BASE.items() for t in ts),
        encoding="utf-8",
    )
    return {
        "TRIAGEFLOW_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "TRIAGEFLOW_KAFKA_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "TRIAGEFLOW_DATABASE_URL": fresh_database,
        "TRIAGEFLOW_LEARN_REGISTRY_DIR": str(tmp_path / "registry"),
        "TRIAGEFLOW_LEARN_BASE_EXAMPLES_CSV": str(examples),
        "TRIAGEFLOW_LEARN_MODEL_CACHE_DIR": str(tmp_path / "cache"),
    }


def test_learn_compare_promote_and_rollback_run_the_loop_through_the_cli(
    env: dict[str, str], kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    url = env["TRIAGEFLOW_DATABASE_URL"]
    now = datetime.now(UTC)
    asyncio.run(store(url, taught(now - timedelta(hours=3))))

    learned = cli(env, "learn", "--since", "1d", "--propose", "--holdout", "0.3", "--json")
    assert learned.exit_code == 0, learned.output
    manifest = json.loads(learned.stdout)
    version = manifest["version"]
    assert manifest["proposed"] is True
    assert manifest["counts_by_provenance"]["base"] == 6
    assert manifest["counts_by_provenance"]["override"] > 20
    assert manifest["metrics"]["held_out_accuracy_live"] == 0.0  # it never knew `plans`
    assert manifest["metrics"]["held_out_accuracy_candidate"] > 0.9
    assert ModelRegistry(tmp_path / "registry").load(version).info.version == version
    proposed = control(kafka_settings)[CANDIDATE_KEY]
    assert isinstance(proposed, ModelCandidateSet)
    assert proposed.version == version

    # No shadow decision judged yet: the gate refuses.
    early = cli(env, "promote", "--reason", "too early", "--actor", "ops")
    assert early.exit_code == 1
    assert "gate refuses" in early.output
    assert MODEL_KEY not in control(kafka_settings)

    asyncio.run(store(url, shadowed(version, now - timedelta(hours=1))))
    compared = cli(env, "compare", "--since", "1d", "--target", "0.9", "--json")
    assert compared.exit_code == 0, compared.output
    figures = json.loads(compared.stdout)
    assert figures["candidate"] == version
    assert figures["tickets"] == 80
    assert (figures["live_judged"], figures["candidate_judged"]) == (5, 65)
    # 5 weights of 4 and 60 of 1: worth 80² / (5·16 + 60) ≈ 45.7 judgements, not 65.
    assert figures["candidate_effective_judged"] == pytest.approx(80**2 / 140)
    assert figures["candidate_precision"] == 1.0
    assert figures["candidate_precision_lower"] == pytest.approx(0.05 ** (140 / 80**2))
    assert figures["gate"]["passed"] is True, figures["gate"]
    table = cli(env, "compare", "--since", "1d", "--target", "0.9")
    assert "effective judged" in table.stdout
    assert "45.7" in table.stdout
    assert "gate: the candidate may be promoted" in table.stdout

    # A local version is not for hybrid classifiers, not even forced.
    other_kind = cli(
        {**env, "TRIAGEFLOW_LEARN_BACKEND": "hybrid"},
        *("promote", "--reason", "wrong kind", "--actor", "ops", "--force"),
    )
    assert other_kind.exit_code == 1
    assert "is a tfidf-lr model; the classifiers run hybrid" in other_kind.output
    assert MODEL_KEY not in control(kafka_settings)

    promoted = cli(env, "promote", "--reason", "automates more", "--actor", "ops")
    assert promoted.exit_code == 0, promoted.output
    state = control(kafka_settings)
    live = state[MODEL_KEY]
    assert isinstance(live, ModelPromoted)
    assert (live.version, live.previous_version, live.forced, live.actor) == (
        version,
        None,
        False,
        "ops",
    )
    assert live.evidence is not None
    assert live.evidence.candidate_judged == 65
    stopped = state[CANDIDATE_KEY]
    assert isinstance(stopped, ModelCandidateSet)
    assert stopped.version is None  # promoted: no longer in shadow

    rolled = cli(env, "rollback", "--reason", "complaints", "--actor", "ops")
    assert rolled.exit_code == 0, rolled.output
    back = control(kafka_settings)[MODEL_KEY]
    assert isinstance(back, ModelRolledBack)
    assert (back.version, back.rolled_back_version, back.causation_id) == (
        None,
        version,
        live.event_id,
    )


def controls(version: str, candidate: str) -> list[ControlEvent]:
    """Promote `version`, shadow `candidate`, cap billing and login, re-enable login."""
    cli_producer = ProducerInfo(service="cli")

    def evidence(correct: int) -> DriftEvidence:
        return DriftEvidence(
            target=0.95,
            window_start=datetime.now(UTC) - timedelta(hours=1),
            window_end=datetime.now(UTC),
            autonomous_judged=30,
            autonomous_correct=correct,
            precision_upper=0.77,
            override_rate=0.4,
            baseline_override_rate=0.02,
            triggers=("precision", "override_jump"),
        )

    return [
        ModelPromoted(event_id="p-1", producer=cli_producer, actor="ops", version=version),
        ModelCandidateSet(
            event_id="c-1", producer=cli_producer, actor="learner", version=candidate
        ),
        *(
            CategoryCapped(
                event_id=f"cap-{category}",
                key=cap_key(category),
                producer=cli_producer,
                actor="drift-guard",
                category=category,
                evidence=evidence(18),
            )
            for category in ("billing", "login")
        ),
        CategoryReenabled(
            event_id="re-login",
            key=cap_key("login"),
            producer=cli_producer,
            actor="ops-lead",
            category="login",
        ),
    ]


async def store_controls(url: str, events: list[ControlEvent]) -> None:
    """Record control events in the trail as the audit consumer does."""
    pool = await connect_pool(url, min_size=1, max_size=1)
    try:
        for event in events:  # one by one: their order is the order they happened
            row = control_row(event, "triageflow.control", 0, next(_offsets))
            await PostgresAuditRepository(pool).insert([row])
    finally:
        await pool.close()


def test_the_report_shows_the_models_in_force_and_the_active_drift_caps(
    fresh_database: str, tmp_path: Path
) -> None:
    apply_migrations(fresh_database)
    asyncio.run(store_controls(fresh_database, controls("0a1b2c3d", "4e5f6a7b")))
    env = {"TRIAGEFLOW_DATABASE_URL": fresh_database}

    text = cli(env, "report", "--since", "1d")
    as_json = cli(env, "report", "--since", "1d", "--json")
    page = tmp_path / "report.html"
    html = cli(env, "report", "--since", "1d", "--html", str(page))

    assert text.exit_code == 0, text.output
    assert "live model" in text.stdout
    assert "0a1b2c3d since" in text.stdout
    assert "shadow candidate" in text.stdout
    assert "4e5f6a7b since" in text.stdout
    assert "capped: billing" in text.stdout
    assert "18/30 autonomous correct; precision ≤ 0.770 < target 0.950" in text.stdout
    assert "capped: login" not in text.stdout  # re-enabled
    assert as_json.exit_code == 0, as_json.output
    state = json.loads(as_json.stdout)["controls"]
    assert state["live_model"]["version"] == "0a1b2c3d"
    assert state["candidate"]["version"] == "4e5f6a7b"
    assert [c["category"] for c in state["caps"]] == ["billing"]
    assert state["caps"][0]["triggers"] == ["precision", "override_jump"]
    assert html.exit_code == 0, html.output
    written = page.read_text(encoding="utf-8")
    assert "Capped: billing" in written
    assert "Capped: login" not in written
    assert "0a1b2c3d" in written
