"""Shadow mode for models: a candidate classifies the same tickets; recorded, never acted on."""

from __future__ import annotations

from collections.abc import Sequence

from services.classifier.backends.base import Backend, ticket_text
from shared.contracts import ShadowClassification, TicketClassified


def with_shadow(
    classified: Sequence[TicketClassified], candidate: Backend
) -> list[TicketClassified]:
    """Return the classifications with the candidate's view of each ticket attached."""
    texts = [ticket_text(c.ticket.subject, c.ticket.body) for c in classified]
    predictions = candidate.predict(texts)
    return [
        c.model_copy(
            update={
                "shadow": ShadowClassification(
                    category=p.category,
                    confidence=p.confidence,
                    alternatives=p.alternatives,
                    out_of_scope=p.out_of_scope,
                    model=p.model or candidate.info,
                )
            }
        )
        for c, p in zip(classified, predictions, strict=True)
    ]
