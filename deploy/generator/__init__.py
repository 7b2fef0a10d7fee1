"""Generate the deployment files that are derived from something else, so they cannot drift from it.

    .venv/bin/python deploy/generate.py        (what `make k8s-files` runs; or python -m deploy.generator)

The services, what each publishes and consumes, come from the registry (:mod:`kariz_shared.system`):

- ``deploy/grafana/dashboards/*.json``: the Grafana dashboards, defined in :mod:`.dashboards` as panels
  and PromQL (:mod:`.grafana` lays them out).
- ``deploy/k8s/base/monitoring/dashboards.yaml``: the same dashboards as ConfigMaps for Grafana's sidecar.
- ``deploy/k8s/base/monitoring/prometheusrule.yaml``: ``deploy/prometheus/alerts.yml`` as a PrometheusRule
  (:mod:`.alerts`).
- ``deploy/k8s/base/kafka/topics.yaml``: a Strimzi KafkaTopic for every topic a service publishes, and its
  dead-letter topic (:mod:`.topics`).
- ``deploy/k8s/base/kafka/users.yaml``: a Strimzi KafkaUser per service, SCRAM-SHA-512, with ACLs for
  exactly the topics it writes and reads and its consumer groups (:mod:`.users`).
- ``deploy/k8s/base/services/<service>.yaml``: each service's Deployment, Service, ServiceAccount,
  PodDisruptionBudget, ServiceMonitor and (for a consumer) KEDA ScaledObject on the lag of the consumer
  groups it subscribes, with its TriggerAuthentication (:mod:`.kubernetes`).

``tests/operations/test_kubernetes.py`` fails when a committed file differs from what this makes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kariz_shared.system import SERVICES

from .alerts import prometheus_rule
from .common import DASHBOARDS, DEPLOY, K8S_BASE
from .dashboards import dashboard_configmaps, dashboards
from .kubernetes import RegistryMismatch, service_resources
from .topics import kafka_topics
from .users import kafka_users


def files() -> dict[Path, str]:
    """Every generated file and what it must hold."""
    out = {DASHBOARDS / name: json.dumps(board, indent=2) + "\n" for name, board in dashboards().items()}
    out[K8S_BASE / "monitoring" / "dashboards.yaml"] = dashboard_configmaps()
    out[K8S_BASE / "monitoring" / "prometheusrule.yaml"] = prometheus_rule()
    out[K8S_BASE / "kafka" / "topics.yaml"] = kafka_topics()
    out[K8S_BASE / "kafka" / "users.yaml"] = kafka_users()
    for entry in SERVICES:
        out[K8S_BASE / "services" / f"{entry.name}.yaml"] = service_resources(entry)
    return out


def main() -> None:
    try:
        generated = files()
    except RegistryMismatch as exc:
        sys.exit(f"deploy/generate.py: {exc}")
    for path, text in generated.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(DEPLOY.parent)}", file=sys.stderr)
