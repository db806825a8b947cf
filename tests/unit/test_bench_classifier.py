"""The classifier benchmark's results files: backends measured in separate runs merge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.classifier import comparable_backends, markdown


def _results(command: str, backends: dict[str, Any], *, folds: int = 3) -> dict[str, Any]:
    return {
        "date": "2026-11-26T03:00:00+00:00",
        "command": command,
        "machine": {"cpu": "test", "cpus": 2, "python": "3.11", "load_average_at_start": [1.0]},
        "train_rows": 10,
        "test_rows": 5,
        "intents": 2,
        "folds": folds,
        "target_precision": 0.99,
        "held_out_intents": ["a"],
        "backends": backends,
    }


def _backend(command: str) -> dict[str, Any]:
    protocol = {
        "accuracy": 0.9,
        "macro_f1": 0.9,
        "ece": 0.01,
        "autonomous_share": 0.7,
        "autonomous_precision": 0.99,
        "oos_to_human": 0.9,
        "tickets_per_second": 100.0,
        "details": {"cpu_ms_per_ticket": 5.0, "ticket_ms_p99": 40.0},
    }
    return {"full": protocol, "oos": protocol, "command": command, "date": "d", "load": 1}


def test_results_of_the_same_data_and_folds_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "classifier-results.json"
    path.write_text(json.dumps(_results("run local", {"local": _backend("run local")})))

    kept = comparable_backends(path, _results("run hybrid", {}))

    assert list(kept) == ["local"]


def test_results_of_other_folds_are_not_merged(tmp_path: Path) -> None:
    path = tmp_path / "classifier-results.json"
    path.write_text(json.dumps(_results("run local", {"local": _backend("run local")})))

    assert comparable_backends(path, _results("run hybrid", {}, folds=5)) == {}
    assert comparable_backends(tmp_path / "missing.json", _results("run hybrid", {})) == {}


def test_merged_summary_names_each_backends_command() -> None:
    results = _results(
        "run hybrid", {"local": _backend("run local"), "hybrid": _backend("run hybrid")}
    )

    text = markdown(results)

    assert "`run local` (local" in text
    assert "`run hybrid` (hybrid" in text
    assert text.count("| 0.900 | 0.900 | 0.010 | 0.700 |") == 2


def test_summary_gives_the_share_each_model_decided_when_measured() -> None:
    hybrid = _backend("run hybrid")
    hybrid["full"] = {
        **hybrid["full"],
        "details": {"models": {"tfidf-lr": 0.454, "tfidf-minilm-lr": 0.546}},
    }
    results = _results("run", {"local": _backend("run local"), "hybrid": hybrid})

    text = markdown(results)

    assert "hybrid: tfidf-lr 45.4%, tfidf-minilm-lr 54.6%." in text
    assert "local: " not in text  # measured before `models` existed: nothing to say
