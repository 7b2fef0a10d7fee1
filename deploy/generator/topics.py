"""A Strimzi KafkaTopic for every topic a service of the registry publishes, and for its dead-letter
topic, where its consumers put what they cannot handle."""

from __future__ import annotations

from typing import Any

from kariz_shared.contracts.events import EVENTS_BY_TOPIC, dead_letter_topic
from kariz_shared.system import SERVICES

from .common import KAFKA_CLUSTER, TOPIC_PARTITIONS, yaml_documents

TOPIC_REPLICAS = 3
# Events are the system's history: kept for 30 days; dead letters 14 days, long enough to fix and replay.
EVENT_RETENTION_MS = 30 * 24 * 3600 * 1000
DLQ_RETENTION_MS = 14 * 24 * 3600 * 1000


def published_topics() -> list[str]:
    """Every topic a service publishes, in the registry's order."""
    return [cls.topic() for entry in SERVICES for cls in entry.publishes]


def _topic(topic: str, retention_ms: int) -> dict[str, Any]:
    event = EVENTS_BY_TOPIC.get(topic)
    # A state topic (the roster) keeps the newest record of every key for ever, not 30 days of records.
    config: dict[str, Any] = (
        {"cleanup.policy": "compact", "min.compaction.lag.ms": 60_000}
        if event is not None and event.compacted
        else {"retention.ms": retention_ms, "cleanup.policy": "delete"}
    )
    return {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaTopic",
        "metadata": {
            # Kubernetes names allow no "_"; dots are fine. The Kafka name is spec.topicName.
            "name": topic,
            "labels": {"strimzi.io/cluster": KAFKA_CLUSTER, "app.kubernetes.io/part-of": "kariz"},
        },
        "spec": {
            "topicName": topic,
            "partitions": TOPIC_PARTITIONS,
            "replicas": TOPIC_REPLICAS,
            "config": {**config, "min.insync.replicas": 2},
        },
    }


def kafka_topics() -> str:
    topics = published_topics()
    docs = [_topic(t, EVENT_RETENTION_MS) for t in topics]
    docs += [_topic(dead_letter_topic(t), DLQ_RETENTION_MS) for t in topics]
    return yaml_documents(docs)
