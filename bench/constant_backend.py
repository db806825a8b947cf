"""A classifier backend that always gives the same answer, for measuring the plumbing.

`python bench/constant_backend.py` runs one copy of the classifier service with it (same
settings and environment as `python -m services.classifier`), so the pipeline benchmark
can tell the cost of Kafka, validation, audit and observability from the model's.
"""

from __future__ import annotations

from services.classifier.backends.base import Prediction
from shared.contracts import CategoryScore, ModelInfo

CONSTANT = Prediction(
    category="billing",
    confidence=0.93,
    # Runners-up like a real model's, so the events have the size of real ones.
    alternatives=(
        CategoryScore(category="refunds", confidence=0.04),
        CategoryScore(category="cancellation", confidence=0.02),
        CategoryScore(category="how_to", confidence=0.01),
    ),
)


class ConstantBackend:
    """Answers `billing` with confidence 0.93 for every text, at no cost."""

    @property
    def info(self) -> ModelInfo:
        """Name the constant model in every event it classifies."""
        return ModelInfo(name="constant", version="1", backend="constant")

    def predict(self, texts: list[str]) -> list[Prediction]:
        """Return the same prediction for every text."""
        return [CONSTANT] * len(texts)


def main() -> None:
    """Run one classifier service with the constant backend."""
    from services.classifier.app import SERVICE, build_app
    from services.classifier.settings import ClassifierSettings
    from shared.service import run_service

    settings = ClassifierSettings()
    run_service(build_app(settings, backend=ConstantBackend()), service=SERVICE, settings=settings)


if __name__ == "__main__":
    main()
