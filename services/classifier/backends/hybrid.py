"""TF-IDF and MiniLM together: two logistic regressions, one calibrated probability.

The local model's TF-IDF logistic regression and a logistic regression on all-MiniLM-L6-v2
sentence embeddings (`minilm.py`, numpy only) each get a temperature fitted on out-of-fold
logits; their log-probabilities are added and a third temperature recalibrates the sum
(the plain sum is over-confident: two models' evidence counted as independent).

Out of scope: the mean cosine similarity of a text to its 3 nearest training examples in
embedding space, and the calibrated confidence, `score = 0.5 * (1 - similarity) +
0.5 * (1 - confidence)`; flagged at the score only `oos_target_fpr` of out-of-fold
in-scope examples reach.

Measured on Banking77 (bench/classifier-results.md) it is more accurate and hands more
tickets to autonomy than TF-IDF alone, but embedding costs ~10 ms of CPU per text on this
machine class: it is not the default (see docs/classifier.md).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import sklearn
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from services.classifier.backends.base import ALTERNATIVES, Prediction
from services.classifier.backends.local import (
    Examples,
    ExamplesError,
    Hyperparameters,
    ModelFormatError,
    _fit_once,
    _fit_temperature,
    _Fitted,
    _logits,
    _softmax,
)
from services.classifier.backends.minilm import MODEL_NAME as ENCODER_NAME
from services.classifier.backends.minilm import MiniLMEncoder, Vectors
from shared.contracts import CategoryScore, ModelInfo

MODEL_NAME: Final = "tfidf-minilm-lr"
FORMAT: Final = "triageflow-hybrid-model"
FORMAT_VERSION: Final = 1
_NEIGHBOURS: Final = 3

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]


@dataclass(frozen=True)
class HybridParameters:
    """Everything besides data and seed that shapes a hybrid model."""

    embedding_c: float = 10.0
    folds: int = 5
    oos_target_fpr: float = 0.02
    similarity_weight: float = 0.5
    alternatives: int = ALTERNATIVES


@dataclass(frozen=True)
class _Temperatures:
    tfidf: float
    embedding: float
    joint: float


class Embedder:
    """Embeds texts with MiniLM, remembering what it embedded (for training only)."""

    def __init__(self, encoder: MiniLMEncoder | None = None) -> None:
        self.encoder = encoder or MiniLMEncoder()
        self._seen: dict[str, Vectors] = {}

    def __call__(self, texts: Sequence[str]) -> Vectors:
        """Return the embeddings of `texts`, computing only those not seen before."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._seen))
        if missing:
            for text, vector in zip(missing, self.encoder.encode(missing), strict=True):
                self._seen[text] = vector
        if not texts:
            return np.zeros((0, self.encoder_dimensions()), dtype=np.float32)
        return np.stack([self._seen[t] for t in texts])

    @staticmethod
    def encoder_dimensions() -> int:
        """Return the embedding size."""
        return 384


class HybridModel:
    """A trained TF-IDF + MiniLM classifier; implements `Backend`."""

    def __init__(
        self,
        *,
        labels: Sequence[str],
        tfidf: _Fitted,
        embedding: LogisticRegression,
        temperatures: _Temperatures,
        memory: Vectors,
        oos_threshold: float,
        parameters: HybridParameters,
        training_sha256: str,
        encoder: MiniLMEncoder | None = None,
    ) -> None:
        self.labels = tuple(labels)
        self._tfidf = tfidf
        self._embedding = embedding
        self.temperatures = temperatures
        self._memory = memory
        self.oos_threshold = oos_threshold
        self.parameters = parameters
        self.training_sha256 = training_sha256
        self._encoder = encoder
        key = f"{FORMAT_VERSION}|{training_sha256}|{json.dumps(dataclasses.asdict(parameters))}"
        self._info = ModelInfo(
            name=MODEL_NAME,
            version=hashlib.sha256(key.encode()).hexdigest()[:12],
            backend="local",
        )

    @property
    def info(self) -> ModelInfo:
        """Return name `tfidf-minilm-lr`, the data/parameter version, backend `local`."""
        return self._info

    def _embed(self, texts: list[str]) -> Vectors:
        if self._encoder is None:
            self._encoder = MiniLMEncoder()
        return self._encoder.encode(texts)

    def predict_proba(self, texts: list[str]) -> FloatArray:
        """Return calibrated probabilities, one row per text, columns in `labels` order."""
        return self._scores(texts)[0]

    def _scores(self, texts: list[str]) -> tuple[FloatArray, FloatArray]:
        if not texts:
            return np.zeros((0, len(self.labels))), np.zeros(0)
        vectors = self._embed(texts)
        tfidf = _logits(self._tfidf.classifier, self._tfidf.vectorizer.transform(texts))
        embedding = _logits(self._embedding, vectors)
        probabilities = _joint(tfidf, embedding, self.temperatures)
        return probabilities, _similarity(vectors, self._memory)

    def predict(self, texts: list[str]) -> list[Prediction]:
        """Return one prediction per text: category, confidence, alternatives, out of scope."""
        probabilities, similarity = self._scores(texts)
        orders = np.argsort(-probabilities, axis=1, kind="stable")
        k = self.parameters.alternatives
        predictions = []
        for row, order, near in zip(probabilities, orders, similarity, strict=True):
            scores = [
                CategoryScore(category=self.labels[i], confidence=_unit(row[i]))
                for i in order[: k + 1]
            ]
            score = _unit(
                oos_score(near, scores[0].confidence, weight=self.parameters.similarity_weight)
            )
            predictions.append(
                Prediction(
                    category=scores[0].category,
                    confidence=scores[0].confidence,
                    alternatives=tuple(scores[1:]),
                    out_of_scope=score >= self.oos_threshold,
                    out_of_scope_score=score,
                )
            )
        return predictions

    def save(self, path: Path) -> None:
        """Write the model to `path` atomically (gzip: plain-data header, then the body)."""
        header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "sklearn_version": sklearn.__version__,
            "version": self.info.version,
            "training_sha256": self.training_sha256,
            "parameters": dataclasses.asdict(self.parameters),
            "labels": list(self.labels),
        }
        body = {
            "tfidf": self._tfidf,
            "embedding": self._embedding,
            "temperatures": dataclasses.asdict(self.temperatures),
            "memory": self._memory,
            "oos_threshold": self.oos_threshold,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.name}.", delete=False
        ) as f:
            tmp = Path(f.name)
            try:
                with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=6, mtime=0) as gz:
                    pickle.dump(header, gz, protocol=pickle.HIGHEST_PROTOCOL)
                    pickle.dump(body, gz, protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> HybridModel:
        """Read a model written by `save`; refuse other formats and scikit-learn versions."""
        with gzip.open(path, "rb") as gz:
            header = pickle.load(gz)
            _check_header(header, path)
            body = pickle.load(gz)
        model = cls(
            labels=header["labels"],
            tfidf=body["tfidf"],
            embedding=body["embedding"],
            temperatures=_Temperatures(**body["temperatures"]),
            memory=body["memory"],
            oos_threshold=float(body["oos_threshold"]),
            parameters=HybridParameters(**header["parameters"]),
            training_sha256=header["training_sha256"],
        )
        if model.info.version != header["version"]:
            raise ModelFormatError(f"{path}: header version does not match its contents")
        return model


def _check_header(header: Any, path: Path) -> None:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFormatError(f"{path}: not a {FORMAT} file")
    if header.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(f"{path}: format version {header.get('format_version')}")
    if header.get("sklearn_version") != sklearn.__version__:
        raise ModelFormatError(f"{path}: written by scikit-learn {header.get('sklearn_version')}")


def oos_score(similarity: float, confidence: float, *, weight: float) -> float:
    """Return 0..1: high when a text is far from every training example and unsure."""
    return weight * (1.0 - similarity) + (1.0 - weight) * (1.0 - confidence)


def fit_hybrid(
    examples: Examples,
    *,
    embedder: Embedder | None = None,
    parameters: HybridParameters | None = None,
    seed: int = 0,
) -> HybridModel:
    """Train a hybrid model: out-of-fold temperatures and OOS threshold, then final fits."""
    p = parameters or HybridParameters()
    counts = examples.counts()
    if len(counts) < 2 or min(counts.values()) < 2:
        raise ExamplesError("training needs two labels with at least two examples each")
    embedder = embedder or Embedder()
    labels = sorted(counts)
    texts = list(examples.texts)
    targets = np.searchsorted(labels, examples.labels)
    vectors = embedder(texts)
    hp = Hyperparameters()
    folds = min(p.folds, *counts.values())
    with threadpool_limits(limits=1, user_api="blas"):
        tfidf_oof = np.zeros((len(texts), len(labels)))
        embedding_oof = np.zeros_like(tfidf_oof)
        similarity = np.zeros(len(texts))
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for train, held in splitter.split(np.zeros(len(texts)), targets):
            fitted = _fit_once([texts[i] for i in train], targets[train], hp)
            held_texts = [texts[i] for i in held]
            tfidf_oof[held] = _logits(fitted.classifier, fitted.vectorizer.transform(held_texts))
            embedding = _fit_embedding(vectors[train], targets[train], p)
            embedding_oof[held] = _logits(embedding, vectors[held])
            similarity[held] = _similarity(vectors[held], vectors[train])
        t_tfidf = _fit_temperature(tfidf_oof, targets)
        t_embedding = _fit_temperature(embedding_oof, targets)
        summed = _log_softmax(tfidf_oof / t_tfidf) + _log_softmax(embedding_oof / t_embedding)
        temperatures = _Temperatures(t_tfidf, t_embedding, _fit_temperature(summed, targets))
        confidence = _softmax(summed / temperatures.joint).max(axis=1)
        scores = oos_score(similarity, confidence, weight=p.similarity_weight)  # type: ignore[arg-type]
        threshold = float(np.clip(np.quantile(scores, 1.0 - p.oos_target_fpr), 0.2, 0.9))
        final_tfidf = _fit_once(texts, targets, hp)
        final_embedding = _fit_embedding(vectors, targets, p)
    return HybridModel(
        labels=labels,
        tfidf=final_tfidf,
        embedding=final_embedding,
        temperatures=temperatures,
        memory=vectors,
        oos_threshold=threshold,
        parameters=p,
        training_sha256=examples.sha256,
        encoder=embedder.encoder,
    )


def _fit_embedding(vectors: Vectors, targets: IntArray, p: HybridParameters) -> LogisticRegression:
    classifier = LogisticRegression(C=p.embedding_c, max_iter=2000)
    classifier.fit(vectors, targets)
    return classifier


def _joint(tfidf: FloatArray, embedding: FloatArray, t: _Temperatures) -> FloatArray:
    summed = _log_softmax(tfidf / t.tfidf) + _log_softmax(embedding / t.embedding)
    return _softmax(summed / t.joint)


def _log_softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    result: FloatArray = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return result


def _similarity(vectors: Vectors, memory: Vectors) -> FloatArray:
    """Return each vector's mean cosine similarity to its nearest training examples."""
    if len(vectors) == 0:
        return np.zeros(0)
    k = min(_NEIGHBOURS, len(memory))
    cosine = vectors @ memory.T
    nearest = np.partition(cosine, -k, axis=1)[:, -k:]
    result: FloatArray = nearest.mean(axis=1).astype(np.float64)
    return result


def _unit(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


__all__ = [
    "ENCODER_NAME",
    "Embedder",
    "HybridModel",
    "HybridParameters",
    "fit_hybrid",
    "oos_score",
]
