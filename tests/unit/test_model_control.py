"""Promotions replace the local model wherever the configured backend has one."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai import AsyncOpenAI

from services.classifier.backends.base import WARM_UP_TEXT, Prediction
from services.classifier.backends.cascade import CascadeBackend
from services.classifier.backends.llm import FallbackBackend, LlmBackend, LlmOptions
from services.classifier.backends.local import Examples
from services.classifier.control import ModelControl, local_part_swapper
from services.classifier.handlers import ClassifierHandler
from services.learning.dataset import Judgement
from services.learning.learner import Trainable, Trainer, learn, train_local
from services.learning.registry import ModelRegistry
from shared.codec import encode
from shared.contracts import (
    ModelCandidateSet,
    ModelInfo,
    ModelPromoted,
    ModelRolledBack,
    TicketClassified,
)
from shared.stage import Incoming
from shared.topics import Topics
from tests.factories import HashEncoder, received
from tests.fake_openai import small_taxonomy
from tests.unit.test_learning import NOW, PRODUCER, TEXTS, hybrid_trainer, tiny_model


def unused_llm() -> LlmBackend:
    """An LLM backend that is never asked (nothing listens at its address)."""
    client = AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key="test-key", max_retries=0)
    return LlmBackend(client, small_taxonomy(), LlmOptions(model="never-called"))


def published(tmp_path: Path, train: Trainer = train_local) -> tuple[ModelRegistry, str]:
    """Return a registry holding one model learnt by `train`, and its version."""
    base = [Judgement(t, label, "base") for label, items in TEXTS.items() for t in items]
    outcome = learn(base, [], live=tiny_model(), holdout_share=0.2, train=train)
    registry = ModelRegistry(tmp_path)
    manifest = registry.publish(
        outcome.model, outcome.dataset, parent_version=None, metrics={}, now=NOW
    )
    return registry, manifest.version


def promoted(version: str) -> ModelPromoted:
    return ModelPromoted(event_id="p1", producer=PRODUCER, actor="ops", version=version)


async def classify_one(handler: ClassifierHandler) -> TicketClassified:
    record = Incoming("tickets.inbound", 0, 0, b"T-1", encode(received(body="parcel is late")))
    event = (await handler([record]))[0].event
    assert isinstance(event, TicketClassified)
    return event


def test_a_promoted_model_replaces_a_hybrid_backend_whole() -> None:
    examples = Examples(
        tuple(t for items in TEXTS.values() for t in items),
        tuple(label for label, items in TEXTS.items() for _ in items),
        "sha-hybrid",
    )
    configured = hybrid_trainer(examples, 0)
    promoted_model = hybrid_trainer(examples, 1)

    compose = local_part_swapper(configured)

    assert compose is not None
    assert compose(promoted_model) is promoted_model


def test_a_promoted_model_takes_the_local_place_in_a_cascade_keeping_its_llm_and_band() -> None:
    llm, old, new = unused_llm(), tiny_model(), tiny_model({"billing": ["refund"], **TEXTS})
    compose = local_part_swapper(CascadeBackend(old, llm, low=0.3, high=0.8))

    assert compose is not None
    swapped = compose(new)
    assert isinstance(swapped, CascadeBackend)
    assert (swapped.local, swapped.llm, swapped.low, swapped.high) == (new, llm, 0.3, 0.8)


def test_a_promoted_model_becomes_the_fallback_of_an_llm_classifier() -> None:
    llm, old, new = unused_llm(), tiny_model(), tiny_model({"billing": ["refund"], **TEXTS})
    compose = local_part_swapper(FallbackBackend(llm, old))

    assert compose is not None
    swapped = compose(new)
    assert isinstance(swapped, FallbackBackend)
    assert (swapped.primary, swapped.fallback) == (llm, new)


def test_a_backend_without_a_registry_model_ignores_promotions() -> None:
    class OwnArtefact:
        info = ModelInfo(name="tfidf+minilm", version="h1", backend="local")

        def predict(self, texts: list[str]) -> list[Prediction]:
            return [Prediction("billing", 0.5) for _ in texts]

    assert local_part_swapper(OwnArtefact()) is None
    assert local_part_swapper(tiny_model()) is not None


async def test_a_cascade_classifier_classifies_with_the_promoted_model_and_rolls_back(
    tmp_path: Path,
) -> None:
    registry, version = published(tmp_path)
    # A band nothing falls in: every answer is the local model's, so the LLM is never asked.
    configured = CascadeBackend(tiny_model(), unused_llm(), low=0.0, high=1e-12)
    handler = ClassifierHandler(configured, topics=Topics(), producer=PRODUCER, clock=lambda: NOW)
    control = ModelControl(
        handler, registry, configured=configured, compose=local_part_swapper(configured)
    )
    before = await classify_one(handler)

    await control.on_change(promoted(version))
    after = await classify_one(handler)
    await control.on_change(
        ModelRolledBack(
            event_id="r1", producer=PRODUCER, actor="ops", version=None, rolled_back_version=version
        )
    )
    rolled_back = await classify_one(handler)

    assert before.model.version == configured.local.info.version != version
    assert (after.model.version, after.model.backend) == (version, "cascade")
    assert rolled_back.model.version == before.model.version


class Recording(ModelRegistry):
    """A registry that records what its models classify; `broken`: they cannot classify
    (an encoder that cannot be built, say)."""

    def __init__(self, root: Path, *, broken: bool) -> None:
        super().__init__(root)
        self.broken = broken
        self.predicted: list[list[str]] = []

    def load(self, version: str, *, cache_dir: Path | None = None) -> Trainable:
        model = super().load(version, cache_dir=cache_dir)
        own = model.predict

        def predict(texts: list[str]) -> list[Prediction]:
            self.predicted.append(texts)
            if self.broken:
                raise OSError("no space left on device while building the encoder")
            return own(texts)

        model.predict = predict  # type: ignore[method-assign]
        return model


def controlled(registry: ModelRegistry) -> tuple[ClassifierHandler, ModelControl]:
    configured = tiny_model()
    handler = ClassifierHandler(configured, topics=Topics(), producer=PRODUCER, clock=lambda: NOW)
    control = ModelControl(
        handler, registry, configured=configured, compose=local_part_swapper(configured)
    )
    return handler, control


async def promote_and_shadow(control: ModelControl, version: str) -> None:
    """Promote `version`, then set it as the shadow candidate too."""
    await control.on_change(promoted(version))
    await control.on_change(
        ModelCandidateSet(event_id="c1", producer=PRODUCER, actor="ops", version=version)
    )


async def test_a_promoted_or_shadowed_model_that_cannot_classify_is_refused_and_the_live_one_stays(
    tmp_path: Path,
) -> None:
    _, version = published(tmp_path)
    registry = Recording(tmp_path, broken=True)
    handler, control = controlled(registry)
    live = handler.model

    await promote_and_shadow(control, version)
    event = await classify_one(handler)

    assert registry.predicted == [[WARM_UP_TEXT], [WARM_UP_TEXT]]
    assert handler.model is live
    assert handler.candidate is None
    assert event.model.version == live.info.version != version


async def test_a_promoted_model_classifies_a_text_before_it_takes_traffic(tmp_path: Path) -> None:
    _, version = published(tmp_path)
    registry = Recording(tmp_path, broken=False)
    handler, control = controlled(registry)

    await control.on_change(promoted(version))
    warmed = list(registry.predicted)
    event = await classify_one(handler)

    assert warmed == [[WARM_UP_TEXT]]
    assert event.model.version == version


async def test_a_local_classifier_ignores_the_promotion_of_a_hybrid_model_but_shadows_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "services.classifier.backends.hybrid.make_encoder", lambda *a, **k: HashEncoder()
    )
    registry, version = published(tmp_path, train=hybrid_trainer)
    handler, control = controlled(registry)
    live = handler.model

    await promote_and_shadow(control, version)
    event = await classify_one(handler)

    assert handler.model is live
    assert event.model.version == live.info.version
    assert handler.candidate is not None
    assert handler.candidate.info.version == version
    assert event.shadow is not None
