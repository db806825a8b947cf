"""Live vs shadow on the same tickets, and the promotion gate. Pure.

For each decision made while a candidate model ran in shadow we know what the live model
and policy decided (`mode`, `category`) and what the candidate would have decided
(`shadow_mode`, `shadow_category`). Feedback judges the live decision; the candidate's
decision is judged by the same feedback:

* same category as live → as right or wrong as the live decision;
* another category → right exactly when an override named the candidate's category, or
  wrong when the live decision was confirmed correct or an override named a third one;
  unknown otherwise (a negative reaction says nothing about another category).

**Feedback is not a random sample of the candidate's decisions.** Agents see every ticket
the live side sent to them (assist, human) but audit only a share of the ones it decided
alone — and those are the easy ones. Counting judged tickets as they come would judge the
candidate mostly on the hard tickets and call it less precise than it is (or, if it errs
on the easy ones, more). So precision is *post-stratified* on the live mode, the one thing
the chance of being judged depends on: within each live mode the judged tickets stand for
all of that mode's tickets, i.e. each judged ticket weighs the inverse of its stratum's
observed audit rate (N/n). The lower bound is the one-sided Clopper–Pearson bound at the
Kish effective sample size n* = (Σw)²/Σw² with x* = p̂·n* (Korn & Graubard 1998), so
sparsely audited tickets count for what they are worth and no more. With uniform audit
rates every weight is equal, n* = n, and this is the plain binomial bound.

Assumption (stated, not checked): within one live mode, which tickets get judged does not
depend on whether the decision was right (audits are sampled, not triggered by errors).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from scipy.stats import beta

from shared.contracts import ModelEvidence

AUTONOMOUS = "autonomous"
DEFAULT_BOUND_CONFIDENCE = 0.95
DEFAULT_MIN_JUDGED = 30


@dataclass(frozen=True, slots=True)
class PairedDecision:
    """Live and shadow decisions on one ticket, and what feedback says (if any)."""

    mode: str
    category: str
    shadow_mode: str
    shadow_category: str
    # None when not judged; else whether the live decision was judged correct.
    judged_correct: bool | None = None
    # The category an agent said was right, if one did.
    correct_category: str | None = None

    def shadow_correct(self) -> bool | None:
        """Return whether the candidate's category was right (None: feedback cannot tell)."""
        if self.judged_correct is None:
            return None
        if self.shadow_category == self.category:
            return self.judged_correct
        if self.correct_category is not None:
            return self.shadow_category == self.correct_category
        return False if self.judged_correct else None


@dataclass(frozen=True, slots=True)
class Side:
    """One side's figures: how much it automates and how precisely.

    `judged` and `correct` are raw counts; `precision` is the audit-weighted estimate,
    `effective_judged` the sample size it is worth, `precision_lower` its lower bound.
    `unjudged_strata` counts autonomous decisions in live modes nobody judged at all:
    they have no estimate, so the gate refuses while there are any.
    """

    tickets: int
    autonomous: int
    judged: int
    correct: int
    precision: float | None
    effective_judged: float
    precision_lower: float | None
    unjudged_strata: int = 0

    @property
    def autonomous_share(self) -> float | None:
        """Return the share of tickets decided autonomously."""
        return self.autonomous / self.tickets if self.tickets else None


@dataclass(frozen=True, slots=True)
class Comparison:
    """Live and candidate side by side on the same tickets."""

    tickets: int
    agreement: float | None
    modes_live: dict[str, int]
    modes_candidate: dict[str, int]
    live: Side
    candidate: Side

    def evidence(self) -> ModelEvidence:
        """Return the figures a promotion event carries."""
        return ModelEvidence(
            tickets=self.tickets,
            agreement=self.agreement,
            live_autonomous_share=self.live.autonomous_share,
            candidate_autonomous_share=self.candidate.autonomous_share,
            live_judged=self.live.judged,
            candidate_judged=self.candidate.judged,
            live_effective_judged=self.live.effective_judged,
            candidate_effective_judged=self.candidate.effective_judged,
            live_precision=self.live.precision,
            candidate_precision=self.candidate.precision,
            live_precision_lower=self.live.precision_lower,
            candidate_precision_lower=self.candidate.precision_lower,
        )


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """Whether the candidate may be promoted, and every reason it may not."""

    passed: bool
    reasons: tuple[str, ...]


def precision_lower_bound(correct: float, judged: float, confidence: float) -> float | None:
    """Return the one-sided Clopper–Pearson lower bound on precision (None without data).

    Counts may be fractional (an effective sample): the beta quantile is defined for them.
    """
    if judged <= 0:
        return None
    if correct <= 0:
        return 0.0
    return float(beta.ppf(1.0 - confidence, correct, judged - correct + 1.0))


def weighted_side(
    tickets: int,
    decisions: Sequence[tuple[str, bool | None]],
    *,
    confidence: float = DEFAULT_BOUND_CONFIDENCE,
) -> Side:
    """Return the figures of autonomous decisions given as (live mode, verdict or None).

    The live mode is the stratum: each judged decision stands for the decisions of its
    stratum that nobody judged (weight N/n within the stratum).
    """
    strata: dict[str, list[bool | None]] = defaultdict(list)
    for stratum, verdict in decisions:
        strata[stratum].append(verdict)
    weights: list[tuple[float, bool]] = []
    unjudged = 0
    for verdicts in strata.values():
        known = [v for v in verdicts if v is not None]
        if not known:
            unjudged += len(verdicts)
            continue
        weight = len(verdicts) / len(known)
        weights += [(weight, v) for v in known]
    total = sum(w for w, _ in weights)
    if not weights:
        precision, effective, lower = None, 0.0, None
    else:
        precision = sum(w for w, right in weights if right) / total
        effective = total**2 / sum(w * w for w, _ in weights)
        lower = precision_lower_bound(precision * effective, effective, confidence)
    return Side(
        tickets=tickets,
        autonomous=len(decisions),
        judged=len(weights),
        correct=sum(right for _, right in weights),
        precision=precision,
        effective_judged=effective,
        precision_lower=lower,
        unjudged_strata=unjudged,
    )


def compare(
    pairs: Sequence[PairedDecision], *, confidence: float = DEFAULT_BOUND_CONFIDENCE
) -> Comparison:
    """Return live vs candidate figures over the same decisions (audit-weighted precision)."""
    live = [(p.mode, p.judged_correct) for p in pairs if p.mode == AUTONOMOUS]
    shadow = [(p.mode, p.shadow_correct()) for p in pairs if p.shadow_mode == AUTONOMOUS]
    return Comparison(
        tickets=len(pairs),
        agreement=sum(p.category == p.shadow_category for p in pairs) / len(pairs)
        if pairs
        else None,
        modes_live=_modes(p.mode for p in pairs),
        modes_candidate=_modes(p.shadow_mode for p in pairs),
        live=weighted_side(len(pairs), live, confidence=confidence),
        candidate=weighted_side(len(pairs), shadow, confidence=confidence),
    )


def gate(
    comparison: Comparison,
    *,
    min_judged: int = DEFAULT_MIN_JUDGED,
    target: float | None = None,
) -> GateVerdict:
    """Promote only a candidate at least as precise on autonomous decisions that automates more.

    "At least as precise": the lower bound of the candidate's audit-weighted autonomous
    precision reaches the bar the live side is held to — live's own lower bound, capped at
    the precision `target` the thresholds were calibrated for (a candidate that automates
    more takes harder tickets: it must keep the promise, not beat a conservative live side
    on its easiest tickets). Without live autonomous evidence the candidate's bound must
    reach `target` (or merely exist when there is none). "Automates more": a strictly
    larger autonomous share on the same tickets. "Enough feedback": `min_judged` judged
    candidate decisions, and none of its autonomous decisions in a live mode nobody judged.
    """
    reasons: list[str] = []
    live, candidate = comparison.live, comparison.candidate
    if candidate.judged < min_judged:
        reasons.append(
            f"only {candidate.judged} judged candidate autonomous decisions, need {min_judged}"
        )
    if candidate.unjudged_strata:
        reasons.append(
            f"{candidate.unjudged_strata} candidate autonomous decisions in a live mode "
            "with no feedback at all"
        )
    bars = [b for b in (live.precision_lower, target) if b is not None]
    bar = min(bars) if bars else None
    if candidate.precision_lower is None:
        reasons.append("no judged candidate autonomous decision")
    elif bar is not None and candidate.precision_lower < bar:
        reasons.append(
            f"candidate precision bound {candidate.precision_lower:.3f} below {bar:.3f} "
            f"(live bound {_num(live.precision_lower)}, target {_num(target)})"
        )
    if (candidate.autonomous_share or 0.0) <= (live.autonomous_share or 0.0):
        reasons.append(
            f"candidate automates {candidate.autonomous_share or 0.0:.1%}, "
            f"live {live.autonomous_share or 0.0:.1%}: not more"
        )
    return GateVerdict(passed=not reasons, reasons=tuple(reasons))


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _modes(modes: Iterable[str]) -> dict[str, int]:
    counts = {"autonomous": 0, "assist": 0, "human": 0}
    for mode in modes:
        counts[str(mode)] = counts.get(str(mode), 0) + 1
    return counts
