"""The cascade backend: the local model first, the LLM only where the local one is unsure.

A ticket goes to the LLM when the local model's confidence is in the uncertain band
`low <= confidence < high`; above it the local answer is good enough, below it the ticket
is far from anything the local model knows and the LLM is asked neither (a human gets it
anyway). The uncertain tickets of a batch go out in one concurrent burst, at most
`LlmOptions.concurrency` requests in flight.

Every prediction names the model that made it with backend `cascade` (so the trail shows
the path and the exact model), and `llm_used` says whether the LLM was asked; `triageflow
eval` reports the share. When the LLM fails for a ticket, the local answer stands, marked
degraded with the reason and the local model's own identity (backend `local`), so the
policy sends it to a human as it would any fallback answer.
"""

from __future__ import annotations

import dataclasses
import hashlib

from services.classifier.backends.base import Backend, Prediction
from services.classifier.backends.llm import LlmBackend, LlmFailure
from shared.contracts import ModelInfo


class CascadeBackend:
    """Local model everywhere, LLM for the uncertain band; implements `AsyncBackend`."""

    def __init__(self, local: Backend, llm: LlmBackend, *, low: float, high: float) -> None:
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"the uncertain band needs 0 <= low < high <= 1, got {low}, {high}")
        self.local = local
        self.llm = llm
        self.low = low
        self.high = high
        key = f"{local.info.version}|{llm.info.version}|{low!r}|{high!r}"
        self._info = ModelInfo(
            name=f"{local.info.name}+{llm.info.name}",
            version=hashlib.sha256(key.encode()).hexdigest()[:12],
            backend="cascade",
        )

    @property
    def info(self) -> ModelInfo:
        """Return both models' names, a hash of both versions and the band, backend `cascade`."""
        return self._info

    def uncertain(self, prediction: Prediction) -> bool:
        """Return whether a local prediction is in the band the LLM is asked about."""
        return self.low <= prediction.confidence < self.high

    async def predict_async(self, texts: list[str]) -> list[Prediction]:
        """Return the local predictions, with the LLM's in place of the uncertain ones."""
        first = self.local.predict(texts)
        local_model = _in_cascade(self.local.info)
        result = [dataclasses.replace(p, model=local_model) for p in first]
        asked = [i for i, p in enumerate(first) if self.uncertain(p)]
        if not asked:
            return result
        outcomes = await self.llm.predict_outcomes([texts[i] for i in asked])
        for i, outcome in zip(asked, outcomes, strict=True):
            if isinstance(outcome, LlmFailure):
                result[i] = dataclasses.replace(
                    first[i],
                    degraded_reason=f"llm {self.llm.info.name}: {outcome}; "
                    "the local model's answer stands",
                    model=self.local.info,
                    llm_used=True,
                )
            else:
                result[i] = dataclasses.replace(
                    outcome, model=_in_cascade(outcome.model or self.llm.info), llm_used=True
                )
        return result


def _in_cascade(model: ModelInfo) -> ModelInfo:
    return model.model_copy(update={"backend": "cascade"})
