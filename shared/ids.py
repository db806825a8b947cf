"""Deterministic identifiers: the same cause always yields the same id.

A replay after a crash re-derives exactly the ids it produced the first time, so the
audit store and downstream consumers can recognise duplicates by id alone.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

# A fixed namespace for every uuid5 triageflow derives. Never change it: ids of
# events already in the audit trail would stop matching their replays.
TRIAGEFLOW_NAMESPACE = uuid.UUID("6f1c3e0a-5b7d-4c2e-9a41-3d2b8e7f0c19")


def derived_event_id(causation_id: str, stage: str) -> str:
    """Return the id of the event a stage derives from the event `causation_id`."""
    return str(uuid.uuid5(TRIAGEFLOW_NAMESPACE, f"{causation_id}|{stage}"))


def content_event_id(content: dict[str, Any]) -> str:
    """Return an id derived from a message's content (for upstream events without one)."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return str(uuid.uuid5(TRIAGEFLOW_NAMESPACE, "content|" + canonical))


def bytes_digest(raw: bytes) -> str:
    """Return a short hex digest of raw bytes, for naming what cannot be parsed."""
    return hashlib.sha256(raw).hexdigest()[:16]


def trace_id_for(event_id: str) -> str:
    """Return a W3C-style 32-hex trace id derived from an event id."""
    return uuid.uuid5(TRIAGEFLOW_NAMESPACE, "trace|" + event_id).hex
