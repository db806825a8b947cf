"""`triageflow eval`: train a backend on one labelled CSV, score it on another.

Only argument parsing, a progress bar and the rendering live here; the numbers come from
`services.classifier.evaluation.evaluate_files`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from services.classifier.evaluation import Report

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def eval_command(
    train: Annotated[
        Path,
        typer.Option("--train", help="Labelled CSV to learn from.", exists=True, dir_okay=False),
    ],
    test: Annotated[
        Path, typer.Option("--test", help="Labelled CSV to score on.", exists=True, dir_okay=False)
    ],
    backend: Annotated[
        str, typer.Option(help="Trainable backend: local (default) or hybrid (TF-IDF + MiniLM).")
    ] = "local",
    policy: Annotated[
        Path | None,
        typer.Option(help="Policy YAML (default: the shipped one).", exists=True, dir_okay=False),
    ] = None,
    target_precision: Annotated[
        float | None,
        typer.Option(
            min=0.5,
            max=1.0,
            help="Fit the autonomous threshold on --train (cross-validation) for this precision.",
        ),
    ] = None,
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds.")] = 5,
    batch_size: Annotated[int, typer.Option(min=1, help="Tickets per classify call.")] = 64,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    compute_threads: Annotated[
        int,
        typer.Option(
            min=0,
            help="Threads of the numeric libraries, as TRIAGEFLOW_CLASSIFIER_COMPUTE_THREADS "
            "in a service copy (default 1, what a copy uses; 0: the libraries' own choice).",
        ),
    ] = 1,
) -> None:
    """Evaluate a classifier: accuracy, macro-F1, calibration, coverage, policy mode mix, OOS."""
    from services.classifier.app import limit_compute_threads
    from services.classifier.backends.local import ExamplesError, read_examples
    from services.classifier.evaluation import TRAINERS, evaluate_files
    from services.policy import PolicyError, load_default_policy, load_policy

    if backend not in TRAINERS:
        err.print(f"unknown backend {backend!r}; trainable: {', '.join(sorted(TRAINERS))}")
        raise typer.Exit(2)
    try:
        train_rows, test_rows = read_examples(train), read_examples(test)
        loaded = load_policy(policy) if policy else load_default_policy()
    except (ExamplesError, PolicyError) as error:
        err.print(f"[red]cannot evaluate[/red]: {error}", highlight=False)
        raise typer.Exit(1) from error
    # Measured like a service copy: idle pool threads spin and would inflate CPU per ticket.
    limit_compute_threads(compute_threads)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        # Training and cross-validation report no progress of their own: a pulsing bar.
        task = bar.add_task(f"training {backend} on {train.name}", total=None)

        def advance(rows: int) -> None:
            if bar.tasks[task].total is None:
                bar.update(task, description=f"classifying {test.name}", total=len(test_rows.texts))
            bar.advance(task, rows)

        report = evaluate_files(
            train_rows,
            test_rows,
            TRAINERS[backend],
            loaded.policy,
            target_precision=target_precision,
            folds=folds,
            batch_size=batch_size,
            progress=advance,
        )
    if as_json:
        out.print_json(json.dumps(report.as_json()))
    else:
        out.print(report_table(report))
        if report.mistakes:
            out.print(mistakes_table(report))


def report_table(report: Report) -> Table:
    """Render an evaluation report as a two-column table."""
    table = Table(title=f"{report.backend}: {report.train_rows} train → {report.test_rows} test")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows: list[tuple[str, str]] = [
        ("accuracy (labels seen in training)", _pct(report.accuracy)),
        ("macro-F1", f"{report.macro_f1:.3f}"),
        ("expected calibration error", f"{report.ece:.3f}"),
        *(
            (f"coverage at {float(level):.0%} precision (best threshold)", _pct(value))
            for level, value in report.coverage_at_precision.items()
        ),
    ]
    if report.fitted_threshold is not None:
        rows.append(
            (
                f"autonomous threshold fit for {_pct(report.target_precision)} on train (CV)",
                f"{report.fitted_threshold:.4f}",
            )
        )
    rows += [
        *((f"mode {mode}", _pct(share)) for mode, share in report.modes.items()),
        ("autonomous precision", _pct(report.autonomous_precision)),
        (f"out of scope sent to a human ({report.oos_rows} rows)", _pct(report.oos_to_human)),
        ("LLM consulted", _pct(report.llm_share)),
        *((f"decided by {name}", _pct(share)) for name, share in report.models.items()),
        ("tickets/s", f"{report.timing.tickets_per_second:,.0f}"),
        (
            f"batch of {report.timing.batch_size}: p50 / p99 ms",
            f"{report.timing.batch_ms_p50:.1f} / {report.timing.batch_ms_p99:.1f}",
        ),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


# How many wrong autonomous decisions the text report shows (the JSON has up to 50).
MISTAKES_SHOWN = 10


def mistakes_table(report: Report) -> Table:
    """Render the most confident wrong autonomous decisions: read them, the label may be
    what is wrong."""
    shown = report.mistakes[:MISTAKES_SHOWN]
    table = Table(
        title=f"Handled autonomously and wrong: {len(shown)} of {report.mistakes_total}, "
        "most confident first"
    )
    table.add_column("confidence")
    table.add_column("text")
    # Labels wrap rather than lose their ends: the end often tells two intents apart.
    table.add_column("test label", overflow="fold")
    table.add_column("predicted", overflow="fold")
    for mistake in shown:
        label = mistake.label if mistake.label_seen_in_training else f"{mistake.label} (unseen)"
        table.add_row(f"{mistake.confidence:.3f}", mistake.text, label, mistake.predicted)
    return table


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
