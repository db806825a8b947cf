"""Classifier settings (env prefix `TRIAGEFLOW_CLASSIFIER_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import StageSettings


class ClassifierSettings(StageSettings):
    """Everything the classifier needs."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGEFLOW_CLASSIFIER_", frozen=True, extra="ignore"
    )

    group_id: str = Field(default="triageflow-classifier", description="Consumer group.")
    http_port: int = Field(default=8001, ge=0, le=65535)
    backend: Literal["local", "hybrid", "llm", "cascade"] = Field(
        default="local",
        description="local: offline TF-IDF model; hybrid: offline TF-IDF + MiniLM (onnxruntime) "
        "with a learnt confidence, more accurate but ~5x the CPU per ticket; llm: an "
        "OpenAI-compatible endpoint, falling back to local (degraded) on failure; cascade: "
        "local first, the LLM for the uncertain band.",
    )
    compute_threads: int = Field(
        default=1,
        ge=0,
        description="Threads of the numeric libraries (BLAS, OpenMP) in one copy; 0 leaves "
        "the libraries' own choice (a thread per core). A classifier scales by copies, and "
        "idle pool threads spin, burning CPU another copy could use.",
    )
    examples_csv: Path | None = Field(
        default=None, description="Labelled examples (text,label) to learn from; default: shipped."
    )
    model_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "triageflow" / "models",
        description="Where trained model artefacts are cached between restarts.",
    )
    model_registry_dir: Path | None = Field(
        default=None,
        description="Model registry (a directory shared with `triageflow learn`): when set, "
        "the classifier follows the control topic and hot-swaps promoted and shadow models.",
    )
    taxonomy_yaml: Path | None = Field(
        default=None,
        description="Taxonomy (names and descriptions) the LLM chooses from; default: shipped. "
        "Its names must be the local model's labels.",
    )

    # ----------------------------------------------------------------- llm and cascade
    llm_base_url: str = Field(
        default="https://api.openai.com/v1",
        description="OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama, ...).",
    )
    llm_model: str = Field(default="gpt-4o-mini", min_length=1, description="Model name.")
    llm_api_key: SecretStr | None = Field(
        default=None,
        description="API key; required for the llm and cascade backends (any placeholder "
        "for a server that needs none, such as a local vLLM or Ollama).",
    )
    llm_timeout_s: float = Field(default=10.0, gt=0, description="Deadline of one attempt.")
    llm_max_retries: int = Field(
        default=2, ge=0, le=10, description="Retries after the first attempt (429, 5xx, timeouts)."
    )
    llm_backoff_initial_s: float = Field(default=0.5, ge=0, description="First retry delay.")
    llm_backoff_max_s: float = Field(
        default=8.0, ge=0, description="Longest retry delay (Retry-After is honoured up to it)."
    )
    llm_concurrency: int = Field(default=8, ge=1, le=256, description="Requests in flight.")
    llm_breaker_failures: int = Field(
        default=5, ge=1, description="Consecutive failures that open the circuit breaker."
    )
    llm_breaker_cooldown_s: float = Field(
        default=30.0, ge=0, description="How long the breaker stays open before one probe."
    )
    llm_redact_pii: bool = Field(
        default=True, description="Replace e-mails, phones, cards and IBANs before sending."
    )
    llm_max_input_chars: int = Field(
        default=4000, ge=100, description="Longer ticket texts are cut (cost, latency)."
    )
    llm_confidence: Literal["auto", "logprobs", "reported"] = Field(
        default="auto",
        description="auto: token log-probabilities when the server returns them, else the "
        "model's reported confidence through `llm_reported_confidence_map`.",
    )
    llm_reported_confidence_map: tuple[tuple[float, float], ...] = Field(
        default=((0.0, 0.0), (1.0, 0.6)),
        description="Piecewise-linear map (reported, calibrated) knots for self-reported "
        "confidence. The default (0.6 x reported) never reaches an autonomous threshold; "
        "replace it with knots fitted on labelled data.",
    )
    cascade_low: float = Field(
        default=0.35, ge=0, le=1, description="Cascade: local confidence from here ..."
    )
    cascade_high: float = Field(
        default=0.90, ge=0, le=1, description="... up to (not including) here goes to the LLM."
    )

    @model_validator(mode="after")
    def _llm_complete(self) -> ClassifierSettings:
        if self.backend in ("llm", "cascade") and self.llm_api_key is None:
            raise ValueError(f"backend {self.backend} needs llm_api_key")
        if self.cascade_low >= self.cascade_high:
            raise ValueError("cascade_low must be below cascade_high")
        return self
