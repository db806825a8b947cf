"""Properties of the inbound boundary for any input at all, not just the examples.

Whatever bytes upstream sends, `decode` either returns a valid `TicketReceived` or raises
`InvalidMessage` with one of the codec's reasons; nothing else escapes (anything else
would stop a consumer). A ticket it accepts can travel on: it serialises to strict JSON,
the audit store can record it, its ids do not depend on key order or on when the record
was published, and the policy decides it without error (a suspected injection: human).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from services.audit.repository import to_row
from services.policy import decide, load_default_policy
from shared.codec import MAX_MESSAGE_BYTES, InvalidMessage, decode, encode
from shared.contracts import MAX_BODY_CHARS, Mode, ProducerInfo, Signals, TicketReceived
from shared.stage import Incoming, decode_record
from tests.factories import classified

REASONS = {
    "empty_message",
    "too_large",
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "schema_violation",
}
FIELDS = [
    "event_id",
    "event_type",
    "schema_version",
    "ticket_id",
    "trace_id",
    "causation_id",
    "occurred_at",
    "producer",
    "source",
    "channel",
    "subject",
    "body",
    "customer",
    "created_at",
    "metadata",
]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# JSON as hostile senders write it: huge and non-finite numbers, odd strings, nesting.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        ["", " ", "\x00", "\ud800", "2026-11-25T12:00:00Z", "0001-01-01T00:00:00+14:00"]
    ),
)
# What a well-behaved sender puts in metadata.
plain_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40, alphabet=st.characters(exclude_categories=["Cs"])),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def valid_ticket() -> st.SearchStrategy[dict[str, Any]]:
    """A minimal valid ticket with some optional fields."""
    return st.fixed_dictionaries(
        {
            "ticket_id": st.text(min_size=1, max_size=30).filter(lambda s: s.strip()),
            "body": st.text(min_size=1, max_size=200).filter(lambda s: s.strip()),
        },
        optional={
            "subject": st.text(max_size=50),
            "customer": st.fixed_dictionaries({}, optional={"tier": st.text(max_size=10)}),
            "metadata": st.dictionaries(st.text(max_size=10), plain_scalars, max_size=5),
        },
    )


@st.composite
def mutated_tickets(draw: st.DrawFn) -> dict[str, Any]:
    """A valid ticket with some fields replaced by anything, removed, or added."""
    ticket = draw(valid_ticket())
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        if draw(st.booleans()):
            ticket[name] = draw(json_values)
        else:
            ticket.pop(name, None)
    ticket |= draw(st.dictionaries(st.text(max_size=10), json_values, max_size=3))
    return ticket


def outcome(raw: bytes) -> TicketReceived | InvalidMessage:
    """Decode; anything but a ticket or an InvalidMessage fails the property."""
    try:
        return decode(raw, TicketReceived)
    except InvalidMessage as error:
        return error


def to_wire(data: Any) -> bytes:
    """JSON as a lenient sender writes it (NaN and Infinity included, any Unicode)."""
    return json.dumps(data, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def assert_travels_on(ticket: TicketReceived) -> None:
    """An accepted ticket: bounded, strict JSON, recordable, and decidable."""
    assert ticket.body.strip()
    assert len(ticket.body) <= MAX_BODY_CHARS
    assert 1 <= len(ticket.ticket_id) <= 200
    wire = encode(ticket)
    json.loads(wire, parse_constant=_no_constants)
    assert decode(wire, TicketReceived) == ticket
    payload = ticket.model_dump(mode="json")
    json.loads(json.dumps(payload), parse_constant=_no_constants)
    assert to_row(ticket, "tickets.inbound", 0, 0).event_id == ticket.event_id
    ticket.occurred_at.astimezone(UTC)


@SETTINGS
@given(st.binary(max_size=300))
def test_any_bytes_decode_to_a_ticket_or_a_known_reason(raw: bytes) -> None:
    result = outcome(raw)

    assert isinstance(result, TicketReceived) or result.reason in REASONS


@SETTINGS
@given(json_values)
def test_any_json_value_decodes_to_a_ticket_or_a_known_reason(value: Any) -> None:
    result = outcome(to_wire(value))

    if isinstance(result, InvalidMessage):
        assert result.reason in REASONS
    else:
        assert_travels_on(result)


@SETTINGS
@given(mutated_tickets())
def test_a_ticket_with_fields_replaced_removed_or_added_is_accepted_only_if_it_travels_on(
    data: dict[str, Any],
) -> None:
    result = outcome(to_wire(data))

    if isinstance(result, InvalidMessage):
        assert result.reason in REASONS
    else:
        assert_travels_on(result)


@SETTINGS
@given(valid_ticket(), st.randoms(use_true_random=False))
def test_the_derived_ids_depend_on_the_content_not_on_key_order(
    data: dict[str, Any], random: Any
) -> None:
    items = list(data.items())
    random.shuffle(items)

    first = decode(to_wire(data), TicketReceived)
    again = decode(to_wire(dict(items)), TicketReceived)

    assert (first.event_id, first.trace_id) == (again.event_id, again.trace_id)
    assert decode(to_wire(data), TicketReceived).event_id == first.event_id


@SETTINGS
@given(valid_ticket(), st.integers(min_value=1, max_value=4_000_000_000_000))
def test_a_republished_ticket_keeps_its_id_whatever_the_record_timestamp(
    data: dict[str, Any], timestamp_ms: int
) -> None:
    raw = to_wire(data)

    def at(ms: int) -> TicketReceived:
        return decode_record(
            Incoming("tickets.inbound", 0, 0, None, raw, timestamp_ms=ms), TicketReceived
        )

    assert at(timestamp_ms).event_id == at(1_764_072_000_000).event_id == outcome(raw).event_id  # type: ignore[union-attr]


@SETTINGS
@given(valid_ticket(), st.text(min_size=1, max_size=20))
def test_an_explicit_event_id_is_kept_and_different_content_gets_a_different_id(
    data: dict[str, Any], extra: str
) -> None:
    explicit = decode(to_wire(data | {"event_id": "upstream-1"}), TicketReceived)
    other = decode(to_wire(data | {"body": data["body"] + extra}), TicketReceived)

    assert explicit.event_id == "upstream-1"
    assert other.event_id != decode(to_wire(data), TicketReceived).event_id


@SETTINGS
@given(mutated_tickets(), st.booleans(), st.floats(min_value=0.0, max_value=1.0))
def test_every_accepted_ticket_is_decided_and_a_suspected_injection_goes_to_a_human(
    data: dict[str, Any], injection: bool, confidence: float
) -> None:
    ticket = outcome(to_wire(data))
    assume(isinstance(ticket, TicketReceived))
    assert isinstance(ticket, TicketReceived)
    event = classified(
        ticket, confidence=confidence, signals=Signals(injection_suspected=injection)
    )

    decision = decide(
        event,
        load_default_policy(),
        producer=ProducerInfo(service="policy"),
        now=datetime(2026, 11, 25, tzinfo=UTC),
    )

    assert decision.ticket_id == ticket.ticket_id
    assert not injection or decision.mode is Mode.HUMAN
    assert all(math.isfinite(rule.cap.rank) for rule in decision.rules_fired)


def test_a_message_over_the_size_limit_is_refused_before_it_is_parsed() -> None:
    raw = b'{"ticket_id": "T-1", "body": "' + b"x" * MAX_MESSAGE_BYTES + b'"}'

    result = outcome(raw)

    assert isinstance(result, InvalidMessage)
    assert result.reason == "too_large"
