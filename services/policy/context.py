"""The fields a policy rule may test, in one table, and the context built from them.

The table is the single source of truth: the loader refuses a rule naming a field that is
not here (or a value that could never match it), and `build_context` fills exactly these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from shared.conditions import Condition
from shared.contracts import TicketClassified

ContextValue = str | float | bool | tuple[str, ...] | None
Kind = Literal["text", "number", "flag", "list"]


@dataclass(frozen=True, slots=True)
class ContextField:
    """One field a rule may test: its kind and how to read it from a classification."""

    kind: Kind
    read: Callable[[TicketClassified], ContextValue]
    nullable: bool = False


def margin(event: TicketClassified) -> float:
    """Return top-1 minus top-2 confidence (the top-1 confidence when there is no runner-up)."""
    runner_up = max((alt.confidence for alt in event.alternatives), default=0.0)
    # Rounded so float noise (0.60 - 0.45 = 0.1499999…) cannot turn a margin that is exactly
    # the threshold into "ambiguous"; calibrated confidences carry nowhere near 6 digits.
    return round(event.confidence - runner_up, 6)


CONTEXT_FIELDS: Mapping[str, ContextField] = {
    "ticket.customer_tier": ContextField("text", lambda e: e.ticket.customer_tier),
    "ticket.channel": ContextField("text", lambda e: e.ticket.channel),
    "ticket.source": ContextField("text", lambda e: e.ticket.source),
    "ticket.customer_language": ContextField(
        "text", lambda e: e.ticket.customer_language, nullable=True
    ),
    "classification.category": ContextField("text", lambda e: e.category),
    "classification.confidence": ContextField("number", lambda e: e.confidence),
    "classification.margin": ContextField("number", margin),
    "classification.language": ContextField("text", lambda e: e.language),
    "classification.sentiment": ContextField("text", lambda e: e.sentiment),
    "classification.sentiment_score": ContextField("number", lambda e: e.sentiment_score),
    "classification.urgency": ContextField("text", lambda e: e.urgency),
    "classification.degraded": ContextField("flag", lambda e: e.degraded),
    "signals.pii_detected": ContextField("flag", lambda e: e.signals.pii_detected),
    "signals.pii_kinds": ContextField("list", lambda e: e.signals.pii_kinds),
    "signals.injection_suspected": ContextField("flag", lambda e: e.signals.injection_suspected),
    "signals.out_of_scope": ContextField("flag", lambda e: e.signals.out_of_scope),
    "signals.out_of_scope_score": ContextField("number", lambda e: e.signals.out_of_scope_score),
    # Text, not a list: `ne ""` tests "any", `contains` a code, and a rule's reason then
    # quotes every code ("signals.unusual_input='control_characters, too_long'").
    "signals.unusual_input": ContextField("text", lambda e: ", ".join(e.signals.unusual_input)),
    "model.name": ContextField("text", lambda e: e.model.name),
    "model.backend": ContextField("text", lambda e: e.model.backend),
    "model.version": ContextField("text", lambda e: e.model.version),
}


def build_context(event: TicketClassified) -> dict[str, ContextValue]:
    """Return the flat context the policy's conditions are evaluated against."""
    return {name: field.read(event) for name, field in CONTEXT_FIELDS.items()}


def condition_problem(condition: Condition) -> str | None:
    """Return why a condition could never match as written, or None if it is sound."""
    field = CONTEXT_FIELDS.get(condition.field)
    if field is None:
        return f"unknown field {condition.field!r}; known fields: {', '.join(CONTEXT_FIELDS)}"
    op, value = condition.op, condition.value
    if op in ("is_true", "is_false"):
        return None if field.kind == "flag" else f"{op} needs a flag field, not {field.kind}"
    if op in ("lt", "le", "gt", "ge") and field.kind != "number":
        return f"{op} needs a number field, {condition.field} is {field.kind}"
    if op == "contains":
        if field.kind not in ("text", "list") or not isinstance(value, str):
            return f"contains needs a text or list field and a text value, got {value!r}"
        return None
    if field.kind == "list":
        return f"{condition.field} is a list: use contains"
    candidates = value if op in ("in", "not_in") and isinstance(value, list) else [value]
    misfits = [v for v in candidates if not _fits(field, v)]
    if misfits:
        # YAML reads bare yes/no/on/off as booleans: `[no]` (Norwegian) arrives as False.
        return (
            f"value {misfits[0]!r} is not {field.kind} as {condition.field} is "
            "(quote words such as yes, no, on, off)"
        )
    return None


def _fits(field: ContextField, value: object) -> bool:
    if value is None:
        return field.nullable
    if field.kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if field.kind == "flag":
        return isinstance(value, bool)
    return isinstance(value, str)


def show(value: object) -> str:
    """Return a value as quoted in reasons: numbers with two decimals unless that would lie."""
    if isinstance(value, float) and not isinstance(value, bool):
        return f"{value:.2f}" if round(value, 2) == value else repr(value)
    if isinstance(value, str):
        return repr(value)
    return str(value)
