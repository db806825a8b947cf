"""`triageflow learn | compare | promote | rollback`: the model improvement loop.

`learn` turns feedback from the audit store into a new model version in the registry and,
with `--propose`, runs it in shadow (`model.candidate_set`). `compare` shows live and
shadow side by side on the same tickets. `promote` publishes `model.promoted` only when the
gate passes (or `--force`, recorded as forced); `rollback` publishes `model.rolled_back`.
Every change is a control event: classifiers apply it without a restart and the audit
consumer records it in the trail. The logic lives in `services.learning`.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from services.audit.repository import Pool
    from services.learning.compare import Comparison
    from services.learning.dataset import Judgement
    from services.learning.learner import Trainable, Trainer
    from services.learning.settings import LearnSettings
    from shared.contracts import ControlEvent, ProducerInfo

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

Since = Annotated[str, typer.Option(help="From: 30d, 12h, an ISO date or time.")]
Actor = Annotated[str | None, typer.Option(help="Who decides (default: the login name).")]
Reason = Annotated[str, typer.Option(help="Why, recorded in the trail.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Target = Annotated[
    float,
    typer.Option(
        min=0.5,
        max=1.0,
        help="Precision the thresholds promise: the candidate's bound must reach it "
        "(or live's own bound, if lower).",
    ),
]
DEFAULT_TARGET = 0.98  # services.policy.calibration.DEFAULT_TARGET, without importing scipy


def who(actor: str | None) -> str:
    """Return the actor recorded for an operator action."""
    from services.cli.settings import CliSettings

    return actor or CliSettings().actor or getpass.getuser()


def producer() -> ProducerInfo:
    """Return the producer info of CLI-published control events."""
    from shared.contracts import ProducerInfo
    from shared.service import triageflow_version

    return ProducerInfo(service="cli", version=triageflow_version(), instance="cli")


async def control_state(settings: LearnSettings) -> dict[str, ControlEvent]:
    """Return the latest control event of every key (the control topic read to its end)."""
    from shared.control import ControlReader

    reader = ControlReader(settings.kafka, on_change=lambda _event: None)
    await reader.start()
    try:
        return dict(reader.latest)
    finally:
        await reader.stop()


def live_version(state: dict[str, ControlEvent]) -> str | None:
    """Return the promoted version in force (None: the configured base model)."""
    from shared.contracts import MODEL_KEY, ModelPromoted, ModelRolledBack

    event = state.get(MODEL_KEY)
    return event.version if isinstance(event, ModelPromoted | ModelRolledBack) else None


def candidate_version(state: dict[str, ControlEvent]) -> str | None:
    """Return the version running in shadow, if any."""
    from shared.contracts import CANDIDATE_KEY, ModelCandidateSet

    event = state.get(CANDIDATE_KEY)
    return event.version if isinstance(event, ModelCandidateSet) else None


def base_model(settings: LearnSettings) -> Trainable:
    """Return the model the classifier uses before any promotion."""
    from services.classifier.backends.local import default_model, train_local_cached
    from services.classifier.data import EXAMPLES, shipped

    if settings.backend == "hybrid":
        from services.classifier.backends.hybrid import train_hybrid_cached

        source = settings.base_examples_csv or shipped(EXAMPLES)
        return train_hybrid_cached(source, settings.model_cache_dir)
    if settings.base_examples_csv is not None:
        return train_local_cached(settings.base_examples_csv, settings.model_cache_dir)
    return default_model(settings.model_cache_dir)


def trainer(settings: LearnSettings) -> Trainer:
    """Return how `learn` trains a candidate of the classifiers' backend."""
    from services.learning.learner import train_local

    if settings.backend == "local":
        return train_local
    from services.classifier.backends.hybrid import fit_hybrid

    cache = settings.model_cache_dir
    return lambda examples, seed: fit_hybrid(examples, seed=seed, cache_dir=cache)


def base_judgements(settings: LearnSettings) -> list[Judgement]:
    """Return the base examples as judgements."""
    from services.classifier.backends.local import read_examples
    from services.classifier.data import EXAMPLES, shipped
    from services.learning.dataset import base_judgements as of_examples

    source = settings.base_examples_csv or shipped(EXAMPLES)
    return of_examples(read_examples(source))


async def _pool() -> Pool:
    from services.audit.repository import connect_pool
    from shared.settings import DatabaseSettings

    return await connect_pool(DatabaseSettings().dsn(), min_size=1, max_size=1)


async def feedback_judgements(since: datetime, until: datetime) -> list[Judgement]:
    """Return what the judged decisions in [since, until) teach."""
    from services.audit.repository import judged_tickets
    from services.classifier.backends.base import ticket_text
    from services.learning.dataset import feedback_judgement

    pool = await _pool()
    try:
        rows = await judged_tickets(pool, since, until)
    finally:
        await pool.close()
    found = (
        feedback_judgement(
            text=ticket_text(r.subject, r.body),
            category=r.category,
            correct_category=r.correct_category,
            judged_correct=r.judged_correct,
            resolved=r.ever_resolved,
            judged_at=r.last_feedback_at,
            source=r.decision_event_id,
        )
        for r in rows
    )
    return [j for j in found if j is not None]


async def publish(settings: LearnSettings, *events: ControlEvent) -> None:
    """Publish control events in order."""
    from shared.control import publish_control

    for event in events:
        await publish_control(settings.kafka, event)


def _moment(text: str, now: datetime) -> datetime:
    from services.cli.report import parse_moment

    try:
        return parse_moment(text, now)
    except ValueError as error:
        err.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error


# ------------------------------------------------------------------------------ learn


def learn_command(
    since: Since = "90d",
    propose: Annotated[
        bool, typer.Option(help="Run the new version in shadow (model.candidate_set).")
    ] = False,
    holdout: Annotated[
        float, typer.Option(min=0.05, max=0.5, help="Share of feedback held out to evaluate.")
    ] = 0.2,
    actor: Actor = None,
    as_json: AsJson = False,
) -> None:
    """Build a new model version from base examples plus feedback; evaluate it; register it."""
    from services.learning.learner import learn
    from services.learning.registry import ModelRegistry
    from services.learning.settings import LearnSettings
    from shared.contracts import ModelCandidateSet, ModelEvidence

    settings = LearnSettings()
    now = datetime.now(UTC)
    registry = ModelRegistry(settings.registry_dir)
    state = asyncio.run(control_state(settings))
    current = live_version(state)
    cache = settings.model_cache_dir
    live = registry.load(current, cache_dir=cache) if current else base_model(settings)
    feedback = asyncio.run(feedback_judgements(_moment(since, now), now))
    outcome = learn(
        base_judgements(settings),
        feedback,
        live=live,
        holdout_share=holdout,
        train=trainer(settings),
    )
    manifest = registry.publish(
        outcome.model,
        outcome.dataset,
        parent_version=live.info.version,
        metrics=outcome.metrics(),
        now=now,
    )
    if propose:
        evaluation = outcome.evaluation
        event = ModelCandidateSet(
            event_id=str(uuid.uuid4()),
            producer=producer(),
            actor=who(actor),
            reason=f"learned from {len(feedback)} feedback judgements",
            version=manifest.version,
            evidence=ModelEvidence(
                tickets=evaluation.tickets,
                held_out_accuracy_live=evaluation.live_accuracy,
                held_out_accuracy_candidate=evaluation.candidate_accuracy,
            ),
        )
        asyncio.run(publish(settings, event))
    if as_json:
        out.print_json(json.dumps({**asdict(manifest), "proposed": propose}))
        return
    e = outcome.evaluation
    out.print(
        f"[green]version {manifest.version}[/green] in {settings.registry_dir}: "
        f"{manifest.examples} examples {manifest.counts_by_provenance}, parent "
        f"{manifest.parent_version}; held-out feedback {e.tickets} tickets: accuracy "
        f"live {_pct(e.live_accuracy)} → new {_pct(e.candidate_accuracy)}"
        + (" — [bold]running in shadow[/bold]" if propose else "")
    )


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


# ---------------------------------------------------------------------------- compare


async def comparison(since: datetime, until: datetime, candidate: str | None) -> Comparison:
    """Return live vs shadow on the decisions made in [since, until)."""
    from services.audit.repository import shadow_decisions
    from services.learning.compare import PairedDecision, compare

    pool = await _pool()
    try:
        rows = await shadow_decisions(pool, since, until, candidate_version=candidate)
    finally:
        await pool.close()
    return compare(
        [
            PairedDecision(
                mode=r.mode,
                category=r.category,
                shadow_mode=r.shadow_mode,
                shadow_category=r.shadow_category,
                judged_correct=r.judged_correct,
                correct_category=r.correct_category,
            )
            for r in rows
        ]
    )


def compare_command(
    since: Since = "7d",
    candidate: Annotated[
        str | None, typer.Option(help="Candidate version (default: the one in shadow).")
    ] = None,
    min_judged: Annotated[int, typer.Option(help="Judged decisions the gate needs.")] = 30,
    target: Target = DEFAULT_TARGET,
    as_json: AsJson = False,
) -> None:
    """Live vs shadow on the same tickets: mode mix, agreement, autonomous precision."""
    from services.learning.compare import gate
    from services.learning.settings import LearnSettings

    now = datetime.now(UTC)
    version = candidate or candidate_version(asyncio.run(control_state(LearnSettings())))
    result = asyncio.run(comparison(_moment(since, now), now, version))
    verdict = gate(result, min_judged=min_judged, target=target)
    if as_json:
        payload = {
            "candidate": version,
            **result.evidence().model_dump(mode="json"),
            "modes_live": result.modes_live,
            "modes_candidate": result.modes_candidate,
            "gate": {
                "passed": verdict.passed,
                "target": target,
                "reasons": list(verdict.reasons),
            },
        }
        out.print_json(json.dumps(payload))
        return
    table = Table(title=f"live vs candidate {version or '(any)'}: {result.tickets} tickets")
    table.add_column("")
    table.add_column("live", justify="right")
    table.add_column("candidate", justify="right")
    for mode in ("autonomous", "assist", "human"):
        table.add_row(mode, str(result.modes_live[mode]), str(result.modes_candidate[mode]))
    table.add_row(
        "autonomous share",
        _pct(result.live.autonomous_share),
        _pct(result.candidate.autonomous_share),
    )
    table.add_row("judged autonomous", str(result.live.judged), str(result.candidate.judged))
    table.add_row(
        "effective judged",
        f"{result.live.effective_judged:.1f}",
        f"{result.candidate.effective_judged:.1f}",
    )
    table.add_row(
        "precision (audit-weighted)",
        _pct(result.live.precision),
        _pct(result.candidate.precision),
    )
    table.add_row(
        "precision ≥ (95 %)",
        _pct(result.live.precision_lower),
        _pct(result.candidate.precision_lower),
    )
    out.print(table)
    out.print(f"agreement on category: {_pct(result.agreement)}")
    if verdict.passed:
        out.print("[green]gate: the candidate may be promoted[/green]")
    else:
        out.print("[yellow]gate refuses:[/yellow] " + "; ".join(verdict.reasons))


# ------------------------------------------------------------------ promote / rollback


def promote_command(
    reason: Reason,
    since: Since = "7d",
    version: Annotated[
        str | None, typer.Option(help="Version to promote (default: the one in shadow).")
    ] = None,
    min_judged: Annotated[int, typer.Option(help="Judged decisions the gate needs.")] = 30,
    target: Target = DEFAULT_TARGET,
    force: Annotated[
        bool, typer.Option(help="Promote although the gate refuses (recorded as forced).")
    ] = False,
    actor: Actor = None,
) -> None:
    """Promote the shadow candidate when the gate passes: every classifier switches to it."""
    from services.classifier.backends.hybrid import MODEL_NAME as HYBRID_MODEL
    from services.classifier.backends.local import MODEL_NAME as LOCAL_MODEL
    from services.learning.compare import gate
    from services.learning.registry import ModelRegistry, RegistryError
    from services.learning.settings import LearnSettings
    from shared.contracts import ModelCandidateSet, ModelPromoted

    settings = LearnSettings()
    now = datetime.now(UTC)
    state = asyncio.run(control_state(settings))
    chosen = version or candidate_version(state)
    if chosen is None:
        err.print("[red]no candidate in shadow; name one with --version[/red]")
        raise typer.Exit(1)
    try:
        manifest = ModelRegistry(settings.registry_dir).manifest(chosen)
    except RegistryError as error:
        err.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    runs = HYBRID_MODEL if settings.backend == "hybrid" else LOCAL_MODEL
    if manifest.model_name != runs:
        # Not even --force: the classifiers would serve another kind of model than configured.
        err.print(
            f"[red]{chosen} is a {manifest.model_name} model; the classifiers run "
            f"{settings.backend} ({runs}): set TRIAGEFLOW_LEARN_BACKEND to theirs[/red]"
        )
        raise typer.Exit(1)
    result = asyncio.run(comparison(_moment(since, now), now, chosen))
    verdict = gate(result, min_judged=min_judged, target=target)
    if not verdict.passed and not force:
        err.print("[red]gate refuses[/red]: " + "; ".join(verdict.reasons))
        raise typer.Exit(1)
    promoted = ModelPromoted(
        event_id=str(uuid.uuid4()),
        producer=producer(),
        actor=who(actor),
        reason=reason if verdict.passed else f"{reason} (forced: {'; '.join(verdict.reasons)})",
        version=chosen,
        previous_version=live_version(state),
        forced=not verdict.passed,
        evidence=result.evidence(),
    )
    stop_shadow = ModelCandidateSet(
        event_id=str(uuid.uuid4()),
        producer=producer(),
        actor=who(actor),
        reason=f"promoted {chosen}",
        causation_id=promoted.event_id,
        version=None,
    )
    asyncio.run(publish(settings, promoted, stop_shadow))
    out.print(
        f"[green]promoted {chosen}[/green]"
        + (" [red](forced)[/red]" if force and not verdict.passed else "")
    )


def rollback_command(
    reason: Reason,
    to: Annotated[
        str | None, typer.Option(help="Version to return to (default: the one it replaced).")
    ] = None,
    actor: Actor = None,
) -> None:
    """Return the live model to the previous version (or `--to`)."""
    from services.learning.settings import LearnSettings
    from shared.contracts import MODEL_KEY, ModelPromoted, ModelRolledBack

    settings = LearnSettings()
    state = asyncio.run(control_state(settings))
    current = state.get(MODEL_KEY)
    if not isinstance(current, ModelPromoted | ModelRolledBack) or current.version is None:
        err.print("[red]nothing to roll back: no promoted version is live[/red]")
        raise typer.Exit(1)
    previous = to or (current.previous_version if isinstance(current, ModelPromoted) else None)
    event = ModelRolledBack(
        event_id=str(uuid.uuid4()),
        producer=producer(),
        actor=who(actor),
        reason=reason,
        causation_id=current.event_id,
        version=previous,
        rolled_back_version=current.version,
    )
    asyncio.run(publish(settings, event))
    out.print(f"[green]rolled back {current.version}[/green] → {previous or 'the base model'}")
