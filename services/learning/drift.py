"""The drift guard: which categories to cap at assist, from recent feedback. Pure.

A category is capped when, in the recent window,

* `precision`: its judged autonomous decisions are *surely* below the target — the upper
  one-sided confidence bound on their precision is under `target` (with at least
  `min_judged` of them, so that a handful of errors early on cannot trip it); or
* `override_jump`: the share of its judged decisions (any mode) that agents overrode rose
  by at least `override_jump` over the baseline window before it, on `min_judged` or more.

Already-capped categories are not reported again; lifting a cap is a human's call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.learning.compare import AUTONOMOUS
from services.policy.calibration import error_upper_bound
from shared.contracts import DriftEvidence

DEFAULT_WINDOW = timedelta(days=1)
DEFAULT_BASELINE = timedelta(days=7)
DEFAULT_MIN_JUDGED = 20
DEFAULT_OVERRIDE_JUMP = 0.2


@dataclass(frozen=True, slots=True)
class Judged:
    """One judged decision, as the drift guard sees it."""

    category: str
    mode: str
    correct: bool
    overridden: bool
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class DriftRule:
    """The guard's settings."""

    target: float
    window: timedelta = DEFAULT_WINDOW
    baseline: timedelta = DEFAULT_BASELINE
    min_judged: int = DEFAULT_MIN_JUDGED
    override_jump: float = DEFAULT_OVERRIDE_JUMP
    confidence: float = 0.95


@dataclass(frozen=True, slots=True)
class Finding:
    """A category to cap and why."""

    category: str
    evidence: DriftEvidence


def precision_upper_bound(correct: int, judged: int, confidence: float) -> float | None:
    """Return the one-sided upper confidence bound on precision (None without data)."""
    if judged == 0:
        return None
    # The precision's upper bound is one minus the error rate's lower bound, which is the
    # upper bound on the "correct" rate computed like an error bound.
    return error_upper_bound(correct, judged, confidence) if correct < judged else 1.0


def check_drift(
    decisions: Iterable[Judged],
    *,
    rule: DriftRule,
    now: datetime,
    capped: Collection[str] = (),
) -> list[Finding]:
    """Return the categories whose recent feedback trips the guard, by name."""
    start = now - rule.window
    baseline_start = start - rule.baseline
    recent: dict[str, list[Judged]] = defaultdict(list)
    before: dict[str, list[Judged]] = defaultdict(list)
    for d in decisions:
        if start <= d.decided_at < now:
            recent[d.category].append(d)
        elif baseline_start <= d.decided_at < start:
            before[d.category].append(d)
    findings = []
    for category in sorted(recent):
        if category in capped:
            continue
        evidence = _evidence(recent[category], before.get(category, []), rule, start, now)
        if evidence.triggers:
            findings.append(Finding(category, evidence))
    return findings


def _evidence(
    recent: list[Judged], before: list[Judged], rule: DriftRule, start: datetime, now: datetime
) -> DriftEvidence:
    autonomous = [d for d in recent if d.mode == AUTONOMOUS]
    correct = sum(d.correct for d in autonomous)
    upper = precision_upper_bound(correct, len(autonomous), rule.confidence)
    rate = _override_rate(recent)
    baseline = _override_rate(before)
    triggers = []
    if len(autonomous) >= rule.min_judged and upper is not None and upper < rule.target:
        triggers.append("precision")
    if (
        len(recent) >= rule.min_judged
        and rate is not None
        and rate - (baseline or 0.0) >= rule.override_jump
    ):
        triggers.append("override_jump")
    return DriftEvidence(
        target=rule.target,
        window_start=start,
        window_end=now,
        autonomous_judged=len(autonomous),
        autonomous_correct=correct,
        precision_upper=upper,
        override_rate=rate,
        baseline_override_rate=baseline,
        triggers=tuple(triggers),
    )


def _override_rate(decisions: list[Judged]) -> float | None:
    return sum(d.overridden for d in decisions) / len(decisions) if decisions else None
