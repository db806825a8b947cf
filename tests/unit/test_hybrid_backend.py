"""The hybrid backend: MiniLM embeddings in numpy, TF-IDF, one calibrated probability."""

from __future__ import annotations

import dataclasses
import gzip
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from services.classifier.backends.hybrid import (
    Embedder,
    HybridModel,
    HybridParameters,
    fit_hybrid,
    knn_log_votes,
)
from services.classifier.backends.local import Examples, ModelFormatError
from services.classifier.backends.minilm import MiniLMEncoder, Vectors
from tests.factories import HashEncoder

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


@pytest.fixture(scope="module")
def noisy_model() -> HybridModel:
    # Random words, random labels: plenty of right and wrong out-of-fold predictions.
    rng = np.random.default_rng(7)
    words = ["card", "refund", "parcel", "login", "fee", "late", "money", "code", "top", "up"]
    texts = tuple(" ".join(rng.choice(words, size=4)) + f" {i}" for i in range(150))
    labels = tuple(str(rng.choice(["a", "b", "c"])) for _ in texts)
    return fit_hybrid(
        Examples(texts, labels, "noisy"), embedder=Embedder(HashEncoder(), kind="numpy")
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
    loaded._encoder = HashEncoder()  # the saved model names "numpy"; keep the stand-in
    texts = ["card fee late money", "refund top up"]

    assert [p.confidence for p in loaded.predict(texts)] == pytest.approx(
        [p.confidence for p in noisy_model.predict(texts)]
    )


def test_neighbour_vote_favours_the_label_of_the_closest_examples() -> None:
    cosine = np.array([[0.9, 0.8, 0.3, 0.1], [0.2, 0.1, 0.7, 0.95]])
    targets = np.array([0, 0, 1, 2])

    votes = np.exp(knn_log_votes(cosine, targets, 3, k=3, tau=0.05))

    assert votes.argmax(axis=1).tolist() == [0, 2]
    # Only the 3 nearest vote: label 2 (cosine 0.1) gets the floor in the first row.
    assert votes[0, 2] == pytest.approx(1e-4)
    # A far third neighbour (0.2 against 0.95) adds next to nothing at tau 0.05.
    assert votes[1, 0] < 2e-4
    assert votes.sum(axis=1) == pytest.approx(np.ones(2), abs=1e-3)


def test_neighbour_vote_with_more_voters_than_examples_uses_all_of_them() -> None:
    votes = knn_log_votes(np.array([[0.5, 0.4]]), np.array([1, 0]), 2, k=10, tau=1.0)

    assert np.exp(votes[0]) == pytest.approx(
        np.array([np.exp(-0.1), 1.0]) / (1 + np.exp(-0.1)), abs=1e-3
    )


def test_neighbour_vote_of_no_texts_is_empty() -> None:
    assert knn_log_votes(np.zeros((0, 5)), np.arange(5), 5, k=3, tau=0.05).shape == (0, 5)


def test_neighbour_vote_is_a_calibrated_member_unless_switched_off(model: HybridModel) -> None:
    pairs = [(text, label) for label, texts in TOPICS.items() for text in texts]
    examples = Examples(tuple(t for t, _ in pairs), tuple(lab for _, lab in pairs), "test")

    two = fit_hybrid(
        examples, embedder=Embedder(MiniLMEncoder()), parameters=HybridParameters(knn=False)
    )

    assert model.temperatures.knn is not None
    assert model.temperatures.knn > 0
    assert two.temperatures.knn is None
    assert model.info.version != two.info.version
    texts = ["could I have my money returned", "the parcel is still missing"]
    assert model.predict_proba(texts) != pytest.approx(two.predict_proba(texts))


@dataclass
class _CountingEncoder:
    """`HashEncoder` that remembers which texts it was asked to embed."""

    seen: list[str] = field(default_factory=list)

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> Vectors:
        self.seen.extend(texts)
        return HashEncoder().encode(texts)


def _distinct_topics(n: int) -> Examples:
    # Three vocabularies; most texts use one (TF-IDF is sure and right), one in five mixes
    # two of them under either label (TF-IDF is unsure, and often wrong).
    rng = np.random.default_rng(3)
    vocabularies = {
        "refund": ["refund", "money", "back", "reimburse", "charged", "return"],
        "login": ["password", "login", "locked", "sign", "account", "code"],
        "shipping": ["parcel", "delivery", "courier", "tracking", "late", "package"],
    }
    names = list(vocabularies)
    pairs = []
    for label, words in vocabularies.items():
        for i in range(n):
            if i % 5:
                pairs.append((" ".join(rng.choice(words, size=4)), label))
            else:
                other = names[(names.index(label) + 1) % 3]
                mixed = [*rng.choice(words, size=2), *rng.choice(vocabularies[other], size=2)]
                pairs.append((" ".join(mixed), str(rng.choice([label, other]))))
    return Examples(tuple(t for t, _ in pairs), tuple(lab for _, lab in pairs), "distinct")


@pytest.fixture(scope="module")
def skipping() -> tuple[HybridModel, _CountingEncoder]:
    encoder = _CountingEncoder()
    # 450 examples cannot show the default 99.5 % with 95 % confidence; 99 % they can.
    model = fit_hybrid(
        _distinct_topics(150),
        embedder=Embedder(encoder, kind="numpy"),
        parameters=HybridParameters(skip_precision=0.99),
    )
    return model, encoder


def test_tickets_tfidf_is_sure_of_skip_the_encoder_and_get_its_prediction(
    skipping: tuple[HybridModel, _CountingEncoder],
) -> None:
    model, encoder = skipping
    sure, unsure = "refund money back reimburse", "parcel password money"
    encoder.seen.clear()

    predictions = model.predict([sure, unsure])

    assert model.skip_threshold is not None
    assert encoder.seen == [unsure]
    # TF-IDF's own prediction, naming the model that made it; the embedded one names none
    # (the hybrid model itself, `info`, is recorded for it).
    assert predictions[0] == dataclasses.replace(
        model.local.predict([sure])[0], model=model.local.info
    )
    assert predictions[0].model is not None
    assert predictions[0].model.name == "tfidf-lr"
    assert predictions[1].model is None
    assert predictions[0].category == "refund"
    assert predictions[0].confidence >= model.skip_threshold
    assert model.predict_proba([sure, unsure])[0] == pytest.approx(
        model.local.predict_proba([sure])[0]
    )


def test_without_a_skip_precision_every_ticket_is_embedded() -> None:
    encoder = _CountingEncoder()
    model = fit_hybrid(
        _distinct_topics(150),
        embedder=Embedder(encoder, kind="numpy"),
        parameters=HybridParameters(skip_precision=None),
    )
    encoder.seen.clear()

    model.predict(["refund money back reimburse", "parcel password money"])

    assert model.skip_threshold is None
    assert encoder.seen == ["refund money back reimburse", "parcel password money"]


def test_too_few_examples_to_be_sure_of_tfidf_embed_every_ticket(model: HybridModel) -> None:
    # 18 examples cannot show 99 % precision with 95 % confidence.
    assert model.skip_threshold is None


def reloaded(model: HybridModel, tmp_path: Path) -> HybridModel:
    """Return `model` saved and loaded back (without its encoder, as from the registry)."""
    path = tmp_path / "reloaded.pkl.gz"
    model.save(path)
    return HybridModel.load(path)


def test_skip_threshold_survives_save_and_load(
    skipping: tuple[HybridModel, _CountingEncoder], tmp_path: Path
) -> None:
    model, _ = skipping

    loaded = reloaded(model, tmp_path)
    loaded._encoder = HashEncoder()

    assert loaded.skip_threshold == model.skip_threshold
    texts = ["refund money back reimburse", "parcel password money"]
    assert loaded.predict(texts) == model.predict(texts)


def test_a_model_trained_without_a_given_encoder_serves_with_a_one_thread_encoder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[int] = []

    def make_encoder(kind: str, cache_dir: Path | None = None, *, threads: int = 0) -> HashEncoder:
        made.append(threads)
        return HashEncoder()

    monkeypatch.setattr("services.classifier.backends.hybrid.make_encoder", make_encoder)
    model = fit_hybrid(_distinct_topics(20), parameters=HybridParameters(encoder="numpy"))
    model.predict(["parcel password money"])

    # Training may use every core; serving, like a loaded model, embeds on one thread.
    assert made == [0, 1]


def test_warm_up_builds_the_encoder_even_when_tfidf_is_sure_of_the_warm_up_text(
    skipping: tuple[HybridModel, _CountingEncoder],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = reloaded(skipping[0], tmp_path)
    built: list[_CountingEncoder] = []

    def make_encoder(
        kind: str, cache_dir: Path | None = None, *, threads: int = 0
    ) -> _CountingEncoder:
        built.append(_CountingEncoder())
        return built[-1]

    monkeypatch.setattr("services.classifier.backends.hybrid.make_encoder", make_encoder)
    monkeypatch.setattr(
        "services.classifier.backends.hybrid.WARM_UP_TEXT", "refund money back reimburse"
    )

    loaded.warm_up()

    assert len(built) == 1
    assert built[0].seen == ["refund money back reimburse"]


def test_a_model_whose_encoder_cannot_be_built_fails_its_warm_up(
    skipping: tuple[HybridModel, _CountingEncoder],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = reloaded(skipping[0], tmp_path)

    def make_encoder(kind: str, cache_dir: Path | None = None, *, threads: int = 0) -> HashEncoder:
        raise OSError("no space left on device")

    monkeypatch.setattr("services.classifier.backends.hybrid.make_encoder", make_encoder)

    with pytest.raises(OSError, match="no space left"):
        loaded.warm_up()
