"""One place that turns `KafkaSettings` into Kafka clients (faststream broker, aiokafka)."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from faststream.kafka import KafkaBroker
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

if TYPE_CHECKING:
    from faststream._internal.types import BrokerMiddleware

    from shared.settings import KafkaSettings


def ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """Return the TLS context for SSL/SASL_SSL, or None for plaintext."""
    if kafka.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    context = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    context.check_hostname = kafka.ssl_check_hostname
    if kafka.ssl_certfile:
        context.load_cert_chain(
            str(kafka.ssl_certfile), str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None
        )
    return context


def broker_security(kafka: KafkaSettings) -> BaseSecurity | None:
    """Return faststream's security object for the configured protocol."""
    context = ssl_context(kafka)
    if not kafka.security_protocol.startswith("SASL_"):
        return BaseSecurity(ssl_context=context) if context else None
    assert kafka.sasl_username  # KafkaSettings checks SASL settings are complete
    assert kafka.sasl_password
    password = kafka.sasl_password.get_secret_value()
    use_ssl = kafka.security_protocol == "SASL_SSL"
    kinds: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
        "PLAIN": SASLPlaintext,
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }
    kind = kinds[kafka.sasl_mechanism or "PLAIN"]
    return kind(kafka.sasl_username, password, ssl_context=context, use_ssl=use_ssl)


def client_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Return connection and security keyword arguments for raw aiokafka clients."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
    }
    context = ssl_context(kafka)
    if context is not None:
        kwargs["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL_"):
        assert kafka.sasl_password is not None
        kwargs |= {
            "sasl_mechanism": kafka.sasl_mechanism,
            "sasl_plain_username": kafka.sasl_username,
            "sasl_plain_password": kafka.sasl_password.get_secret_value(),
        }
    return kwargs


def admin_client_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Return keyword arguments for `AIOKafkaAdminClient`."""
    return client_kwargs(kafka) | {"client_id": "triageflow-admin"}


def producer_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Return keyword arguments for a durable `AIOKafkaProducer`."""
    return client_kwargs(kafka) | {
        "acks": "all",
        "enable_idempotence": kafka.enable_idempotence,
        "linger_ms": kafka.linger_ms,
    }


def make_broker(
    kafka: KafkaSettings,
    *,
    client_id: str,
    graceful_timeout: float = 15.0,
    middlewares: tuple[BrokerMiddleware[Any, Any], ...] = (),
    description: str | None = None,
) -> KafkaBroker:
    """Return the faststream broker every service uses: durable acks, idempotent producer."""
    return KafkaBroker(
        kafka.bootstrap_servers.split(","),
        client_id=client_id,
        security=broker_security(kafka),
        acks="all",
        enable_idempotence=kafka.enable_idempotence,
        linger_ms=kafka.linger_ms,
        allow_auto_create_topics=False,
        graceful_timeout=graceful_timeout,
        middlewares=middlewares,
        description=description,
        logger=None,
    )
