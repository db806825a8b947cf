"""The hostile corpus checked without servers: well-formed, current, and decided as it says.

The same cases run through the real pipeline in tests/integration/test_hostile_corpus.py;
here the classifier's handler (contract, shipped model, signals), and the default policy
are called directly, so a wrong expectation or a missed case shows up in seconds.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from services.classifier.backends.local import LocalModel, default_model
from services.classifier.handlers import ClassifierHandler
from services.classifier.signals import UNUSUAL_CODES, injection_reasons
from services.policy import decide, load_default_policy
from shared.codec import InvalidMessage
from shared.contracts import ProducerInfo, TicketClassified, TicketDecided, utc_now
from shared.topics import Topics
from tests.hostile import generate
from tests.hostile.corpus import (
    BENIGN,
    BENIGN_CATEGORIES,
    CATEGORIES,
    CORPUS,
    DEAD_LETTER,
    OUTCOMES,
    Case,
    read_corpus,
    show,
)

CASES = read_corpus()
INJECTIONS = {"injection_classifier", "injection_policy", "fake_system_message"}
UNUSUAL = "unusual-input"
PRODUCER = ProducerInfo(service="test")
DATA = Path(__file__).resolve().parents[2] / "services" / "classifier" / "data"


@cache
def _model(cache_dir: Path) -> LocalModel:
    return default_model(cache_dir)


@pytest.fixture
def model(tmp_path_factory: pytest.TempPathFactory) -> LocalModel:
    """The shipped classifier, trained once per session."""
    return _model(tmp_path_factory.getbasetemp() / "models")


async def decided(cases: list[Case], model: LocalModel) -> list[TicketDecided]:
    """Return the decisions on valid cases, made by the classifier's handler and the policy."""
    now = utc_now()
    handler = ClassifierHandler(model, topics=Topics(), producer=PRODUCER, clock=lambda: now)
    out = await handler([case.incoming(offset) for offset, case in enumerate(cases)])
    events = [message.event for message in out]
    assert all(isinstance(e, TicketClassified) for e in events), "a valid case was dead-lettered"
    return [
        decide(event, load_default_policy(), producer=PRODUCER, now=now)
        for event in events
        if isinstance(event, TicketClassified)
    ]


def test_the_corpus_files_are_exactly_what_the_generator_writes() -> None:
    hint = "regenerate them: .venv/bin/python -m tests.hostile.generate"

    assert CORPUS.read_text(encoding="utf-8") == generate.render(), hint
    assert BENIGN.read_text(encoding="utf-8") == generate.render(generate.BENIGN_GENERATORS), hint


def test_the_corpus_has_over_200_cases_in_every_category_with_unique_ids() -> None:
    per_category = Counter(case.category for case in CASES)

    assert len(CASES) >= 200
    assert set(per_category) == set(CATEGORIES)
    assert min(per_category.values()) >= 3, per_category
    assert len({case.id for case in CASES}) == len(CASES)
    # Each case's outcome is found in the trail under its own ticket id.
    assert len({case.ticket_id() for case in CASES}) == len(CASES)


def test_every_hostile_case_expects_a_dead_letter_or_a_human_with_the_rule_and_reason() -> None:
    for case in CASES:
        assert case.expect in OUTCOMES or case.expect.startswith(DEAD_LETTER), case.id
        if case.expect == "human":
            assert case.expect_rule is not None, case.id
        if case.expect_rule == UNUSUAL:
            assert case.expect_reason in UNUSUAL_CODES, case.id
        if case.category in INJECTIONS or case.category == "injection_in_subject":
            assert (case.expect, case.expect_rule) == ("human", "safety.injection"), case.id


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.dead_letter_reason], ids=lambda c: str(c.id)
)
def test_an_invalid_case_is_refused_by_the_inbound_contract_with_its_reason(case: Case) -> None:
    outcome = case.decodes()

    assert isinstance(outcome, InvalidMessage), f"{case.id} is a valid ticket"
    assert outcome.reason == case.dead_letter_reason, outcome


async def test_every_valid_hostile_case_goes_to_a_human_with_the_rule_and_reason_it_names(
    model: LocalModel, request: pytest.FixtureRequest
) -> None:
    valid = [case for case in CASES if case.dead_letter_reason is None]

    decisions = await decided(valid, model)

    wrong = []
    outcomes: Counter[str] = Counter()
    for case, decision in zip(valid, decisions, strict=True):
        reasons = {rule.rule_id: rule.reason for rule in decision.rules_fired}
        outcomes[f"{decision.mode.value}:{case.expect_rule}"] += 1
        if decision.mode.value != "human":
            wrong.append(f"{case.id}: {decision.mode.value} {list(reasons)}")
        if case.expect_rule not in reasons:
            wrong.append(f"{case.id}: {case.expect_rule} not in {list(reasons)}")
        elif case.expect_reason and case.expect_reason not in reasons[case.expect_rule]:
            wrong.append(f"{case.id}: {case.expect_reason} not in {reasons[case.expect_rule]!r}")
    dead = Counter(case.expect for case in CASES if case.dead_letter_reason)
    show(
        request,
        [
            f"hostile corpus (no servers): {len(CASES)} cases, {len(wrong)} unexpected",
            *(f"  {n:4d}  {label}" for label, n in (dead + outcomes).most_common()),
        ],
    )

    assert wrong == []


async def test_every_benign_variant_is_decided_like_the_plain_ticket_and_finds_nothing_unusual(
    model: LocalModel,
) -> None:
    variants = read_corpus(BENIGN)
    plain = [
        Case(
            id=case.id,
            category=case.category,
            note="plain twin",
            key=case.ticket_id().encode(),
            value=json.dumps({"ticket_id": case.ticket_id(), "body": ticket.body}).encode(),
            headers=(),
            copies=1,
            expect="flows",
            expect_rule=None,
        )
        for case in variants
        if not isinstance(ticket := case.decodes(), InvalidMessage)
    ]
    assert len(plain) == len(variants) >= 10
    assert {case.category for case in variants} == set(BENIGN_CATEGORIES)

    as_sent = await decided(variants, model)
    as_plain = await decided(plain, model)

    for case, sent, twin in zip(variants, as_sent, as_plain, strict=True):
        rules = [rule.rule_id for rule in sent.rules_fired]
        assert UNUSUAL not in rules, f"{case.id}: {sent.rules_fired}"
        assert not sent.classification.injection_suspected, case.id
        assert (sent.mode, rules) == (twin.mode, [r.rule_id for r in twin.rules_fired]), case.id


def _shipped_texts() -> list[tuple[str, str]]:
    with (DATA / "examples.csv").open(encoding="utf-8", newline="") as handle:
        texts = [("", row["text"]) for row in csv.DictReader(handle)]
    with (DATA / "sample_tickets.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            ticket = json.loads(line)
            texts.append((ticket.get("subject", ""), ticket.get("body", "")))
    return texts


def test_the_injection_detector_stays_quiet_on_every_shipped_example_and_sample() -> None:
    texts = _shipped_texts()

    flagged = [body[:80] for subject, body in texts if injection_reasons(body, subject=subject)]

    assert len(texts) > 1_000
    assert flagged == []
