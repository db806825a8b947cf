"""The learner: base examples plus feedback → a candidate model, judged against the live one.

Pure apart from CPU: no Kafka, no database, no files (`triageflow learn` does the I/O).
Feedback whose text falls in the stable held-out split (`dataset.held_out`) is never
trained on; both models are scored on it, so "the new version beats the old one" is
measured on tickets neither has seen (unless the live model was trained on them outside
this loop, which only flatters the live model).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from services.classifier.backends.base import Backend
from services.classifier.backends.local import Examples, fit
from services.learning.dataset import Dataset, Judgement, build_dataset, held_out

DEFAULT_HOLDOUT_SHARE = 0.2


class Trainable(Backend, Protocol):
    """A trained model the registry can keep: `local`'s or `hybrid`'s."""

    @property
    def oof_accuracy(self) -> float:
        """Accuracy of its out-of-fold predictions on its training examples."""
        ...

    def save(self, path: Path) -> None:
        """Write the model to `path`."""
        ...

    def warm_up(self) -> None:
        """Classify one text, building what the model builds lazily; raises if it cannot."""
        ...


# Trains a model on examples with a seed; `local`'s `fit` unless the backend is hybrid.
Trainer = Callable[[Examples, int], Trainable]


def train_local(examples: Examples, seed: int) -> Trainable:
    """Train the local backend's model (TF-IDF + calibrated LR)."""
    return fit(examples, seed=seed)


@dataclass(frozen=True)
class Evaluation:
    """Both models on the same held-out feedback."""

    tickets: int
    live_accuracy: float | None
    candidate_accuracy: float | None

    @property
    def improvement(self) -> float | None:
        """Return candidate minus live accuracy (None without held-out tickets)."""
        if self.live_accuracy is None or self.candidate_accuracy is None:
            return None
        return self.candidate_accuracy - self.live_accuracy


@dataclass(frozen=True)
class LearnOutcome:
    """What one learner run produced."""

    model: Trainable
    dataset: Dataset
    held_out: tuple[Judgement, ...]
    evaluation: Evaluation
    dropped_labels: tuple[str, ...]

    def metrics(self) -> dict[str, float | int | None]:
        """Return the figures a manifest and a control event carry."""
        return {
            "examples": len(self.dataset.judgements),
            "held_out_tickets": self.evaluation.tickets,
            "held_out_accuracy_live": self.evaluation.live_accuracy,
            "held_out_accuracy_candidate": self.evaluation.candidate_accuracy,
            "training_oof_accuracy": self.model.oof_accuracy,
        }


def learn(
    base: Sequence[Judgement],
    feedback: Sequence[Judgement],
    *,
    live: Backend,
    holdout_share: float = DEFAULT_HOLDOUT_SHARE,
    seed: int = 0,
    train: Trainer = train_local,
) -> LearnOutcome:
    """Train a candidate on base + feedback (minus the held-out split) and score both models."""
    everything = build_dataset([*base, *feedback])
    training = [
        j
        for j in everything.judgements
        if j.provenance == "base" or not held_out(j.text, holdout_share)
    ]
    evaluation_set = tuple(
        j
        for j in everything.judgements
        if j.provenance != "base" and held_out(j.text, holdout_share)
    )
    # A label with one example cannot be trained (or calibrated) on: leave it out until
    # feedback brings a second one.
    counts = Counter(j.label for j in training)
    dropped = tuple(sorted(label for label, n in counts.items() if n < 2))
    dataset = build_dataset(j for j in training if j.label not in dropped)
    model = train(dataset.examples(), seed)
    return LearnOutcome(
        model=model,
        dataset=dataset,
        held_out=evaluation_set,
        evaluation=evaluate(evaluation_set, live=live, candidate=model),
        dropped_labels=dropped,
    )


def evaluate(judgements: Sequence[Judgement], *, live: Backend, candidate: Backend) -> Evaluation:
    """Return each model's accuracy on `judgements`."""
    if not judgements:
        return Evaluation(tickets=0, live_accuracy=None, candidate_accuracy=None)
    texts = [j.text for j in judgements]
    truth = [j.label for j in judgements]
    return Evaluation(
        tickets=len(judgements),
        live_accuracy=_accuracy(live, texts, truth),
        candidate_accuracy=_accuracy(candidate, texts, truth),
    )


def _accuracy(model: Backend, texts: list[str], truth: list[str]) -> float:
    predictions = model.predict(texts)
    return sum(p.category == t for p, t in zip(predictions, truth, strict=True)) / len(truth)
