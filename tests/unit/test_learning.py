"""Continuous improvement, pure parts: dataset, learner, gate, drift guard, caps, shadow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.classifier.backends.hybrid import Embedder, HybridModel, fit_hybrid
from services.classifier.backends.local import Examples, LocalModel, fit
from services.classifier.handlers import ClassifierHandler
from services.learning.compare import PairedDecision, compare, gate
from services.learning.dataset import (
    Judgement,
    build_dataset,
    feedback_judgement,
    held_out,
)
from services.learning.drift import DriftRule, Judged, check_drift
from services.learning.learner import learn
from services.learning.registry import ModelRegistry, RegistryError
from services.policy.caps import RULE_ID, CapControl
from services.policy.engine import decide
from services.policy.model import load_default_policy
from shared.codec import encode
from shared.contracts import (
    CategoryCapped,
    CategoryReenabled,
    DriftEvidence,
    Mode,
    ModelInfo,
    ProducerInfo,
    ShadowClassification,
    TicketClassified,
    cap_key,
)
from shared.stage import Incoming
from shared.topics import Topics
from tests.factories import HashEncoder, classified, received

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PRODUCER = ProducerInfo(service="test")

TEXTS = {
    "billing": ["charged twice on my card", "invoice amount is wrong", "refund my payment please"],
    "login": ["cannot log in to my account", "password reset link broken", "locked out of login"],
    "shipping": ["parcel has not arrived", "tracking number shows nothing", "delivery is late"],
}


def tiny_model(extra: dict[str, list[str]] | None = None) -> LocalModel:
    texts, labels = [], []
    for label, items in (extra or TEXTS).items():
        texts += items
        labels += [label] * len(items)
    return fit(Examples(tuple(texts), tuple(labels), "sha-" + str(len(texts))))


def test_the_latest_judgement_of_a_text_wins_and_base_examples_are_oldest() -> None:
    early, late = NOW - timedelta(hours=2), NOW
    dataset = build_dataset(
        [
            Judgement("My  card was CHARGED twice", "login", "override", late, "f2"),
            Judgement("my card was charged twice", "billing", "base"),
            Judgement("my card was charged twice ", "shipping", "confirmed", early, "f1"),
        ]
    )

    assert [(j.label, j.provenance) for j in dataset.judgements] == [("login", "override")]
    assert dataset.superseded == 2
    assert dataset.counts_by_provenance() == {"override": 1}


def test_the_same_judgements_give_the_same_dataset_version() -> None:
    items = [Judgement("a text", "billing", "base"), Judgement("b text", "login", "base")]

    assert build_dataset(items).sha256 == build_dataset(list(reversed(items))).sha256
    assert build_dataset(items).sha256 != build_dataset(items[:1]).sha256


def test_overrides_teach_their_category_resolutions_confirm_and_complaints_teach_nothing() -> None:
    def common(correct_category: str | None, *, correct: bool) -> Judgement | None:
        return feedback_judgement(
            text="t",
            category="billing",
            correct_category=correct_category,
            judged_correct=correct,
            resolved=True,
            judged_at=NOW,
            source="d",
        )

    override = common("login", correct=False)
    confirmed = common(None, correct=True)
    complaint = common(None, correct=False)

    assert override is not None
    assert (override.label, override.provenance) == ("login", "override")
    assert confirmed is not None
    assert (confirmed.label, confirmed.provenance) == (
        "billing",
        "confirmed",
    )
    assert complaint is None


def test_the_held_out_split_depends_only_on_the_normalised_text() -> None:
    texts = [f"ticket number {i}" for i in range(2000)]

    share = sum(held_out(t, 0.2) for t in texts) / len(texts)

    assert 0.17 < share < 0.23
    assert all(held_out(t, 0.2) == held_out(t.upper() + "  ", 0.2) for t in texts[:200])


def test_the_learner_trains_on_feedback_and_beats_the_live_model_on_held_out_tickets() -> None:
    live = tiny_model()
    # Feedback teaches a fourth category the live model does not know at all.
    feedback = [
        Judgement(
            f"my subscription plan {i} needs an upgrade to premium tier {i}",
            "plans",
            "override",
            NOW,
            f"f{i}",
        )
        for i in range(60)
    ]
    base = [Judgement(t, label, "base") for label, items in TEXTS.items() for t in items]

    outcome = learn(base, feedback, live=live, holdout_share=0.3)

    assert outcome.evaluation.tickets > 5
    assert not any(j.text in {h.text for h in outcome.held_out} for j in outcome.dataset.judgements)
    assert outcome.evaluation.live_accuracy == 0.0
    assert outcome.evaluation.candidate_accuracy == 1.0


def test_the_registry_keeps_a_version_with_its_manifest_and_loads_it_back(tmp_path: Path) -> None:
    base = [Judgement(t, label, "base") for label, items in TEXTS.items() for t in items]
    outcome = learn(base, [], live=tiny_model(), holdout_share=0.2)
    registry = ModelRegistry(tmp_path)

    manifest = registry.publish(
        outcome.model, outcome.dataset, parent_version="p1", metrics=outcome.metrics(), now=NOW
    )

    assert manifest.version == outcome.model.info.version
    assert registry.load(manifest.version).info == outcome.model.info
    assert registry.manifest(manifest.version).counts_by_provenance == {"base": 9}
    assert [m.version for m in registry.versions()] == [manifest.version]
    with pytest.raises(RegistryError):
        registry.load("../../etc")


def hybrid_trainer(examples: Examples, seed: int) -> HybridModel:
    """Train `hybrid` with a stand-in encoder (no MiniLM: no model to build, no cost)."""
    return fit_hybrid(examples, seed=seed, embedder=Embedder(HashEncoder(), kind="numpy"))


def test_a_hybrid_candidate_is_kept_and_loaded_back_as_a_hybrid_model(tmp_path: Path) -> None:
    base = [Judgement(t, label, "base") for label, items in TEXTS.items() for t in items]
    outcome = learn(base, [], live=tiny_model(), holdout_share=0.2, train=hybrid_trainer)
    registry = ModelRegistry(tmp_path / "registry")

    manifest = registry.publish(
        outcome.model, outcome.dataset, parent_version=None, metrics=outcome.metrics(), now=NOW
    )
    loaded = registry.load(manifest.version, cache_dir=tmp_path / "cache")

    assert manifest.model_name == "tfidf-minilm-lr"
    assert isinstance(loaded, HybridModel)
    assert loaded.info == outcome.model.info
    assert manifest.metrics["training_oof_accuracy"] == outcome.model.oof_accuracy


def test_a_registered_model_of_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    base = [Judgement(t, label, "base") for label, items in TEXTS.items() for t in items]
    outcome = learn(base, [], live=tiny_model(), holdout_share=0.2)
    registry = ModelRegistry(tmp_path)
    manifest = registry.publish(
        outcome.model, outcome.dataset, parent_version=None, metrics={}, now=NOW
    )
    path = registry.path(manifest.version) / "manifest.json"
    path.write_text(path.read_text().replace('"tfidf-lr"', '"someone-elses-model"'))

    with pytest.raises(RegistryError, match="someone-elses-model"):
        registry.load(manifest.version)


def pairs(n: int, *, live_mode: str, shadow_mode: str, shadow_right: bool) -> list[PairedDecision]:
    return [
        PairedDecision(
            mode=live_mode,
            category="billing",
            shadow_mode=shadow_mode,
            shadow_category="login" if shadow_right else "shipping",
            judged_correct=False,
            correct_category="login",
        )
        for _ in range(n)
    ]


def test_the_gate_promotes_a_candidate_that_automates_more_at_least_as_precisely() -> None:
    result = compare(pairs(60, live_mode="human", shadow_mode="autonomous", shadow_right=True))

    verdict = gate(result, min_judged=30)

    assert result.candidate.judged == 60
    assert result.candidate.precision == 1.0
    assert result.modes_live["human"] == 60
    assert result.modes_candidate["autonomous"] == 60
    assert verdict.passed, verdict.reasons


def test_the_gate_refuses_a_wrong_candidate_or_too_little_feedback() -> None:
    # The candidate automates more, but the extra tickets it would take alone are wrong.
    wrong = compare(
        [PairedDecision("autonomous", "billing", "autonomous", "billing", True, None)] * 40
        + pairs(20, live_mode="human", shadow_mode="autonomous", shadow_right=False)
    )
    few = compare(pairs(10, live_mode="human", shadow_mode="autonomous", shadow_right=True))

    assert wrong.candidate.autonomous_share == 1.0
    assert wrong.candidate.precision == 40 / 60
    assert not gate(wrong).passed
    assert [r for r in gate(wrong).reasons if "below 0.9" in r]
    assert any("need 30" in r for r in gate(few).reasons)


def audited_sample(*, easy_wrong_every: int = 0, hard_right: int) -> list[PairedDecision]:
    """300 tickets live decides alone (60 audited, all right), 100 it sends to agents.

    The candidate takes all 400 alone. On the easy ones it disagrees with live on every
    `easy_wrong_every`-th ticket (wrong, as live was right); of the hard ones it gets
    `hard_right` right.
    """
    easy = [
        PairedDecision(
            mode="autonomous",
            category="billing",
            shadow_mode="autonomous",
            shadow_category="login"
            if easy_wrong_every and i % easy_wrong_every == 0
            else "billing",
            judged_correct=True if i % 5 == 0 else None,
        )
        for i in range(300)
    ]
    hard = [
        PairedDecision(
            mode="assist",
            category="billing",
            shadow_mode="autonomous",
            shadow_category="login",
            judged_correct=False,
            correct_category="login" if i < hard_right else "shipping",
        )
        for i in range(100)
    ]
    return easy + hard


def test_judged_tickets_weigh_the_inverse_of_their_audit_rate_so_easy_tickets_count_fully() -> None:
    result = compare(audited_sample(hard_right=88))

    # Counted as they come, the candidate looks 148/160 = 92.5 % precise: mostly hard tickets.
    assert (result.candidate.judged, result.candidate.correct) == (160, 148)
    # Weighted, each audited easy ticket stands for five: (300 + 88) / 400.
    assert result.candidate.precision == pytest.approx(0.97)
    # 60 weights of 5 and 100 of 1 are worth 400² / (60·25 + 100) = 100 tickets, not 160.
    assert result.candidate.effective_judged == pytest.approx(100.0)
    assert result.candidate.precision_lower is not None
    assert 0.9 < result.candidate.precision_lower < 0.97
    assert gate(result, target=0.9).passed, gate(result, target=0.9).reasons


def test_the_gate_refuses_a_candidate_that_fails_the_sparsely_audited_easy_tickets() -> None:
    # Wrong on a third of the easy tickets: only 20 of its 40 errors are ever seen.
    result = compare(audited_sample(easy_wrong_every=3, hard_right=100))

    assert result.candidate.correct / result.candidate.judged == pytest.approx(140 / 160)
    assert result.candidate.precision == pytest.approx(0.75)
    verdict = gate(result, target=0.9)
    assert not verdict.passed
    assert any("precision bound" in r for r in verdict.reasons)


def test_the_gate_refuses_autonomy_where_nobody_judged_any_ticket_of_a_live_mode() -> None:
    unjudged = [PairedDecision("autonomous", "billing", "autonomous", "billing", None, None)] * 50
    result = compare(
        unjudged + pairs(60, live_mode="human", shadow_mode="autonomous", shadow_right=True)
    )

    assert result.candidate.unjudged_strata == 50
    assert any("no feedback at all" in r for r in gate(result).reasons)


def judged(
    category: str, n: int, *, correct: int, at: datetime, mode: str = "autonomous"
) -> list[Judged]:
    return [Judged(category, mode, i < correct, i >= correct, at) for i in range(n)]


def test_the_drift_guard_caps_a_category_whose_feedback_turns_bad_and_spares_the_rest() -> None:
    rule = DriftRule(
        target=0.95, window=timedelta(hours=1), baseline=timedelta(hours=24), min_judged=20
    )
    recent = NOW - timedelta(minutes=10)
    decisions = [
        *judged("billing", 40, correct=40, at=NOW - timedelta(hours=5)),
        *judged("billing", 30, correct=18, at=recent),
        *judged("login", 30, correct=30, at=recent),
        *judged("shipping", 5, correct=0, at=recent),  # too few to judge
    ]

    findings = check_drift(decisions, rule=rule, now=NOW)

    assert [f.category for f in findings] == ["billing"]
    evidence = findings[0].evidence
    assert evidence.triggers == ("precision", "override_jump")
    assert evidence.autonomous_judged == 30
    assert evidence.autonomous_correct == 18
    assert evidence.precision_upper is not None
    assert evidence.precision_upper < 0.95
    assert check_drift(decisions, rule=rule, now=NOW, capped={"billing"}) == []


def capped_event(category: str = "billing") -> CategoryCapped:
    return CategoryCapped(
        event_id="c1",
        key=cap_key(category),
        producer=PRODUCER,
        actor="drift-guard",
        category=category,
        evidence=DriftEvidence(
            target=0.98,
            window_start=NOW,
            window_end=NOW,
            autonomous_judged=30,
            autonomous_correct=18,
            precision_upper=0.77,
            triggers=("precision",),
        ),
    )


def test_a_capped_category_is_decided_at_most_assist_until_re_enabled() -> None:
    policy = load_default_policy()
    caps = CapControl()
    event = classified(category="billing", confidence=0.999, runner_up=0.0)
    assert decide(event, policy, producer=PRODUCER, now=NOW).mode == Mode.AUTONOMOUS

    caps.on_change(capped_event())
    capped = decide(event, policy, producer=PRODUCER, now=NOW, caps=caps.caps)
    caps.on_change(
        CategoryReenabled(
            event_id="r1",
            key=cap_key("billing"),
            producer=PRODUCER,
            actor="ops",
            category="billing",
        )
    )

    assert capped.mode == Mode.ASSIST
    rule = next(r for r in capped.rules_fired if r.rule_id == RULE_ID)
    assert "18/30" in rule.reason
    assert "0.770" in rule.reason
    assert decide(event, policy, producer=PRODUCER, now=NOW, caps=caps.caps).mode == Mode.AUTONOMOUS


def test_the_shadow_decision_judges_the_candidate_models_classification() -> None:
    candidate = ModelInfo(name="tfidf-lr", version="cand01", backend="local")
    event = classified(category="billing", confidence=0.4, runner_up=0.1).model_copy(
        update={
            "shadow": ShadowClassification(category="outage", confidence=0.999, model=candidate)
        }
    )

    decision = decide(event, load_default_policy(), producer=PRODUCER, now=NOW)

    assert decision.mode == Mode.HUMAN
    assert decision.shadow is not None
    assert (decision.shadow.category, decision.shadow.model) == ("outage", candidate)
    assert decision.shadow.mode != decision.mode


async def test_the_classifier_hot_swaps_its_model_and_records_a_shadow_candidate() -> None:
    live, better = tiny_model(), tiny_model({k: [*v, f"{k} extra"] for k, v in TEXTS.items()})
    handler = ClassifierHandler(live, topics=Topics(), producer=PRODUCER, clock=lambda: NOW)
    record = Incoming(
        "tickets.inbound", 0, 0, b"T-1", encode(received(body="parcel has not arrived"))
    )

    handler.use_candidate(better)
    first = (await handler([record]))[0].event
    assert isinstance(first, TicketClassified)
    handler.use_model(better)
    handler.use_candidate(None)
    second = (await handler([record]))[0].event
    assert isinstance(second, TicketClassified)

    assert first.model.version == live.info.version
    assert first.shadow is not None
    assert first.shadow.model.version == better.info.version
    assert second.model.version == better.info.version
    assert second.shadow is None


def test_the_cli_gate_target_defaults_to_the_calibration_target() -> None:
    from services.cli.improve import DEFAULT_TARGET
    from services.policy.calibration import DEFAULT_TARGET as CALIBRATION_TARGET

    assert DEFAULT_TARGET == CALIBRATION_TARGET
