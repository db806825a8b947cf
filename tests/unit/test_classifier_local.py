"""The local backend learns from a CSV, is calibrated, round-trips, and knows its limits."""

from __future__ import annotations

import csv
import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import sklearn

from services.classifier.backends import local
from services.classifier.backends.base import Backend, Prediction
from services.classifier.backends.local import (
    MODEL_NAME,
    Examples,
    ExamplesError,
    LocalModel,
    ModelFormatError,
    default_model,
    read_examples,
    train_local,
    train_local_cached,
)
from services.classifier.evaluation import cross_validate, expected_calibration_error

SMALL_EXAMPLES: dict[str, list[str]] = {
    "billing": [
        "I was charged twice on my invoice",
        "Why is my bill higher this month",
        "The invoice amount is wrong",
        "Please update the credit card for billing",
        "Unexpected charge on my statement",
        "Can I get a copy of my invoice",
        "You billed me for the wrong plan price",
        "Payment failed but my card was charged",
    ],
    "shipping": [
        "Where is my parcel, it has not arrived",
        "The tracking number has not updated for days",
        "My package was delivered to the wrong address",
        "When will my order be shipped",
        "The delivery is late again",
        "Courier lost my package",
        "Can I change the delivery address of my order",
        "Parcel arrived damaged in transit",
    ],
    "account_access": [
        "I cannot log in to my account",
        "Password reset email never arrives",
        "My account is locked after failed logins",
        "Two factor code does not work so I cannot sign in",
        "Forgot my password and the reset link expired",
        "Login page keeps rejecting my password",
        "Unlock my account please",
        "I can't sign in on the mobile app",
    ],
    "cancellation": [
        "Please cancel my subscription",
        "I want to close my account and stop payments",
        "Do not renew my plan next month",
        "How do I cancel my membership",
        "Cancel my contract at the end of the term",
        "Stop my subscription immediately",
        "I would like to terminate my plan",
        "Unsubscribe me from the premium plan",
    ],
}


def write_csv(path: Path, rows: dict[str, list[str]], *, subject: bool = False) -> Path:
    """Write labelled examples as a CSV the trainer reads."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["subject", "text", "label"] if subject else ["text", "label"])
        for label, texts in rows.items():
            for text in texts:
                writer.writerow(["Re: help", text, label] if subject else [text, label])
    return path


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(tmp_path_factory.mktemp("small") / "examples.csv", SMALL_EXAMPLES)


@pytest.fixture(scope="module")
def small_model(small_csv: Path) -> LocalModel:
    return train_local(small_csv, seed=0)


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def shipped_model(model_cache: Path) -> LocalModel:
    """The model trained from the shipped examples (once for this module: ~3 s)."""
    return default_model(model_cache)


def _refuse_training(*_: object, **__: object) -> LocalModel:
    raise AssertionError("the model was retrained")


# ------------------------------------------------------------------------------ learning


def test_model_learns_categories_from_a_small_csv(small_model: LocalModel) -> None:
    clear = {
        "I was charged twice this month, the invoice is wrong": "billing",
        "my parcel has not arrived and tracking shows nothing": "shipping",
        "I cannot log in, the password reset never arrives": "account_access",
        "please cancel my subscription and stop all payments": "cancellation",
    }

    predictions = small_model.predict(list(clear))

    assert [p.category for p in predictions] == list(clear.values())
    assert small_model.labels == ("account_access", "billing", "cancellation", "shipping")


def test_local_model_is_a_backend_named_tfidf_lr(small_model: LocalModel) -> None:
    backend: Backend = small_model

    assert backend.info.name == MODEL_NAME == "tfidf-lr"
    assert backend.info.backend == "local"
    assert len(backend.info.version) == 12


def test_probabilities_sum_to_one_and_alternatives_are_sorted(small_model: LocalModel) -> None:
    texts = ["refund my invoice", "where is my order", "hello", "x" * 5000]

    probabilities = small_model.predict_proba(texts)
    predictions = small_model.predict(texts)

    assert probabilities.shape == (4, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    for row, prediction in zip(probabilities, predictions, strict=True):
        alternatives = [a.confidence for a in prediction.alternatives]
        assert len(prediction.alternatives) == 3
        assert prediction.confidence == pytest.approx(row.max())
        assert alternatives == sorted(alternatives, reverse=True)
        assert prediction.confidence >= alternatives[0]
        assert prediction.category not in {a.category for a in prediction.alternatives}
        assert 0.0 <= prediction.out_of_scope_score <= 1.0


@pytest.mark.parametrize("labels", [["billing", "shipping"], sorted(SMALL_EXAMPLES)])
def test_serving_features_and_logits_equal_what_scikit_learn_itself_computes(
    labels: list[str],
) -> None:
    texts = [t for label in labels for t in SMALL_EXAMPLES[label]]
    targets = np.repeat(np.arange(len(labels)), [len(SMALL_EXAMPLES[x]) for x in labels])
    fitted = local._fit_once(texts, targets, local.Hyperparameters())
    queries = ["", "zzz qqq never seen", "I was charged twice", "où est mon colis ?", *texts]

    ours = local.transform(fitted.vectorizer, queries)
    theirs = fitted.vectorizer.transform(queries)
    assert (ours != theirs).nnz == 0
    margins = fitted.classifier.decision_function(theirs)
    if len(labels) == 2:
        margins = np.column_stack([np.zeros(len(queries)), margins])
    np.testing.assert_allclose(local._logits(fitted.classifier, ours), margins, rtol=1e-12)


def test_an_empty_batch_predicts_nothing(small_model: LocalModel) -> None:
    assert small_model.predict([]) == []
    assert small_model.predict_proba([]).shape == (0, 4)


def test_training_is_deterministic_for_a_seed(small_csv: Path, small_model: LocalModel) -> None:
    again = train_local(small_csv, seed=0)

    np.testing.assert_array_equal(
        again.predict_proba(["where is my order"]), small_model.predict_proba(["where is my order"])
    )
    assert again.info == small_model.info


def test_a_subject_column_is_put_before_the_text(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "with-subject.csv", {"billing": ["charged twice"]}, subject=True)

    examples = read_examples(path)

    assert examples.texts == ("Re: help\ncharged twice",)
    assert examples.labels == ("billing",)


# ------------------------------------------------------------------------- persistence


def test_save_and_load_round_trip_gives_identical_predictions_and_version(
    small_model: LocalModel, tmp_path: Path
) -> None:
    texts = ["I was charged twice", "cannot log in", "what is the capital of France"]
    path = tmp_path / "model.pkl.gz"

    small_model.save(path)
    loaded = LocalModel.load(path)

    assert loaded.info == small_model.info
    assert loaded.predict(texts) == small_model.predict(texts)
    np.testing.assert_array_equal(loaded.predict_proba(texts), small_model.predict_proba(texts))
    assert loaded.training_sha256 == small_model.training_sha256
    assert loaded.report == small_model.report


def test_version_changes_when_the_training_data_changes(
    small_csv: Path, small_model: LocalModel, tmp_path: Path
) -> None:
    more = {label: [*texts, f"{texts[0]} again"] for label, texts in SMALL_EXAMPLES.items()}
    changed = train_local(write_csv(tmp_path / "changed.csv", more))
    reseeded = train_local(small_csv, seed=1)

    assert changed.info.version != small_model.info.version
    assert changed.training_sha256 != small_model.training_sha256
    assert reseeded.info.version != small_model.info.version


def test_loading_refuses_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump({"format": "something-else"}, f)

    with pytest.raises(ModelFormatError, match="not a triageflow-local-model"):
        LocalModel.load(path)


def test_loading_refuses_a_model_written_by_another_scikit_learn(
    small_model: LocalModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.pkl.gz"
    small_model.save(path)
    monkeypatch.setattr(sklearn, "__version__", "0.0.1")

    with pytest.raises(ModelFormatError, match="retrain"):
        LocalModel.load(path)


def test_a_cached_model_is_loaded_not_retrained(
    small_csv: Path, small_model: LocalModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = train_local_cached(small_csv, tmp_path)
    monkeypatch.setattr(local, "train_local", _refuse_training)

    second = train_local_cached(small_csv, tmp_path)

    assert second.info == first.info == small_model.info
    assert len(list(tmp_path.glob("tfidf-lr-*.pkl.gz"))) == 1


def test_a_corrupt_cache_file_is_replaced_by_a_fresh_model(
    small_csv: Path, small_model: LocalModel, tmp_path: Path
) -> None:
    train_local_cached(small_csv, tmp_path)
    (cached,) = tmp_path.glob("tfidf-lr-*.pkl.gz")
    cached.write_bytes(b"not a model")

    model = train_local_cached(small_csv, tmp_path)

    assert model.info == small_model.info
    assert LocalModel.load(cached).info == small_model.info


# ------------------------------------------------------------------------ bad examples


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("body,category\nhello,billing\n", "needs columns text,label"),
        ("text,label\nhello,\n", "row 2 has an empty text or label"),
        ("text,label\n,billing\n", "row 2 has an empty text or label"),
    ],
)
def test_unusable_csv_files_are_refused_with_the_reason(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)

    with pytest.raises(ExamplesError, match=message):
        read_examples(path)


def test_training_refuses_labels_outside_the_taxonomy(small_csv: Path) -> None:
    with pytest.raises(ExamplesError, match="outside the taxonomy: \\['shipping'\\]"):
        train_local(small_csv, taxonomy=["billing", "account_access", "cancellation"])


def test_training_refuses_a_label_with_a_single_example() -> None:
    examples = Examples(("a", "b", "c"), ("x", "x", "y"), "sha")

    with pytest.raises(ExamplesError, match="too few: \\['y'\\]"):
        local.fit(examples)


# --------------------------------------------------------------- the shipped model


def test_default_model_reaches_85_percent_cross_validated_accuracy(
    shipped_model: LocalModel,
) -> None:
    # The training report's out-of-fold predictions are 5-fold cross-validated (seed 0):
    # every example is predicted by a model that never saw it.
    report = shipped_model.report

    assert report.examples >= 12 * 30
    assert report.folds == 5
    assert report.oof_accuracy >= 0.85, f"cross-validated accuracy {report.oof_accuracy:.3f}"


def test_off_topic_text_is_flagged_out_of_scope(shipped_model: LocalModel) -> None:
    off_topic, on_topic = shipped_model.predict(
        ["what is the capital of France", "I was charged twice for my subscription this month"]
    )

    assert off_topic.out_of_scope
    assert off_topic.out_of_scope_score >= shipped_model.oos_threshold
    assert not on_topic.out_of_scope
    assert on_topic.category == "billing"


def test_default_model_restarts_from_its_cache_without_training(
    shipped_model: LocalModel, model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "train_local", _refuse_training)

    restarted = default_model(model_cache)

    assert restarted.info == shipped_model.info
    assert restarted.predict(["where is my parcel"]) == shipped_model.predict(
        ["where is my parcel"]
    )


# ------------------------------------------------------------------------- evaluation


def test_cross_validation_scores_every_example_on_a_model_that_never_saw_it(
    small_csv: Path,
) -> None:
    evaluation = cross_validate(read_examples(small_csv), folds=4, seed=0)

    assert evaluation.examples == 32
    assert evaluation.folds == 4
    assert 0.75 <= evaluation.accuracy <= 1.0
    assert 0.0 <= evaluation.ece <= 1.0
    assert set(evaluation.recall) == set(SMALL_EXAMPLES)


def test_expected_calibration_error_is_zero_when_confidence_matches_accuracy() -> None:
    assert expected_calibration_error([0.8] * 10, [True] * 8 + [False] * 2) == pytest.approx(0.0)
    assert expected_calibration_error([1.0, 1.0], [False, False]) == pytest.approx(1.0)
    assert expected_calibration_error([], []) == 0.0


def test_a_prediction_refuses_an_impossible_confidence() -> None:
    with pytest.raises(ValueError, match=r"confidence must be within 0\.\.1"):
        Prediction(category="billing", confidence=1.5)
