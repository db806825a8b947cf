"""How good is a classifier? Accuracy, calibration and out-of-scope rate on labelled data.

`evaluate` scores any `Backend` on labelled texts (the CLI's "evaluate a classifier on a
labelled CSV"); `cross_validate` trains and scores the local model fold by fold, so every
number comes from examples the model under test never saw — calibration included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold

from services.classifier.backends.base import Backend, Prediction
from services.classifier.backends.local import Examples, Hyperparameters, fit


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
