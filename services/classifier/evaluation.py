"""How good is a classifier? Accuracy, calibration and out-of-scope rate on labelled data.

`evaluate` scores any `Backend` on labelled texts; `cross_validate` trains and scores the
local model fold by fold, so every number comes from examples the model under test never
saw — calibration included. `evaluate_files` is `triageflow eval`: train on one file, fit
the autonomous threshold on that file alone (cross-validation), score another file through
the real classify → policy path.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from services.classifier.backends.base import Backend, Prediction
from services.classifier.backends.local import Examples, Hyperparameters, fit
from services.classifier.domain import classify
from services.classifier.selective import fit_autonomous_threshold, kept_by_threshold
from services.policy.engine import evaluate as evaluate_policy
from services.policy.model import Policy
from shared.contracts import Mode, ProducerInfo, TicketClassified, TicketReceived

if TYPE_CHECKING:
    from services.classifier.backends.hybrid import Embedder


@dataclass(frozen=True)
class Evaluation:
    """Scores of one classifier on labelled examples it did not learn from."""

    examples: int
    folds: int
    accuracy: float
    ece: float
    mean_confidence: float
    out_of_scope_rate: float
    recall: dict[str, float]


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], *, bins: int = 15
) -> float:
    """Return the ECE: mean |accuracy - confidence| over equal-width confidence bins."""
    conf = np.asarray(confidences, dtype=np.float64)
    hits = np.asarray(correct, dtype=np.float64)
    if conf.size == 0:
        return 0.0
    # Right-closed bins, so that confidence 1.0 lands in the last bin and 0.0 in the first.
    which = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.mean() * abs(hits[in_bin].mean() - conf[in_bin].mean())
    return float(total)


def evaluate(backend: Backend, texts: Sequence[str], labels: Sequence[str]) -> Evaluation:
    """Score a backend on labelled texts."""
    return _score(backend.predict(list(texts)), labels, folds=0)


def cross_validate(
    examples: Examples,
    *,
    folds: int = 5,
    seed: int = 0,
    hyperparameters: Hyperparameters | None = None,
) -> Evaluation:
    """Train the local model on k-1 folds, score it on the k-th, for every fold (seeded)."""
    texts = np.asarray(examples.texts, dtype=object)
    labels = np.asarray(examples.labels, dtype=object)
    predictions: list[Prediction | None] = [None] * len(texts)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, held_out in splitter.split(texts, labels):
        subset = Examples(tuple(texts[train]), tuple(labels[train]), examples.sha256)
        model = fit(subset, seed=seed, hyperparameters=hyperparameters)
        for i, prediction in zip(held_out, model.predict(list(texts[held_out])), strict=True):
            predictions[i] = prediction
    scored = [p for p in predictions if p is not None]
    return _score(scored, examples.labels, folds=folds)


def _score(predictions: Sequence[Prediction], labels: Sequence[str], *, folds: int) -> Evaluation:
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    correct = [p.category == label for p, label in zip(predictions, labels, strict=True)]
    confidences = [p.confidence for p in predictions]
    recall = {
        category: float(
            np.mean([c for c, label in zip(correct, labels, strict=True) if label == category])
        )
        for category in sorted(set(labels))
    }
    n = max(len(labels), 1)
    return Evaluation(
        examples=len(labels),
        folds=folds,
        accuracy=sum(correct) / n,
        ece=expected_calibration_error(confidences, correct),
        mean_confidence=sum(confidences) / n,
        out_of_scope_rate=sum(p.out_of_scope for p in predictions) / n,
        recall=recall,
    )


# ------------------------------------------------------------ train -> test evaluation
#
# `triageflow eval` and `make bench-classifier` answer one question: trained on one labelled
# file, how well does a backend do on another — as a classifier (accuracy, macro-F1,
# calibration), as the input of a policy (how many tickets it handles alone, and how often
# those are right), and on tickets from intents it never saw (are they sent to a human)?

# A trainer turns labelled examples into a ready backend (the local model: `fit`).
Trainer = Callable[[Examples], Backend]

PRECISION_LEVELS: Final = (0.95, 0.99)
_EVAL_PRODUCER: Final = ProducerInfo(service="triageflow-eval")
_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Outcome:
    """What happened to one labelled test ticket."""

    label: str
    in_scope: bool
    category: str
    confidence: float
    out_of_scope: bool
    mode: Mode
    llm_used: bool
    # The model named in its `ticket.classified` (hybrid: `tfidf-lr` when TF-IDF decided alone).
    model: str = ""
    text: str = ""

    @property
    def correct(self) -> bool:
        """Whether the category is the label (never, for a ticket from an unseen intent)."""
        return self.in_scope and self.category == self.label


@dataclass(frozen=True)
class Timing:
    """How fast classification ran: batch size, throughput, per-batch wall time, CPU time."""

    batch_size: int
    tickets_per_second: float
    batch_ms_p50: float
    batch_ms_p99: float
    # Process CPU time (every thread) per ticket: what the work costs, whatever the load.
    cpu_ms_per_ticket: float = 0.0
    # What one ticket waits for its classification: the wall time of the batch it is in,
    # taken over tickets (a short last batch weighs less than a full one).
    ticket_ms_p99: float = 0.0


# How many wrong autonomous decisions a report lists (the most confident first).
MISTAKES_LISTED: Final = 50


@dataclass(frozen=True)
class Mistake:
    """A test ticket the policy let the AI handle alone, wrongly: worth reading, since the
    label may be what is wrong."""

    text: str
    label: str
    predicted: str
    confidence: float
    label_seen_in_training: bool

    @classmethod
    def of(cls, outcome: Outcome) -> Mistake:
        """Return the mistake `outcome` records."""
        return cls(
            outcome.text, outcome.label, outcome.category, outcome.confidence, outcome.in_scope
        )


@dataclass(frozen=True)
class Report:
    """Every number `triageflow eval` prints (and `as_json` publishes)."""

    backend: str
    train_rows: int
    test_rows: int
    in_scope_rows: int
    accuracy: float
    macro_f1: float
    ece: float
    coverage_at_precision: dict[str, float]
    modes: dict[str, float]
    autonomous_share: float
    autonomous_precision: float | None
    oos_rows: int
    oos_to_human: float | None
    llm_share: float
    timing: Timing
    target_precision: float | None
    fitted_threshold: float | None
    # Share of tickets each model decided (hybrid: how many the encoder never saw).
    models: dict[str, float] = field(default_factory=dict)
    # The wrong autonomous decisions, most confident first (at most MISTAKES_LISTED), and
    # how many there were in all.
    mistakes: tuple[Mistake, ...] = ()
    mistakes_total: int = 0

    def as_json(self) -> dict[str, Any]:
        """Return the machine-readable report: the documented keys, the rest in `details`."""
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "ece": self.ece,
            "coverage_at_precision": self.coverage_at_precision,
            "autonomous_share": self.autonomous_share,
            "autonomous_precision": self.autonomous_precision,
            "oos_to_human": self.oos_to_human,
            "llm_share": self.llm_share,
            "tickets_per_second": self.timing.tickets_per_second,
            "details": {
                "backend": self.backend,
                "train_rows": self.train_rows,
                "test_rows": self.test_rows,
                "in_scope_rows": self.in_scope_rows,
                "oos_rows": self.oos_rows,
                "modes": self.modes,
                "target_precision": self.target_precision,
                "fitted_autonomous_threshold": self.fitted_threshold,
                "batch_size": self.timing.batch_size,
                "batch_ms_p50": self.timing.batch_ms_p50,
                "batch_ms_p99": self.timing.batch_ms_p99,
                "ticket_ms_p99": self.timing.ticket_ms_p99,
                "cpu_ms_per_ticket": self.timing.cpu_ms_per_ticket,
                "models": self.models,
                "autonomous_mistakes_total": self.mistakes_total,
                "autonomous_mistakes": [asdict(m) for m in self.mistakes],
            },
        }


def macro_f1(labels: Sequence[str], predicted: Sequence[str]) -> float:
    """Return the F1 score averaged over the labels that occur in `labels`."""
    if not labels:
        return 0.0
    classes = sorted(set(labels))
    return float(f1_score(labels, predicted, labels=classes, average="macro", zero_division=0))


def coverage_at_precision(
    confidences: Sequence[float],
    correct: Sequence[bool],
    eligible: Sequence[bool],
    precision: float,
) -> float:
    """Return the largest share of all rows a confidence threshold keeps at `precision`.

    Only `eligible` rows (not flagged out of scope) can be kept; rows with equal confidence
    are kept or dropped together, as a threshold would. Chosen on the rows it scores, so it
    describes the ranking (an upper bound), not what a threshold fit elsewhere achieves.
    """
    total = len(confidences)
    kept = kept_by_threshold(confidences, correct, eligible)
    best = 0
    for count, hits, _ in kept:
        if hits >= precision * count:
            best = count
    return best / total if total else 0.0


def with_autonomous_threshold(policy: Policy, threshold: float) -> Policy:
    """Return `policy` with `threshold` as default autonomous threshold and as a floor for all."""
    defaults = policy.defaults.model_copy(
        update={"autonomous": threshold, "assist": min(policy.defaults.assist, threshold)}
    )
    categories = {
        name: own.model_copy(
            update={
                "autonomous": None if own.autonomous is None else max(own.autonomous, threshold),
                "assist": None if own.assist is None else min(own.assist, threshold),
            }
        )
        for name, own in policy.categories.items()
    }
    return policy.model_copy(update={"defaults": defaults, "categories": categories})


def cross_validated_threshold(
    train: Examples, trainer: Trainer, target: float, *, folds: int = 5, seed: int = 0
) -> float:
    """Fit the autonomous threshold on out-of-fold predictions of the training file alone."""
    counts = train.counts()
    folds = max(2, min(folds, *counts.values()))
    texts = np.asarray(train.texts, dtype=object)
    labels = np.asarray(train.labels, dtype=object)
    confidences = np.zeros(len(texts))
    correct = np.zeros(len(texts), dtype=bool)
    eligible = np.zeros(len(texts), dtype=bool)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fit_rows, held_out in splitter.split(texts, labels):
        subset = Examples(tuple(texts[fit_rows]), tuple(labels[fit_rows]), train.sha256)
        predictions = trainer(subset).predict(list(texts[held_out]))
        for i, prediction in zip(held_out, predictions, strict=True):
            confidences[i] = prediction.confidence
            correct[i] = prediction.category == labels[i]
            eligible[i] = not prediction.out_of_scope
    return fit_autonomous_threshold(
        confidences.tolist(), correct.tolist(), eligible.tolist(), target
    )


def run_tickets(
    backend: Backend,
    test: Examples,
    policy: Policy,
    known_labels: Collection[str],
    *,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    cpu_clock: Callable[[], float] = time.process_time,
) -> tuple[list[Outcome], Timing]:
    """Classify the test tickets in batches as the service does and apply `policy` to each.

    One untimed batch goes first: what loads on first use (the language identifier's model,
    the encoder's session) is paid once by a running service, not by every ticket.
    """
    outcomes: list[Outcome] = []
    batch_seconds: list[float] = []
    cpu_seconds = 0.0
    if test.texts:
        warm = list(test.texts[:batch_size])
        classify_events(_eval_tickets(warm, 0), backend.predict(warm), backend)
    for start in range(0, len(test.texts), batch_size):
        texts = test.texts[start : start + batch_size]
        tickets = _eval_tickets(texts, start)
        began, cpu_began = clock(), cpu_clock()
        predictions = backend.predict(list(texts))
        events = classify_events(tickets, predictions, backend)
        batch_seconds.append(clock() - began)
        cpu_seconds += cpu_clock() - cpu_began
        for event, prediction, label, text in zip(
            events, predictions, test.labels[start : start + batch_size], texts, strict=True
        ):
            outcomes.append(
                Outcome(
                    text=text,
                    label=label,
                    in_scope=label in known_labels,
                    category=event.category,
                    confidence=event.confidence,
                    out_of_scope=event.signals.out_of_scope,
                    mode=evaluate_policy(event, policy).mode,
                    llm_used=prediction.llm_used,
                    model=event.model.name,
                )
            )
        if progress:
            progress(len(texts))
    return outcomes, _timing(batch_seconds, len(test.texts), batch_size, cpu_seconds)


def _eval_tickets(texts: Sequence[str], start: int) -> list[TicketReceived]:
    return [
        TicketReceived.model_validate({"ticket_id": f"eval-{start + i}", "body": text})
        for i, text in enumerate(texts)
    ]


def classify_events(
    tickets: list[TicketReceived], predictions: list[Prediction], backend: Backend
) -> list[TicketClassified]:
    """Return the `ticket.classified` events the service would publish for `predictions`."""

    class _Known:
        # Hands the predictions already made to `classify`, so signals, the out-of-scope
        # flag and every other field come from the same code path as in the service.
        info = backend.info

        def predict(self, texts: list[str]) -> list[Prediction]:
            return predictions

    return classify(tickets, _Known(), producer=_EVAL_PRODUCER, now=_EPOCH)


def _timing(
    batch_seconds: Sequence[float], rows: int, batch_size: int, cpu_seconds: float = 0.0
) -> Timing:
    total = sum(batch_seconds)
    millis = np.asarray(batch_seconds, dtype=np.float64) * 1000.0
    # Every ticket of a batch waits for the whole batch: repeat its time once per ticket.
    sizes = [min(batch_size, rows - start) for start in range(0, rows, batch_size)]
    per_ticket = np.repeat(millis, sizes[: millis.size]) if millis.size else millis
    return Timing(
        batch_size=batch_size,
        tickets_per_second=rows / total if total > 0 else 0.0,
        batch_ms_p50=float(np.percentile(millis, 50)) if millis.size else 0.0,
        batch_ms_p99=float(np.percentile(millis, 99)) if millis.size else 0.0,
        cpu_ms_per_ticket=1000.0 * cpu_seconds / rows if rows else 0.0,
        ticket_ms_p99=float(np.percentile(per_ticket, 99)) if per_ticket.size else 0.0,
    )


def summarise(
    outcomes: Sequence[Outcome],
    timing: Timing,
    *,
    backend: str,
    train_rows: int,
    target_precision: float | None = None,
    fitted_threshold: float | None = None,
) -> Report:
    """Turn per-ticket outcomes into the report's numbers (pure arithmetic, no model)."""
    n = len(outcomes)
    seen = [o for o in outcomes if o.in_scope]
    unseen = [o for o in outcomes if not o.in_scope]
    autonomous = [o for o in outcomes if o.mode is Mode.AUTONOMOUS]
    mistakes = sorted((o for o in autonomous if not o.correct), key=lambda o: -o.confidence)
    coverage = {
        f"{level:.2f}": coverage_at_precision(
            [o.confidence for o in outcomes],
            [o.correct for o in outcomes],
            [not o.out_of_scope for o in outcomes],
            level,
        )
        for level in PRECISION_LEVELS
    }
    return Report(
        backend=backend,
        train_rows=train_rows,
        test_rows=n,
        in_scope_rows=len(seen),
        accuracy=_share(sum(o.correct for o in seen), len(seen)),
        macro_f1=macro_f1([o.label for o in seen], [o.category for o in seen]),
        ece=expected_calibration_error([o.confidence for o in seen], [o.correct for o in seen]),
        coverage_at_precision=coverage,
        modes={mode.value: _share(sum(o.mode is mode for o in outcomes), n) for mode in Mode},
        autonomous_share=_share(len(autonomous), n),
        autonomous_precision=(
            sum(o.correct for o in autonomous) / len(autonomous) if autonomous else None
        ),
        oos_rows=len(unseen),
        oos_to_human=(
            sum(o.mode is not Mode.AUTONOMOUS for o in unseen) / len(unseen) if unseen else None
        ),
        llm_share=_share(sum(o.llm_used for o in outcomes), n),
        timing=timing,
        target_precision=target_precision,
        fitted_threshold=fitted_threshold,
        models={
            name: _share(count, n)
            for name, count in sorted(Counter(o.model for o in outcomes).items())
        },
        mistakes=tuple(Mistake.of(o) for o in mistakes[:MISTAKES_LISTED]),
        mistakes_total=len(mistakes),
    )


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def evaluate_files(
    train: Examples,
    test: Examples,
    trainer: Trainer,
    policy: Policy,
    *,
    target_precision: float | None = None,
    folds: int = 5,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Train on `train`, optionally fit the autonomous threshold by CV, then score `test`."""
    threshold = None
    if target_precision is not None:
        threshold = cross_validated_threshold(train, trainer, target_precision, folds=folds)
        policy = with_autonomous_threshold(policy, threshold)
    backend = trainer(train)
    outcomes, timing = run_tickets(
        backend, test, policy, set(train.labels), batch_size=batch_size, progress=progress
    )
    info = backend.info
    return summarise(
        outcomes,
        timing,
        backend=f"{info.backend}:{info.name}@{info.version}",
        train_rows=len(train.texts),
        target_precision=target_precision,
        fitted_threshold=threshold,
    )


def _train_local(examples: Examples) -> Backend:
    return fit(examples)


def _train_hybrid(examples: Examples) -> Backend:
    from services.classifier.backends.hybrid import fit_hybrid

    return fit_hybrid(examples, embedder=_training_embedder())


@functools.cache
def _training_embedder() -> Embedder:
    from services.classifier.backends.hybrid import Embedder, HybridParameters, make_encoder

    # One per process: cross-validation embeds each training text once, not once per fold.
    # One thread, as the service's copies embed: the measured CPU per ticket is theirs.
    kind = HybridParameters().encoder
    return Embedder(make_encoder(kind, threads=1), kind=kind)


# The backends `triageflow eval` can train from a labelled file, by name.
TRAINERS: Final[dict[str, Trainer]] = {"local": _train_local, "hybrid": _train_hybrid}
