"""Audit consumer settings (env prefix `TRIAGEFLOW_AUDIT_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import DatabaseSettings, StageSettings


class AuditSettings(StageSettings):
    """Everything the audit consumer needs."""

    model_config = SettingsConfigDict(env_prefix="TRIAGEFLOW_AUDIT_", frozen=True, extra="ignore")

    group_id: str = Field(default="triageflow-audit", description="Consumer group.")
    http_port: int = Field(default=8004, ge=0, le=65535)
    batch_max_records: int = Field(default=2000, ge=1, description="Events per insert batch.")
    retry_max_backoff_s: float = Field(
        default=5.0, gt=0, description="Longest wait between retries while PostgreSQL is down."
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
