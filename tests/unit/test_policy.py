"""The policy engine: how much the AI may do with a ticket, and every reason why."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from services.policy import (
    LoadedPolicy,
    decide,
    explain_policy,
    load_default_policy,
    parse_policy,
    summarize,
)
from services.policy.context import CONTEXT_FIELDS, build_context
from shared.codec import decode, encode
from shared.contracts import (
    CategoryScore,
    Mode,
    ProducerInfo,
    Signals,
    Thresholds,
    TicketClassified,
    TicketDecided,
)
from shared.ids import derived_event_id
from tests.factories import classified, received

NOW = datetime(2026, 11, 25, 12, 30, tzinfo=UTC)
PRODUCER = ProducerInfo(service="policy", version="test", instance="p-1")
DEFAULT = load_default_policy()
TAXONOMY = [
    "billing",
    "refunds",
    "account_access",
    "bug_report",
    "outage",
    "how_to",
    "feature_request",
    "shipping",
    "cancellation",
    "security_fraud",
    "data_privacy",
    "legal_complaint",
]


def policy(**changes: Any) -> LoadedPolicy:
    """Return a minimal valid policy (no rules, no categories) with `changes` applied."""
    base: dict[str, Any] = {
        "name": "test",
        "version": "7",
        "approved_by": "ops-lead",
        "approved_at": "2026-11-01",
        "defaults": {"autonomous": 0.9, "assist": 0.55, "ambiguity_margin": 0.15},
        "default_owner_team": "support",
    }
    return parse_policy(yaml.safe_dump(base | changes).encode())


def run(
    event: TicketClassified,
    under: LoadedPolicy = DEFAULT,
    candidate: LoadedPolicy | None = None,
) -> TicketDecided:
    return decide(event, under, producer=PRODUCER, now=NOW, candidate=candidate)


def fired(decision: TicketDecided) -> list[str]:
    return [rule.rule_id for rule in decision.rules_fired]


def reason(decision: TicketDecided, rule_id: str) -> str:
    return next(rule.reason for rule in decision.rules_fired if rule.rule_id == rule_id)


# ------------------------------------------------------------------------ thresholds


def test_confidence_exactly_at_the_autonomous_threshold_is_autonomous() -> None:
    decision = run(classified(confidence=0.90, runner_up=0.02))

    assert decision.mode is Mode.AUTONOMOUS
    assert decision.rules_fired == ()


def test_confidence_just_below_the_autonomous_threshold_is_assist_and_says_why() -> None:
    decision = run(classified(confidence=0.62, runner_up=0.02))

    assert decision.mode is Mode.ASSIST
    assert fired(decision) == ["threshold.assist"]
    assert reason(decision, "threshold.assist") == (
        "confidence 0.62 below autonomous threshold 0.90 (defaults)"
    )
    assert decision.rules_fired[0].cap is Mode.ASSIST


def test_confidence_exactly_at_the_assist_threshold_is_assist() -> None:
    assert run(classified(confidence=0.55, runner_up=0.0)).mode is Mode.ASSIST


def test_confidence_below_the_assist_threshold_is_human_and_says_why() -> None:
    decision = run(classified(confidence=0.5499, runner_up=0.0))

    assert decision.mode is Mode.HUMAN
    assert fired(decision) == ["threshold.human"]
    assert reason(decision, "threshold.human") == (
        "confidence 0.5499 below assist threshold 0.55 (defaults)"
    )


def test_category_thresholds_override_the_defaults() -> None:
    # how_to: autonomous 0.85; billing uses the default 0.90.
    assert run(classified(category="how_to", confidence=0.86, runner_up=0.0)).mode is (
        Mode.AUTONOMOUS
    )
    assert run(classified(category="billing", confidence=0.86, runner_up=0.0)).mode is (Mode.ASSIST)


def test_a_category_threshold_is_named_as_the_source_in_the_reason() -> None:
    decision = run(classified(category="refunds", confidence=0.92, runner_up=0.0))

    assert reason(decision, "threshold.assist") == (
        "confidence 0.92 below autonomous threshold 0.93 (category refunds)"
    )


def test_a_category_may_override_one_threshold_and_inherit_the_other() -> None:
    custom = policy(categories={"outage": {"owner_team": "oncall", "assist": 0.40}})

    decision = run(classified(category="outage", confidence=0.45, runner_up=0.0), custom)

    assert decision.mode is Mode.ASSIST
    assert decision.thresholds == Thresholds(autonomous=0.9, assist=0.4, ambiguity_margin=0.15)


def test_an_unlisted_category_gets_the_defaults_and_the_default_owner_team() -> None:
    decision = run(classified(category="warranty", confidence=0.91, runner_up=0.0))

    assert decision.mode is Mode.AUTONOMOUS
    assert decision.thresholds == Thresholds(autonomous=0.9, assist=0.55, ambiguity_margin=0.15)
    assert decision.owner_team == "support-triage"


def test_the_thresholds_applied_are_recorded_in_the_decision() -> None:
    decision = run(classified(category="legal_complaint", confidence=0.8, runner_up=0.0))

    assert decision.thresholds == Thresholds(autonomous=0.9, assist=0.7, ambiguity_margin=0.15)


# ------------------------------------------------------------------------- ambiguity


def test_a_margin_below_the_ambiguity_margin_caps_at_assist() -> None:
    decision = run(classified(confidence=0.95, runner_up=0.85))

    assert decision.mode is Mode.ASSIST
    assert fired(decision) == ["ambiguity"]
    assert reason(decision, "ambiguity") == (
        "margin 0.10 between billing (0.95) and refunds (0.85) below ambiguity margin 0.15"
    )


def test_a_margin_exactly_at_the_ambiguity_margin_is_not_ambiguous() -> None:
    # 0.95 - 0.80 is 0.1499999… in floating point; the engine must not be fooled by it.
    decision = run(classified(confidence=0.95, runner_up=0.80))

    assert decision.mode is Mode.AUTONOMOUS
    assert "ambiguity" not in fired(decision)


def test_the_margin_is_taken_from_the_strongest_alternative_whatever_its_position() -> None:
    alternatives = (
        CategoryScore(category="shipping", confidence=0.01),
        CategoryScore(category="refunds", confidence=0.90),
    )
    decision = run(classified(confidence=0.95, alternatives=alternatives))

    assert "ambiguity" in fired(decision)
    assert "refunds (0.90)" in reason(decision, "ambiguity")


def test_without_alternatives_the_margin_is_the_confidence_itself() -> None:
    context = build_context(classified(confidence=0.97, alternatives=()))

    assert context["classification.margin"] == 0.97


# ----------------------------------------------------------------- never autonomous


@pytest.mark.parametrize("category", ["security_fraud", "data_privacy", "legal_complaint"])
def test_a_never_autonomous_category_is_at_most_assist_even_at_full_confidence(
    category: str,
) -> None:
    decision = run(classified(category=category, confidence=1.0, runner_up=0.0))

    assert decision.mode is Mode.ASSIST
    assert fired(decision) == ["category.never_autonomous"]
    assert reason(decision, "category.never_autonomous") == (
        f"category {category} is never autonomous"
    )


def test_a_never_autonomous_category_below_its_assist_threshold_records_both_reasons() -> None:
    decision = run(classified(category="security_fraud", confidence=0.3, runner_up=0.0))

    assert decision.mode is Mode.HUMAN
    assert fired(decision) == ["threshold.human", "category.never_autonomous"]


# ----------------------------------------------------------- the default policy rules


def test_a_vip_ticket_is_never_autonomous() -> None:
    vip = received(customer={"id": "C-1", "tier": "vip"})

    decision = run(classified(vip, confidence=0.99, runner_up=0.0))

    assert decision.mode is Mode.ASSIST
    assert fired(decision) == ["vip-at-most-assist"]
    assert reason(decision, "vip-at-most-assist") == (
        "VIP customers always get a human in the loop (ticket.customer_tier='vip')"
    )


def test_a_premium_ticket_is_not_capped_by_the_vip_rule() -> None:
    premium = received(customer={"tier": "premium"})

    assert run(classified(premium, confidence=0.99, runner_up=0.0)).mode is Mode.AUTONOMOUS


@pytest.mark.parametrize(
    ("score", "mode"), [(-0.6, Mode.HUMAN), (-0.95, Mode.HUMAN), (-0.59, Mode.AUTONOMOUS)]
)
def test_strong_negative_sentiment_goes_to_a_human_from_minus_point_six(
    score: float, mode: Mode
) -> None:
    decision = run(classified(confidence=0.99, runner_up=0.0, sentiment_score=score))

    assert decision.mode is mode


@pytest.mark.parametrize("language", ["de", "unknown"])
def test_an_unsupported_or_unknown_language_goes_to_a_human(language: str) -> None:
    decision = run(classified(confidence=0.99, runner_up=0.0, language=language))

    assert decision.mode is Mode.HUMAN
    assert fired(decision) == ["unsupported-language"]
    assert f"classification.language={language!r}" in reason(decision, "unsupported-language")


def test_critical_urgency_is_at_most_assist() -> None:
    decision = run(classified(confidence=0.99, runner_up=0.0, urgency="critical"))

    assert decision.mode is Mode.ASSIST
    assert fired(decision) == ["critical-urgency"]


def test_high_urgency_is_not_capped() -> None:
    assert run(classified(confidence=0.99, runner_up=0.0, urgency="high")).mode is (Mode.AUTONOMOUS)


# ----------------------------------------------------------------------- kill switch


@pytest.mark.parametrize("category", ["billing", "how_to", "security_fraud", "warranty"])
def test_the_global_kill_switch_forces_human_for_every_category(category: str) -> None:
    braked = policy(kill_switch=True)

    decision = run(classified(category=category, confidence=1.0, runner_up=0.0), braked)

    assert decision.mode is Mode.HUMAN
    assert "kill_switch.global" in fired(decision)
    assert reason(decision, "kill_switch.global") == "global kill switch on in policy test v7"


def test_a_category_kill_switch_forces_human_only_for_that_category() -> None:
    braked = policy(categories={"refunds": {"owner_team": "billing", "kill_switch": True}})

    refund = run(classified(category="refunds", confidence=1.0, runner_up=0.0), braked)
    bill = run(classified(category="billing", confidence=1.0, runner_up=0.0), braked)

    assert refund.mode is Mode.HUMAN
    assert fired(refund) == ["kill_switch.category"]
    assert reason(refund, "kill_switch.category") == "kill switch on for category refunds"
    assert bill.mode is Mode.AUTONOMOUS


# ---------------------------------------------------------------------- built-in safety

UNSAFE: dict[str, dict[str, Any]] = {
    "safety.degraded": {"degraded": True, "degraded_reason": "llm timeout; local fallback"},
    "safety.injection": {
        "signals": Signals(injection_suspected=True, injection_reasons=("ignore previous",))
    },
    "safety.out_of_scope": {"signals": Signals(out_of_scope=True, out_of_scope_score=0.83)},
}


@pytest.mark.parametrize("rule_id", sorted(UNSAFE))
def test_safety_checks_force_human_even_when_the_policy_has_no_rules(rule_id: str) -> None:
    bare = policy(rules=[])

    decision = run(classified(confidence=1.0, runner_up=0.0, **UNSAFE[rule_id]), bare)

    assert decision.mode is Mode.HUMAN
    assert fired(decision) == [rule_id]


def test_safety_reasons_quote_what_the_classifier_reported() -> None:
    reasons = {
        rule_id: reason(run(classified(confidence=1.0, runner_up=0.0, **fields)), rule_id)
        for rule_id, fields in UNSAFE.items()
    }

    assert reasons == {
        "safety.degraded": "classification degraded: llm timeout; local fallback",
        "safety.injection": "prompt injection suspected: ignore previous",
        "safety.out_of_scope": "ticket fits none of the categories (out-of-scope score 0.83)",
    }


def test_a_degraded_ticket_under_the_default_policy_records_built_in_and_file_rule() -> None:
    decision = run(classified(confidence=1.0, runner_up=0.0, degraded=True))

    assert fired(decision) == ["safety.degraded", "degraded-classification"]
    assert "no reason given" in reason(decision, "safety.degraded")


# ----------------------------------------------------------------- declarative rules


def test_rules_fired_lists_every_constraint_even_when_a_stricter_one_also_fired() -> None:
    vip = received(customer={"tier": "vip"})
    event = classified(
        vip,
        category="security_fraud",
        confidence=0.6,
        runner_up=0.5,
        urgency="critical",
        sentiment_score=-0.9,
        language="fr",
        degraded=True,
        signals=Signals(injection_suspected=True, out_of_scope=True),
    )

    decision = run(event)

    assert decision.mode is Mode.HUMAN
    assert fired(decision) == [
        "threshold.assist",
        "ambiguity",
        "category.never_autonomous",
        "safety.degraded",
        "safety.injection",
        "safety.out_of_scope",
        "vip-at-most-assist",
        "strong-negative-sentiment",
        "unsupported-language",
        "critical-urgency",
        "degraded-classification",
        "injection-suspected",
        "out-of-scope",
    ]
    assert all(rule.reason for rule in decision.rules_fired)


def test_a_confident_unremarkable_ticket_fires_nothing_and_is_autonomous() -> None:
    decision = run(classified(confidence=0.97, runner_up=0.02))

    assert decision.mode is Mode.AUTONOMOUS
    assert decision.rules_fired == ()


def test_a_rule_fires_only_when_all_its_conditions_hold() -> None:
    rule = {
        "id": "vip-chat",
        "description": "VIPs on chat",
        "when": [
            {"field": "ticket.customer_tier", "op": "eq", "value": "vip"},
            {"field": "ticket.channel", "op": "eq", "value": "chat"},
        ],
        "cap": "human",
    }
    custom = policy(rules=[rule])
    vip_chat = received(customer={"tier": "vip"}, channel="chat")
    vip_mail = received(customer={"tier": "vip"}, channel="email")

    on_chat = run(classified(vip_chat, confidence=1.0, runner_up=0.0), custom)
    on_mail = run(classified(vip_mail, confidence=1.0, runner_up=0.0), custom)

    assert on_chat.mode is Mode.HUMAN
    assert reason(on_chat, "vip-chat") == (
        "VIPs on chat (ticket.customer_tier='vip', ticket.channel='chat')"
    )
    assert on_mail.mode is Mode.AUTONOMOUS


def test_a_rule_can_test_pii_kinds_with_contains() -> None:
    rule = {
        "id": "card-numbers",
        "description": "Card numbers in the text",
        "when": [{"field": "signals.pii_kinds", "op": "contains", "value": "card"}],
        "cap": "assist",
    }
    custom = policy(rules=[rule])
    event = classified(
        confidence=1.0, runner_up=0.0, signals=Signals(pii_detected=True, pii_kinds=("card",))
    )

    assert run(event, custom).mode is Mode.ASSIST


def test_a_rule_capped_at_autonomous_is_recorded_but_never_restricts() -> None:
    rule = {
        "id": "note-chat",
        "description": "Chat tickets, for the record",
        "when": [{"field": "ticket.channel", "op": "eq", "value": "chat"}],
        "cap": "autonomous",
    }
    event = classified(received(channel="chat"), confidence=1.0, runner_up=0.0)

    decision = run(event, policy(rules=[rule]))

    assert decision.mode is Mode.AUTONOMOUS
    assert fired(decision) == ["note-chat"]


def test_the_context_offers_exactly_the_fields_the_loader_accepts() -> None:
    ticket = received(customer={"tier": "premium", "language": "en"}, channel="chat")
    event = classified(ticket, confidence=0.8, runner_up=0.3, sentiment_score=-0.2)

    context = build_context(event)

    assert set(context) == set(CONTEXT_FIELDS)
    assert context["ticket.customer_tier"] == "premium"
    assert context["ticket.channel"] == "chat"
    assert context["ticket.customer_language"] == "en"
    assert context["classification.margin"] == 0.5
    assert context["classification.sentiment_score"] == -0.2
    assert context["model.backend"] == "local"
    assert context["signals.pii_detected"] is False


# --------------------------------------------------------------------------- the event


def test_the_decision_id_is_derived_from_the_classification_and_stable_across_replays() -> None:
    event = classified(confidence=0.7)

    first, replay = run(event), run(event)

    assert first.event_id == derived_event_id(event.event_id, "policy")
    assert first == replay


def test_the_decision_carries_ticket_trace_causation_time_and_producer() -> None:
    event = classified(confidence=0.7)

    decision = run(event)

    assert decision.ticket_id == event.ticket_id
    assert decision.trace_id == event.trace_id
    assert decision.causation_id == event.event_id
    assert decision.occurred_at == NOW
    assert decision.producer == PRODUCER
    assert decision.ticket == event.ticket
    assert decision.event_type == "ticket.decided"


def test_the_decision_names_the_policy_version_hash_approval_and_owner_team() -> None:
    decision = run(classified(category="outage", confidence=0.99, runner_up=0.0))

    assert decision.policy == DEFAULT.info
    assert decision.policy.content_hash == DEFAULT.content_hash
    assert decision.policy.approved_by
    assert decision.policy.approved_at == "2026-11-25"
    assert decision.owner_team == "incident-response"


def test_the_summary_keeps_what_later_stages_need() -> None:
    event = classified(
        confidence=0.7,
        degraded=True,
        signals=Signals(pii_detected=True, injection_suspected=True, out_of_scope=True),
    )

    summary = summarize(event)

    assert summary.event_id == event.event_id
    assert (summary.category, summary.confidence) == ("billing", 0.7)
    assert summary.alternatives == event.alternatives
    assert (summary.language, summary.sentiment, summary.urgency) == ("en", "neutral", "normal")
    assert summary.model == event.model
    assert (summary.degraded, summary.injection_suspected) == (True, True)
    assert (summary.out_of_scope, summary.pii_detected) == (True, True)


def test_the_decision_round_trips_through_the_wire_format() -> None:
    decision = run(classified(confidence=0.6), candidate=policy(kill_switch=True))

    assert decode(encode(decision), TicketDecided) == decision


# ------------------------------------------------------------------------------ shadow


def test_a_shadow_decision_is_recorded_and_does_not_change_the_mode() -> None:
    event = classified(confidence=0.97, runner_up=0.02)
    stricter = policy(version="8", kill_switch=True)

    with_shadow = run(event, candidate=stricter)

    assert with_shadow.mode is Mode.AUTONOMOUS
    assert with_shadow.rules_fired == ()
    assert with_shadow.policy == DEFAULT.info
    assert with_shadow.shadow is not None
    assert with_shadow.shadow.mode is Mode.HUMAN
    assert with_shadow.shadow.policy.version == "8"
    assert [r.rule_id for r in with_shadow.shadow.rules_fired] == ["kill_switch.global"]
    assert with_shadow.model_copy(update={"shadow": None}) == run(event)


def test_without_a_candidate_there_is_no_shadow() -> None:
    assert run(classified()).shadow is None


# ------------------------------------------------------------------- the default policy


def test_the_default_policy_lists_every_category_of_the_taxonomy_with_an_owner() -> None:
    categories = DEFAULT.policy.categories

    assert sorted(categories) == sorted(TAXONOMY)
    assert all(own.owner_team for own in categories.values())


def test_the_default_policy_never_lets_risky_categories_be_autonomous() -> None:
    risky = {name for name, own in DEFAULT.policy.categories.items() if own.never_autonomous}

    assert risky == {"security_fraud", "data_privacy", "legal_complaint"}


def test_the_default_policy_is_approved_and_its_kill_switch_is_off() -> None:
    assert DEFAULT.info.name == "default"
    assert DEFAULT.info.approved_by
    assert DEFAULT.policy.kill_switch is False
    assert not any(own.kill_switch for own in DEFAULT.policy.categories.values())


# ----------------------------------------------------------------------------- explain


def test_explain_mentions_each_rule_in_words() -> None:
    text = explain_policy(DEFAULT)

    for rule in DEFAULT.policy.rules:
        assert rule.id in text
        assert rule.description in text
    assert "if ticket.customer_tier in ['vip'] then at most assist" in text
    assert "if classification.sentiment_score le -0.6 then human only" in text
    assert "if classification.degraded is True then human only" in text


def test_explain_shows_identity_approval_defaults_and_kill_switch() -> None:
    text = explain_policy(DEFAULT)

    assert "Policy default version 2" in text
    assert DEFAULT.content_hash in text
    assert "Approved by triageflow maintainers" in text
    assert "on 2026-11-25" in text
    assert "Global kill switch: off" in text
    assert "autonomous at confidence >= 0.90" in text
    assert "support-triage" in text


def test_explain_has_a_row_per_category_marking_inherited_thresholds() -> None:
    lines = explain_policy(DEFAULT).splitlines()

    rows = {line.split()[0]: line.split() for line in lines if line.split()[:1] == ["refunds"]}
    rows |= {line.split()[0]: line.split() for line in lines if line.startswith("legal_")}
    assert rows["refunds"] == ["refunds", "0.93", "0.55*", "no", "off", "billing-ops"]
    assert rows["legal_complaint"] == ["legal_complaint", "0.90*", "0.70", "yes", "off", "legal"]


def test_explain_warns_when_a_kill_switch_is_on() -> None:
    braked = policy(
        kill_switch=True, categories={"billing": {"owner_team": "b", "kill_switch": True}}
    )

    text = explain_policy(braked)

    assert "Global kill switch: ON" in text
    assert "ON" in next(line for line in text.splitlines() if line.startswith("billing"))
    assert "Rules: none." in text
