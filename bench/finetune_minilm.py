"""Experiment, not part of the product: fine-tune all-MiniLM-L6-v2 on Banking77 with JAX.

Would a fine-tuned encoder rank tickets well enough for issue #4's autonomy target? This
fine-tunes the packaged MiniLM weights with a linear head on mean-pooled tokens (cross
entropy, AdamW, warm-up + cosine decay, batches of 32 bucketed by length) on train.csv and
writes the test logits, with the test accuracy and the best coverage at 99 % precision
chosen on the test labels (a ceiling, not an honest threshold). `--with-backend local|hybrid`
adds that backend's test probabilities (trained as `make bench-classifier-service` trains
it), summed in log space, to see what the fine-tuned model adds to it.

JAX and optax are not project dependencies; uv lays them over the project's environment:

    uv run --frozen --all-extras --with jax==0.10.2 --with optax==0.2.8 \
        python bench/finetune_minilm.py --epochs 3 --with-backend local --with-backend hybrid
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import jax
import jax.numpy as jnp
import numpy as np
import optax  # type: ignore[import-untyped]
from tokenizers import Tokenizer

from bench.pipeline import log
from services.classifier.app import load_backend
from services.classifier.backends.hybrid import HybridModel
from services.classifier.backends.local import LocalModel, read_examples
from services.classifier.backends.minilm import model_dir, read_safetensors
from services.classifier.evaluation import coverage_at_precision
from services.classifier.settings import ClassifierSettings

HERE: Final = Path(__file__).resolve().parent
DEFAULT_DATA: Final = HERE.parent.parent / "shared" / "datasets" / "banking77"
HEADS: Final = 12
DIMENSIONS: Final = 384
BATCH: Final = 32
Params = dict[str, Any]


def initial_parameters(weights: dict[str, np.ndarray], classes: int) -> Params:
    """Return the packaged encoder's weights and a zero head for `classes` labels."""

    def layer(i: int) -> dict[str, np.ndarray]:
        p, a = f"encoder.layer.{i}.", f"encoder.layer.{i}.attention.self."
        return {
            "qkv_w": np.concatenate(
                [weights[f"{a}{x}.weight"] for x in ("query", "key", "value")]
            ).T,
            "qkv_b": np.concatenate([weights[f"{a}{x}.bias"] for x in ("query", "key", "value")]),
            "out_w": weights[p + "attention.output.dense.weight"].T,
            "out_b": weights[p + "attention.output.dense.bias"],
            "ln1_g": weights[p + "attention.output.LayerNorm.weight"],
            "ln1_b": weights[p + "attention.output.LayerNorm.bias"],
            "up_w": weights[p + "intermediate.dense.weight"].T,
            "up_b": weights[p + "intermediate.dense.bias"],
            "down_w": weights[p + "output.dense.weight"].T,
            "down_b": weights[p + "output.dense.bias"],
            "ln2_g": weights[p + "output.LayerNorm.weight"],
            "ln2_b": weights[p + "output.LayerNorm.bias"],
        }

    params = {
        "word": weights["embeddings.word_embeddings.weight"],
        "position": weights["embeddings.position_embeddings.weight"],
        "token_type": weights["embeddings.token_type_embeddings.weight"][0],
        "ln_g": weights["embeddings.LayerNorm.weight"],
        "ln_b": weights["embeddings.LayerNorm.bias"],
        "layers": [layer(i) for i in range(6)],
        "head_w": np.zeros((DIMENSIONS, classes), np.float32),
        "head_b": np.zeros(classes, np.float32),
    }
    device: Params = jax.tree_util.tree_map(jnp.asarray, params)
    return device


def _layer_norm(x: jax.Array, gain: jax.Array, bias: jax.Array) -> jax.Array:
    centred = x - x.mean(-1, keepdims=True)
    return centred / jnp.sqrt((centred * centred).mean(-1, keepdims=True) + 1e-12) * gain + bias


def forward(
    p: Params, ids: jax.Array, mask: jax.Array, dropout: jax.Array | None = None
) -> jax.Array:
    """Return the head's logits: the BERT encoder as `minilm.py` runs it, mean pooling."""
    batch, width = ids.shape
    x = p["word"][ids] + p["position"][:width][None] + p["token_type"][None, None]
    x = _layer_norm(x, p["ln_g"], p["ln_b"])
    padding = ((1.0 - mask) * -1e9)[:, None, None, :]
    for layer in p["layers"]:
        qkv = (x @ layer["qkv_w"] + layer["qkv_b"]).reshape(
            batch, width, 3, HEADS, DIMENSIONS // HEADS
        )
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(DIMENSIONS // HEADS) + padding
        context = (jax.nn.softmax(scores, axis=-1) @ v).transpose(0, 2, 1, 3)
        attended = context.reshape(batch, width, DIMENSIONS) @ layer["out_w"] + layer["out_b"]
        x = _layer_norm(x + attended, layer["ln1_g"], layer["ln1_b"])
        hidden = jax.nn.gelu(x @ layer["up_w"] + layer["up_b"], approximate=False)
        x = _layer_norm(
            x + hidden @ layer["down_w"] + layer["down_b"], layer["ln2_g"], layer["ln2_b"]
        )
    weights = mask[:, :, None]
    pooled = (x * weights).sum(1) / jnp.maximum(weights.sum(1), 1.0)
    if dropout is not None:  # 10 % dropout on the pooled vector while training
        pooled = jnp.where(jax.random.bernoulli(dropout, 0.9, pooled.shape), pooled / 0.9, 0.0)
    logits: jax.Array = pooled @ p["head_w"] + p["head_b"]
    return logits


def padded(token_ids: Sequence[Sequence[int]], rows: Sequence[int] | np.ndarray) -> tuple[Any, Any]:
    """Return ids and mask of `rows`, padded to a multiple of 8 tokens (few jit shapes)."""
    width = int(np.ceil(max(len(token_ids[i]) for i in rows) / 8) * 8)
    ids = np.zeros((len(rows), width), np.int32)
    mask = np.zeros((len(rows), width), np.float32)
    for j, i in enumerate(rows):
        ids[j, : len(token_ids[i])] = token_ids[i]
        mask[j, : len(token_ids[i])] = 1.0
    return ids, mask


def length_buckets(lengths: np.ndarray, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Yield batches of rows of similar length, in random order."""
    order = np.argsort(lengths + rng.uniform(0, 4, len(lengths)), kind="stable")
    chunks = [order[s : s + BATCH] for s in range(0, len(order), BATCH)]
    rng.shuffle(chunks)
    yield from chunks


def fine_tune(args: argparse.Namespace) -> dict[str, Any]:
    """Fine-tune on train.csv; return test logits, labels, accuracy and ceiling."""
    directory = args.model_dir or model_dir()
    train, test = read_examples(args.data / "train.csv"), read_examples(args.data / "test.csv")
    labels = sorted(set(train.labels))
    targets = np.searchsorted(labels, train.labels)
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tokenizer.enable_truncation(64)
    tokenizer.no_padding()
    train_ids = [e.ids for e in tokenizer.encode_batch(list(train.texts))]
    test_ids = [e.ids for e in tokenizer.encode_batch(list(test.texts))]
    params = initial_parameters(read_safetensors(directory / "model.safetensors"), len(labels))
    steps = args.epochs * int(np.ceil(len(train_ids) / BATCH))
    schedule = optax.warmup_cosine_decay_schedule(0.0, args.lr, int(0.06 * steps), steps)
    # The zero-initialised head learns 20 times faster than the pretrained encoder.
    optimiser = optax.multi_transform(
        {
            "encoder": optax.adamw(schedule, weight_decay=0.01),
            "head": optax.adamw(lambda step: schedule(step) * 20, weight_decay=0.0),
        },
        lambda p: {key: ("head" if key.startswith("head") else "encoder") for key in p},
    )
    state = optimiser.init(params)

    def loss(p: Params, ids: Any, mask: Any, y: Any, key: jax.Array) -> jax.Array:
        logits = forward(p, ids, mask, key)
        value: jax.Array = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return value

    @jax.jit
    def step(p: Params, s: Any, ids: Any, mask: Any, y: Any, key: jax.Array) -> Any:
        value, grads = jax.value_and_grad(loss)(p, ids, mask, y, key)
        updates, s = optimiser.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value

    rng, key, started = np.random.default_rng(args.seed), jax.random.PRNGKey(args.seed), time.time()
    lengths = np.array([len(i) for i in train_ids])
    for epoch in range(args.epochs):
        losses = []
        for rows in length_buckets(lengths, rng):
            key, dropout = jax.random.split(key)
            ids, mask = padded(train_ids, rows)
            params, state, value = step(params, state, ids, mask, targets[rows], dropout)
            losses.append(float(value))
        log(f"epoch {epoch + 1}: loss {np.mean(losses):.4f}, {time.time() - started:.0f} s")
    predict = jax.jit(forward)
    logits = np.zeros((len(test_ids), len(labels)), np.float32)
    order = np.argsort([len(i) for i in test_ids], kind="stable")
    for s in range(0, len(order), 128):
        rows = order[s : s + 128]
        logits[rows] = np.asarray(predict(params, *padded(test_ids, rows)))
    return {"logits": logits, "labels": labels, "seconds": time.time() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model-dir", type=Path, help="default: the installed wheel's model")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE.parent / ".local" / "finetuned.npz")
    parser.add_argument("--with-backend", dest="backends", action="append", default=[])
    parser.add_argument("--model-cache", type=Path, default=HERE.parent / ".local" / "bench-models")
    args = parser.parse_args(argv)
    result = fine_tune(args)
    np.savez(args.out, logits=result["logits"], labels=np.array(result["labels"]))
    test = read_examples(args.data / "test.csv")
    log_probs = np.asarray(jax.nn.log_softmax(result["logits"], axis=1))
    log(f"fine-tuned in {result['seconds']:.0f} s; " + summary(log_probs, result, test.labels))
    for backend in args.backends:
        settings = ClassifierSettings(
            backend=backend, examples_csv=args.data / "train.csv", model_cache_dir=args.model_cache
        )
        model = load_backend(settings)
        assert isinstance(model, LocalModel | HybridModel)
        assert list(model.labels) == result["labels"]
        own = np.log(model.predict_proba(list(test.texts)) + 1e-12)
        log(f"{backend} alone: " + summary(own, result, test.labels))
        log(f"{backend} + fine-tuned: " + summary(own + log_probs, result, test.labels))
    return 0


def summary(scores: np.ndarray, result: dict[str, Any], gold: Sequence[str]) -> str:
    """Return accuracy and the coverage ceiling at 99 % of the argmax of `scores`."""
    predicted = [result["labels"][i] for i in scores.argmax(axis=1)]
    correct = [p == g for p, g in zip(predicted, gold, strict=True)]
    confidence = np.asarray(jax.nn.softmax(scores, axis=1)).max(axis=1).tolist()
    ceiling = coverage_at_precision(confidence, correct, [True] * len(correct), 0.99)
    return f"accuracy {np.mean(correct):.4f}, coverage at 99 % chosen on test {ceiling:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
