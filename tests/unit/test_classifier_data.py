"""The data shipped with the classifier: taxonomy, examples and demo tickets are usable."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from services.classifier.backends.base import ticket_text
from services.classifier.backends.local import read_examples
from services.classifier.data import EXAMPLES, SAMPLE_TICKETS, shipped
from services.classifier.data.make_samples import samples
from services.classifier.signals import analyse
from services.classifier.taxonomy import default_taxonomy
from shared.codec import InvalidMessage, decode
from shared.contracts import MAX_BODY_CHARS, TicketReceived

CATEGORIES = (
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
)


@pytest.fixture(scope="module")
def sample_lines() -> list[dict[str, Any]]:
    text = shipped(SAMPLE_TICKETS).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def _tickets(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "raw" not in line]


def _kind(line: dict[str, Any]) -> str:
    return str(line["note"]).split(":")[0]


def _junk(lines: list[dict[str, Any]], kind: str) -> list[str]:
    return [line["raw"] for line in lines if "raw" in line and _kind(line) == kind]


def test_the_default_taxonomy_has_exactly_the_twelve_support_categories() -> None:
    taxonomy = default_taxonomy()

    assert sorted(taxonomy.names) == sorted(CATEGORIES)
    assert all(category.description.strip() for category in taxonomy.categories)


def test_every_category_has_at_least_30_examples_and_no_label_is_unknown() -> None:
    counts = Counter(read_examples(shipped(EXAMPLES)).labels)

    assert set(counts) == set(default_taxonomy().names)
    assert min(counts.values()) >= 30, counts


def test_no_example_text_is_repeated() -> None:
    texts = read_examples(shipped(EXAMPLES)).texts

    assert len(set(texts)) == len(texts)


def test_sample_tickets_have_500_lines_and_cover_every_category(
    sample_lines: list[dict[str, Any]],
) -> None:
    tickets = _tickets(sample_lines)
    labels = Counter(t["metadata"]["demo_label"] for t in tickets)

    assert len(sample_lines) >= 500
    assert set(labels) == set(CATEGORIES)
    assert min(labels.values()) >= 30
    for line in tickets:
        TicketReceived.model_validate(line)
        assert line["customer"]["tier"] in {"standard", "premium", "vip"}


def test_sample_tickets_read_differently_from_the_training_examples(
    sample_lines: list[dict[str, Any]],
) -> None:
    examples = set(read_examples(shipped(EXAMPLES)).texts)
    tickets = _tickets(sample_lines)
    texts = [ticket_text(t["subject"], t["body"]) for t in tickets]

    assert not examples & ({t["body"] for t in tickets} | set(texts))
    assert len({t["body"] for t in tickets}) == len(tickets)
    assert len({t["ticket_id"] for t in tickets}) == len(tickets)


def test_about_five_percent_of_samples_are_junk_or_hostile(
    sample_lines: list[dict[str, Any]],
) -> None:
    junk = [line for line in sample_lines if "raw" in line]
    kinds = Counter(_kind(line) for line in junk)

    assert 0.03 <= len(junk) / len(sample_lines) <= 0.08
    # The demo publisher sends `raw` verbatim only from lines with nothing but these keys.
    assert all(set(line) <= {"raw", "note", "key"} for line in junk)
    assert set(kinds) >= {
        "malformed_json",
        "invalid_utf8",
        "missing_body",
        "wrong_types",
        "empty_body",
        "huge_body",
        "prompt_injection",
        "non_english",
        "off_topic",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "malformed_json",
        "invalid_utf8",
        "missing_body",
        "missing_ticket_id",
        "wrong_types",
        "empty_body",
        "huge_body",
    ],
)
def test_junk_samples_are_refused_by_the_inbound_contract(
    sample_lines: list[dict[str, Any]], kind: str
) -> None:
    raws = _junk(sample_lines, kind)

    assert raws
    for raw in raws:
        with pytest.raises(InvalidMessage):
            # As the demo publisher sends it: lone surrogates become the bytes they escape.
            decode(raw.encode("utf-8", "surrogateescape"), TicketReceived)


def test_the_huge_sample_body_exceeds_the_contract_limit(
    sample_lines: list[dict[str, Any]],
) -> None:
    (raw,) = _junk(sample_lines, "huge_body")

    assert len(json.loads(raw)["body"]) > MAX_BODY_CHARS
    with pytest.raises(InvalidMessage, match="body"):
        decode(raw.encode(), TicketReceived)


def test_every_injection_sample_is_suspected(sample_lines: list[dict[str, Any]]) -> None:
    injections = [json.loads(raw) for raw in _junk(sample_lines, "prompt_injection")]

    assert len(injections) >= 5
    for message in injections:
        ticket = TicketReceived.model_validate(message)
        assert analyse(ticket.subject, ticket.body).injection_suspected, ticket.body


def test_non_english_samples_are_german_french_and_spanish(
    sample_lines: list[dict[str, Any]],
) -> None:
    messages = [json.loads(raw) for raw in _junk(sample_lines, "non_english")]

    languages = Counter(analyse(m["subject"], m["body"]).language for m in messages)

    assert set(languages) == {"de", "fr", "es"}


def test_the_sample_file_is_what_make_samples_generates(
    sample_lines: list[dict[str, Any]],
) -> None:
    assert samples() == sample_lines
