"""`triageflow calibrate`: per-category autonomous thresholds with a precision guarantee.

Labelled examples come from the audit store (judged decisions, `audit.decision_outcomes`)
or from a labelled CSV scored by a local model trained on another CSV. The method is in
`services.policy.calibration` (docs/calibration.md); this module gathers the examples,
writes the proposal and renders a table.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from services.audit.repository import LabelledDecision
    from services.policy.calibration import CalibrationResult, LabelledExample

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def calibrate_command(
    target: Annotated[
        float, typer.Option(min=0.5, max=0.9999, help="Precision autonomous decisions must keep.")
    ] = 0.98,
    confidence: Annotated[
        float, typer.Option(min=0.5, max=0.9999, help="Probability that the guarantee holds.")
    ] = 0.95,
    since: Annotated[
        str, typer.Option(help="Decisions made since: 30d, 12h, an ISO date or time.")
    ] = "30d",
    until: Annotated[str, typer.Option(help="Decisions made before this moment.")] = "now",
    model: Annotated[
        str | None,
        typer.Option(help="Only this model (name@version); default: the latest one seen."),
    ] = None,
    base_policy: Annotated[
        Path | None,
        typer.Option(
            "--base-policy", help="Policy to start from (default: shipped).", dir_okay=False
        ),
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the proposal here (default: stdout).")
    ] = None,
    from_csv: Annotated[
        Path | None,
        typer.Option("--from-csv", help="Labelled CSV (text,label) instead of the audit store."),
    ] = None,
    train: Annotated[
        Path | None,
        typer.Option(help="Labelled CSV to train the local model that scores --from-csv."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split that picks each start.")] = 0,
) -> None:
    """Propose per-category autonomous thresholds that keep precision >= target, surely."""
    from services.cli.report import parse_moment
    from services.policy import PolicyError, load_default_policy, load_policy
    from services.policy.calibration import calibrate, grid_for, propose_policy

    try:
        base = load_policy(base_policy) if base_policy else load_default_policy()
        raw = base_policy.read_bytes() if base_policy else _default_policy_bytes()
    except (PolicyError, OSError) as error:
        err.print(f"[red]cannot read the base policy[/red]: {error}", highlight=False)
        raise typer.Exit(1) from error
    if from_csv is not None:
        if train is None:
            err.print("--from-csv needs --train (the CSV the scoring model learns from)")
            raise typer.Exit(2)
        examples, provenance = _from_csv(from_csv, train)
    else:
        now = datetime.now(UTC)
        try:
            start, end = parse_moment(since, now), parse_moment(until, now)
        except ValueError as error:
            err.print(f"[red]bad window[/red]: {error}")
            raise typer.Exit(2) from error
        examples, provenance = _from_audit(start, end, model)
    categories = set(base.policy.categories) | {e.category for e in examples}
    results = calibrate(
        examples,
        target=target,
        confidence=confidence,
        grids={name: grid_for(base.policy, name) for name in categories},
        categories=categories,
        seed=seed,
    )
    proposal = propose_policy(raw, results, provenance=provenance, source=base.source)
    err.print(results_table(results, target=target, confidence=confidence))
    if out_file is None:
        out.print(proposal.decode("utf-8"), markup=False, highlight=False, end="")
    else:
        out_file.write_bytes(proposal)
        err.print(f"proposal written to {out_file} (approved_by: PENDING; review it)")


def _default_policy_bytes() -> bytes:
    from importlib import resources

    return resources.files("services.policy").joinpath("default_policy.yaml").read_bytes()


def _from_audit(
    since: datetime, until: datetime, model: str | None
) -> tuple[list[LabelledExample], str]:
    """Return the judged decisions of one model in the window, and where they came from."""
    from services.audit.repository import connect_pool, labelled_decisions
    from shared.settings import DatabaseSettings

    async def fetch() -> list[LabelledDecision]:
        pool = await connect_pool(DatabaseSettings().dsn(), min_size=1, max_size=1)
        try:
            return await labelled_decisions(pool, since, until, model=model)
        finally:
            await pool.close()

    import asyncpg

    try:
        decisions = asyncio.run(fetch())
    except asyncpg.UndefinedTableError as error:
        err.print(
            f"[red]the audit store lacks its outcome views[/red] ({error}): run "
            "`triageflow db migrate`"
        )
        raise typer.Exit(1) from error
    chosen = model or (decisions[-1].model if decisions else None)
    others = Counter(d.model for d in decisions if d.model != chosen)
    if others:
        # One model's confidences say nothing about another's: mixing them breaks the
        # exchangeability the guarantee rests on.
        skipped = ", ".join(f"{name} ({n})" for name, n in others.most_common())
        err.print(f"[yellow]calibrating {chosen} only[/yellow]; left out: {skipped}")
    examples = [_example(d) for d in decisions if d.model == chosen]
    window = f"{since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC"
    return examples, f"{len(examples)} judged decisions of model {chosen}, {window}"


def _example(decision: LabelledDecision) -> LabelledExample:
    from services.policy.calibration import LabelledExample

    return LabelledExample(decision.category, decision.confidence, decision.correct)


def _from_csv(path: Path, train: Path) -> tuple[list[LabelledExample], str]:
    """Return the rows of `path` scored by a local model trained on `train`."""
    from services.classifier.backends.local import ExamplesError, fit, read_examples
    from services.policy.calibration import LabelledExample

    try:
        model = fit(read_examples(train))
        rows = read_examples(path)
    except ExamplesError as error:
        err.print(f"[red]cannot calibrate[/red]: {error}", highlight=False)
        raise typer.Exit(1) from error
    predictions = model.predict(list(rows.texts))
    examples = [
        LabelledExample(p.category, p.confidence, p.category == label)
        for p, label in zip(predictions, rows.labels, strict=True)
        # The policy sends out-of-scope tickets to a human whatever their confidence.
        if not p.out_of_scope
    ]
    provenance = (
        f"{len(examples)} rows of {path.name} (out of scope left out), scored by "
        f"{model.info.name}@{model.info.version} trained on {train.name}"
    )
    return examples, provenance


def results_table(
    results: Mapping[str, CalibrationResult], *, target: float, confidence: float
) -> Table:
    """Render the calibration of every category as a table."""
    table = Table(title=f"autonomous precision >= {target:.1%} at {confidence:.0%} confidence")
    table.add_column("category")
    for name in ("judged", "threshold", "at or above", "errors", "precision >="):
        table.add_column(name, justify="right")
    table.add_column("why")
    for name, result in sorted(results.items()):
        table.add_row(
            name,
            str(result.examples),
            "–" if result.threshold is None else f"{result.threshold:g}",
            str(result.selected),
            str(result.errors),
            f"{result.precision_bound:.2%}",
            result.reason.split(":", 1)[0],
        )
    return table
