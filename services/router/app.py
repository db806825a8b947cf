"""The router's composition root."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from faststream.asgi import AsgiFastStream
from prometheus_client import CollectorRegistry

from services.router.handlers import RouterHandler
from services.router.metrics import RouterMetrics
from services.router.routing import RoutingTable, load_default_routing, load_routing
from services.router.settings import RouterSettings
from shared.contracts import utc_now
from shared.metrics import StageMetrics
from shared.service import producer_info, stage_app
from shared.topics import Topics

SERVICE = "router"


def build_app(
    settings: RouterSettings,
    *,
    table: RoutingTable | None = None,
    clock: Callable[[], datetime] = utc_now,
    registry: CollectorRegistry | None = None,
) -> AsgiFastStream:
    """Wire the router: routing table, handler, subscriber, ops endpoints."""
    if table is None:
        table = (
            load_routing(settings.routing_file) if settings.routing_file else load_default_routing()
        )
    registry = registry or CollectorRegistry()
    topics = Topics(settings.kafka.topic_prefix)
    handler = RouterHandler(
        table, topics=topics, producer=producer_info(SERVICE, settings), clock=clock
    )
    return stage_app(
        settings,
        service=SERVICE,
        topics=[topics.decided, topics.feedback],
        process=handler,
        description="Routes decided tickets to downstream queues; escalates bad reactions.",
        metrics=StageMetrics.create(registry),
        observe=RouterMetrics(registry).observe,
    )
