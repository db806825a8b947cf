"""Properties of the decision that must hold for every ticket, not just the examples."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from services.policy import LoadedPolicy, decide, load_default_policy, parse_policy
from shared.contracts import Mode, ProducerInfo, Signals, TicketClassified, TicketDecided
from tests.factories import classified, received

DEFAULT = load_default_policy()
CATEGORIES = [*DEFAULT.policy.categories, "warranty"]
probability = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
SETTINGS = settings(max_examples=200, deadline=None)


@cache
def permissive(*, autonomous: float, assist: float) -> LoadedPolicy:
    """Return a policy with these thresholds, no ambiguity margin, no categories, no rules."""
    document = {
        "name": "permissive",
        "version": "1",
        "approved_by": "tests",
        "approved_at": "2026-01-01",
        "defaults": {"autonomous": autonomous, "assist": assist, "ambiguity_margin": 0.0},
        "default_owner_team": "support",
    }
    return parse_policy(yaml.safe_dump(document).encode())


@st.composite
def tickets(draw: st.DrawFn, confidence: float | None = None) -> dict[str, Any]:
    """Every input the decision reads, except (optionally) the confidence."""
    return {
        "tier": draw(st.sampled_from(["standard", "premium", "vip"])),
        "category": draw(st.sampled_from(CATEGORIES)),
        "confidence": draw(probability) if confidence is None else confidence,
        "runner_up": draw(probability),
        "language": draw(st.sampled_from(["en", "de", "unknown"])),
        "sentiment_score": draw(st.floats(min_value=-1.0, max_value=1.0, allow_nan=False)),
        "urgency": draw(st.sampled_from(["low", "normal", "high", "critical"])),
        "degraded": draw(st.booleans()),
        "injection": draw(st.booleans()),
        "out_of_scope": draw(st.booleans()),
        "pii": draw(st.booleans()),
    }


def build(ticket: dict[str, Any]) -> TicketClassified:
    return classified(
        received(customer={"tier": ticket["tier"]}),
        category=ticket["category"],
        confidence=ticket["confidence"],
        runner_up=ticket["runner_up"],
        language=ticket["language"],
        sentiment_score=ticket["sentiment_score"],
        urgency=ticket["urgency"],
        degraded=ticket["degraded"],
        signals=Signals(
            injection_suspected=ticket["injection"],
            out_of_scope=ticket["out_of_scope"],
            pii_detected=ticket["pii"],
        ),
    )


def run(event: TicketClassified, policy: LoadedPolicy = DEFAULT) -> TicketDecided:
    now = datetime(2026, 11, 25, tzinfo=UTC)
    return decide(event, policy, producer=ProducerInfo(service="policy"), now=now)


@SETTINGS
@given(tickets())
def test_the_mode_is_never_higher_than_any_cap_that_fired(ticket: dict[str, Any]) -> None:
    decision = run(build(ticket))

    assert all(decision.mode.rank <= rule.cap.rank for rule in decision.rules_fired)
    # …and no stricter than the strictest of them: nothing lowers the mode unrecorded.
    assert decision.mode is Mode.lowest(Mode.AUTONOMOUS, *(r.cap for r in decision.rules_fired))


@SETTINGS
@given(tickets(), st.sampled_from(["degraded", "injection", "out_of_scope"]))
def test_a_degraded_injected_or_out_of_scope_ticket_always_goes_to_a_human(
    ticket: dict[str, Any], flag: str
) -> None:
    event = build(ticket | {flag: True})

    assert run(event).mode is Mode.HUMAN
    assert run(event, permissive(autonomous=0.0, assist=0.0)).mode is Mode.HUMAN


@SETTINGS
@given(st.data(), probability, probability)
def test_raising_the_confidence_never_lowers_the_mode(
    data: st.DataObject, lower: float, higher: float
) -> None:
    lower, higher = sorted((lower, higher))
    ticket = data.draw(tickets(confidence=lower))

    before = run(build(ticket)).mode
    after = run(build(ticket | {"confidence": higher})).mode

    assert after.rank >= before.rank


@SETTINGS
@given(probability, probability, probability)
def test_thresholds_alone_give_the_mode_their_definition_says(
    confidence: float, first: float, second: float
) -> None:
    assist, autonomous = sorted((first, second))
    policy = permissive(autonomous=autonomous, assist=assist)
    # No runner-up and a zero ambiguity margin: only the thresholds can lower the mode.
    mode = run(classified(confidence=confidence, runner_up=0.0), policy).mode

    expected = (
        Mode.AUTONOMOUS
        if confidence >= autonomous
        else Mode.ASSIST
        if confidence >= assist
        else Mode.HUMAN
    )
    assert mode is expected
