"""Settings of the operator command line."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CliSettings(BaseSettings):
    """Where local state lives (env `TRIAGEFLOW_STATE_DIR`, shared with deploy/local)."""

    model_config = SettingsConfigDict(env_prefix="TRIAGEFLOW_CLI_", frozen=True, extra="ignore")

    state_dir: Path = Field(
        default=Path(".local"),
        validation_alias=AliasChoices("TRIAGEFLOW_STATE_DIR", "TRIAGEFLOW_CLI_STATE_DIR"),
        description="Folder for pid files and service logs.",
    )
    actor: str | None = Field(
        default=None,
        description="Who runs operator actions, recorded in the trail (`dlq replay`); "
        "default: the login name.",
    )
