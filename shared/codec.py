"""Bytes on the wire to typed events and back, with a clear reason when it fails."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

MAX_MESSAGE_BYTES = 256 * 1024


# Not frozen: Python assigns `__traceback__` to an exception that leaves a `with` block of a
# @contextmanager, and a frozen dataclass would turn that into FrozenInstanceError.
@dataclass(eq=False)
class InvalidMessage(Exception):
    """A message that cannot become the expected event; `reason` is machine-readable."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "(message)"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def decode(
    raw: bytes | None,
    model: type[M],
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> M:
    """Parse `raw` as JSON into `model`, or raise `InvalidMessage` saying exactly why.

    `prepare` may complete the parsed object (e.g. with transport metadata) before validation.
    """
    if prepare is None and raw and len(raw) <= max_bytes:
        # Nearly every message is valid: pydantic parses and validates the bytes in Rust
        # in one pass. A message it refuses takes the path below, which says exactly why
        # (and may still accept what only the stricter JSON parser refused).
        try:
            return model.model_validate_json(raw)
        except ValidationError:
            pass
    if raw is None or not raw.strip():
        raise InvalidMessage("empty_message", "the message value is empty")
    if len(raw) > max_bytes:
        raise InvalidMessage("too_large", f"{len(raw)} bytes, the limit is {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage("invalid_utf8", f"not UTF-8 at byte {exc.start}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidMessage(
            "invalid_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise InvalidMessage("invalid_json", "nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise InvalidMessage("invalid_json", str(exc)[:200]) from exc
    if not isinstance(data, dict):
        raise InvalidMessage("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    if prepare is not None:
        data = prepare(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidMessage("schema_violation", _describe(exc)) from exc


def encode(event: BaseModel) -> bytes:
    """Serialise an event to compact JSON bytes."""
    return event.model_dump_json().encode("utf-8")
