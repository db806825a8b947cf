"""Threshold calibration: exact small cases, and its guarantee checked over many random splits.

The guarantee (docs/calibration.md): with probability >= 1 - δ over the calibration sample,
the precision of the proposed threshold on new data drawn like it is >= the target.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.stats import binom

from services.policy.calibration import (
    LabelledExample,
    calibrate,
    calibrate_category,
    error_upper_bound,
    minimum_examples,
    precision_at,
    threshold_grid,
)

TARGET, CONFIDENCE = 0.98, 0.95
DELTA = 1.0 - CONFIDENCE
SPLITS = 300
BANKING77 = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "banking77"


# ------------------------------------------------------------------- exact small cases


def test_minimum_examples_is_the_smallest_flawless_record_that_certifies_the_target() -> None:
    # 0.98**148 = 0.0503 > 0.05 and 0.98**149 = 0.0493 <= 0.05.
    assert minimum_examples(0.98, 0.95) == 149
    assert minimum_examples(0.90, 0.95) == 29
    assert minimum_examples(0.99, 0.90) == 230


def test_error_bound_is_clopper_pearson_and_one_without_data() -> None:
    assert error_upper_bound(0, 0, 0.95) == 1.0
    assert error_upper_bound(5, 5, 0.95) == 1.0
    # Zero errors in n: the bound solves (1 - p)**n = 0.05.
    assert error_upper_bound(0, 149, 0.95) == pytest.approx(1 - 0.05 ** (1 / 149))
    assert error_upper_bound(2, 300, 0.95) == pytest.approx(0.0209, abs=1e-4)


def test_grid_runs_from_top_to_floor_in_steps() -> None:
    assert threshold_grid(top=0.99, floor=0.97, step=0.01) == (0.99, 0.98, 0.97)
    assert len(threshold_grid()) == 100


def test_a_flawless_record_of_exactly_the_minimum_is_certified_down_to_the_floor() -> None:
    grid = threshold_grid(top=0.99, floor=0.90, step=0.01)
    result = calibrate_category("billing", [0.995] * 149, [True] * 149, grid=grid, start_share=0)
    assert result.threshold == 0.90
    assert (result.selected, result.errors) == (149, 0)
    assert result.precision_bound >= TARGET


def test_one_example_short_of_the_minimum_refuses_autonomy_for_want_of_evidence() -> None:
    result = calibrate_category("billing", [0.99] * 148, [True] * 148, start_share=0)
    assert result.threshold is None
    assert not result.autonomous
    assert "not enough evidence" in result.reason
    assert "149 needed" in result.reason


def test_the_walk_stops_at_the_first_threshold_it_cannot_certify() -> None:
    # 300 flawless examples at 0.99, then 100 at 0.95 of which 20 wrong: certified at 0.99
    # and 0.98 (same 300 examples), refused from 0.95 on (20 errors in 400).
    confidences = [0.99] * 300 + [0.95] * 100
    correct = [True] * 300 + [False] * 20 + [True] * 80
    grid = (0.99, 0.98, 0.95, 0.90)
    result = calibrate_category("refunds", confidences, correct, grid=grid, start_share=0)
    assert result.threshold == 0.98
    assert (result.selected, result.errors) == (300, 0)


def test_a_certifiable_threshold_after_a_failed_one_is_not_taken() -> None:
    # At 0.9 the errors of the 0.95 band are diluted by 2,000 flawless examples: the bound
    # would pass, but fixed-sequence testing stopped at 0.95 and never gets there.
    confidences = [0.99] * 300 + [0.95] * 100 + [0.9] * 2000
    correct = [True] * 300 + [False] * 20 + [True] * 80 + [True] * 2000
    grid = (0.99, 0.95, 0.90)
    result = calibrate_category("refunds", confidences, correct, grid=grid, start_share=0)
    assert result.threshold == 0.99
    assert error_upper_bound(20, 2400, CONFIDENCE) < 1 - TARGET  # would have passed alone


def test_too_few_examples_above_the_top_of_a_fixed_grid_stop_the_walk_at_once() -> None:
    # 100 flawless examples at 0.999 cannot certify 98 %; without a pilot to pick the start,
    # the walk stops there although 1,000 flawless examples lie at 0.9.
    confidences = [0.999] * 100 + [0.9] * 1000
    correct = [True] * 1100
    grid = (0.995, 0.95, 0.90)
    strict = calibrate_category("how_to", confidences, correct, grid=grid, start_share=0)
    assert strict.threshold is None
    assert "not certified" in strict.reason
    piloted = calibrate_category("how_to", confidences, correct, grid=grid, start_share=0.1)
    assert piloted.threshold == 0.90
    assert piloted.tested == 990


def test_calibrate_groups_by_category_and_refuses_listed_categories_without_examples() -> None:
    examples = [LabelledExample("billing", 0.97, True)] * 400
    results = calibrate(examples, categories=["legal_complaint"])
    assert set(results) == {"billing", "legal_complaint"}
    assert results["billing"].autonomous
    assert results["legal_complaint"].examples == 0
    assert not results["legal_complaint"].autonomous


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="target"):
        calibrate_category("x", [0.9], [True], target=1.0)
    with pytest.raises(ValueError, match="decreasing"):
        calibrate_category("x", [0.9], [True], grid=(0.8, 0.9))
    with pytest.raises(ValueError, match="labels"):
        calibrate_category("x", [0.9, 0.8], [True])


# ---------------------------------------------------------- the guarantee, empirically
#
# Each split draws a fresh calibration sample, calibrates, and judges the chosen threshold.
# The guarantee is about the precision on new data (the population), so the synthetic case
# computes it exactly; it also measures it on a large independent test sample, which adds
# sampling noise on top. Seeds are fixed, so each test is deterministic; the assertions
# still leave the Monte-Carlo slack explained in `allowed_failures`.


def allowed_failures(splits: int, delta: float) -> int:
    """Most splits that may miss the target while the guarantee holds (99.9 % of the time).

    If the guarantee holds, failures ~ Binomial(splits, p) with p <= δ: a check that demands
    exactly (1 - δ) of the splits would fail half the time at p = δ. This allowance is the
    99.9 % quantile of Binomial(splits, δ).
    """
    return int(binom.ppf(0.999, splits, delta))


# Synthetic: confidence ~ Uniform(0.5, 1); P(correct | c) = 1 - 0.6 (1 - c), so the
# precision at threshold λ is 1 - 0.3 (1 - λ): 98 % from λ = 0.9333 up.
def true_precision(threshold: float) -> float:
    """Precision of decisions at or above `threshold` in the synthetic population."""
    return 1.0 - 0.3 * (1.0 - threshold)


def draw(rng: np.random.Generator, n: int) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Draw n synthetic (confidence, correct) examples."""
    confidences = rng.uniform(0.5, 1.0, n)
    correct = rng.random(n) < 1.0 - 0.6 * (1.0 - confidences)
    return confidences, correct


def naive_threshold(confidences: NDArray[np.float64], correct: NDArray[np.bool_]) -> float | None:
    """The lowest grid threshold whose *observed* precision reaches the target: no bound."""
    chosen = None
    for threshold in threshold_grid():
        observed = precision_at(threshold, confidences, correct)
        if observed is None or observed < TARGET:
            break
        chosen = threshold
    return chosen


def test_precision_stays_above_target_in_the_promised_share_of_random_splits() -> None:
    rng = np.random.default_rng(20261125)
    population_misses = realised_misses = refused = naive_misses = 0
    for seed in range(SPLITS):
        confidences, correct = draw(rng, 20_000)
        result = calibrate_category(
            "synthetic", confidences, correct, target=TARGET, confidence=CONFIDENCE, seed=seed
        )
        naive = naive_threshold(confidences, correct)
        naive_misses += naive is not None and true_precision(naive) < TARGET
        if result.threshold is None:
            refused += 1  # no autonomy: precision of autonomous decisions cannot be wrong
            continue
        population_misses += true_precision(result.threshold) < TARGET
        test_confidences, test_correct = draw(rng, 20_000)
        realised = precision_at(result.threshold, test_confidences, test_correct)
        realised_misses += realised is not None and realised < TARGET
    allowed = allowed_failures(SPLITS, DELTA)
    # The check has teeth: autonomy is granted in most splits, and the same walk without
    # the bound (observed precision only) misses the target far more often than δ.
    assert refused < SPLITS * 0.2
    assert naive_misses > SPLITS * DELTA * 2
    # The guarantee itself: exact population precision, then realised on fresh test data.
    assert population_misses <= SPLITS * DELTA
    assert population_misses <= allowed
    assert realised_misses <= allowed


def shared_banking77_scores() -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.str_]]:
    """Score Banking77's test set with a cheap model trained on its train set (~2 s)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.naive_bayes import MultinomialNB

    from services.classifier.backends.local import read_examples

    train = read_examples(BANKING77 / "train.csv")
    test = read_examples(BANKING77 / "test.csv")
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
    # Naive Bayes probabilities are badly calibrated: the guarantee must not care.
    model = MultinomialNB(alpha=0.05).fit(vectorizer.fit_transform(train.texts), train.labels)
    probabilities = model.predict_proba(vectorizer.transform(test.texts))
    predicted = model.classes_[probabilities.argmax(axis=1)]
    confidences = probabilities.max(axis=1).astype(np.float64)
    correct = np.asarray(predicted == np.asarray(test.labels), dtype=bool)
    return confidences, correct, np.asarray(predicted, dtype=np.str_)


@pytest.mark.skipif(not BANKING77.is_dir(), reason="Banking77 is not in ../shared/datasets")
def test_banking77_precision_stays_above_target_on_held_out_halves() -> None:
    confidences, correct, predicted = shared_banking77_scores()
    # Every intent has ~40 test examples, fewer than the 149 that 98 % needs: per intent,
    # calibration must refuse them all.
    per_intent = calibrate(
        (
            LabelledExample(str(c), float(p), bool(k))
            for c, p, k in zip(predicted, confidences, correct, strict=True)
        ),
        target=TARGET,
        confidence=CONFIDENCE,
    )
    assert not any(result.autonomous for result in per_intent.values())
    # Pooled over all intents (one "category"). First the guarantee exactly: calibration
    # samples drawn with replacement from the scored test set, whose own precision at the
    # chosen threshold is then the population precision.
    rng = np.random.default_rng(77)
    population_misses = 0
    for seed in range(SPLITS):
        sample = rng.integers(0, confidences.size, confidences.size)
        result = calibrate_category(
            "banking77", confidences[sample], correct[sample], target=TARGET, seed=seed
        )
        if result.threshold is not None:
            precision = precision_at(result.threshold, confidences, correct)
            assert precision is not None  # the sample's examples are all in the scored set
            population_misses += precision < TARGET
    assert population_misses <= SPLITS * DELTA
    # Then random halves: one calibrates, the other judges (its finite size adds noise).
    realised_misses = refused = 0
    for seed in range(SPLITS):
        order = rng.permutation(confidences.size)
        calibration, held_out = order[: confidences.size // 2], order[confidences.size // 2 :]
        result = calibrate_category(
            "banking77", confidences[calibration], correct[calibration], target=TARGET, seed=seed
        )
        if result.threshold is None:
            refused += 1
            continue
        realised = precision_at(result.threshold, confidences[held_out], correct[held_out])
        realised_misses += realised is not None and realised < TARGET
    assert refused < SPLITS * 0.1
    assert realised_misses <= allowed_failures(SPLITS, DELTA)
