"""Business metrics of qualification in Prometheus. Observed only after the transaction that made the
fact committed (the handlers see to it)."""

from __future__ import annotations

from typing import get_args

from prometheus_client import Counter, Histogram

from kariz_qualification.domain.engagement import EngagementKind
from kariz_qualification.domain.lead import Outcome, ReopenedBy, Scoring, Trigger
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

engagement_signals = Counter(
    "kariz_qualification_engagement_signals_total",
    "Engagement signals taken, by kind (email_opened, ..., touched, reached); a repeat counts once",
    ["kind"],
    registry=registry,
)
reopened = Counter(
    "kariz_qualification_reopened_total",
    "Disqualified leads re-opened, by what re-opened them (manager, engagement)",
    ["by"],
    registry=registry,
)

# Every outcome and trigger starts at 0, so increase() and rates see the first decision too.
for _outcome in get_args(Outcome):
    decisions.labels(_outcome)
for _trigger in get_args(Trigger):
    scores.labels(_trigger)
for _kind in get_args(EngagementKind):
    engagement_signals.labels(_kind)
for _by in get_args(ReopenedBy):
    reopened.labels(_by)


class PrometheusMetrics:
    """The ``QualificationMetrics`` of a running service."""

    def scored(self, scoring: Scoring) -> None:
        scores.labels(scoring.trigger).observe(scoring.score)

    def decided(self, outcome: Outcome) -> None:
        decisions.labels(outcome).inc()

    def engaged(self, kind: EngagementKind) -> None:
        engagement_signals.labels(kind).inc()

    def reopened(self, by: ReopenedBy) -> None:
        reopened.labels(by).inc()
