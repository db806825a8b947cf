"""A classifier copy keeps its numeric thread pools small: it scales by copies."""

from __future__ import annotations

import numpy as np
import sklearn.ensemble  # noqa: F401  (loads scikit-learn's OpenMP runtime, as a model does)
from threadpoolctl import threadpool_info

from services.classifier.app import limit_compute_threads
from services.classifier.settings import ClassifierSettings


def _pools() -> dict[str, int]:
    return {pool["filepath"]: pool["num_threads"] for pool in threadpool_info()}


def test_a_copy_caps_its_blas_and_openmp_pools_at_the_configured_threads() -> None:
    np.ones((2, 2)) @ np.ones((2, 2))  # BLAS is loaded
    before = _pools()
    assert before, "no thread pool loaded: the test would prove nothing"

    limiter = limit_compute_threads(1)
    assert limiter is not None
    try:
        assert set(_pools().values()) == {1}
    finally:
        limiter.restore_original_limits()
    assert _pools() == before


def test_zero_threads_leaves_the_pools_as_the_libraries_chose() -> None:
    before = _pools()

    assert limit_compute_threads(0) is None
    assert _pools() == before


def test_one_thread_per_copy_is_the_default() -> None:
    assert ClassifierSettings().compute_threads == 1
