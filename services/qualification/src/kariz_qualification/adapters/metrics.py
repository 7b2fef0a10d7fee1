"""Business metrics of qualification in Prometheus. Observed only after the transaction that made the
fact committed (the handlers see to it)."""

from __future__ import annotations

from typing import get_args

from prometheus_client import Counter, Histogram

from kariz_qualification.domain.lead import Outcome, Scoring, Trigger
from kariz_shared.runtime.metrics import registry

decisions = Counter(
    "kariz_qualification_decisions_total",
    "Final qualification decisions, by outcome (qualified, disqualified)",
    ["outcome"],
    registry=registry,
)
scores = Histogram(
    "kariz_qualification_score",
    "Lead scores, by what triggered the scoring (captured, bant, checklist, merged)",
    ["trigger"],
    buckets=[float(points) for points in range(0, 101, 10)],
    registry=registry,
)

# Every outcome and trigger starts at 0, so increase() and rates see the first decision too.
for _outcome in get_args(Outcome):
    decisions.labels(_outcome)
for _trigger in get_args(Trigger):
    scores.labels(_trigger)


class PrometheusMetrics:
    """The ``QualificationMetrics`` of a running service."""

    def scored(self, scoring: Scoring) -> None:
        scores.labels(scoring.trigger).observe(scoring.score)

    def decided(self, outcome: Outcome) -> None:
        decisions.labels(outcome).inc()
