"""The policy service's composition root."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from faststream.asgi import AsgiFastStream
from prometheus_client import CollectorRegistry

from services.policy.caps import CapControl
from services.policy.handlers import PolicyHandler
from services.policy.metrics import PolicyMetrics
from services.policy.model import LoadedPolicy, load_default_policy, load_policy
from services.policy.settings import PolicySettings
from shared.contracts import utc_now
from shared.control import follow_control_topic
from shared.metrics import StageMetrics
from shared.service import producer_info, stage_app
from shared.topics import Topics

SERVICE = "policy"


def build_app(
    settings: PolicySettings,
    *,
    policy: LoadedPolicy | None = None,
    clock: Callable[[], datetime] = utc_now,
    registry: CollectorRegistry | None = None,
) -> AsgiFastStream:
    """Wire the policy service: policy (and shadow candidate), handler, subscriber."""
    if policy is None:
        policy = (
            load_policy(settings.policy_file) if settings.policy_file else load_default_policy()
        )
    candidate = (
        load_policy(settings.candidate_policy_file) if settings.candidate_policy_file else None
    )
    registry = registry or CollectorRegistry()
    topics = Topics(settings.kafka.topic_prefix)
    caps = CapControl()
    handler = PolicyHandler(
        policy,
        topics=topics,
        producer=producer_info(SERVICE, settings),
        clock=clock,
        candidate=candidate,
        caps=caps,
    )
    app = stage_app(
        settings,
        service=SERVICE,
        topics=[topics.classified],
        process=handler,
        description="Decides how much the AI may do with each classified ticket.",
        metrics=StageMetrics.create(registry),
        observe=PolicyMetrics(registry).observe,
    )
    if settings.follow_control_topic:
        # Caps in force apply from the first decision.
        follow_control_topic(app, settings.kafka, caps.on_change)

    return app
