"""The hostile-input corpus (`corpus.jsonl`) and the benign variants (`benign.jsonl`): how a
case is written down and read back.

One JSON object per line:

    id          unique, `<category>-<nn>`
    category    malformed_json, wrong_type, ..., mixed_script (see CATEGORIES)
    note        what the case is about
    key         Kafka key (UTF-8 text), or absent/null for none; `key_b64` for raw bytes
    value       the message: {"json": any} serialised as UTF-8 JSON, {"text": str} as UTF-8,
                {"b64": str} as raw bytes, or {"tombstone": true} for a null value
    headers     optional [[name, value_b64], ...]
    copies      optional: publish the same record this many times (default 1)
    expect      hostile: `dead_letter:<reason>` or `human`; benign: `flows` (routed like the
                same ticket sent plainly, no unusual input found, recorded unchanged)
    expect_rule the rule that must have fired for `human` (e.g. `safety.injection`)
    expect_reason optional text that rule's recorded reason must contain (a reason code
                such as `control_characters` for `unusual-input`)

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

import pytest

from shared.codec import InvalidMessage, decode
from shared.contracts import TicketReceived
from shared.stage import Incoming, guess_ticket_id

CORPUS = Path(__file__).with_name("corpus.jsonl")
BENIGN = Path(__file__).with_name("benign.jsonl")

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
BENIGN_CATEGORIES = ("benign_transport", "benign_redelivery", "benign_text")
OUTCOMES = ("human",)
FLOWS = "flows"
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
    expect_reason: str | None = None

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

    def incoming(self, offset: int = 0) -> Incoming:
        """Return the record as a stage consumes it (headers decoded as the consumer does)."""
        headers = {name: value.decode("utf-8", "replace") for name, value in self.headers}
        return Incoming(
            topic="tickets.inbound",
            partition=0,
            offset=offset,
            key=self.key,
            value=self.value,
            headers=headers,
        )

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
        expect_reason=item.get("expect_reason"),
    )


def show(request: pytest.FixtureRequest, lines: list[str]) -> None:
    """Write figures to the terminal even while pytest captures output."""
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)


def read_corpus(path: Path = CORPUS) -> list[Case]:
    """Return every case of the corpus file, in file order."""
    return list(_cases(path))


def _cases(path: Path) -> Iterator[Case]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield parse_case(json.loads(line))
