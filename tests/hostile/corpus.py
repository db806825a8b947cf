"""The hostile-input corpus (`corpus.jsonl`): how a case is written down and read back.

One JSON object per line:

    id          unique, `<category>-<nn>`
    category    malformed_json, wrong_type, ..., mixed_script (see CATEGORIES)
    note        what the case is about
    key         Kafka key (UTF-8 text), or absent/null for none; `key_b64` for raw bytes
    value       the message: {"json": any} serialised as UTF-8 JSON, {"text": str} as UTF-8,
                {"b64": str} as raw bytes, or {"tombstone": true} for a null value
    headers     optional [[name, value_b64], ...]
    copies      optional: publish the same record this many times (default 1)
    expect      `dead_letter:<reason>`, `human`, or `any_route_recorded`
    expect_rule optional rule id that must have fired (e.g. `safety.injection`)

Big values stay small on disk: inside "json" and "text", an object {"$repeat": [s, n]}
stands for `s * n` and {"$concat": [a, b, ...]} for the concatenation of its parts.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.codec import InvalidMessage, decode
from shared.contracts import TicketReceived
from shared.stage import Incoming, guess_ticket_id

CORPUS = Path(__file__).with_name("corpus.jsonl")

CATEGORIES = (
    "malformed_json",
    "not_an_object",
    "wrong_type",
    "missing_field",
    "extra_field",
    "oversize",
    "empty_body",
    "invalid_utf8",
    "control_chars",
    "nested_metadata",
    "long_line",
    "odd_numbers_and_times",
    "transport",
    "duplicate",
    "sql_like",
    "injection_classifier",
    "injection_policy",
    "fake_system_message",
    "injection_in_subject",
    "non_english",
    "mixed_script",
)
OUTCOMES = ("human", "any_route_recorded")
DEAD_LETTER = "dead_letter:"


def expand(spec: Any) -> Any:
    """Return `spec` with every `$repeat` and `$concat` object replaced by its string."""
    if isinstance(spec, dict):
        if set(spec) == {"$repeat"}:
            text, times = spec["$repeat"]
            return str(expand(text)) * int(times)
        if set(spec) == {"$concat"}:
            return "".join(str(expand(part)) for part in spec["$concat"])
        return {key: expand(value) for key, value in spec.items()}
    if isinstance(spec, list):
        return [expand(item) for item in spec]
    return spec


@dataclass(frozen=True)
class Case:
    """One hostile message and what must become of it."""

    id: str
    category: str
    note: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    copies: int
    expect: str
    expect_rule: str | None

    @property
    def dead_letter_reason(self) -> str | None:
        """Return the expected dead-letter reason, or None if the ticket must be routed."""
        return (
            self.expect.removeprefix(DEAD_LETTER) if self.expect.startswith(DEAD_LETTER) else None
        )

    def ticket_id(self) -> str:
        """Return the ticket id under which the audit trail records this case's outcome."""
        if self.dead_letter_reason is not None:
            record = Incoming(topic="", partition=0, offset=0, key=self.key, value=self.value)
            return guess_ticket_id(record)
        # The audit store keeps NUL characters as U+FFFD (PostgreSQL text cannot hold NUL).
        return decode(self.value, TicketReceived).ticket_id.replace("\x00", "\ufffd")

    def decodes(self) -> TicketReceived | InvalidMessage:
        """Return the inbound ticket this message is, or why it is not one."""
        try:
            return decode(self.value, TicketReceived)
        except InvalidMessage as error:
            return error


def value_bytes(spec: dict[str, Any]) -> bytes | None:
    """Return the message bytes a case's `value` describes."""
    if spec.get("tombstone"):
        return None
    if "json" in spec:
        return json.dumps(expand(spec["json"]), ensure_ascii=False).encode("utf-8")
    if "text" in spec:
        return str(expand(spec["text"])).encode("utf-8")
    return base64.b64decode(spec["b64"])


def parse_case(item: dict[str, Any]) -> Case:
    """Return the case a corpus line describes."""
    if item.get("key_b64") is not None:
        key: bytes | None = base64.b64decode(item["key_b64"])
    else:
        key = item["key"].encode("utf-8") if item.get("key") is not None else None
    return Case(
        id=item["id"],
        category=item["category"],
        note=item.get("note", ""),
        key=key,
        value=value_bytes(item["value"]),
        headers=tuple((name, base64.b64decode(v)) for name, v in item.get("headers", [])),
        copies=int(item.get("copies", 1)),
        expect=item["expect"],
        expect_rule=item.get("expect_rule"),
    )


def read_corpus(path: Path = CORPUS) -> list[Case]:
    """Return every case of the corpus file, in file order."""
    return list(_cases(path))


def _cases(path: Path) -> Iterator[Case]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield parse_case(json.loads(line))
