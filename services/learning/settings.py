"""Settings of the learner, the promotion gate and the drift guard (env `TRIAGEFLOW_LEARN_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.settings import KafkaSettings


class LearnSettings(BaseSettings):
    """Where model versions go and what the learning jobs start from."""

    model_config = SettingsConfigDict(env_prefix="TRIAGEFLOW_LEARN_", frozen=True, extra="ignore")

    registry_dir: Path = Field(
        default=Path(".local/models"),
        description="Model registry; the classifiers' TRIAGEFLOW_CLASSIFIER_MODEL_REGISTRY_DIR.",
    )
    backend: Literal["local", "hybrid"] = Field(
        default="local",
        description="The trainable model the classifiers run: their TRIAGEFLOW_CLASSIFIER_BACKEND "
        "(llm and cascade run a local model; hybrid needs the minilm extra).",
    )
    base_examples_csv: Path | None = Field(
        default=None, description="Base labelled examples (text,label); default: shipped."
    )
    model_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "triageflow" / "models",
        description="Cache of the model trained on the base examples (the unpromoted model).",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
