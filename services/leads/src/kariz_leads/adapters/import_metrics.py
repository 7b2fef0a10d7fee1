"""The CSV import's rows in Prometheus, by outcome (a bounded label); counted once their chunk committed."""

from __future__ import annotations

from prometheus_client import Counter

from kariz_shared.runtime.metrics import registry

OUTCOMES = ("created", "duplicate", "failed")

import_rows = Counter(
    "kariz_leads_import_rows_total",
    "Rows of CSV imports captured, by outcome: created (a new lead), duplicate, failed",
    ["outcome"],
    registry=registry,
)
for _outcome in OUTCOMES:
    import_rows.labels(_outcome)


class PrometheusImportMetrics:
    """The ``ImportMetrics`` of a running service."""

    def rows(self, outcome: str, count: int) -> None:
        if outcome in OUTCOMES:
            import_rows.labels(outcome).inc(count)
