"""Configuration shared by every service, read only through pydantic-settings.

Each service has its own settings class with its own env prefix
(`TRIAGEFLOW_CLASSIFIER_`, `TRIAGEFLOW_POLICY_`, ...). Connection settings for the
shared infrastructure have their own prefixes: `TRIAGEFLOW_KAFKA_` and
`TRIAGEFLOW_DATABASE_`. Secrets have no defaults.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


class KafkaSettings(BaseSettings):
    """How to reach Kafka, and how topics are laid out (env prefix `TRIAGEFLOW_KAFKA_`)."""

    model_config = SettingsConfigDict(env_prefix="TRIAGEFLOW_KAFKA_", frozen=True, extra="ignore")

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", description="Comma-separated host:port list."
    )
    security_protocol: SecurityProtocol = Field(default="PLAINTEXT")
    sasl_mechanism: SaslMechanism | None = Field(default=None)
    sasl_username: str | None = Field(default=None)
    sasl_password: SecretStr | None = Field(default=None, description="No default, ever.")
    ssl_cafile: Path | None = Field(default=None, description="CA bundle to verify the broker.")
    ssl_certfile: Path | None = Field(default=None, description="Client certificate (mTLS).")
    ssl_keyfile: Path | None = Field(default=None, description="Client key (mTLS).")
    ssl_check_hostname: bool = Field(default=True)
    topic_prefix: str = Field(
        default="", description="Prefix for every topic name (isolates tests and tenants)."
    )
    partitions: int = Field(default=6, ge=1, description="Partitions per topic when created.")
    replication_factor: int = Field(default=1, ge=1, description="Replication when created.")
    min_insync_replicas: int | None = Field(default=None, ge=1)
    enable_idempotence: bool = Field(default=True, description="Idempotent producers.")
    linger_ms: int = Field(
        default=0,
        ge=0,
        description=(
            "How long a producer waits to fill a request. Stages send a whole batch before"
            " awaiting its acknowledgements, so requests fill without waiting."
        ),
    )

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError("SASL security needs sasl_mechanism, sasl_username and sasl_password")
        return self


class DatabaseSettings(BaseSettings):
    """How to reach PostgreSQL (env prefix `TRIAGEFLOW_DATABASE_`)."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGEFLOW_DATABASE_", frozen=True, extra="ignore"
    )

    url: SecretStr = Field(
        default=SecretStr("postgresql://triageflow:triageflow@127.0.0.1:5432/triageflow"),
        description="PostgreSQL DSN. The default is the local development database only.",
    )
    sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] | None = Field(
        default=None, description="TLS to PostgreSQL; overrides an sslmode in the URL."
    )
    sslrootcert: Path | None = Field(
        default=None, description="CA bundle that verify-ca/verify-full check the server against."
    )
    pool_min: int = Field(default=1, ge=1)
    pool_max: int = Field(default=4, ge=1)

    def dsn(self) -> str:
        """Return the URL (secret included) with `sslmode`/`sslrootcert` as query parameters.

        asyncpg, psycopg (yoyo) and psql all read TLS options from there, so every client of
        the database gets the same TLS from the same two settings.
        """
        url = self.url.get_secret_value()
        tls = {"sslmode": self.sslmode, "sslrootcert": self.sslrootcert}
        options = {key: str(value) for key, value in tls.items() if value is not None}
        if not options:
            return url
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in options]
        # quote, not quote_plus: libpq does not read "+" as a space.
        encoded = urlencode([*query, *options.items()], quote_via=quote)
        return urlunsplit(parts._replace(query=encoded))


class ServiceSettings(BaseSettings):
    """Settings every service has; subclasses set their own env prefix."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    instance_id: str = Field(
        default_factory=socket.gethostname, description="This copy's name in logs and events."
    )
    log_json: bool = Field(default=True, description="JSON log lines (production).")
    log_level: str = Field(default="INFO")
    http_host: str = Field(default="127.0.0.1", description="Ops endpoints bind address.")
    http_port: int = Field(default=8000, ge=0, le=65535, description="Ops endpoints port.")
    batch_max_records: int = Field(default=500, ge=1, description="Records per consumed batch.")
    batch_timeout_ms: int = Field(
        default=10,
        ge=1,
        description=(
            "How long a poll waits for records, and (faststream) the pause after an empty one:"
            " the longest a record arriving at an idle consumer waits."
        ),
    )
    graceful_timeout_s: float = Field(default=15.0, gt=0, description="SIGTERM drain deadline.")
    otel_exporter: Literal["none", "console", "otlp"] = Field(
        default="none", description="Where this service's trace spans go."
    )
    otel_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces."
    )


class StageSettings(ServiceSettings):
    """Settings of a service that consumes one topic in a consumer group."""

    group_id: str = Field(description="Consumer group; copies of a service share it.")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    max_attempts: int = Field(
        default=3, ge=1, description="Tries of a failing batch before its bad records dead-letter."
    )
    retry_backoff_max_s: float = Field(
        default=5.0, gt=0, description="Longest wait between retries of a failing batch."
    )
