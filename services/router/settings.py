"""Router settings (env prefix `TRIAGEFLOW_ROUTER_`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import StageSettings


class RouterSettings(StageSettings):
    """Everything the router needs."""

    model_config = SettingsConfigDict(env_prefix="TRIAGEFLOW_ROUTER_", frozen=True, extra="ignore")

    group_id: str = Field(default="triageflow-router", description="Consumer group.")
    routing_file: Path | None = Field(
        default=None, description="Routing table YAML; default: the shipped table."
    )
    http_port: int = Field(default=8003, ge=0, le=65535)
