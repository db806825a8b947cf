"""The whole pipeline in-process (classifier, policy, router, audit) on real Kafka and PostgreSQL.

Shared by the integration tests that push tickets end to end: the topics of a fresh
prefix, the apps wired with per-test consumer groups, and the queue topics to read.
"""

from __future__ import annotations

from pathlib import Path

from faststream.asgi import AsgiFastStream

from services.audit.app import build_app as build_audit
from services.audit.settings import AuditSettings
from services.classifier.app import build_app as build_classifier
from services.classifier.settings import ClassifierSettings
from services.policy.app import build_app as build_policy
from services.policy.model import parse_policy
from services.policy.settings import PolicySettings
from services.router.app import build_app as build_router
from services.router.routing import load_default_routing
from services.router.settings import RouterSettings
from shared.settings import DatabaseSettings, KafkaSettings
from shared.topics import Topics, ensure_topics


async def create_topics(kafka: KafkaSettings) -> Topics:
    """Create the pipeline's topics and the default queues under the test's prefix."""
    topics = Topics(kafka.topic_prefix)
    queues = [topics.queue(q) for q in load_default_routing().queue_names()]
    await ensure_topics(kafka, [*topics.pipeline(), *queues])
    return topics


def queue_topics(topics: Topics) -> list[str]:
    """Return the topics of the default routing table's queues."""
    return [topics.queue(q) for q in sorted(load_default_routing().queue_names())]


def pipeline_apps(
    kafka: KafkaSettings, database_url: str, model_cache: Path, *, policy_yaml: bytes | None = None
) -> list[AsgiFastStream]:
    """Return classifier, policy, router and audit, each in its own per-test group."""
    group = kafka.topic_prefix
    return [
        build_classifier(
            ClassifierSettings(kafka=kafka, group_id=f"{group}clf", model_cache_dir=model_cache)
        ),
        build_policy(
            PolicySettings(kafka=kafka, group_id=f"{group}pol"),
            policy=parse_policy(policy_yaml) if policy_yaml else None,
        ),
        build_router(RouterSettings(kafka=kafka, group_id=f"{group}rtr")),
        build_audit(
            AuditSettings(
                kafka=kafka,
                group_id=f"{group}aud",
                database=DatabaseSettings(url=database_url),
            )
        ),
    ]
