"""``deploy/prometheus/alerts.yml``, the alert rules as Prometheus reads them, wrapped in a PrometheusRule
for the Prometheus operator."""

from __future__ import annotations

import yaml

from .common import ALERTS, yaml_documents


def prometheus_rule() -> str:
    rules = yaml.safe_load(ALERTS.read_text())
    doc = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "kariz-alerts", "labels": {"app.kubernetes.io/part-of": "kariz"}},
        "spec": {"groups": rules["groups"]},
    }
    return yaml_documents([doc])
