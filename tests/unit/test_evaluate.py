"""`triageflow eval`: the report's arithmetic on a hand-made case, and the CLI's JSON."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.classifier.backends.base import Prediction
from services.classifier.backends.local import Examples
from services.classifier.evaluation import (
    MISTAKES_LISTED,
    Mistake,
    Outcome,
    Timing,
    coverage_at_precision,
    run_tickets,
    summarise,
    with_autonomous_threshold,
)
from services.classifier.selective import fit_autonomous_threshold
from services.cli.main import app
from services.policy import load_default_policy
from shared.contracts import Mode, ModelInfo

REQUIRED_KEYS = {
    "accuracy",
    "macro_f1",
    "ece",
    "coverage_at_precision",
    "autonomous_share",
    "autonomous_precision",
    "oos_to_human",
    "llm_share",
    "tickets_per_second",
}
TIMING = Timing(batch_size=64, tickets_per_second=100.0, batch_ms_p50=1.0, batch_ms_p99=2.0)


def outcome(
    label: str,
    category: str,
    confidence: float,
    mode: Mode,
    *,
    seen: bool = True,
    out_of_scope: bool = False,
) -> Outcome:
    return Outcome(label, seen, category, confidence, out_of_scope, mode, llm_used=False)


# Four tickets of intents seen in training, three of an intent that was not ("z").
HAND_MADE = [
    outcome("a", "a", 0.91, Mode.AUTONOMOUS),
    outcome("a", "b", 0.81, Mode.AUTONOMOUS),
    outcome("b", "b", 0.61, Mode.ASSIST),
    outcome("b", "b", 0.96, Mode.AUTONOMOUS),
    outcome("z", "a", 0.70, Mode.HUMAN, seen=False),
    outcome("z", "b", 0.99, Mode.HUMAN, seen=False, out_of_scope=True),
    outcome("z", "a", 0.50, Mode.AUTONOMOUS, seen=False),
]


def test_hand_made_case_gives_the_numbers_worked_out_by_hand() -> None:
    report = summarise(HAND_MADE, TIMING, backend="test", train_rows=10)

    assert report.accuracy == pytest.approx(3 / 4)
    # a: precision 1, recall 1/2 -> F1 2/3; b: precision 2/3, recall 1 -> F1 4/5.
    assert report.macro_f1 == pytest.approx((2 / 3 + 4 / 5) / 2)
    # One seen ticket per calibration bin: the mean of |correct - confidence|.
    assert report.ece == pytest.approx((0.09 + 0.81 + 0.39 + 0.04) / 4)
    # Best threshold keeps 0.96 and 0.91 (both right); the flagged 0.99 cannot be kept.
    assert report.coverage_at_precision == pytest.approx({"0.95": 2 / 7, "0.99": 2 / 7})
    assert report.modes == pytest.approx({"autonomous": 4 / 7, "assist": 1 / 7, "human": 2 / 7})
    assert report.autonomous_share == pytest.approx(4 / 7)
    # An unseen-intent ticket handled autonomously is an error.
    assert report.autonomous_precision == pytest.approx(2 / 4)
    assert report.oos_rows == 3
    assert report.oos_to_human == pytest.approx(2 / 3)


def test_the_report_gives_the_share_of_tickets_each_model_decided() -> None:
    outcomes = [
        dataclasses.replace(o, model="tfidf-lr" if i < 3 else "tfidf-minilm-lr")
        for i, o in enumerate(HAND_MADE)
    ]

    report = summarise(outcomes, TIMING, backend="test", train_rows=10)

    assert report.models == pytest.approx({"tfidf-lr": 3 / 7, "tfidf-minilm-lr": 4 / 7})
    assert report.as_json()["details"]["models"] == report.models


def test_the_report_lists_the_wrong_autonomous_decisions_most_confident_first() -> None:
    outcomes = [dataclasses.replace(o, text=f"ticket {i}") for i, o in enumerate(HAND_MADE)]

    report = summarise(outcomes, TIMING, backend="test", train_rows=10)

    # Autonomous and wrong: "ticket 1" (a → b, 0.81) and "ticket 6" (unseen z → a, 0.50);
    # the wrong ones a human handled, and the right autonomous ones, are not listed.
    assert report.mistakes == (
        Mistake("ticket 1", "a", "b", 0.81, label_seen_in_training=True),
        Mistake("ticket 6", "z", "a", 0.50, label_seen_in_training=False),
    )
    assert report.mistakes_total == 2
    assert report.as_json()["details"]["autonomous_mistakes"][1] == {
        "text": "ticket 6",
        "label": "z",
        "predicted": "a",
        "confidence": 0.50,
        "label_seen_in_training": False,
    }


def test_the_report_lists_at_most_fifty_mistakes_but_counts_them_all() -> None:
    wrong = [outcome("a", "b", 0.9 + i / 1000, Mode.AUTONOMOUS) for i in range(60)]

    report = summarise(wrong, TIMING, backend="test", train_rows=10)

    assert len(report.mistakes) == MISTAKES_LISTED == 50
    assert report.mistakes_total == 60
    assert report.mistakes[0].confidence == pytest.approx(0.959)


def test_without_unseen_intents_oos_to_human_is_null() -> None:
    report = summarise(HAND_MADE[:4], TIMING, backend="test", train_rows=10)

    assert report.oos_to_human is None
    assert report.as_json()["oos_to_human"] is None


def test_coverage_keeps_or_drops_equal_confidences_together() -> None:
    assert coverage_at_precision([0.9, 0.9, 0.5], [True, False, True], [True] * 3, 0.95) == 0.0


def test_threshold_is_the_lowest_whose_precision_reaches_the_target() -> None:
    confidences, correct = [0.9, 0.8, 0.7, 0.6], [True, True, False, True]

    assert fit_autonomous_threshold(confidences, correct, [True] * 4, 0.75, z=0.0) == 0.6
    assert fit_autonomous_threshold(confidences, correct, [True] * 4, 0.99, z=0.0) == 0.8


def test_a_handful_of_rows_cannot_justify_autonomy_at_the_default_certainty() -> None:
    confidences, correct = [0.9, 0.8, 0.7, 0.6], [True, True, False, True]

    assert fit_autonomous_threshold(confidences, correct, [True] * 4, 0.75) == 1.0


def test_fitted_threshold_becomes_the_floor_of_every_category() -> None:
    policy = with_autonomous_threshold(load_default_policy().policy, 0.97)

    assert policy.defaults.autonomous == 0.97
    assert all(policy.thresholds_for(name).autonomous >= 0.97 for name in policy.categories)


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


TOPICS = {
    "refund": ["refund my order", "I want my money back", "refund please", "money back now"],
    "login": ["cannot log in", "password reset fails", "login is broken", "locked out of login"],
    "ship": ["where is my parcel", "parcel not delivered", "shipping is late", "track parcel"],
}


@pytest.fixture(autouse=True)
def thread_caps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """What `eval` capped the thread pools at (recorded, not applied to the test process)."""
    caps: list[int] = []
    monkeypatch.setattr("services.classifier.app.limit_compute_threads", caps.append)
    return caps


def test_eval_caps_thread_pools_as_a_service_copy_does_unless_told_otherwise(
    tmp_path: Path, thread_caps: list[int]
) -> None:
    rows = [(text, label) for label, texts in TOPICS.items() for text in texts]
    train = write_csv(tmp_path / "train.csv", rows * 2)
    command = ["eval", "--train", str(train), "--test", str(train), "--folds", "2", "--json"]

    first = CliRunner().invoke(app, command)
    second = CliRunner().invoke(app, [*command, "--compute-threads", "0"])

    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert thread_caps == [1, 0]


def test_eval_with_a_target_precision_reports_the_threshold_fit_on_train(tmp_path: Path) -> None:
    rows = [(text, label) for label, texts in TOPICS.items() for text in texts]
    train = write_csv(tmp_path / "train.csv", rows * 2)
    test = write_csv(tmp_path / "test.csv", rows)

    result = CliRunner().invoke(
        app,
        ["eval", "--train", str(train), "--test", str(test), "--target-precision", "0.9"],
    )

    assert result.exit_code == 0, result.output
    assert "autonomous threshold fit for 90.0% on train (CV)" in result.stdout


def test_eval_prints_json_with_exactly_the_documented_keys_and_details(tmp_path: Path) -> None:
    rows = [(text, label) for label, texts in TOPICS.items() for text in texts]
    train = write_csv(tmp_path / "train.csv", rows * 2)
    test = write_csv(tmp_path / "test.csv", [*rows, ("what is the weather on mars", "oos")])

    result = CliRunner().invoke(
        app, ["eval", "--train", str(train), "--test", str(test), "--folds", "2", "--json"]
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == REQUIRED_KEYS | {"details"}
    assert set(report["coverage_at_precision"]) == {"0.95", "0.99"}
    assert report["oos_to_human"] is not None
    assert report["details"]["test_rows"] == len(rows) + 1


def test_eval_refuses_an_unknown_backend(tmp_path: Path) -> None:
    train = write_csv(tmp_path / "train.csv", [("a", "x"), ("b", "y")])

    result = CliRunner().invoke(
        app, ["eval", "--train", str(train), "--test", str(train), "--backend", "nope"]
    )

    assert result.exit_code == 2


def test_a_tickets_latency_is_its_whole_batch_and_cpu_time_is_per_ticket() -> None:
    class Constant:
        info = ModelInfo(name="constant", version="1", backend="local")

        def predict(self, texts: list[str]) -> list[Prediction]:
            return [Prediction(category="refund", confidence=0.5) for _ in texts]

    # Three batches of 2, 2 and 1 tickets; the wall clock advances 10 ms and the CPU clock
    # 4 ms per batch, so every ticket waits 10 ms and costs 12 ms / 5 tickets of CPU.
    walls = iter(i * 0.010 for i in range(6))
    cpus = iter(i * 0.004 for i in range(6))
    texts = ("a", "b", "c", "d", "e")
    _, timing = run_tickets(
        Constant(),
        Examples(texts, ("refund",) * 5, "t"),
        load_default_policy().policy,
        {"refund"},
        batch_size=2,
        clock=lambda: next(walls),
        cpu_clock=lambda: next(cpus),
    )

    assert timing.ticket_ms_p99 == pytest.approx(10.0)
    assert timing.cpu_ms_per_ticket == pytest.approx(12.0 / 5)
    assert timing.tickets_per_second == pytest.approx(5 / 0.030)


def test_the_first_batch_is_classified_once_untimed_before_the_timed_run() -> None:
    calls: list[list[str]] = []

    class Recording:
        info = ModelInfo(name="constant", version="1", backend="local")

        def predict(self, texts: list[str]) -> list[Prediction]:
            calls.append(texts)
            return [Prediction(category="refund", confidence=0.5) for _ in texts]

    walls = iter(i * 0.010 for i in range(6))
    outcomes, timing = run_tickets(
        Recording(),
        Examples(("a", "b", "c"), ("refund",) * 3, "t"),
        load_default_policy().policy,
        {"refund"},
        batch_size=2,
        clock=lambda: next(walls),
        cpu_clock=lambda: 0.0,
    )

    assert calls == [["a", "b"], ["a", "b"], ["c"]]
    assert len(outcomes) == 3
    assert timing.tickets_per_second == pytest.approx(3 / 0.020)


def test_eval_shows_the_wrong_autonomous_decisions_under_its_report(tmp_path: Path) -> None:
    rows = [(text, label) for label, texts in TOPICS.items() for text in texts]
    train = write_csv(tmp_path / "train.csv", rows * 2)
    # A mislabelled test row: the model says refund, the label says login.
    test = write_csv(tmp_path / "test.csv", [*rows, ("refund my order", "login")])
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        'name: everything-autonomous\nversion: "1"\napproved_by: test\n'
        'approved_at: "2026-11-26"\n'
        "defaults: {autonomous: 0.0, assist: 0.0, ambiguity_margin: 0.0}\n"
        "default_owner_team: test\n"
    )

    result = CliRunner().invoke(
        app,
        ["eval", "--train", str(train), "--test", str(test), "--policy", str(policy)],
        terminal_width=200,
    )

    assert result.exit_code == 0, result.output
    assert "Handled autonomously and wrong: 1 of 1" in result.stdout
    mistake = next(line for line in result.stdout.splitlines() if "refund my order" in line)
    assert "login" in mistake
    assert "refund" in mistake.replace("refund my order", "")
