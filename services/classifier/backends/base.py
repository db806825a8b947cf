"""What every classifier backend promises: a batch of texts in, one `Prediction` each out.

A backend is pure CPU from the caller's point of view: no Kafka, no clock, no events.
`services.classifier.domain.classify` turns predictions into `TicketClassified` events, so a
stronger backend plugs in by implementing `Backend` and nothing else. A backend that waits
on the network (the LLM, the cascade) implements `AsyncBackend` instead, and
`classify_async` awaits it; `predict_any` calls either kind.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from shared.contracts import CategoryScore, ModelInfo

# How many runner-up categories a prediction carries (the top one is not counted).
ALTERNATIVES = 3

# What a model classifies to prove it can before it takes traffic (`warm_up`).
WARM_UP_TEXT = "I was charged twice for my order and would like a refund."


@dataclass(frozen=True, slots=True)
class Prediction:
    """One backend's verdict on one text: best category, calibrated confidence, runners-up."""

    category: str
    confidence: float
    alternatives: tuple[CategoryScore, ...] = ()
    out_of_scope: bool = False
    out_of_scope_score: float = 0.0
    # Set when a fallback answered instead of the backend asked (the policy sends it to a human).
    degraded_reason: str | None = None
    # The model that really produced this prediction, when it is not the backend's own `info`
    # (the local model answering for a failed LLM, the LLM answering inside a cascade).
    model: ModelInfo | None = None
    # Whether an LLM was called for this text (cascade: only the uncertain band).
    llm_used: bool = False

    def __post_init__(self) -> None:
        for name, value in (
            ("confidence", self.confidence),
            ("out_of_scope_score", self.out_of_scope_score),
        ):
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} must be within 0..1, got {value!r}")
        scores = [a.confidence for a in self.alternatives]
        if scores != sorted(scores, reverse=True):
            raise ValueError("alternatives must be sorted best first")
        if any(a.category == self.category for a in self.alternatives):
            raise ValueError("alternatives must not repeat the predicted category")


class Backend(Protocol):
    """A classifier: names itself and predicts a batch of ticket texts."""

    @property
    def info(self) -> ModelInfo:
        """Which model this is (name, version, backend kind), stamped on every event."""
        ...

    def predict(self, texts: list[str]) -> list[Prediction]:
        """Return one prediction per text, in order."""
        ...


@runtime_checkable
class AsyncBackend(Protocol):
    """A classifier that waits on I/O: names itself and predicts a batch asynchronously."""

    @property
    def info(self) -> ModelInfo:
        """Which model this is (name, version, backend kind)."""
        ...

    async def predict_async(self, texts: list[str]) -> list[Prediction]:
        """Return one prediction per text, in order."""
        ...


async def predict_any(backend: Backend | AsyncBackend, texts: list[str]) -> list[Prediction]:
    """Return `backend`'s predictions for `texts`, awaiting it if it is an `AsyncBackend`."""
    if isinstance(backend, AsyncBackend):
        return await backend.predict_async(texts)
    return backend.predict(texts)


def ticket_text(subject: str, body: str) -> str:
    """Return the text a backend classifies: subject line, then body (either may be empty)."""
    subject, body = subject.strip(), body.strip()
    return f"{subject}\n{body}" if subject and body else subject or body


def ranked(
    probabilities: Mapping[str, float], *, alternatives: int = ALTERNATIVES
) -> tuple[CategoryScore, tuple[CategoryScore, ...]]:
    """Return the best category and the next `alternatives`, best first (ties by name)."""
    if not probabilities:
        raise ValueError("no categories to rank")
    # Sorting by name second makes equal probabilities come out the same way every time.
    order = sorted(probabilities.items(), key=lambda item: (-item[1], item[0]))
    scores = [CategoryScore(category=c, confidence=_unit(p)) for c, p in order]
    return scores[0], tuple(scores[1 : 1 + alternatives])


def _unit(value: float) -> float:
    # Floating-point softmax can land a hair outside 0..1; the contract allows no slack.
    return min(1.0, max(0.0, float(value)))
