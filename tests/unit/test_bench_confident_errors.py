"""The confident-errors report lists the wrong predictions among the most confident."""

from __future__ import annotations

from bench.confident_errors import confident_errors
from services.classifier.backends.base import Prediction


def test_only_wrong_predictions_among_the_most_confident_share_are_listed() -> None:
    rows = [
        (Prediction("refund", 0.99), "give my money back", "refund"),
        (Prediction("billing", 0.97), "my transfer is pending", "pending_transfer"),
        (Prediction("shipping", 0.60), "where is my parcel", "delivery"),
        (Prediction("outage", 0.98), "the app is down", "outage"),
    ]

    kept, wrong = confident_errors(rows, coverage=0.75)

    assert [text for _, text, _ in kept] == [
        "give my money back",
        "the app is down",
        "my transfer is pending",
    ]
    assert wrong == [rows[1]]
