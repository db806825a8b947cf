"""The MiniLM encoder on onnxruntime: a graph built from the packaged weights, no download."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.classifier.backends.hybrid import HybridModel, train_hybrid_cached
from services.classifier.backends.minilm import MiniLMEncoder
from services.classifier.backends.onnx_encoder import OnnxEncoder, model_path

TEXTS = [
    "my card has not arrived",
    "why was I charged a fee for a transfer to my friend in another country?",
    "refund please",
    "how tall is mount everest",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return MiniLMEncoder().encode(TEXTS)


def test_float32_graph_gives_the_numpy_encoders_embeddings(
    cache_dir: Path, reference: np.ndarray
) -> None:
    vectors = OnnxEncoder(cache_dir, precision="float32", threads=1).encode(TEXTS)

    assert vectors.shape == (len(TEXTS), 384)
    assert (vectors * reference).sum(axis=1) == pytest.approx(np.ones(len(TEXTS)), abs=1e-4)


def test_int8_graph_stays_close_to_the_float_embeddings(
    cache_dir: Path, reference: np.ndarray
) -> None:
    vectors = OnnxEncoder(cache_dir, precision="int8", threads=1).encode(TEXTS)

    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(len(TEXTS)), abs=1e-5)
    assert float((vectors * reference).sum(axis=1).min()) > 0.97


def test_float32_embedding_does_not_depend_on_the_batch_a_text_is_in(cache_dir: Path) -> None:
    # (int8 does: onnxruntime quantises activations with one range per batch.)
    encoder = OnnxEncoder(cache_dir, precision="float32", threads=1)

    alone = encoder.encode(["refund please"])
    together = encoder.encode(TEXTS, batch_size=2)

    assert alone[0] == pytest.approx(together[2], abs=1e-4)


def test_graph_is_built_once_into_the_cache_directory(cache_dir: Path) -> None:
    OnnxEncoder(cache_dir, precision="float32", threads=1)
    built = model_path(cache_dir, _weights_dir(), "float32")
    stamp = built.stat().st_mtime_ns

    OnnxEncoder(cache_dir, precision="float32", threads=1)

    assert built.stat().st_mtime_ns == stamp
    assert not [p for p in cache_dir.iterdir() if p.name.startswith("tmp")]


def test_service_trains_the_hybrid_model_once_and_loads_it_after(
    cache_dir: Path, tmp_path: Path
) -> None:
    csv = tmp_path / "examples.csv"
    rows = [f"my parcel {i} is late,shipping" for i in range(4)]
    rows += [f"refund order {i} please,refund" for i in range(4)]
    csv.write_text("text,label\n" + "\n".join(rows) + "\n")

    trained = train_hybrid_cached(csv, cache_dir)
    loaded = train_hybrid_cached(csv, cache_dir)

    assert isinstance(loaded, HybridModel)
    assert loaded.info == trained.info
    assert loaded.parameters.encoder == "onnx-float32"
    assert [p.category for p in loaded.predict(["where is my parcel"])] == ["shipping"]


def _weights_dir() -> Path:
    from services.classifier.backends.minilm import model_dir

    return model_dir()
