"""Each service's Kubernetes resources: Deployment, Service, ServiceAccount, PodDisruptionBudget,
ServiceMonitor and, for a service that consumes, a KEDA ScaledObject on the lag of its consumer groups
with the TriggerAuthentication it reads the lag with.

Each Deployment speaks to Kafka as the service's KafkaUser (:mod:`.users`): TLS trusting Strimzi's
cluster CA (mounted as a file), SCRAM-SHA-512 with the password Strimzi wrote to the user's Secret.

What a service consumes comes from the registry (:mod:`kariz_shared.system`); its consumer groups' names
from its settings, so the service is built (``kariz_<name>.bootstrap:build``), and what it subscribes in
code must be what the registry says. Its image is ``deploy/Dockerfile`` built with ``SERVICE=<name>``,
named ``kariz-<name>`` here; each overlay's ``images:`` points the name at a registry and a tag.
"""

from __future__ import annotations

import functools
from typing import Any

from kariz_devkit.asyncapi import build_service
from kariz_shared.contracts.events import Event
from kariz_shared.runtime.settings import ServiceSettings
from kariz_shared.system import ServiceEntry

from .common import (
    GROUP_PREFIX,
    KAFKA_BOOTSTRAP,
    KAFKA_CA_KEY,
    KAFKA_CA_SECRET,
    TOPIC_PARTITIONS,
    kafka_user_name,
    yaml_documents,
)

HTTP_PORT = 8000
# Kubernetes waits this long after SIGTERM: the preStop pause, then the graceful shutdown
# (KARIZ_SHUTDOWN_GRACE_S in base/config.yaml), with room to spare.
PRE_STOP_S = 5
SHUTDOWN_GRACE_S = 20
TERMINATION_GRACE_S = 40
KAFKA_CA_DIR = "/etc/kariz/kafka-ca"
# KEDA adds a replica per this many records of lag; more replicas than partitions would sit idle.
LAG_THRESHOLD = 50
UID = 10001


def _labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "kariz"}


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _kafka_env(name: str) -> list[dict[str, Any]]:
    """Kafka as the service's own KafkaUser, over TLS. KARIZ_KAFKA_BOOTSTRAP_SERVERS (the TLS listener) is
    in the kariz-config ConfigMap. The password comes as an environment variable from the Secret Strimzi
    keeps, the way the MongoDB URI does; the CA as a file, which TLS needs."""
    return [
        {"name": "KARIZ_KAFKA_TLS", "value": "true"},
        {"name": "KARIZ_KAFKA_TLS_CA_FILE", "value": f"{KAFKA_CA_DIR}/{KAFKA_CA_KEY}"},
        {"name": "KARIZ_KAFKA_SASL_USERNAME", "value": kafka_user_name(name)},
        {
            "name": "KARIZ_KAFKA_SASL_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": kafka_user_name(name), "key": "password"}},
        },
    ]


def _deployment(name: str) -> dict[str, Any]:
    env_from = [{"configMapRef": {"name": "kariz-config"}}, {"configMapRef": {"name": f"kariz-{name}"}}]
    if name == "notifications":
        # Webhook subscribers carry their signing secrets.
        env_from.append({"secretRef": {"name": "kariz-notifications"}})
    container = {
        "name": name,
        "image": f"kariz-{name}",
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "envFrom": env_from,
        "env": [
            # Written by the MongoDB Community operator for the service's own user (base/mongodb).
            {
                "name": "KARIZ_MONGODB_URI",
                "valueFrom": {
                    "secretKeyRef": {"name": f"kariz-mongodb-{name}", "key": "connectionString.standard"}
                },
            },
            *_kafka_env(name),
        ],
        # /healthz is the process; /readyz also checks the broker and the database.
        "startupProbe": _probe("/healthz", 2, 30),
        "livenessProbe": _probe("/healthz", 10, 3),
        "readinessProbe": _probe("/readyz", 5, 2),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_S}}},
        "resources": {
            "requests": {"cpu": "100m", "memory": "192Mi"},
            "limits": {"memory": "512Mi"},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "kafka-ca", "mountPath": KAFKA_CA_DIR, "readOnly": True},
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": _labels(name)},
        # No replicas: the ScaledObject's HPA owns them (minReplicaCount), so an apply does not reset them.
        "spec": {
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": _labels(name)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": _labels(name)},
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": UID,
                        "runAsGroup": UID,
                        "fsGroup": UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": _labels(name)},
                        }
                    ],
                    "containers": [container],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                        {
                            "name": "kafka-ca",
                            "secret": {
                                "secretName": KAFKA_CA_SECRET,
                                "items": [{"key": KAFKA_CA_KEY, "path": KAFKA_CA_KEY}],
                            },
                        },
                    ],
                },
            },
        },
    }


def _trigger_authentication(name: str) -> dict[str, Any]:
    """How KEDA reads the lag: as the service's own KafkaUser (whose Read on its groups covers it), its
    username from the service's container, the password and the cluster CA from their Secrets."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": {"name": _trigger_authentication_name(name), "labels": _labels(name)},
        "spec": {
            "env": [{"parameter": "username", "name": "KARIZ_KAFKA_SASL_USERNAME", "containerName": name}],
            "secretTargetRef": [
                {"parameter": "password", "name": kafka_user_name(name), "key": "password"},
                {"parameter": "ca", "name": KAFKA_CA_SECRET, "key": KAFKA_CA_KEY},
            ],
        },
    }


def _trigger_authentication_name(name: str) -> str:
    return f"{name}-kafka"


def _scaled_object(name: str, settings: ServiceSettings, consumes: list[type[Event]]) -> dict[str, Any]:
    triggers = [
        {
            "type": "kafka",
            "name": cls.kebab_name(),
            # sasl and tls in the trigger's metadata: KEDA 2.10 and later.
            "metadata": {
                "bootstrapServers": KAFKA_BOOTSTRAP,
                "consumerGroup": settings.consumer_group(cls.kebab_name()),
                "topic": cls.topic(),
                "lagThreshold": str(LAG_THRESHOLD),
                "offsetResetPolicy": "earliest",
                "sasl": "scram_sha512",
                "tls": "enable",
            },
            "authenticationRef": {"name": _trigger_authentication_name(name)},
        }
        for cls in consumes
    ]
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name, "labels": _labels(name)},
        "spec": {
            "scaleTargetRef": {"name": name},
            "minReplicaCount": 2,
            "maxReplicaCount": TOPIC_PARTITIONS,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}
                }
            },
            "triggers": triggers,
        },
    }


class RegistryMismatch(Exception):
    """The registry and a service's code disagree on what the service consumes."""


@functools.cache
def service_settings(entry: ServiceEntry) -> ServiceSettings:
    """The service's settings (its consumer groups' names), once its code is checked against the registry."""
    service = build_service(entry.name)
    coded, registered = set(service.consumes), set(entry.consumes)
    if coded != registered:
        raise RegistryMismatch(
            f"kariz_shared.system says {entry.name} consumes {_names(registered)}, "
            f"but its code subscribes {_names(coded)}"
        )
    return service.settings.model_copy(update={"kafka_group_prefix": GROUP_PREFIX})


def _names(events: set[type[Event]]) -> str:
    return ", ".join(sorted(cls.__name__ for cls in events)) or "nothing"


def service_resources(entry: ServiceEntry) -> str:
    name = entry.name
    settings = service_settings(entry)
    consumes = list(entry.consumes)
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "labels": _labels(name)},
            "automountServiceAccountToken": False,
        },
        _deployment(name),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": _labels(name)},
            "spec": {
                "selector": _labels(name),
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "labels": _labels(name)},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _labels(name)}},
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": name, "labels": _labels(name)},
            "spec": {
                # job="kariz" for every service, and the Service's name in the `service` label: what the
                # dashboards and alerts select on. honorLabels keeps the metrics' own `service` label.
                "jobLabel": "app.kubernetes.io/part-of",
                "selector": {"matchLabels": _labels(name)},
                "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s", "honorLabels": True}],
            },
        },
    ]
    if consumes:
        docs.append(_trigger_authentication(name))
        docs.append(_scaled_object(name, settings, consumes))
    return yaml_documents(docs)
