"""The offline backend: TF-IDF n-grams and logistic regression, calibrated, with an
out-of-scope signal. Trains in seconds from a labelled CSV; no network, no downloads.

Training data: a CSV with columns `text,label`, optionally `subject`. A subject is joined to
the text exactly as the domain joins a ticket's subject and body (`ticket_text`), so the
model learns from what it will be shown. The shipped examples have no subject column; some
texts open with a subject-like first line instead.

Features: word 1-2 grams + char_wb 2-5 grams, sublinear tf, accents stripped (char grams
survive typos; word grams carry intent). Classifier: multinomial logistic regression, C=10.

Calibration is temperature scaling on out-of-fold logits: probabilities = softmax(logits/T),
T fitted by likelihood on 5-fold out-of-fold predictions. Nested 5-fold CV on the shipped
examples chose it over scikit-learn's CalibratedClassifierCV (ECE, mean over folds, 15
bins): 0.041 temperature, 0.102 isotonic, 0.213 sigmoid, 0.230 uncalibrated (plain LR is
under-confident here; T ~ 0.45 sharpens it). One parameter cannot overfit a few hundred
examples, and it never changes the argmax, so accuracy stays 0.904.

Out of scope ("none of my categories") combines two facts, because a linear model can be
confident about text it has never seen the like of ("How tall is Mount Everest?" looks like
`how_to`):

* vocabulary coverage: the share of the text's content words (letters only, lower-cased,
  minus function words, crude suffix stemming) that occur anywhere in the training examples
  (0 when the text has no content word at all);
* the calibrated top probability.

`out_of_scope_score = 0.7 * (1 - coverage) + 0.3 * (1 - confidence)`, flagged at or above a
threshold learned from the training data: the score that only `oos_target_fpr` (2 %) of
out-of-fold in-scope examples reach. On 40 hand-written off-topic questions (the ones the
weights were chosen on, so an optimistic figure) the shipped model flags 24, confidence
alone 15, while flagging 1 % of held-out in-scope examples. The flag means "involve a
human"; a stronger backend (embeddings, an LLM) can replace the whole heuristic.

Artefacts are gzip files holding two pickles: a header of plain data (format version,
scikit-learn version, training-data sha256, hyperparameters) checked before the body of
scikit-learn objects is read. Pickles execute code when loaded: load only artefacts from a
directory that only the service can write.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import io
import json
import math
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Final, TypeVar

import numpy as np
import scipy.sparse
import sklearn
from loguru import logger
from numpy.typing import NDArray
from scipy.optimize import minimize_scalar
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion
from threadpoolctl import threadpool_limits

from services.classifier.backends.base import ALTERNATIVES, WARM_UP_TEXT, Prediction, ticket_text
from services.classifier.data import EXAMPLES, shipped
from shared.contracts import CategoryScore, ModelInfo

MODEL_NAME: Final = "tfidf-lr"
FORMAT: Final = "triageflow-local-model"
FORMAT_VERSION: Final = 1

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
Scores = TypeVar("Scores", float, FloatArray)


class ExamplesError(ValueError):
    """The labelled examples cannot be used for training (names the row and the problem)."""


class ModelFormatError(ValueError):
    """A saved model is not one this code can load."""


@dataclass(frozen=True)
class Hyperparameters:
    """Everything that shapes a trained model besides its data and seed."""

    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    # Character grams seen in one example only are mostly typos and names: noise.
    char_min_df: int = 2
    c: float = 10.0
    calibration_folds: int = 5
    oos_target_fpr: float = 0.02
    oos_vocabulary_weight: float = 0.7
    alternatives: int = ALTERNATIVES

    def canonical(self) -> str:
        """Return a stable JSON rendering, part of the model version."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Examples:
    """Labelled training texts and the sha256 of the file they came from."""

    texts: tuple[str, ...]
    labels: tuple[str, ...]
    sha256: str

    def counts(self) -> dict[str, int]:
        """Return how many examples each label has."""
        counts: dict[str, int] = {}
        for label in self.labels:
            counts[label] = counts.get(label, 0) + 1
        return counts


@dataclass(frozen=True)
class TrainingReport:
    """What training learned about its own data (out-of-fold, so honest but not nested)."""

    examples: int
    categories: int
    folds: int
    oof_accuracy: float
    temperature: float
    oos_threshold: float


# --------------------------------------------------------------------------- examples


def read_examples(source: Path | Traversable) -> Examples:
    """Read a labelled CSV: columns `text,label`, optionally `subject` (prepended to text)."""
    raw = source.read_bytes()
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
    columns = set(reader.fieldnames or ())
    if not {"text", "label"} <= columns:
        raise ExamplesError(f"{source}: needs columns text,label; found {sorted(columns)}")
    texts: list[str] = []
    labels: list[str] = []
    for line, row in enumerate(reader, start=2):
        text = ticket_text(row.get("subject") or "", row.get("text") or "")
        label = (row.get("label") or "").strip()
        if not text or not label:
            raise ExamplesError(f"{source}: row {line} has an empty text or label")
        texts.append(text)
        labels.append(label)
    return Examples(tuple(texts), tuple(labels), hashlib.sha256(raw).hexdigest())


def model_version(training_sha256: str, hyperparameters: Hyperparameters, seed: int) -> str:
    """Return the model version: a short hash of training data, hyperparameters and seed."""
    key = f"{FORMAT_VERSION}|{training_sha256}|{hyperparameters.canonical()}|{seed}"
    return hashlib.sha256(key.encode()).hexdigest()[:12]


# ------------------------------------------------------------------- vocabulary coverage

# Function words and pleasantries: they say nothing about whether a ticket is in scope.
_FUNCTION_WORDS: Final = frozenset(
    str.split(
        """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers him his how i if in into is it its just
    me more most my no nor not now of off on once only or other our ours out over own same
    she should so some such than that the their them then there these they this those
    through to too under until up very was we were what when where which while who whom why
    will with would you your yours hi hello hey dear thanks thank regards cheers please pls
    ok okay yes also im ive id dont doesnt didnt cant couldnt wont isnt arent wasnt get got
    let us one"""
    )
)
_WORD: Final = re.compile(r"[^\W\d_]{2,}")
_SUFFIXES: Final = ("ing", "ed", "es", "s", "ly")


def content_words(text: str) -> list[str]:
    """Return the stemmed content words of a text (what coverage is measured on)."""
    words = _WORD.findall(text.lower().replace("'", "").replace("’", ""))
    return [_stem(w) for w in words if w not in _FUNCTION_WORDS]


def _stem(word: str) -> str:
    # Crude on purpose: "refunded" and "refunds" should both meet "refund".
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def coverage(text: str, vocabulary: frozenset[str]) -> float:
    """Return the share of the text's content words found in `vocabulary` (0 if none)."""
    words = content_words(text)
    if not words:
        return 0.0
    return sum(w in vocabulary for w in words) / len(words)


def _vocabulary(texts: Iterable[str]) -> frozenset[str]:
    return frozenset(w for text in texts for w in content_words(text))


# ------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class _Fitted:
    vectorizer: FeatureUnion
    classifier: LogisticRegression


class LocalModel:
    """A trained TF-IDF + logistic-regression classifier; implements `Backend`."""

    def __init__(
        self,
        *,
        labels: Sequence[str],
        fitted: _Fitted,
        temperature: float,
        vocabulary: frozenset[str],
        oos_threshold: float,
        hyperparameters: Hyperparameters,
        training_sha256: str,
        seed: int,
        report: TrainingReport,
    ) -> None:
        self.labels = tuple(labels)
        self._fitted = fitted
        self.temperature = temperature
        self.vocabulary = vocabulary
        self.oos_threshold = oos_threshold
        self.hyperparameters = hyperparameters
        self.training_sha256 = training_sha256
        self.seed = seed
        self.report = report
        self._info = ModelInfo(
            name=MODEL_NAME,
            version=model_version(training_sha256, hyperparameters, seed),
            backend="local",
        )

    @property
    def info(self) -> ModelInfo:
        """Return name `tfidf-lr`, the data/hyperparameter version, backend `local`."""
        return self._info

    @property
    def oof_accuracy(self) -> float:
        """Return the accuracy of its out-of-fold predictions on its training examples."""
        return self.report.oof_accuracy

    def logits(self, texts: list[str]) -> FloatArray:
        """Return the uncalibrated margins, one row per text, columns in `labels` order."""
        if not texts:
            return np.zeros((0, len(self.labels)))
        return _logits(self._fitted.classifier, transform(self._fitted.vectorizer, texts))

    def calibrated(self, logits: FloatArray) -> FloatArray:
        """Return the calibrated probabilities of margins from `logits`."""
        return _softmax(logits / self.temperature)

    def predict_proba(self, texts: list[str]) -> FloatArray:
        """Return calibrated probabilities, one row per text, columns in `labels` order."""
        return self.calibrated(self.logits(texts))

    def predict(self, texts: list[str]) -> list[Prediction]:
        """Return one prediction per text: category, confidence, alternatives, out of scope."""
        return self.predictions(texts, self.predict_proba(texts))

    def warm_up(self) -> None:
        """Classify one text: raises if this model cannot classify here."""
        self.predict([WARM_UP_TEXT])

    def predictions(self, texts: list[str], probabilities: FloatArray) -> list[Prediction]:
        """Return the predictions for `texts` whose calibrated probabilities are given."""
        # A stable sort on the negated row keeps ties in label (alphabetical) order.
        orders = np.argsort(-probabilities, axis=1, kind="stable")
        k = self.hyperparameters.alternatives
        return [
            self._prediction(text, row, order[: k + 1])
            for text, row, order in zip(texts, probabilities, orders, strict=True)
        ]

    def _prediction(self, text: str, row: FloatArray, top: IntArray) -> Prediction:
        scores = [CategoryScore(category=self.labels[i], confidence=_unit(row[i])) for i in top]
        best = scores[0]
        score = _unit(
            out_of_scope_score(
                coverage(text, self.vocabulary),
                best.confidence,
                vocabulary_weight=self.hyperparameters.oos_vocabulary_weight,
            )
        )
        return Prediction(
            category=best.category,
            confidence=best.confidence,
            alternatives=tuple(scores[1:]),
            out_of_scope=score >= self.oos_threshold,
            out_of_scope_score=score,
        )

    # ---------------------------------------------------------------------- persistence

    def save(self, path: Path) -> None:
        """Write the model to `path` atomically (gzip: plain-data header, then the body)."""
        header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "sklearn_version": sklearn.__version__,
            "version": self.info.version,
            "training_sha256": self.training_sha256,
            "seed": self.seed,
            "hyperparameters": dataclasses.asdict(self.hyperparameters),
            "labels": list(self.labels),
            "report": dataclasses.asdict(self.report),
        }
        body = {
            "vectorizer": self._fitted.vectorizer,
            "classifier": self._fitted.classifier,
            "temperature": self.temperature,
            "vocabulary": sorted(self.vocabulary),
            "oos_threshold": self.oos_threshold,
        }
        write_artefact(path, header, body)

    @classmethod
    def load(cls, path: Path) -> LocalModel:
        """Read a model written by `save`; refuse other formats and scikit-learn versions."""
        header, body = read_artefact(path, _check_header)
        hyperparameters = _hyperparameters(header["hyperparameters"])
        model = cls(
            labels=header["labels"],
            fitted=_Fitted(body["vectorizer"], body["classifier"]),
            temperature=float(body["temperature"]),
            vocabulary=frozenset(body["vocabulary"]),
            oos_threshold=float(body["oos_threshold"]),
            hyperparameters=hyperparameters,
            training_sha256=header["training_sha256"],
            seed=int(header["seed"]),
            report=TrainingReport(**header["report"]),
        )
        if model.info.version != header["version"]:
            raise ModelFormatError(f"{path}: header version does not match its contents")
        return model


def write_artefact(path: Path, header: dict[str, Any], body: dict[str, Any]) -> None:
    """Write a model artefact atomically: gzip holding a plain-data header, then the body."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then rename: replicas sharing a cache directory never
    # see a half-written file.
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        tmp = Path(f.name)
        try:
            with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=6, mtime=0) as gz:
                pickle.dump(header, gz, protocol=pickle.HIGHEST_PROTOCOL)
                pickle.dump(body, gz, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    os.replace(tmp, path)


def read_artefact(
    path: Path, check_header: Callable[[Any, Path], None]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read an artefact written by `write_artefact`; `check_header` refuses it before the
    body (and its pickled objects) is loaded."""
    with gzip.open(path, "rb") as gz:
        header = pickle.load(gz)
        check_header(header, path)
        body = pickle.load(gz)
    return header, body


def _check_header(header: Any, path: Path) -> None:
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFormatError(f"{path}: not a {FORMAT} file")
    if header.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(
            f"{path}: format version {header.get('format_version')}, expected {FORMAT_VERSION}"
        )
    # Pickled scikit-learn objects are only guaranteed to work with the version that wrote
    # them; retraining takes seconds, so refuse rather than risk subtly wrong predictions.
    if header.get("sklearn_version") != sklearn.__version__:
        raise ModelFormatError(
            f"{path}: written by scikit-learn {header.get('sklearn_version')}, "
            f"this is {sklearn.__version__}; retrain"
        )


def _hyperparameters(raw: dict[str, Any]) -> Hyperparameters:
    expected = {f.name for f in dataclasses.fields(Hyperparameters)}
    if set(raw) != expected:
        raise ModelFormatError(f"hyperparameters {sorted(raw)}, expected {sorted(expected)}")
    values: dict[str, Any] = dict(raw)
    return Hyperparameters(**values)


# ---------------------------------------------------------------------------- training


def train_local(
    csv_path: Path | Traversable,
    *,
    seed: int = 0,
    hyperparameters: Hyperparameters | None = None,
    taxonomy: Iterable[str] | None = None,
) -> LocalModel:
    """Train a model from a labelled CSV (see `read_examples`); labels checked if given."""
    examples = read_examples(csv_path)
    if taxonomy is not None:
        unknown = sorted(set(examples.labels) - set(taxonomy))
        if unknown:
            raise ExamplesError(f"{csv_path}: labels outside the taxonomy: {unknown}")
    return fit(examples, seed=seed, hyperparameters=hyperparameters)


def fit(
    examples: Examples, *, seed: int = 0, hyperparameters: Hyperparameters | None = None
) -> LocalModel:
    """Train a model on labelled examples: out-of-fold calibration, then a final fit."""
    hp = hyperparameters or Hyperparameters()
    counts = examples.counts()
    if len(counts) < 2:
        raise ExamplesError("training needs at least two labels")
    if min(counts.values()) < 2:
        rare = sorted(label for label, n in counts.items() if n < 2)
        raise ExamplesError(f"every label needs at least two examples; too few: {rare}")
    labels = sorted(counts)
    texts = list(examples.texts)
    targets = np.searchsorted(labels, examples.labels)
    folds = min(hp.calibration_folds, *counts.values())
    # BLAS threads cost more than they save on problems this small (measured per final fit
    # on a busy two-core machine: 0.5 s with one thread, 0.7-1.6 s with two), and a
    # service should not grab every core to train.
    with threadpool_limits(limits=1, user_api="blas"):
        logits, covered = _out_of_fold(texts, targets, hp, folds=folds, seed=seed)
        fitted = _fit_once(texts, targets, hp)
    return from_out_of_fold(
        examples, logits, covered, fitted, folds=folds, seed=seed, hyperparameters=hp
    )


def from_out_of_fold(
    examples: Examples,
    logits: FloatArray,
    covered: FloatArray,
    fitted: _Fitted,
    *,
    folds: int,
    seed: int,
    hyperparameters: Hyperparameters,
) -> LocalModel:
    """Assemble a model from its out-of-fold logits and coverage and its final fit.

    `fit` computes these itself; the hybrid backend computes the same folds anyway and
    builds its TF-IDF member with this.
    """
    hp = hyperparameters
    labels = sorted(examples.counts())
    texts = list(examples.texts)
    targets = np.searchsorted(labels, examples.labels)
    temperature = _fit_temperature(logits, targets)
    confidence = _softmax(logits / temperature).max(axis=1)
    scores = out_of_scope_score(covered, confidence, vocabulary_weight=hp.oos_vocabulary_weight)
    threshold = float(np.clip(np.quantile(scores, 1.0 - hp.oos_target_fpr), 0.35, 0.9))
    report = TrainingReport(
        examples=len(texts),
        categories=len(labels),
        folds=folds,
        oof_accuracy=float((logits.argmax(axis=1) == targets).mean()),
        temperature=temperature,
        oos_threshold=threshold,
    )
    return LocalModel(
        labels=labels,
        fitted=fitted,
        temperature=temperature,
        vocabulary=_vocabulary(texts),
        oos_threshold=threshold,
        hyperparameters=hp,
        training_sha256=examples.sha256,
        seed=seed,
        report=report,
    )


def _out_of_fold(
    texts: list[str], targets: IntArray, hp: Hyperparameters, *, folds: int, seed: int
) -> tuple[FloatArray, FloatArray]:
    """Return out-of-fold logits and vocabulary coverage for every example."""
    n_labels = int(targets.max()) + 1
    logits = np.zeros((len(texts), n_labels))
    covered = np.zeros(len(texts))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, held_out in splitter.split(np.zeros(len(texts)), targets):
        train_texts = [texts[i] for i in train]
        held_texts = [texts[i] for i in held_out]
        fitted = _fit_once(train_texts, targets[train], hp)
        logits[held_out] = _logits(fitted.classifier, transform(fitted.vectorizer, held_texts))
        vocabulary = _vocabulary(train_texts)
        covered[held_out] = [coverage(t, vocabulary) for t in held_texts]
    return logits, covered


def _fit_once(texts: list[str], targets: IntArray, hp: Hyperparameters) -> _Fitted:
    vectorizer = FeatureUnion(
        [
            (
                "word",
                TfidfVectorizer(
                    analyzer="word",
                    ngram_range=hp.word_ngrams,
                    sublinear_tf=True,
                    strip_accents="unicode",
                ),
            ),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=hp.char_ngrams,
                    sublinear_tf=True,
                    strip_accents="unicode",
                    min_df=hp.char_min_df,
                ),
            ),
        ]
    )
    features = vectorizer.fit_transform(texts)
    # newton-cg converges in ~6 iterations here, 3-4x faster than lbfgs on these features.
    classifier = LogisticRegression(C=hp.c, solver="newton-cg", max_iter=1000)
    classifier.fit(features, targets)
    return _Fitted(vectorizer, classifier)


def transform(vectorizer: FeatureUnion, texts: list[str]) -> Any:
    """Return `vectorizer.transform(texts)`, without scikit-learn's per-call overhead.

    A FeatureUnion runs its parts through joblib and every step re-validates its input:
    about 2 ms a call, as much as classifying a whole batch of 8 tickets. The parts' own
    transforms with validation off (the input is strings, the features finite) and stacked
    here give the same matrix.
    """
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        parts = [part.transform(texts) for _, part in vectorizer.transformer_list]
    return scipy.sparse.hstack(parts, format="csr")


def _logits(classifier: LogisticRegression, features: Any) -> FloatArray:
    # What `decision_function` computes, without its input checks (see `transform`).
    raw: FloatArray = np.asarray(
        features @ classifier.coef_.T + classifier.intercept_, dtype=np.float64
    )
    if raw.shape[1] == 1:
        # Two labels: one margin z for the second; softmax([0, z]) == sigmoid(z).
        raw = np.column_stack([np.zeros(len(raw)), raw[:, 0]])
    return raw


def _softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: FloatArray = exp / exp.sum(axis=1, keepdims=True)
    return result


def _fit_temperature(logits: FloatArray, targets: IntArray) -> float:
    """Return the temperature minimising the negative log-likelihood of `targets`."""
    rows = np.arange(len(targets))

    def nll(log_t: float) -> float:
        scaled = logits / math.exp(log_t)
        shifted = scaled - scaled.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(shifted).sum(axis=1))
        return float((log_norm - shifted[rows, targets]).mean())

    # Searching log T keeps T positive; e^-3..e^3 spans every sane temperature.
    result = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return float(math.exp(result.x))


def out_of_scope_score(covered: Scores, confidence: Scores, *, vocabulary_weight: float) -> Scores:
    """Return 0..1: high when few content words are known and confidence is low."""
    return vocabulary_weight * (1.0 - covered) + (1.0 - vocabulary_weight) * (1.0 - confidence)


def _unit(value: float) -> float:
    # Floating-point softmax can land a hair outside 0..1; the contract allows no slack.
    return min(1.0, max(0.0, float(value)))


# ------------------------------------------------------------------------------ caching


def train_local_cached(
    csv_path: Path | Traversable, cache_dir: Path, *, seed: int = 0
) -> LocalModel:
    """Return the model trained on `csv_path`, from `cache_dir` if trained before."""
    raw = csv_path.read_bytes()
    version = model_version(hashlib.sha256(raw).hexdigest(), Hyperparameters(), seed)
    # The scikit-learn version is part of the name: an upgrade retrains instead of failing.
    path = cache_dir / f"{MODEL_NAME}-{version}-sklearn{sklearn.__version__}.pkl.gz"
    if path.exists():
        try:
            return LocalModel.load(path)
        except Exception as error:  # a torn or foreign file of any kind: retrain over it
            logger.warning("cached model {} unusable ({!r}); retraining", path, error)
    model = train_local(csv_path, seed=seed)
    model.save(path)
    logger.info(
        "trained {} {} on {} examples (cv accuracy {:.3f}); cached at {}",
        MODEL_NAME,
        model.info.version,
        model.report.examples,
        model.report.oof_accuracy,
        path,
    )
    return model


def default_model(cache_dir: Path, *, seed: int = 0) -> LocalModel:
    """Return the model trained on the shipped examples, cached in `cache_dir`."""
    return train_local_cached(shipped(EXAMPLES), cache_dir, seed=seed)


__all__ = [
    "FORMAT_VERSION",
    "MODEL_NAME",
    "Examples",
    "ExamplesError",
    "Hyperparameters",
    "LocalModel",
    "ModelFormatError",
    "TrainingReport",
    "content_words",
    "coverage",
    "default_model",
    "fit",
    "from_out_of_fold",
    "model_version",
    "out_of_scope_score",
    "read_examples",
    "train_local",
    "train_local_cached",
]
