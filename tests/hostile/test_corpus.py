"""The hostile corpus checked without servers: well-formed, current, and decided as it says.

The same cases run through the real pipeline in tests/integration/test_hostile_corpus.py;
here the contract, the shipped model and the default policy are called directly, so a
wrong expectation or a missed injection shows up in seconds.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from services.classifier.backends.local import LocalModel, default_model
from services.classifier.domain import classify
from services.classifier.signals import injection_reasons
from services.policy import decide, load_default_policy
from shared.codec import InvalidMessage
from shared.contracts import ProducerInfo, TicketReceived, utc_now
from tests.hostile import generate
from tests.hostile.corpus import CATEGORIES, CORPUS, DEAD_LETTER, OUTCOMES, Case, read_corpus

CASES = read_corpus()
INJECTIONS = {"injection_classifier", "injection_policy", "fake_system_message"}
PRODUCER = ProducerInfo(service="test")
DATA = Path(__file__).resolve().parents[2] / "services" / "classifier" / "data"


@cache
def _model(cache_dir: Path) -> LocalModel:
    return default_model(cache_dir)


@pytest.fixture
def model(tmp_path_factory: pytest.TempPathFactory) -> LocalModel:
    """The shipped classifier, trained once per session."""
    return _model(tmp_path_factory.getbasetemp() / "models")


def test_the_corpus_file_is_exactly_what_the_generator_writes() -> None:
    assert CORPUS.read_text(encoding="utf-8") == generate.render(), (
        "regenerate it: .venv/bin/python -m tests.hostile.generate"
    )


def test_the_corpus_has_over_200_cases_in_every_category_with_unique_ids() -> None:
    per_category = Counter(case.category for case in CASES)

    assert len(CASES) >= 200
    assert set(per_category) == set(CATEGORIES)
    assert min(per_category.values()) >= 3, per_category
    assert len({case.id for case in CASES}) == len(CASES)
    # Each case's outcome is found in the trail under its own ticket id.
    assert len({case.ticket_id() for case in CASES}) == len(CASES)


def test_every_expectation_is_a_known_outcome_and_injections_go_to_a_human() -> None:
    for case in CASES:
        assert case.expect in OUTCOMES or case.expect.startswith(DEAD_LETTER), case.id
        if case.category in INJECTIONS or case.category == "injection_in_subject":
            assert (case.expect, case.expect_rule) == ("human", "safety.injection"), case.id


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.dead_letter_reason], ids=lambda c: str(c.id)
)
def test_an_invalid_case_is_refused_by_the_inbound_contract_with_its_reason(case: Case) -> None:
    outcome = case.decodes()

    assert isinstance(outcome, InvalidMessage), f"{case.id} is a valid ticket"
    assert outcome.reason == case.dead_letter_reason, outcome


def test_every_valid_case_is_decided_as_the_corpus_says(model: LocalModel) -> None:
    valid = [case for case in CASES if case.dead_letter_reason is None]
    tickets = [ticket for case in valid if isinstance(ticket := case.decodes(), TicketReceived)]
    assert len(tickets) == len(valid), "a case expected to flow is not a valid ticket"

    now = utc_now()
    classified = classify(tickets, model, producer=PRODUCER, now=now)
    wrong = []
    for case, event in zip(valid, classified, strict=True):
        decided = decide(event, load_default_policy(), producer=PRODUCER, now=now)
        rules = [rule.rule_id for rule in decided.rules_fired]
        if case.expect == "human" and decided.mode.value != "human":
            wrong.append(f"{case.id}: {decided.mode.value} {rules} {event.signals}")
        if case.expect_rule is not None and case.expect_rule not in rules:
            wrong.append(f"{case.id}: {case.expect_rule} not in {rules}")

    assert wrong == []


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
