"""Classifier settings (env prefix `TRIAGEFLOW_CLASSIFIER_`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import StageSettings


class ClassifierSettings(StageSettings):
    """Everything the classifier needs."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGEFLOW_CLASSIFIER_", frozen=True, extra="ignore"
    )

    group_id: str = Field(default="triageflow-classifier", description="Consumer group.")
    http_port: int = Field(default=8001, ge=0, le=65535)
    backend: Literal["local"] = Field(default="local", description="Classifier backend.")
    examples_csv: Path | None = Field(
        default=None, description="Labelled examples (text,label) to learn from; default: shipped."
    )
    model_cache_dir: Path = Field(
        default=Path.home() / ".cache" / "triageflow" / "models",
        description="Where trained model artefacts are cached between restarts.",
    )
