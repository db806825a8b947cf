"""Labelled examples from base data and feedback, de-duplicated and versioned. Pure.

A judgement says "this text belongs to this category", with where that came from:

* `base`: the examples the first model was trained on (oldest; any feedback wins);
* `override`: an agent corrected the category (`correct_category`);
* `confirmed`: a decision nobody overrode, whose ticket was resolved.

Texts are de-duplicated by their normalised form (case and whitespace folded): the latest
judgement wins and the others are kept as superseded provenance. The dataset's version is
the sha256 of its canonical CSV, so the same judgements always yield the same version.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from services.classifier.backends.local import Examples

Provenance = Literal["base", "override", "confirmed"]
_SPACES = re.compile(r"\s+")
_BEFORE_FEEDBACK = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Judgement:
    """One labelled text and where the label came from."""

    text: str
    label: str
    provenance: Provenance
    # None for base examples: older than any feedback.
    judged_at: datetime | None = None
    # The feedback or decision event behind it (empty for base examples).
    source: str = ""


@dataclass(frozen=True)
class Dataset:
    """De-duplicated judgements, latest per normalised text, in a stable order."""

    judgements: tuple[Judgement, ...]
    superseded: int

    @property
    def csv_bytes(self) -> bytes:
        """Return the canonical CSV (text,label,provenance,source) the version hashes."""
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["text", "label", "provenance", "source"])
        for j in self.judgements:
            writer.writerow([j.text, j.label, j.provenance, j.source])
        return buffer.getvalue().encode("utf-8")

    @property
    def sha256(self) -> str:
        """Return the dataset version: sha256 of the canonical CSV."""
        return hashlib.sha256(self.csv_bytes).hexdigest()

    def counts_by_provenance(self) -> dict[str, int]:
        """Return how many examples came from each provenance."""
        return dict(sorted(Counter(j.provenance for j in self.judgements).items()))

    def examples(self) -> Examples:
        """Return the training examples of the local backend."""
        return Examples(
            texts=tuple(j.text for j in self.judgements),
            labels=tuple(j.label for j in self.judgements),
            sha256=self.sha256,
        )


def normalise(text: str) -> str:
    """Return the form texts are de-duplicated on: case-folded, whitespace collapsed."""
    return _SPACES.sub(" ", text).strip().casefold()


def base_judgements(examples: Examples) -> list[Judgement]:
    """Return the base examples as judgements."""
    return [
        Judgement(t, label, "base")
        for t, label in zip(examples.texts, examples.labels, strict=True)
    ]


def build_dataset(judgements: Iterable[Judgement]) -> Dataset:
    """Return the latest judgement per normalised text (base oldest, then by time)."""
    ordered = sorted(
        enumerate(judgements),
        key=lambda item: (item[1].judged_at or _BEFORE_FEEDBACK, item[0]),
    )
    latest: dict[str, Judgement] = {}
    total = 0
    for _, judgement in ordered:
        if not judgement.text.strip() or not judgement.label.strip():
            continue
        total += 1
        latest[normalise(judgement.text)] = judgement
    kept = tuple(sorted(latest.values(), key=lambda j: (normalise(j.text), j.label)))
    return Dataset(judgements=kept, superseded=total - len(kept))


def held_out(text: str, share: float) -> bool:
    """Return whether a text belongs to the held-out evaluation split (stable by its hash).

    The split depends only on the text, so a text held out once is held out in every later
    run: no version is ever trained on the tickets it is evaluated on.
    """
    digest = hashlib.sha256(normalise(text).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def feedback_judgement(
    *,
    text: str,
    category: str,
    correct_category: str | None,
    judged_correct: bool,
    resolved: bool,
    judged_at: datetime,
    source: str,
) -> Judgement | None:
    """Return what a judged decision teaches: an override's category, or a confirmed one.

    A decision nobody overrode counts as confirmed only once its ticket was resolved and
    no feedback found it wrong; anything else (a negative reaction, a reopen) says the
    label was wrong without saying which is right, so it teaches nothing.
    """
    if correct_category is not None:
        return Judgement(text, correct_category, "override", judged_at, source)
    if judged_correct and resolved:
        return Judgement(text, category, "confirmed", judged_at, source)
    return None
