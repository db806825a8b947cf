"""The audit consumer's composition root."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faststream.asgi import AsgiFastStream
from prometheus_client import CollectorRegistry

from services.audit.handlers import AuditHandler
from services.audit.repository import AuditRepository, PostgresAuditRepository, connect_pool
from services.audit.settings import AuditSettings
from shared.metrics import StageMetrics
from shared.service import producer_info, stage_app
from shared.stage import Incoming, Outgoing
from shared.topics import Topics

if TYPE_CHECKING:
    from services.audit.repository import Pool

SERVICE = "audit"


def build_app(
    settings: AuditSettings,
    *,
    repository: AuditRepository | None = None,
    registry: CollectorRegistry | None = None,
) -> AsgiFastStream:
    """Wire the audit consumer: database pool (opened at start-up), handler, subscriber."""
    topics = Topics(settings.kafka.topic_prefix)
    handlers: list[AuditHandler] = []

    def make_handler(repo: AuditRepository) -> AuditHandler:
        return AuditHandler(
            repo,
            topics=topics,
            producer=producer_info(SERVICE, settings),
            max_backoff_s=settings.retry_max_backoff_s,
        )

    if repository is not None:
        handlers.append(make_handler(repository))

    async def process(batch: list[Incoming]) -> list[Outgoing]:
        return await handlers[0](batch)

    app = stage_app(
        settings,
        service=SERVICE,
        topics=topics.audited(),
        process=process,
        description="Records every event of every topic in the PostgreSQL trail.",
        metrics=StageMetrics.create(registry or CollectorRegistry()),
        dead_letter_failing=False,
    )

    pools: list[Pool] = []

    @app.on_startup
    async def open_database() -> None:
        if not handlers:
            db = settings.database
            pool = await connect_pool(db.dsn(), min_size=db.pool_min, max_size=db.pool_max)
            pools.append(pool)
            handlers.append(make_handler(PostgresAuditRepository(pool)))

    @app.after_shutdown
    async def close_database() -> None:
        for pool in pools:
            await pool.close()

    return app
