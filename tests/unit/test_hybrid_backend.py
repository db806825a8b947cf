"""The hybrid backend: MiniLM embeddings in numpy, TF-IDF, one calibrated probability."""

from __future__ import annotations

import gzip
import pickle
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from services.classifier.backends.hybrid import Embedder, HybridModel, fit_hybrid
from services.classifier.backends.local import Examples, ModelFormatError
from services.classifier.backends.minilm import MiniLMEncoder, Vectors

TOPICS = {
    "refund": [
        "I want a refund for my order",
        "please give me my money back",
        "refund the payment for the broken item",
        "how do I get reimbursed for this purchase",
        "return the money you charged me",
        "I was charged and want the amount refunded",
    ],
    "login": [
        "I cannot log in to my account",
        "my password reset link does not work",
        "the login page rejects my password",
        "I am locked out of my account",
        "two factor code never arrives when I sign in",
        "cannot sign in after changing my email",
    ],
    "shipping": [
        "where is my parcel",
        "my package has not been delivered yet",
        "the delivery is a week late",
        "tracking number shows no movement",
        "courier lost my shipment",
        "when will my order arrive",
    ],
}


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return MiniLMEncoder()


@pytest.fixture(scope="module")
def model(encoder: MiniLMEncoder) -> HybridModel:
    pairs = [(text, label) for label, texts in TOPICS.items() for text in texts]
    examples = Examples(tuple(t for t, _ in pairs), tuple(lab for _, lab in pairs), "test")
    return fit_hybrid(examples, embedder=Embedder(encoder))


def test_embeddings_are_unit_length_and_put_paraphrases_closer_than_strangers(
    encoder: MiniLMEncoder,
) -> None:
    vectors = encoder.encode(
        ["my card has not arrived", "the card I ordered never came", "how tall is mount everest"]
    )

    assert vectors.shape == (3, 384)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(3), abs=1e-5)
    assert float(vectors[0] @ vectors[1]) > float(vectors[0] @ vectors[2]) + 0.3


def test_embedding_does_not_depend_on_the_batch_a_text_is_in(encoder: MiniLMEncoder) -> None:
    alone = encoder.encode(["refund please"])
    together = encoder.encode(
        ["a much longer text that forces padding in the batch", "refund please"]
    )

    assert alone[0] == pytest.approx(together[1], abs=1e-5)


def test_hybrid_model_classifies_unseen_paraphrases(model: HybridModel) -> None:
    predictions = model.predict(["could I have my money returned", "the parcel is still missing"])

    assert [p.category for p in predictions] == ["refund", "shipping"]
    assert all(0.0 <= p.confidence <= 1.0 for p in predictions)
    assert all(len(p.alternatives) == 2 for p in predictions)


def test_text_far_from_every_example_scores_higher_out_of_scope(model: HybridModel) -> None:
    near, far = model.predict(["I want my money back", "what is the boiling point of lead"])

    assert far.out_of_scope_score > near.out_of_scope_score
    assert not near.out_of_scope


def test_saved_model_loads_and_predicts_the_same(model: HybridModel, tmp_path: Path) -> None:
    path = tmp_path / "hybrid.pkl.gz"
    model.save(path)

    loaded = HybridModel.load(path)

    assert loaded.info == model.info
    texts = ["my package is late", "reset my password"]
    assert loaded.predict_proba(texts) == pytest.approx(model.predict_proba(texts))


def test_a_local_model_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pkl.gz"
    with gzip.open(path, "wb") as gz:
        pickle.dump({"format": "triageflow-local-model"}, gz)

    with pytest.raises(ModelFormatError):
        HybridModel.load(path)


class _HashEncoder:
    """Stands in for MiniLM: a fixed random unit vector per text (no model, no cost)."""

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> Vectors:
        vectors: Vectors = np.stack(
            [np.random.default_rng(zlib.crc32(t.encode())).normal(size=384) for t in texts]
        ).astype(np.float32)
        unit: Vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return unit


@pytest.fixture(scope="module")
def noisy_model() -> HybridModel:
    # Random words, random labels: plenty of right and wrong out-of-fold predictions.
    rng = np.random.default_rng(7)
    words = ["card", "refund", "parcel", "login", "fee", "late", "money", "code", "top", "up"]
    texts = tuple(" ".join(rng.choice(words, size=4)) + f" {i}" for i in range(150))
    labels = tuple(str(rng.choice(["a", "b", "c"])) for _ in texts)
    return fit_hybrid(
        Examples(texts, labels, "noisy"), embedder=Embedder(_HashEncoder(), kind="numpy")
    )


def test_a_model_trained_on_too_few_mistakes_keeps_the_joint_probability(
    model: HybridModel,
) -> None:
    assert not model.has_selector
    texts = ["could I have my money returned"]
    assert model.predict(texts)[0].confidence == pytest.approx(
        float(model.predict_proba(texts).max())
    )


def test_selector_sets_the_confidence_once_there_are_mistakes_to_learn_from(
    noisy_model: HybridModel,
) -> None:
    texts = ["card fee late money", "parcel login code up"]

    predictions = noisy_model.predict(texts)

    assert noisy_model.has_selector
    joint = noisy_model.predict_proba(texts).max(axis=1)
    assert [p.confidence for p in predictions] != pytest.approx(joint.tolist())
    assert all(a.confidence <= p.confidence for p in predictions for a in p.alternatives)


def test_selector_survives_save_and_load(noisy_model: HybridModel, tmp_path: Path) -> None:
    path = tmp_path / "noisy.pkl.gz"
    noisy_model.save(path)
    loaded = HybridModel.load(path)
    loaded._encoder = _HashEncoder()  # the saved model names "numpy"; keep the stand-in
    texts = ["card fee late money", "refund top up"]

    assert [p.confidence for p in loaded.predict(texts)] == pytest.approx(
        [p.confidence for p in noisy_model.predict(texts)]
    )
