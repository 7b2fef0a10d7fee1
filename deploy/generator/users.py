"""A Strimzi KafkaUser per service of the registry: it signs in with SCRAM-SHA-512, and its ACLs let it
write only the topics it publishes and the dead-letter topics of what it consumes (its consumers put
there what they cannot handle), read only the topics it consumes, and join only its own consumer groups.
The state topics every service follows (``FOLLOWED_BY_EVERY_SERVICE``: the roster) are read without a
group, so Read and Describe on the topic are all a replica needs, and Write on their dead letters.

Strimzi writes the user's generated password to a Secret of the user's name (key ``password``), which
the service's Deployment reads as KARIZ_KAFKA_SASL_PASSWORD (:mod:`.kubernetes`).
"""

from __future__ import annotations

from typing import Any

from kariz_shared.contracts.events import dead_letter_topic
from kariz_shared.system import FOLLOWED_BY_EVERY_SERVICE, SERVICES, ServiceEntry

from .common import KAFKA_CLUSTER, kafka_user_name, yaml_documents
from .kubernetes import service_settings


def written_topics(entry: ServiceEntry) -> list[str]:
    """What the service produces to: its events, and the dead letters of the events it consumes or
    follows."""
    return _unique(
        [cls.topic() for cls in entry.publishes]
        + [dead_letter_topic(cls.topic()) for cls in (*entry.consumes, *FOLLOWED_BY_EVERY_SERVICE)]
    )


def read_topics(entry: ServiceEntry) -> list[str]:
    """What it reads: the topics of its consumer groups and the state topics every service follows."""
    return _unique([cls.topic() for cls in (*entry.consumes, *FOLLOWED_BY_EVERY_SERVICE)])


def _unique(topics: list[str]) -> list[str]:
    return list(dict.fromkeys(topics))


def group_prefix(entry: ServiceEntry) -> str:
    """Every consumer group of the service starts with this, ``<prefix>-<service>.``: named by its own
    settings (``consumer_group``), so the ACL cannot drift from the groups its code joins."""
    return service_settings(entry).consumer_group("")


def _topic_acl(topic: str, operations: list[str]) -> dict[str, Any]:
    return {"resource": {"type": "topic", "name": topic, "patternType": "literal"}, "operations": operations}


def _kafka_user(entry: ServiceEntry) -> dict[str, Any]:
    acls = [_topic_acl(t, ["Write", "Describe"]) for t in written_topics(entry)]
    acls += [_topic_acl(t, ["Read", "Describe"]) for t in read_topics(entry)]
    if entry.consumes:
        # Read on a group lets a member join it and commit its offsets (and KEDA read its lag).
        acls.append(
            {
                "resource": {"type": "group", "name": group_prefix(entry), "patternType": "prefix"},
                "operations": ["Read"],
            }
        )
    return {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaUser",
        "metadata": {
            "name": kafka_user_name(entry.name),
            "labels": {
                "strimzi.io/cluster": KAFKA_CLUSTER,
                "app.kubernetes.io/name": entry.name,
                "app.kubernetes.io/part-of": "kariz",
            },
        },
        "spec": {
            "authentication": {"type": "scram-sha-512"},
            "authorization": {"type": "simple", "acls": acls},
        },
    }


def kafka_users() -> str:
    return yaml_documents([_kafka_user(entry) for entry in SERVICES])
