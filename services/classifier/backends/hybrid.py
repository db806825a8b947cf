"""TF-IDF and MiniLM together: three members, one calibrated probability.

The local model's TF-IDF logistic regression, a logistic regression on all-MiniLM-L6-v2
sentence embeddings and a vote of the 10 nearest training examples in embedding space
(weights softmax(cosine / 0.05)) each get a temperature fitted on out-of-fold
log-probabilities; these are added and one more temperature recalibrates the sum (the plain
sum is over-confident: the members' evidence counted as independent). The vote costs no
training and one matrix product at run time (the neighbours are needed anyway) and lifts
out-of-fold accuracy on Banking77 from 0.928 to 0.933 (docs/classifier.md).

Selective classification ("is this prediction right?"): a small gradient-boosted model is
fit on out-of-fold facts about each training prediction — the joint and both LRs' top
probabilities, the margin, whether TF-IDF and MiniLM agree with it, how many of the 10
nearest training examples carry the predicted label and how close they are — and its
calibrated probability that the prediction is correct is the confidence the policy
thresholds. Fewer than
`MIN_SELECTOR_CASES` right or wrong out-of-fold predictions (tiny data): the joint
probability stays the confidence.

Most tickets never reach the encoder: the TF-IDF model decides alone (its own calibrated
probability and vocabulary-coverage out-of-scope check, exactly `local`'s prediction) when
its confidence reaches the lowest threshold at which its out-of-fold predictions are right
at least `skip_precision` (99.5 %) of the time, by the same Wilson bound `eval` uses. On
Banking77 about 45 % of test tickets skip the encoder, CPU per ticket falls from 8.9 to
3.9 ms, and accuracy, calibration and the share handled autonomously at 99 % precision stay
those of embedding every ticket (docs/classifier.md). Which path a ticket takes depends on
its text and the model only, never on its batch.

Out of scope: the mean cosine similarity of a text to its 3 nearest training examples in
embedding space, and the confidence, `score = 0.5 * (1 - similarity) + 0.5 * (1 -
confidence)`; flagged at the score only `oos_target_fpr` of out-of-fold in-scope examples
reach.

The encoder is onnxruntime in float32 by default (`onnx_encoder.py`, graph built from the
packaged weights; same embeddings as numpy, a third of its CPU time), int8 (a third less
again, but batch-dependent embeddings), or the numpy one (`minilm.py`); a model records
which it was trained with and embeds with the same at run time. Measured trade-off:
docs/classifier.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import numpy as np
import sklearn
from loguru import logger
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from services.classifier.backends.base import ALTERNATIVES, WARM_UP_TEXT, Prediction
from services.classifier.backends.local import (
    Examples,
    ExamplesError,
    Hyperparameters,
    LocalModel,
    ModelFormatError,
    _fit_once,
    _fit_temperature,
    _logits,
    _out_of_fold,
    _softmax,
    from_out_of_fold,
    read_artefact,
    read_examples,
    write_artefact,
)
from services.classifier.backends.minilm import MODEL_NAME as ENCODER_NAME
from services.classifier.backends.minilm import MiniLMEncoder, Vectors
from services.classifier.selective import sure_threshold
from shared.contracts import CategoryScore, ModelInfo

MODEL_NAME: Final = "tfidf-minilm-lr"
FORMAT: Final = "triageflow-hybrid-model"
FORMAT_VERSION: Final = 4
_NEIGHBOURS: Final = 3
# Neighbours whose labels the selector sees.
_VOTERS: Final = 10
# The selector needs this many right and this many wrong out-of-fold predictions to learn.
MIN_SELECTOR_CASES: Final = 20

EncoderKind = Literal["onnx-int8", "onnx-float32", "numpy"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
# Cosine similarities of texts (rows) to training examples (columns); float32 or float64.
Cosine = NDArray[np.floating[Any]]


@dataclass(frozen=True)
class HybridParameters:
    """Everything besides data and seed that shapes a hybrid model."""

    embedding_c: float = 10.0
    folds: int = 5
    oos_target_fpr: float = 0.02
    similarity_weight: float = 0.5
    alternatives: int = ALTERNATIVES
    # float32: int8 weights cut CPU per text by a third, but onnxruntime quantises the
    # activations per batch, so a text's embedding would depend on its batch-mates.
    encoder: EncoderKind = "onnx-float32"
    selector: bool = True
    # The nearest-neighbour vote as a third member (False: TF-IDF and MiniLM LR only).
    knn: bool = True
    knn_neighbours: int = 10
    # Softmax temperature over cosine similarities: 0.02-0.05 were best out of fold.
    knn_tau: float = 0.05
    # TF-IDF alone decides the tickets it is surest of, without the encoder: those whose
    # calibrated TF-IDF confidence reaches the lowest threshold at which its out-of-fold
    # predictions are right this often (one-sided 95 % Wilson bound). None: embed every
    # ticket. Keep it above the precision the policy's autonomous threshold is set for:
    # the least sure skipped tickets are about as precise as this says of all of them, and
    # the encoder is what ranks tickets near that threshold (docs/classifier.md).
    skip_precision: float | None = 0.995


@dataclass(frozen=True)
class _Temperatures:
    tfidf: float
    embedding: float
    joint: float
    # None: the neighbour vote is not a member.
    knn: float | None = None


class Encoder(Protocol):
    """Anything that turns texts into unit-length MiniLM embeddings."""

    def encode(self, texts: Sequence[str], *, batch_size: int = 64) -> Vectors:
        """Return one embedding per text, in order."""
        ...


def default_cache_dir() -> Path:
    """Return where built encoder graphs are cached when no directory is configured."""
    return Path.home() / ".cache" / "triageflow" / "models"


def make_encoder(kind: EncoderKind, cache_dir: Path | None = None, *, threads: int = 0) -> Encoder:
    """Return the MiniLM encoder of `kind` (ONNX graphs built into `cache_dir` once)."""
    if kind == "numpy":
        return MiniLMEncoder()
    from services.classifier.backends.onnx_encoder import OnnxEncoder

    precision: Literal["int8", "float32"] = "int8" if kind == "onnx-int8" else "float32"
    return OnnxEncoder(cache_dir or default_cache_dir(), precision=precision, threads=threads)


class Embedder:
    """Embeds texts with MiniLM, remembering what it embedded (for training only)."""

    def __init__(self, encoder: Encoder | None = None, *, kind: EncoderKind = "numpy") -> None:
        # `kind` names what `encoder` is: a model records it and embeds with the same later.
        self.encoder = encoder or make_encoder(kind)
        self.kind = kind
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
        local: LocalModel,
        skip_threshold: float | None,
        embedding: LogisticRegression,
        temperatures: _Temperatures,
        memory: Vectors,
        memory_targets: IntArray,
        selector: HistGradientBoostingClassifier | None,
        oos_threshold: float,
        oof_accuracy: float,
        parameters: HybridParameters,
        training_sha256: str,
        encoder: Encoder | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.labels = tuple(labels)
        self.local = local
        self.skip_threshold = skip_threshold
        self._embedding = embedding
        self.temperatures = temperatures
        self._memory = memory
        self._memory_targets = memory_targets
        self._selector = selector
        self._cache_dir = cache_dir
        self.oos_threshold = oos_threshold
        self.oof_accuracy = oof_accuracy
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

    @property
    def has_selector(self) -> bool:
        """Whether a learnt "is this prediction right?" model sets the confidence."""
        return self._selector is not None

    def _embed(self, texts: list[str]) -> Vectors:
        if self._encoder is None:
            # One thread: a classifier scales by copies, and onnxruntime's thread pool
            # spin-waits (11.7 CPU ms per ticket with a pool on two cores, 8.9 with one).
            self._encoder = make_encoder(self.parameters.encoder, self._cache_dir, threads=1)
        return self._encoder.encode(texts)

    def warm_up(self) -> None:
        """Build the encoder and classify one text: raises if this model cannot classify here
        (the encoder cannot be built, say), and the first batch does not pay for building it
        (a text TF-IDF is sure of would never reach the encoder)."""
        self._embed([WARM_UP_TEXT])
        self.predict([WARM_UP_TEXT])

    def _sure(self, texts: list[str]) -> tuple[FloatArray, FloatArray, NDArray[np.bool_]]:
        """Return every text's TF-IDF margins and calibrated probabilities, and which texts
        TF-IDF alone decides."""
        tfidf = self.local.logits(texts)
        probabilities = self.local.calibrated(tfidf)
        return tfidf, probabilities, _decided_alone(probabilities, self.skip_threshold)

    def predict_proba(self, texts: list[str]) -> FloatArray:
        """Return calibrated probabilities, one row per text, columns in `labels` order."""
        tfidf, result, sure = self._sure(texts)
        rest = np.flatnonzero(~sure)
        result[rest] = self._scores([texts[i] for i in rest], tfidf[rest])[0]
        return result

    def _scores(
        self, texts: list[str], tfidf: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Return joint probabilities, similarity to training data and confidence."""
        if not texts:
            return np.zeros((0, len(self.labels))), np.zeros(0), np.zeros(0)
        vectors = self._embed(texts)
        embedding = _logits(self._embedding, vectors)
        cosine = vectors @ self._memory.T
        knn = self._knn(cosine)
        probabilities = _joint(tfidf, embedding, knn, self.temperatures)
        similarity = _similarity(cosine)
        confidence = probabilities.max(axis=1)
        if self._selector is not None:
            features = selector_features(
                tfidf, embedding, knn, self.temperatures, cosine, self._memory_targets
            )
            confidence = self._selector.predict_proba(features)[:, 1]
        return probabilities, similarity, confidence

    def _knn(self, cosine: Cosine) -> FloatArray | None:
        if self.temperatures.knn is None:
            return None
        p = self.parameters
        return knn_log_votes(
            cosine, self._memory_targets, len(self.labels), k=p.knn_neighbours, tau=p.knn_tau
        )

    def predict(self, texts: list[str]) -> list[Prediction]:
        """Return one prediction per text: category, confidence, alternatives, out of scope.

        Texts TF-IDF is sure of get the TF-IDF model's own prediction (its calibrated
        probability, its vocabulary-coverage out-of-scope check), naming that model, so the
        trail shows which tickets MiniLM never saw; the rest are embedded.
        """
        tfidf, probabilities, sure = self._sure(texts)
        result: dict[int, Prediction] = {}
        quick = np.flatnonzero(sure)
        local = self.local.predictions([texts[i] for i in quick], probabilities[quick])
        named = [dataclasses.replace(p, model=self.local.info) for p in local]
        result.update(zip(quick.tolist(), named, strict=True))
        rest = np.flatnonzero(~sure)
        embedded = self._embedded_predictions([texts[i] for i in rest], tfidf[rest])
        result.update(zip(rest.tolist(), embedded, strict=True))
        return [result[i] for i in range(len(texts))]

    def _embedded_predictions(self, texts: list[str], tfidf: FloatArray) -> list[Prediction]:
        probabilities, similarity, confidence = self._scores(texts, tfidf)
        orders = np.argsort(-probabilities, axis=1, kind="stable")
        k = self.parameters.alternatives
        predictions = []
        for row, order, near, sure in zip(
            probabilities, orders, similarity, confidence, strict=True
        ):
            scores = _category_scores(row, order[: k + 1], float(sure), self.labels)
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
            "local": self.local,
            "skip_threshold": self.skip_threshold,
            "embedding": self._embedding,
            "temperatures": dataclasses.asdict(self.temperatures),
            "memory": self._memory,
            "memory_targets": self._memory_targets,
            "selector": self._selector,
            "oos_threshold": self.oos_threshold,
            "oof_accuracy": self.oof_accuracy,
        }
        write_artefact(path, header, body)

    @classmethod
    def load(cls, path: Path, *, cache_dir: Path | None = None) -> HybridModel:
        """Read a model written by `save`; refuse other formats and scikit-learn versions."""
        header, body = read_artefact(path, _check_header)
        model = cls(
            labels=header["labels"],
            local=body["local"],
            skip_threshold=body["skip_threshold"],
            embedding=body["embedding"],
            temperatures=_Temperatures(**body["temperatures"]),
            memory=body["memory"],
            memory_targets=body["memory_targets"],
            selector=body["selector"],
            oos_threshold=float(body["oos_threshold"]),
            oof_accuracy=float(body["oof_accuracy"]),
            parameters=HybridParameters(**header["parameters"]),
            training_sha256=header["training_sha256"],
            cache_dir=cache_dir,
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
    cache_dir: Path | None = None,
) -> HybridModel:
    """Train a hybrid model: out-of-fold temperatures, selector and OOS threshold, final fits."""
    p = parameters or HybridParameters()
    counts = examples.counts()
    if len(counts) < 2 or min(counts.values()) < 2:
        raise ExamplesError("training needs two labels with at least two examples each")
    # The model serves with its own one-thread encoder (see `_embed`), not with a training
    # encoder that uses every core; a caller's stand-in encoder is kept.
    serving = None if embedder is None else embedder.encoder
    embedder = embedder or Embedder(make_encoder(p.encoder, cache_dir), kind=p.encoder)
    # The model embeds at run time with the encoder it learnt from, whatever `p` said.
    p = dataclasses.replace(p, encoder=embedder.kind)
    labels = sorted(counts)
    texts = list(examples.texts)
    targets = np.searchsorted(labels, examples.labels)
    vectors = embedder(texts)
    hp = Hyperparameters()
    folds = min(p.folds, *counts.values())
    with threadpool_limits(limits=1, user_api="blas"):
        # The TF-IDF member's folds are `local`'s own (the same splitter and seed below).
        tfidf_oof, covered = _out_of_fold(texts, targets, hp, folds=folds, seed=seed)
        embedding_oof = np.zeros_like(tfidf_oof)
        knn_oof = np.zeros_like(tfidf_oof)
        similarity = np.zeros(len(texts))
        held_outs: list[tuple[IntArray, IntArray]] = []
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        for train, held in splitter.split(np.zeros(len(texts)), targets):
            embedding = _fit_embedding(vectors[train], targets[train], p)
            embedding_oof[held] = _logits(embedding, vectors[held])
            cosine = vectors[held] @ vectors[train].T
            knn_oof[held] = knn_log_votes(
                cosine, targets[train], len(labels), k=p.knn_neighbours, tau=p.knn_tau
            )
            similarity[held] = _similarity(cosine)
            held_outs.append((train, held))
        knn = knn_oof if p.knn else None
        temperatures = _fit_temperatures(tfidf_oof, embedding_oof, knn, targets)
        joint = _joint(tfidf_oof, embedding_oof, knn, temperatures)
        selector = None
        confidence = joint.max(axis=1)
        if p.selector:
            features = np.zeros((len(texts), FEATURES))
            # Neighbours of a held-out row come from its fold's training rows only.
            for train, held in held_outs:
                features[held] = selector_features(
                    tfidf_oof[held],
                    embedding_oof[held],
                    None if knn is None else knn[held],
                    temperatures,
                    vectors[held] @ vectors[train].T,
                    targets[train],
                )
            selector, confidence = _fit_selector(features, joint.argmax(axis=1) == targets, seed)
        scores = oos_score(similarity, confidence, weight=p.similarity_weight)  # type: ignore[arg-type]
        threshold = float(np.clip(np.quantile(scores, 1.0 - p.oos_target_fpr), 0.2, 0.9))
        local = from_out_of_fold(
            examples,
            tfidf_oof,
            covered,
            _fit_once(texts, targets, hp),
            folds=folds,
            seed=seed,
            hyperparameters=hp,
        )
        final_embedding = _fit_embedding(vectors, targets, p)
        tfidf_probabilities = local.calibrated(tfidf_oof)
        skip = _skip_threshold(tfidf_probabilities, targets, p.skip_precision)
        sure = _decided_alone(tfidf_probabilities, skip)
        predicted = np.where(sure, tfidf_probabilities.argmax(axis=1), joint.argmax(axis=1))
    return HybridModel(
        labels=labels,
        local=local,
        skip_threshold=skip,
        embedding=final_embedding,
        temperatures=temperatures,
        memory=vectors,
        memory_targets=targets,
        selector=selector,
        oos_threshold=threshold,
        oof_accuracy=float((predicted == targets).mean()),
        parameters=p,
        training_sha256=examples.sha256,
        encoder=serving,
        cache_dir=cache_dir,
    )


def _decided_alone(probabilities: FloatArray, skip_threshold: float | None) -> NDArray[np.bool_]:
    """Return which rows of calibrated TF-IDF probabilities TF-IDF decides without MiniLM."""
    if skip_threshold is None:
        return np.zeros(len(probabilities), dtype=bool)
    return np.asarray(probabilities.max(axis=1) >= skip_threshold)


def _skip_threshold(
    probabilities: FloatArray, targets: IntArray, precision: float | None
) -> float | None:
    """Return the TF-IDF confidence from which it decides alone; None: it never does."""
    if precision is None:
        return None
    correct = probabilities.argmax(axis=1) == targets
    confidence = probabilities.max(axis=1)
    # None also when no threshold keeps that precision on this data (too few examples).
    return sure_threshold(confidence.tolist(), correct.tolist(), [True] * len(targets), precision)


# Columns of `selector_features`.
FEATURES: Final = 14


def selector_features(
    tfidf: FloatArray,
    embedding: FloatArray,
    knn: FloatArray | None,
    temperatures: _Temperatures,
    cosine: Cosine,
    memory_targets: IntArray,
) -> FloatArray:
    """Return what the selector knows about each prediction (one row per text).

    `cosine` holds each text's cosine similarity to every training example (`memory`).
    """
    p_tfidf = _softmax(tfidf / temperatures.tfidf)
    p_embedding = _softmax(embedding / temperatures.embedding)
    joint = _joint(tfidf, embedding, knn, temperatures)
    order = np.argsort(-joint, axis=1)
    top = order[:, 0]
    rows = np.arange(len(top))
    k = min(_VOTERS, cosine.shape[1])
    nearest = np.argpartition(-cosine, k - 1, axis=1)[:, :k]
    near = np.take_along_axis(cosine, nearest, axis=1)
    rank = np.argsort(-near, axis=1)
    near = np.take_along_axis(near, rank, axis=1)
    votes = memory_targets[np.take_along_axis(nearest, rank, axis=1)] == top[:, None]
    same = memory_targets[None, :] == top[:, None]
    # How close the nearest example of the predicted label is, and of any other label.
    closest_same = np.where(same, cosine, -2.0).max(axis=1)
    closest_other = np.where(same, -2.0, cosine).max(axis=1)
    result: FloatArray = np.column_stack(
        [
            joint[rows, top],
            joint[rows, top] - joint[rows, order[:, 1]],
            p_tfidf.max(axis=1),
            p_embedding.max(axis=1),
            p_tfidf[rows, top],
            p_embedding[rows, top],
            p_tfidf.argmax(axis=1) == top,
            p_embedding.argmax(axis=1) == top,
            near[:, 0],
            votes[:, 0],
            votes[:, :5].mean(axis=1),
            votes.mean(axis=1),
            closest_same,
            closest_same - closest_other,
        ]
    ).astype(np.float64)
    return result


def _fit_selector(
    features: FloatArray, correct: NDArray[np.bool_], seed: int
) -> tuple[HistGradientBoostingClassifier | None, FloatArray]:
    """Fit the "is it right?" model; return it and its out-of-fold confidence per row."""
    right, wrong = int(correct.sum()), int((~correct).sum())
    if min(right, wrong) < MIN_SELECTOR_CASES:
        return None, features[:, 0]
    # Its own out-of-fold outputs set the OOS threshold, as the joint probability did.
    confidence = np.zeros(len(correct))
    splitter = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    for train, held in splitter.split(features, correct):
        model = _selector(seed).fit(features[train], correct[train])
        confidence[held] = model.predict_proba(features[held])[:, 1]
    return _selector(seed).fit(features, correct), confidence


def _selector(seed: int) -> HistGradientBoostingClassifier:
    # Shallow and slow-learning: a few hundred errors to learn from, and it must stay calibrated.
    return HistGradientBoostingClassifier(
        max_iter=200, learning_rate=0.05, max_leaf_nodes=15, random_state=seed
    )


def _category_scores(
    row: FloatArray, top: IntArray, confidence: float, labels: Sequence[str]
) -> list[CategoryScore]:
    """Return the best category at `confidence`, runners-up sharing the rest in proportion."""
    best = float(row[top[0]])
    # Runners-up keep their joint-probability proportions within what the best one leaves,
    # and never outrank it.
    share = (1.0 - confidence) / max(1.0 - best, 1e-12)
    scores = [CategoryScore(category=labels[top[0]], confidence=_unit(confidence))]
    for i in top[1:]:
        value = min(_unit(float(row[i]) * share), scores[-1].confidence)
        scores.append(CategoryScore(category=labels[i], confidence=value))
    return scores


def train_hybrid_cached(
    csv_path: Path | Traversable, cache_dir: Path, *, seed: int = 0
) -> HybridModel:
    """Return the hybrid model trained on `csv_path`, from `cache_dir` if trained before."""
    raw = csv_path.read_bytes()
    p = HybridParameters()
    key = f"{FORMAT_VERSION}|{hashlib.sha256(raw).hexdigest()}|{dataclasses.asdict(p)}|{seed}"
    version = hashlib.sha256(key.encode()).hexdigest()[:12]
    # The scikit-learn version is part of the name: an upgrade retrains instead of failing.
    path = cache_dir / f"{MODEL_NAME}-{version}-sklearn{sklearn.__version__}.pkl.gz"
    if path.exists():
        try:
            return HybridModel.load(path, cache_dir=cache_dir)
        except Exception as error:  # a torn or foreign file of any kind: retrain over it
            logger.warning("cached model {} unusable ({!r}); retraining", path, error)
    model = fit_hybrid(read_examples(csv_path), parameters=p, seed=seed, cache_dir=cache_dir)
    model.save(path)
    logger.info("trained {} {}; cached at {}", MODEL_NAME, model.info.version, path)
    return model


def _fit_embedding(vectors: Vectors, targets: IntArray, p: HybridParameters) -> LogisticRegression:
    classifier = LogisticRegression(C=p.embedding_c, max_iter=2000)
    classifier.fit(vectors, targets)
    return classifier


def _summed(
    tfidf: FloatArray, embedding: FloatArray, knn: FloatArray | None, t: _Temperatures
) -> FloatArray:
    """Return the members' temperature-scaled log-probabilities, added."""
    summed = _log_softmax(tfidf / t.tfidf) + _log_softmax(embedding / t.embedding)
    if knn is not None and t.knn is not None:
        summed = summed + _log_softmax(knn / t.knn)
    return summed


def _joint(
    tfidf: FloatArray, embedding: FloatArray, knn: FloatArray | None, t: _Temperatures
) -> FloatArray:
    return _softmax(_summed(tfidf, embedding, knn, t) / t.joint)


def _fit_temperatures(
    tfidf: FloatArray, embedding: FloatArray, knn: FloatArray | None, targets: IntArray
) -> _Temperatures:
    """Fit each member's temperature on out-of-fold scores, then the sum's."""
    members = _Temperatures(
        tfidf=_fit_temperature(tfidf, targets),
        embedding=_fit_temperature(embedding, targets),
        joint=1.0,
        knn=None if knn is None else _fit_temperature(knn, targets),
    )
    joint = _fit_temperature(_summed(tfidf, embedding, knn, members), targets)
    return dataclasses.replace(members, joint=joint)


def knn_log_votes(
    cosine: Cosine, memory_targets: IntArray, n_labels: int, *, k: int, tau: float
) -> FloatArray:
    """Return log vote shares per label of each row's `k` most similar training examples.

    A neighbour's vote weighs softmax(cosine / tau) over the `k`; a label without votes
    gets a floor of 1e-4, so one stray neighbour never makes a label impossible.
    """
    rows = len(cosine)
    votes = np.zeros((rows, n_labels))
    if rows == 0:
        return votes
    k = min(k, cosine.shape[1])
    nearest = np.argpartition(-cosine, k - 1, axis=1)[:, :k]
    near = np.take_along_axis(cosine, nearest, axis=1).astype(np.float64)
    weights = np.exp((near - near.max(axis=1, keepdims=True)) / tau)
    np.add.at(
        votes, (np.repeat(np.arange(rows), k), memory_targets[nearest].ravel()), weights.ravel()
    )
    result: FloatArray = np.log(votes / votes.sum(axis=1, keepdims=True) + 1e-4)
    return result


def _log_softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    result: FloatArray = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return result


def _similarity(cosine: Cosine) -> FloatArray:
    """Return each row's mean cosine similarity to its nearest training examples."""
    if len(cosine) == 0:
        return np.zeros(0)
    k = min(_NEIGHBOURS, cosine.shape[1])
    nearest = np.partition(cosine, -k, axis=1)[:, -k:]
    result: FloatArray = nearest.mean(axis=1).astype(np.float64)
    return result


def _unit(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


__all__ = [
    "ENCODER_NAME",
    "FEATURES",
    "MIN_SELECTOR_CASES",
    "Embedder",
    "Encoder",
    "EncoderKind",
    "HybridModel",
    "HybridParameters",
    "default_cache_dir",
    "fit_hybrid",
    "knn_log_votes",
    "make_encoder",
    "oos_score",
    "selector_features",
    "train_hybrid_cached",
]
