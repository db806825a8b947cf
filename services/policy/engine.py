"""The decision: how much the AI may do with one classified ticket, and why. Pure.

Every constraint that fires is recorded (even when a stricter one also fired) and the
final mode is the most restrictive of them. Whatever is uncertain or broken lowers the
mode towards "human"; nothing in here can raise it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from services.policy.context import ContextValue, build_context, margin, show
from services.policy.model import LoadedPolicy, Policy
from shared.contracts import (
    ClassificationSummary,
    Mode,
    ProducerInfo,
    RuleFired,
    ShadowDecision,
    Stage,
    Thresholds,
    TicketClassified,
    TicketDecided,
)
from shared.ids import derived_event_id


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one policy says about one ticket."""

    mode: Mode
    rules_fired: tuple[RuleFired, ...]
    thresholds: Thresholds
    owner_team: str


def decide(
    classified: TicketClassified,
    policy: LoadedPolicy,
    *,
    producer: ProducerInfo,
    now: datetime,
    candidate: LoadedPolicy | None = None,
    caps: Mapping[str, RuleFired] | None = None,
) -> TicketDecided:
    """Return the ticket.decided event for `classified` under `policy` (and a shadow view).

    `caps` are drift-guard caps by category (from the control topic). A shadow decision is
    made when a candidate policy is loaded or the classification carries a candidate
    model's view; it evaluates that view under the candidate policy, or the live one.
    """
    verdict = evaluate(classified, policy.policy, caps=caps)
    shadowed = candidate or (policy if classified.shadow is not None else None)
    return TicketDecided(
        event_id=derived_event_id(classified.event_id, Stage.POLICY),
        ticket_id=classified.ticket_id,
        trace_id=classified.trace_id,
        causation_id=classified.event_id,
        occurred_at=now,
        producer=producer,
        ticket=classified.ticket,
        classification=summarize(classified),
        mode=verdict.mode,
        rules_fired=verdict.rules_fired,
        thresholds=verdict.thresholds,
        policy=policy.info,
        owner_team=verdict.owner_team,
        shadow=shadow(classified, shadowed, caps=caps) if shadowed else None,
    )


def shadow(
    classified: TicketClassified,
    candidate: LoadedPolicy,
    *,
    caps: Mapping[str, RuleFired] | None = None,
) -> ShadowDecision:
    """Return what `candidate` would decide: recorded for comparison, never acted on.

    When a candidate model classified the ticket too, its category and confidence are used.
    """
    view = classified
    model = classified.shadow
    if model is not None:
        view = classified.model_copy(
            update={
                "category": model.category,
                "confidence": model.confidence,
                "alternatives": model.alternatives,
                "model": model.model,
                "signals": classified.signals.model_copy(
                    update={"out_of_scope": model.out_of_scope}
                ),
            }
        )
    verdict = evaluate(view, candidate.policy, caps=caps)
    return ShadowDecision(
        mode=verdict.mode,
        policy=candidate.info,
        rules_fired=verdict.rules_fired,
        category=model.category if model else None,
        confidence=model.confidence if model else None,
        model=model.model if model else None,
    )


def evaluate(
    classified: TicketClassified,
    policy: Policy,
    *,
    caps: Mapping[str, RuleFired] | None = None,
) -> Verdict:
    """Return the mode `policy` allows for `classified`, with every constraint that fired."""
    context = build_context(classified)
    thresholds = policy.thresholds_for(classified.category)
    fired = (
        *_thresholds(classified, policy, thresholds),
        *_ambiguity(classified, thresholds),
        *_category(classified.category, policy),
        *_kill_switches(classified.category, policy),
        *_safety(classified),
        *_rules(policy, context),
        *_drift_cap(classified.category, caps),
    )
    return Verdict(
        mode=Mode.lowest(Mode.AUTONOMOUS, *(rule.cap for rule in fired)),
        rules_fired=fired,
        thresholds=thresholds,
        owner_team=policy.owner_team(classified.category),
    )


def summarize(classified: TicketClassified) -> ClassificationSummary:
    """Return the parts of a classification that later stages and queues need."""
    return ClassificationSummary(
        event_id=classified.event_id,
        category=classified.category,
        confidence=classified.confidence,
        alternatives=classified.alternatives,
        language=classified.language,
        sentiment=classified.sentiment,
        urgency=classified.urgency,
        model=classified.model,
        degraded=classified.degraded,
        injection_suspected=classified.signals.injection_suspected,
        out_of_scope=classified.signals.out_of_scope,
        pii_detected=classified.signals.pii_detected,
    )


def _thresholds(
    classified: TicketClassified, policy: Policy, thresholds: Thresholds
) -> Iterator[RuleFired]:
    confidence = show(classified.confidence)
    own = policy.categories.get(classified.category)
    if classified.confidence < thresholds.assist:
        source = _source(classified.category, own.assist if own else None)
        yield RuleFired(
            rule_id="threshold.human",
            reason=f"confidence {confidence} below assist threshold "
            f"{show(thresholds.assist)} ({source})",
            cap=Mode.HUMAN,
        )
    elif classified.confidence < thresholds.autonomous:
        source = _source(classified.category, own.autonomous if own else None)
        yield RuleFired(
            rule_id="threshold.assist",
            reason=f"confidence {confidence} below autonomous threshold "
            f"{show(thresholds.autonomous)} ({source})",
            cap=Mode.ASSIST,
        )


def _source(category: str, own_value: float | None) -> str:
    return "defaults" if own_value is None else f"category {category}"


def _ambiguity(classified: TicketClassified, thresholds: Thresholds) -> Iterator[RuleFired]:
    gap = margin(classified)
    if gap < thresholds.ambiguity_margin:
        runner_up = max(classified.alternatives, key=lambda alt: alt.confidence, default=None)
        between = (
            f" between {classified.category} ({show(classified.confidence)}) and "
            f"{runner_up.category} ({show(runner_up.confidence)})"
            if runner_up
            else ""
        )
        yield RuleFired(
            rule_id="ambiguity",
            reason=f"margin {show(gap)}{between} below ambiguity margin "
            f"{show(thresholds.ambiguity_margin)}",
            cap=Mode.ASSIST,
        )


def _category(category: str, policy: Policy) -> Iterator[RuleFired]:
    own = policy.categories.get(category)
    if own and own.never_autonomous:
        yield RuleFired(
            rule_id="category.never_autonomous",
            reason=f"category {category} is never autonomous",
            cap=Mode.ASSIST,
        )


def _kill_switches(category: str, policy: Policy) -> Iterator[RuleFired]:
    own = policy.categories.get(category)
    if own and own.kill_switch:
        yield RuleFired(
            rule_id="kill_switch.category",
            reason=f"kill switch on for category {category}",
            cap=Mode.HUMAN,
        )
    if policy.kill_switch:
        yield RuleFired(
            rule_id="kill_switch.global",
            reason=f"global kill switch on in policy {policy.name} v{policy.version}",
            cap=Mode.HUMAN,
        )


def _safety(classified: TicketClassified) -> Iterator[RuleFired]:
    # Not configurable: a policy file that forgets these rules still fails towards a human.
    signals = classified.signals
    if classified.degraded:
        yield RuleFired(
            rule_id="safety.degraded",
            reason=f"classification degraded: {classified.degraded_reason or 'no reason given'}",
            cap=Mode.HUMAN,
        )
    if signals.injection_suspected:
        why = ", ".join(signals.injection_reasons) or "no reason given"
        yield RuleFired(
            rule_id="safety.injection",
            reason=f"prompt injection suspected: {why}",
            cap=Mode.HUMAN,
        )
    if signals.out_of_scope:
        yield RuleFired(
            rule_id="safety.out_of_scope",
            reason="ticket fits none of the categories "
            f"(out-of-scope score {show(signals.out_of_scope_score)})",
            cap=Mode.HUMAN,
        )


def _drift_cap(category: str, caps: Mapping[str, RuleFired] | None) -> Iterator[RuleFired]:
    # Set by the drift guard through the control topic until a human re-enables the category.
    if caps and category in caps:
        yield caps[category]


def _rules(policy: Policy, context: Mapping[str, ContextValue]) -> Iterator[RuleFired]:
    for rule in policy.rules:
        if all(condition.holds(context) for condition in rule.when):
            facts = ", ".join(f"{c.field}={show(context[c.field])}" for c in rule.when)
            yield RuleFired(rule_id=rule.id, reason=f"{rule.description} ({facts})", cap=rule.cap)
