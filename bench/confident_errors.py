"""The test tickets a backend gets wrong among those it is most confident of (Banking77).

Trains a backend on train.csv (through the service's own cache), classifies test.csv, ranks
the tickets by confidence and lists the wrong ones among the top `--coverage` share: the
errors an autonomous threshold at that coverage would let through. Writes
bench/confident-errors.md (for reading: are they the model's or the labels'?).

    python bench/confident_errors.py [--backend local|hybrid] [--coverage 0.8]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final, cast

from bench.pipeline import log
from services.classifier.app import limit_compute_threads, load_backend
from services.classifier.backends.base import Backend, Prediction
from services.classifier.backends.local import read_examples
from services.classifier.settings import ClassifierSettings

HERE: Final = Path(__file__).resolve().parent
DEFAULT_DATA: Final = HERE.parent.parent / "shared" / "datasets" / "banking77"
BATCH: Final = 64


Row = tuple[Prediction, str, str]  # prediction, text, test label


def confident_errors(rows: list[Row], coverage: float) -> tuple[list[Row], list[Row]]:
    """Return the most confident `coverage` share of `rows`, and the wrong ones among them."""
    ranked = sorted(rows, key=lambda row: -row[0].confidence)
    kept = ranked[: round(coverage * len(ranked))]
    return kept, [(p, text, gold) for p, text, gold in kept if p.category != gold]


def report(backend: str, data: Path, cache_dir: Path, coverage: float) -> str:
    """Return the markdown list of wrong predictions among the most confident `coverage`."""
    # Through the service's own `load_backend`: the model a copy trained on this data serves.
    settings = ClassifierSettings(
        backend=backend, examples_csv=data / "train.csv", model_cache_dir=cache_dir
    )
    model = cast(Backend, load_backend(settings))  # local and hybrid are synchronous
    test = read_examples(data / "test.csv")
    texts = list(test.texts)
    predictions = [
        p for i in range(0, len(texts), BATCH) for p in model.predict(texts[i : i + BATCH])
    ]
    kept, wrong = confident_errors(
        list(zip(predictions, texts, test.labels, strict=True)), coverage
    )
    lines = [
        f"# Confident errors: `{backend}` ({model.info.name}@{model.info.version}) on {data.name}",
        "",
        f"The {len(kept):,} most confident of {len(texts):,} test tickets "
        f"({coverage:.0%}, confidence ≥ {kept[-1][0].confidence:.4f}) hold **{len(wrong)} "
        f"errors**: precision {1 - len(wrong) / len(kept):.4f}.",
        "",
        "| confidence | text | test label | predicted |",
        "|---|---|---|---|",
    ]
    for p, text, gold in wrong:
        cell = text.replace("|", "/").replace("\n", " ")
        lines.append(f"| {p.confidence:.3f} | {cell} | {gold} | {p.category} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("local", "hybrid"), default="hybrid")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--coverage", type=float, default=0.8)
    # The same cache as `make bench-classifier-service`: a model trained there is reused.
    parser.add_argument("--model-cache", type=Path, default=HERE.parent / ".local" / "bench-models")
    parser.add_argument("--out", type=Path, default=HERE / "confident-errors.md")
    args = parser.parse_args(argv)
    limit_compute_threads(1)
    args.out.write_text(report(args.backend, args.data, args.model_cache, args.coverage))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
