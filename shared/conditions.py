"""Declarative conditions (field, operator, value) for policy and routing rules.

No `eval`: a condition names a dotted field of a flat-ish context, one operator from a
closed set, and a literal value. Unknown fields are refused when the rule file loads.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Operator = Literal[
    "eq", "ne", "in", "not_in", "lt", "le", "gt", "ge", "contains", "is_true", "is_false"
]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


class Condition(BaseModel):
    """`field op value`, e.g. `ticket.customer_tier in [vip, premium]`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: str = Field(description="Dotted field name, e.g. `classification.sentiment`.")
    op: Operator = Field(description="Operator.")
    value: Any = Field(default=None, description="Literal to compare with (unused by is_*).")

    def holds(self, context: Mapping[str, Any]) -> bool:
        """Return whether the condition holds; a missing field never matches."""
        if self.field not in context:
            return False
        actual = context[self.field]
        if self.op == "is_true":
            return actual is True
        if self.op == "is_false":
            return actual is False
        if self.op == "in":
            return actual in _as_collection(self.value)
        if self.op == "not_in":
            return actual not in _as_collection(self.value)
        if self.op == "contains":
            return isinstance(actual, (str, list, tuple)) and self.value in actual
        if actual is None:
            return False
        try:
            return bool(_COMPARE[self.op](actual, self.value))
        except TypeError:
            return False

    def describe(self) -> str:
        """Return the condition as readable text."""
        if self.op in ("is_true", "is_false"):
            return f"{self.field} is {self.op == 'is_true'}"
        return f"{self.field} {self.op} {self.value!r}"


def _as_collection(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, (list, tuple, set)) else (value,)


def unknown_fields(conditions: list[Condition], known: frozenset[str]) -> list[str]:
    """Return the fields the conditions name that the context does not offer."""
    return sorted({c.field for c in conditions if c.field not in known})
