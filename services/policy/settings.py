"""Policy service settings (env prefix `TRIAGEFLOW_POLICY_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import StageSettings


class PolicySettings(StageSettings):
    """Everything the policy service needs."""

    model_config = SettingsConfigDict(env_prefix="TRIAGEFLOW_POLICY_", frozen=True, extra="ignore")

    group_id: str = Field(default="triageflow-policy", description="Consumer group.")
    policy_file: Path | None = Field(
        default=None, description="Policy YAML; default: the shipped policy."
    )
    candidate_policy_file: Path | None = Field(
        default=None, description="A candidate policy evaluated in shadow mode (never acted on)."
    )
    http_port: int = Field(default=8002, ge=0, le=65535)
    follow_control_topic: bool = Field(
        default=True,
        description="Apply drift-guard caps from the control topic (`triageflow drift`).",
    )
