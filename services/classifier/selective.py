"""Selective classification: the confidence above which predictions are right often enough.

Used by `eval` (the autonomous threshold fit on training data) and by the hybrid backend
(which tickets TF-IDF alone may decide).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def fit_autonomous_threshold(
    confidences: Sequence[float],
    correct: Sequence[bool],
    eligible: Sequence[bool],
    target: float,
    *,
    z: float = 1.645,
) -> float:
    """Return the lowest confidence threshold whose precision is at least `target`, surely.

    "Surely": the one-sided Wilson lower bound (z = 1.645: 95 %) of the precision of the rows
    at or above the threshold must reach `target`, so a threshold fit on a few hundred
    out-of-fold rows keeps its promise on new ones. Returns 1.0 when no threshold does.
    """
    threshold = sure_threshold(confidences, correct, eligible, target, z=z)
    return 1.0 if threshold is None else threshold


def sure_threshold(
    confidences: Sequence[float],
    correct: Sequence[bool],
    eligible: Sequence[bool],
    target: float,
    *,
    z: float = 1.645,
) -> float | None:
    """Return what `fit_autonomous_threshold` does, but None when no threshold qualifies."""
    thresholds = [
        confidence
        for count, hits, confidence in kept_by_threshold(confidences, correct, eligible)
        if _wilson_lower(hits, count, z) >= target
    ]
    return min(thresholds, default=None)


def kept_by_threshold(
    confidences: Sequence[float], correct: Sequence[bool], eligible: Sequence[bool]
) -> list[tuple[int, int, float]]:
    """Return (rows kept, correct rows kept, threshold) for every distinct threshold."""
    rows = sorted(
        ((c, ok) for c, ok, e in zip(confidences, correct, eligible, strict=True) if e),
        key=lambda row: -row[0],
    )
    result: list[tuple[int, int, float]] = []
    hits = 0
    for i, (confidence, ok) in enumerate(rows):
        hits += ok
        # A threshold keeps every row at or above it: only the end of a tie group counts.
        if i + 1 == len(rows) or rows[i + 1][0] != confidence:
            result.append((i + 1, hits, confidence))
    return result


def _wilson_lower(hits: int, count: int, z: float) -> float:
    if count == 0:
        return 0.0
    p = hits / count
    centre = p + z * z / (2 * count)
    spread = z * math.sqrt(p * (1 - p) / count + z * z / (4 * count * count))
    return (centre - spread) / (1 + z * z / count)
