"""The classifier's use case: inbound tickets in, `ticket.classified` events out.

Pure apart from reading a monotonic clock for latency: no Kafka, no files, no settings.
The Kafka handler validates `TicketReceived`, calls `classify` (or `classify_async` for a
backend that waits on the network) and publishes the result; when the backend fails it
publishes `unclassified` instead, so no ticket is dropped. A prediction a fallback produced
carries its reason and its real model, and the event says so (`degraded`, `model`).
Unusual input (see signals.py) is gathered from the text, the ticket's other fields and,
passed in by the handler, what the inbound contract ignores (key, headers, unknown fields).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime

from services.classifier.backends.base import (
    AsyncBackend,
    Backend,
    Prediction,
    predict_any,
    ticket_text,
)
from services.classifier.signals import (
    UNKNOWN_LANGUAGE,
    TextSignals,
    analyse,
    merge_unusual,
    unusual_ticket,
)
from shared.contracts import (
    ModelInfo,
    ProducerInfo,
    Signals,
    Stage,
    TicketClassified,
    TicketReceived,
    TicketSnapshot,
)
from shared.ids import derived_event_id

# What a ticket is called when no model could classify it; no taxonomy has this category,
# so the router sends it to its fallback queue and the policy to a human (degraded).
UNCLASSIFIED = "unclassified"
NO_MODEL = ModelInfo(name="none", version="0", backend="constant")
_MAX_REASON_CHARS = 500


def classify(
    tickets: list[TicketReceived],
    backend: Backend,
    *,
    producer: ProducerInfo,
    now: datetime,
    clock: Callable[[], float] = time.perf_counter,
    envelopes: Sequence[Sequence[str]] | None = None,
) -> list[TicketClassified]:
    """Classify a batch of tickets with one backend call; one event per ticket, in order.

    `envelopes` holds, per ticket, the unusual-input codes of its record (key, headers,
    fields the contract ignores), which only the handler can see.
    """
    if not tickets:
        return []
    started = clock()
    predictions = backend.predict([ticket_text(t.subject, t.body) for t in tickets])
    return _events(
        tickets,
        predictions,
        backend,
        started=started,
        clock=clock,
        producer=producer,
        now=now,
        envelopes=envelopes,
    )


async def classify_async(
    tickets: list[TicketReceived],
    backend: Backend | AsyncBackend,
    *,
    producer: ProducerInfo,
    now: datetime,
    clock: Callable[[], float] = time.perf_counter,
    envelopes: Sequence[Sequence[str]] | None = None,
) -> list[TicketClassified]:
    """Classify a batch like `classify`, awaiting a backend that waits on the network."""
    if not tickets:
        return []
    started = clock()
    predictions = await predict_any(backend, [ticket_text(t.subject, t.body) for t in tickets])
    return _events(
        tickets,
        predictions,
        backend,
        started=started,
        clock=clock,
        producer=producer,
        now=now,
        envelopes=envelopes,
    )


def _events(
    tickets: list[TicketReceived],
    predictions: list[Prediction],
    backend: Backend | AsyncBackend,
    *,
    started: float,
    clock: Callable[[], float],
    producer: ProducerInfo,
    now: datetime,
    envelopes: Sequence[Sequence[str]] | None,
) -> list[TicketClassified]:
    if len(predictions) != len(tickets):
        raise ValueError(
            f"backend {backend.info.name} returned {len(predictions)} predictions "
            f"for {len(tickets)} tickets"
        )
    found = [analyse(t.subject, t.body) for t in tickets]
    outside = envelopes if envelopes is not None else [()] * len(tickets)
    # One backend call serves the whole batch, so each ticket is charged an equal share of
    # the batch's wall time (prediction + signals); per-ticket timing would cost batching.
    latency_ms = max(0.0, (clock() - started) * 1000.0 / len(tickets))
    return [
        _event(
            ticket,
            prediction,
            signals,
            model=prediction.model or backend.info,
            producer=producer,
            now=now,
            latency_ms=latency_ms,
            degraded_reason=_reason(prediction.degraded_reason),
            envelope=envelope,
        )
        for ticket, prediction, signals, envelope in zip(
            tickets, predictions, found, outside, strict=True
        )
    ]


def unclassified(
    ticket: TicketReceived,
    *,
    reason: str,
    producer: ProducerInfo,
    now: datetime,
    envelope: Sequence[str] = (),
) -> TicketClassified:
    """Return the degraded classification of a ticket no backend could classify."""
    try:
        signals = analyse(ticket.subject, ticket.body)
    except Exception:  # the fallback path must not fail too: a human reads the ticket anyway
        signals = TextSignals(UNKNOWN_LANGUAGE, "neutral", 0.0, "normal", (), ())
    return _event(
        ticket,
        Prediction(category=UNCLASSIFIED, confidence=0.0),
        signals,
        model=NO_MODEL,
        producer=producer,
        now=now,
        latency_ms=0.0,
        degraded_reason=_reason(reason),
        envelope=envelope,
    )


def _reason(reason: str | None) -> str | None:
    if reason is None:
        return None
    return reason[:_MAX_REASON_CHARS] or "unknown failure"


def _event(
    ticket: TicketReceived,
    prediction: Prediction,
    signals: TextSignals,
    *,
    model: ModelInfo,
    producer: ProducerInfo,
    now: datetime,
    latency_ms: float,
    degraded_reason: str | None = None,
    envelope: Sequence[str] = (),
) -> TicketClassified:
    return TicketClassified(
        # Derived from the inbound event: a replay after a crash yields the same id.
        event_id=derived_event_id(ticket.event_id, Stage.CLASSIFIER.value),
        ticket_id=ticket.ticket_id,
        trace_id=ticket.trace_id,
        causation_id=ticket.event_id,
        occurred_at=now,
        producer=producer,
        ticket=TicketSnapshot.of(ticket),
        category=prediction.category,
        confidence=prediction.confidence,
        alternatives=prediction.alternatives,
        language=_language(signals.language, ticket.customer.language),
        sentiment=signals.sentiment,
        sentiment_score=signals.sentiment_score,
        urgency=signals.urgency,
        signals=Signals(
            pii_detected=signals.pii_detected,
            pii_kinds=signals.pii_kinds,
            injection_suspected=signals.injection_suspected,
            injection_reasons=signals.injection_reasons,
            out_of_scope=prediction.out_of_scope,
            out_of_scope_score=prediction.out_of_scope_score,
            unusual_input=merge_unusual(signals.unusual, unusual_ticket(ticket), envelope),
        ),
        model=model,
        degraded=degraded_reason is not None,
        degraded_reason=degraded_reason,
        latency_ms=latency_ms,
    )


def _language(detected: str, declared: str | None) -> str:
    # Text too short to tell ("Refund?") falls back to what upstream knows of the customer,
    # if that is an ISO 639-1 code ("en", "en-GB"); anything else stays unknown.
    if detected != UNKNOWN_LANGUAGE or not declared:
        return detected
    code = declared.strip().lower().replace("_", "-").split("-")[0]
    return code if len(code) == 2 and code.isalpha() else UNKNOWN_LANGUAGE
