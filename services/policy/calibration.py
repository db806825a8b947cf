"""Autonomous thresholds with a guarantee, from labelled feedback. Pure: no I/O.

Learn-then-Test (Angelopoulos, Bates, Candès, Jordan, Lei 2021) with fixed-sequence
testing. For one category, a fixed grid of thresholds is walked from high to low; at each
threshold λ the null hypothesis "the error rate of decisions with confidence >= λ is above
1 - target" is tested with the exact binomial test on the calibration examples at or above
λ, and the walk stops at the first threshold it cannot reject. The lowest rejected threshold
is the proposal. Fixed-sequence testing controls the family-wise error at δ without a
multiplicity correction, so:

    with probability >= 1 - δ over the calibration sample, the precision of the proposed
    threshold — P(correct | confidence >= λ̂) for a new example drawn like the calibration
    examples — is at least `target`.

docs/calibration.md states the assumptions (exchangeable examples, correct labels) and what
the guarantee does not say.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml
from numpy.typing import NDArray
from scipy.stats import beta, binom

from services.policy.model import Policy, parse_policy

FloatArray = NDArray[np.float64]

DEFAULT_TARGET = 0.98
DEFAULT_CONFIDENCE = 0.95
# The grid is fixed before the data are seen (a data-chosen grid would void the guarantee).
DEFAULT_TOP = 0.995
DEFAULT_FLOOR = 0.5
DEFAULT_STEP = 0.005
# Share of a category's examples that only chooses where the walk starts (_start).
DEFAULT_START_SHARE = 0.1


@dataclass(frozen=True, slots=True)
class LabelledExample:
    """One judged decision: the category and confidence the model gave, and whether it was right."""

    category: str
    confidence: float
    correct: bool


@dataclass(frozen=True, slots=True)
class CalibrationResult:
    """What calibration concluded for one category.

    `examples` were judged; `tested` of them (the rest chose the start) were counted:
    `selected` at or above the threshold, `errors` among those, and `error_bound` the
    Clopper–Pearson upper bound on the error rate there. `threshold` is None when autonomy
    is refused; the counts then describe the threshold where the walk started and stopped.
    """

    category: str
    threshold: float | None
    examples: int
    tested: int
    selected: int
    errors: int
    error_bound: float
    target: float
    confidence: float
    reason: str

    @property
    def autonomous(self) -> bool:
        """Return whether calibration allows autonomy for this category."""
        return self.threshold is not None

    @property
    def precision_bound(self) -> float:
        """Return the lower confidence bound on precision at the threshold (1 - error bound)."""
        return 1.0 - self.error_bound


def minimum_examples(target: float, confidence: float) -> int:
    """Return the fewest examples that can certify `target` at all: least n, target**n <= δ.

    Below it even a flawless record (no error) leaves the binomial p-value above δ.
    """
    _check(target, confidence)
    delta = 1.0 - confidence
    n = math.ceil(math.log(delta) / math.log(target))
    # Guard the float rounding of the logarithms on both sides.
    while n > 1 and _p_value(0, n - 1, 1.0 - target) <= delta:
        n -= 1
    while _p_value(0, n, 1.0 - target) > delta:
        n += 1
    return n


def error_upper_bound(errors: int, n: int, confidence: float) -> float:
    """Return the one-sided Clopper–Pearson upper bound on an error rate (1.0 without data)."""
    if n <= 0 or errors >= n:
        return 1.0
    return float(beta.ppf(confidence, errors + 1, n - errors))


def threshold_grid(
    *, top: float = DEFAULT_TOP, floor: float = DEFAULT_FLOOR, step: float = DEFAULT_STEP
) -> tuple[float, ...]:
    """Return the candidate thresholds, highest first: top, top - step, ..., down to floor."""
    if not 0.0 < step <= 1.0 or not 0.0 <= floor <= top <= 1.0:
        raise ValueError(f"need 0 <= floor <= top <= 1 and 0 < step <= 1: {floor}, {top}, {step}")
    count = math.floor((top - floor) / step + 1e-9) + 1
    # Rounded so the grid prints and compares as written (0.955, not 0.9550000000000001).
    return tuple(round(top - i * step, 10) for i in range(count))


def calibrate_category(
    category: str,
    confidences: Sequence[float] | FloatArray,
    correct: Sequence[bool] | NDArray[np.bool_],
    *,
    target: float = DEFAULT_TARGET,
    confidence: float = DEFAULT_CONFIDENCE,
    grid: Sequence[float] | None = None,
    start_share: float = DEFAULT_START_SHARE,
    seed: int = 0,
) -> CalibrationResult:
    """Return the lowest grid threshold certified to keep precision >= target (or a refusal).

    A seeded random `start_share` of the examples only picks where on the grid the walk
    starts (the highest threshold with enough examples above it); the rest are tested. With
    `start_share=0` the walk starts at the top of the grid.
    """
    _check(target, confidence)
    if not 0.0 <= start_share < 1.0:
        raise ValueError(f"start_share must be in [0, 1): {start_share}")
    thresholds = np.asarray(grid if grid is not None else threshold_grid(), dtype=np.float64)
    if thresholds.size == 0 or np.any(np.diff(thresholds) >= 0):
        raise ValueError("the grid must be non-empty and strictly decreasing")
    conf = np.asarray(confidences, dtype=np.float64)
    wrong = ~np.asarray(correct, dtype=bool)
    if conf.shape != wrong.shape:
        raise ValueError(f"{conf.size} confidences for {wrong.size} labels")
    n_min = minimum_examples(target, confidence)
    pilot, tested = _split(conf.size, start_share, seed, n_min)
    selected, errors = _counts_at(thresholds, conf[tested], wrong[tested])
    start = _start(
        thresholds,
        conf[pilot],
        wrong[pilot],
        tested=int(tested.size),
        alpha=1.0 - target,
        delta=1.0 - confidence,
    )

    def result(at: int, *, certified: bool, reason: str) -> CalibrationResult:
        return CalibrationResult(
            category=category,
            threshold=float(thresholds[at]) if certified else None,
            examples=int(conf.size),
            tested=int(tested.size),
            selected=int(selected[at]),
            errors=int(errors[at]),
            error_bound=error_upper_bound(int(errors[at]), int(selected[at]), confidence),
            target=target,
            confidence=confidence,
            reason=reason,
        )

    if tested.size < n_min:
        return result(
            start,
            certified=False,
            reason=f"not enough evidence: {conf.size} judged examples, {n_min} needed "
            f"to certify {target:.1%} at {confidence:.0%} confidence",
        )
    rejected = _p_value(errors, selected, 1.0 - target) <= 1.0 - confidence
    # Fixed-sequence testing: accept thresholds while their null is rejected, stop at the
    # first that is not. Later rejections do not count; that is what pays for the FWER.
    walk = rejected[start:]
    stop = start + (int(np.argmin(walk)) if not walk.all() else int(walk.size))
    if stop == start:
        at = result(start, certified=False, reason="")
        return dataclasses.replace(
            at,
            reason=f"not certified: {at.errors} errors in {at.selected} examples at or above "
            f"{thresholds[start]:g}; error bound {at.error_bound:.2%} > {1.0 - target:.2%}",
        )
    at = result(stop - 1, certified=True, reason="")
    return dataclasses.replace(
        at,
        reason=f"certified: {at.errors} errors in {at.selected} examples at or above "
        f"{at.threshold:g}; precision >= {at.precision_bound:.2%} at {confidence:.0%} confidence",
    )


def _split(
    n: int, share: float, seed: int, n_min: int
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Return (pilot, tested) example indices: a seeded random `share` of them is the pilot.

    No pilot when it would leave fewer than `n_min` to test: the walk then starts at the top.
    Decided on n alone, so the split stays independent of the examples' values.
    """
    order = np.random.default_rng(seed).permutation(n)
    pilot = math.ceil(share * n) if share > 0 else 0
    if n - pilot < n_min:
        pilot = 0
    return np.sort(order[:pilot]), np.sort(order[pilot:])


def _start(
    thresholds: FloatArray,
    pilot_conf: FloatArray,
    pilot_wrong: NDArray[np.bool_],
    *,
    tested: int,
    alpha: float,
    delta: float,
) -> int:
    """Return the grid index to start at: the highest threshold the pilot expects to certify.

    Starting higher would stop the walk at once for want of examples (a walk cannot skip a
    threshold it fails). The pilot is disjoint from the tested examples, so the start is
    independent of them and the fixed-sequence guarantee holds as for a fixed start. The
    prediction scales the pilot's counts to the tested examples, with its error rate
    smoothed (Jeffreys) so that a small pilot without errors does not promise too much.
    """
    if pilot_conf.size == 0:
        return 0
    above = pilot_conf[None, :] >= thresholds[:, None]
    count = above.sum(axis=1)
    wrong = (above & pilot_wrong[None, :]).sum(axis=1)
    expected_n = np.floor(count * tested / pilot_conf.size)
    expected_errors = np.floor(expected_n * (wrong + 0.5) / (count + 1.0))
    predicted = _p_value(expected_errors.astype(np.int64), expected_n.astype(np.int64), alpha)
    passing = np.flatnonzero(predicted <= delta)
    return int(passing[0]) if passing.size else int(np.argmin(predicted))


def calibrate(
    examples: Iterable[LabelledExample],
    *,
    target: float = DEFAULT_TARGET,
    confidence: float = DEFAULT_CONFIDENCE,
    grid: Sequence[float] | None = None,
    grids: Mapping[str, Sequence[float]] | None = None,
    categories: Iterable[str] = (),
    start_share: float = DEFAULT_START_SHARE,
    seed: int = 0,
) -> dict[str, CalibrationResult]:
    """Calibrate every category seen in `examples` (and in `categories`, which may have none).

    `grids` gives a category its own grid (e.g. floored at its assist threshold); the others
    use `grid` or the default. Each category is its own guarantee at `confidence`: the
    statement holds per category, not for all categories at once (see docs/calibration.md).
    """
    by_category: dict[str, list[LabelledExample]] = defaultdict(list)
    for category in categories:
        by_category[category]
    for example in examples:
        by_category[example.category].append(example)
    return {
        name: calibrate_category(
            name,
            [e.confidence for e in rows],
            [e.correct for e in rows],
            target=target,
            confidence=confidence,
            grid=(grids or {}).get(name, grid),
            start_share=start_share,
            seed=seed,
        )
        for name, rows in sorted(by_category.items())
    }


def precision_at(
    threshold: float | None,
    confidences: Sequence[float] | FloatArray,
    correct: Sequence[bool] | NDArray[np.bool_],
) -> float | None:
    """Return the share correct among examples at or above `threshold` (None if none is)."""
    if threshold is None:
        return None
    conf = np.asarray(confidences, dtype=np.float64)
    hits = np.asarray(correct, dtype=bool)
    kept = conf >= threshold
    return float(hits[kept].mean()) if kept.any() else None


def _counts_at(
    thresholds: FloatArray, conf: FloatArray, wrong: NDArray[np.bool_]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return, per threshold, the examples at or above it and how many of those are wrong."""
    order = np.argsort(conf, kind="stable")
    sorted_conf = conf[order]
    # Examples at or above λ are those from the first index with confidence >= λ.
    first = np.searchsorted(sorted_conf, thresholds, side="left")
    wrong_from = np.concatenate([np.cumsum(wrong[order][::-1])[::-1], [0]])
    selected = (conf.size - first).astype(np.int64)
    errors = wrong_from[first].astype(np.int64)
    return selected, errors


def _p_value(
    errors: NDArray[np.int64] | int, n: NDArray[np.int64] | int, alpha: float
) -> NDArray[np.float64]:
    """P(Binomial(n, alpha) <= errors): small when so few errors are unlikely at error rate alpha.

    Exact conditionally on n (the examples at or above a threshold), hence valid however n
    came about; with n = 0 it is 1 (no evidence).
    """
    return np.asarray(binom.cdf(errors, n, alpha), dtype=np.float64)


def _check(target: float, confidence: float) -> None:
    if not 0.0 < target < 1.0:
        raise ValueError(f"target precision must be between 0 and 1 (exclusive): {target}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive): {confidence}")


# ------------------------------------------------------------------- policy proposal


def grid_for(policy: Policy, category: str, *, step: float = DEFAULT_STEP) -> tuple[float, ...]:
    """Return the grid for `category`: down to its assist threshold, so the policy stays valid."""
    floor = max(policy.thresholds_for(category).assist, 0.0)
    # Round the floor up to the grid so no candidate falls below the assist threshold.
    top = DEFAULT_TOP if floor <= DEFAULT_TOP else 1.0
    return threshold_grid(top=top, floor=min(floor, top), step=step)


def bump_version(version: str) -> str:
    """Return the next version: the trailing number incremented ("3" -> "4"), else ".1" added."""
    match = re.search(r"(\d+)$", version)
    if match is None:
        return f"{version}.1"
    return f"{version[: match.start()]}{int(match.group(1)) + 1}"


def propose_policy(
    base_raw: bytes,
    results: Mapping[str, CalibrationResult],
    *,
    provenance: str,
    source: str = "policy.yaml",
) -> bytes:
    """Return a policy YAML proposal: `base_raw` with calibrated thresholds, pending approval.

    Certified categories get `autonomous: <threshold>`; the others `never_autonomous: true`;
    categories the base already keeps from autonomy (never_autonomous, kill switch) stay so.
    Categories with no evidence at all (not listed) get a default autonomous threshold of
    1.0. Each category carries a comment with its bound and sample size; `provenance` (what
    data, which model) heads the file. The result is validated with `parse_policy`.
    """
    data: dict[str, Any] = yaml.safe_load(base_raw)
    base = parse_policy(base_raw, source=source).policy
    data["version"] = bump_version(base.version)
    data["approved_by"] = "PENDING"
    data["approved_at"] = "PENDING"
    data["defaults"] = {**data["defaults"], "autonomous": 1.0}
    categories: dict[str, dict[str, Any]] = dict(data.get("categories") or {})
    comments: dict[str, list[str]] = {}
    for name, result in sorted(results.items()):
        own = dict(categories.get(name) or {"owner_team": base.default_owner_team})
        kept = own.get("never_autonomous") is True or own.get("kill_switch") is True
        if kept:
            note = "kept from autonomy by the base policy"
        elif result.threshold is not None:
            own["autonomous"] = result.threshold
            own.pop("never_autonomous", None)
            note = "autonomous from this threshold"
        else:
            own["never_autonomous"] = True
            own.pop("autonomous", None)  # would only suggest a threshold that was not certified
            note = "no autonomy"
        categories[name] = own
        comments[name] = [f"{note}: {result.reason}"]
        if result.examples:
            comments[name].append(_counts_comment(result))
    text = _header(provenance, results) + "".join(
        _dump({key: value}) for key, value in data.items() if key not in ("categories", "rules")
    )
    text += "categories:\n"
    for name, own in categories.items():
        for line in comments.get(name, ["no calibration data: unchanged"]):
            text += f"  # {line}\n"
        text += _indent(_dump({name: own}))
    if "rules" in data:
        text += _dump({"rules": data["rules"]})
    raw = text.encode("utf-8")
    parse_policy(raw, source=f"proposal from {source}")  # raises PolicyError if we erred
    return raw


def _counts_comment(result: CalibrationResult) -> str:
    tested = (
        f"{result.tested} tested, {result.examples - result.tested} chose the start"
        if result.tested != result.examples
        else f"{result.tested} tested"
    )
    return f"{result.examples} judged examples ({tested})"


def _header(provenance: str, results: Mapping[str, CalibrationResult]) -> str:
    first = next(iter(results.values()), None)
    goal = (
        f"precision >= {first.target:.1%} at {first.confidence:.0%} confidence, per category"
        if first
        else "no category calibrated"
    )
    return (
        "# PROPOSAL written by `triageflow calibrate`: review it, then set approved_by and\n"
        "# approved_at before deploying (the policy service records both in every decision).\n"
        f"# Goal: {goal} (Learn-then-Test, fixed-sequence; docs/calibration.md).\n"
        f"# Data: {provenance}\n"
        "# Categories not listed have no evidence: the default autonomous threshold is 1.0.\n\n"
    )


def _dump(value: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(value), sort_keys=False, allow_unicode=True, width=100)


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" for line in text.splitlines())
