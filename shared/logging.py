"""loguru set up once per process: JSON lines in production, bound ticket context."""

from __future__ import annotations

import sys
from typing import Any

from loguru import logger

CONTEXT_KEYS = ("service", "instance", "ticket_id", "trace_id", "topic", "partition", "offset")


def configure_logging(*, service: str, instance: str, json: bool, level: str = "INFO") -> None:
    """Send every log line to stderr, as JSON when `json`, bound to the service."""
    logger.remove()
    logger.configure(extra={"service": service, "instance": instance})
    if json:
        logger.add(sys.stderr, level=level, serialize=True, backtrace=False, diagnose=False)
    else:
        logger.add(
            sys.stderr,
            level=level,
            backtrace=False,
            diagnose=False,
            format=(
                "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
                "<cyan>{extra[service]}</cyan> {message} <dim>{extra}</dim>"
            ),
        )


def message_context(
    *, ticket_id: str | None, trace_id: str | None, topic: str, partition: int, offset: int
) -> dict[str, Any]:
    """Return the context every log line about one consumed message carries."""
    return {
        "ticket_id": ticket_id,
        "trace_id": trace_id,
        "topic": topic,
        "partition": partition,
        "offset": offset,
    }
