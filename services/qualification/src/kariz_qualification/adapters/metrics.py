"""Business metrics of qualification in Prometheus. Observed only after the transaction that made the
fact committed (the handlers see to it)."""

from __future__ import annotations

from typing import get_args

from prometheus_client import Counter, Gauge, Histogram

from kariz_qualification.domain.calibration import WinModel
from kariz_qualification.domain.engagement import EngagementKind
from kariz_qualification.domain.lead import REASON_KINDS, Decision, ReopenedBy, Scoring, Trigger
from kariz_qualification.domain.nurture import StopReason
from kariz_shared.contracts.events import NurtureStepKind
from kariz_shared.runtime.metrics import registry

# The reason is a kind (score, answers, engagement, existing_customer, hard_no, manual), never the
# reason's text: a rep's words would make a series per disqualification.
decisions = Counter(
    "kariz_qualification_decisions_total",
    "Qualification decisions, by outcome (qualified, disqualified) and the kind of reason (score, "
    "answers, engagement, existing_customer, hard_no, manual)",
    ["outcome", "reason"],
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
# Track names are the rule set's (an admin's few), so they are a bounded label.
nurture_steps_armed = Counter(
    "kariz_qualification_nurture_steps_armed_total",
    "Nurture steps armed as timers, by track and kind (content, task)",
    ["track", "kind"],
    registry=registry,
)
nurture_steps_fired = Counter(
    "kariz_qualification_nurture_steps_fired_total",
    "Nurture steps that fell due and were taken (the next one armed), by track and kind",
    ["track", "kind"],
    registry=registry,
)
nurture_stops = Counter(
    "kariz_qualification_nurture_stops_total",
    "Nurture tracks stopped, by reason (qualified, disqualified, merged, unsubscribed, completed, withdrawn)",
    ["reason"],
    registry=registry,
)
outcomes_closed = Counter(
    "kariz_qualification_outcomes_total",
    "Deals of qualified leads that closed, by result (won, lost): the closed loop's data",
    ["result"],
    registry=registry,
)
calibration_version = Gauge(
    "kariz_qualification_calibration_version",
    "The calibration in force (0: none yet; the rule score alone stands)",
    registry=registry,
)
calibration_trained = Gauge(
    "kariz_qualification_calibration_trained_timestamp_seconds",
    "When the calibration in force was trained (its age: time() - this)",
    registry=registry,
)
calibration_outcomes = Gauge(
    "kariz_qualification_calibration_outcomes",
    "How many closed outcomes the calibration in force was trained on",
    registry=registry,
)
calibration_auc = Gauge(
    "kariz_qualification_calibration_auc",
    "The calibration's out-of-sample AUC (0.5: a coin; 1: perfect)",
    registry=registry,
)
calibration_brier = Gauge(
    "kariz_qualification_calibration_brier",
    "The calibration's out-of-sample Brier score (lower is better)",
    registry=registry,
)

# Every outcome and trigger starts at 0, so increase() and rates see the first decision too.
for _outcome, _kinds in REASON_KINDS.items():
    for _kind in _kinds:
        decisions.labels(_outcome, _kind)
for _trigger in get_args(Trigger):
    scores.labels(_trigger)
for _kind in get_args(EngagementKind):
    engagement_signals.labels(_kind)
for _by in get_args(ReopenedBy):
    reopened.labels(_by)
for _reason in get_args(StopReason):
    nurture_stops.labels(_reason)
for _result in ("won", "lost"):
    outcomes_closed.labels(_result)


class PrometheusMetrics:
    """The ``QualificationMetrics`` of a running service."""

    def scored(self, scoring: Scoring) -> None:
        scores.labels(scoring.trigger).observe(scoring.score)

    def decided(self, decision: Decision) -> None:
        # "unknown": a decision stored before kinds were kept; one made now always has its kind.
        decisions.labels(decision.outcome, decision.reason_kind or "unknown").inc()

    def engaged(self, kind: EngagementKind) -> None:
        engagement_signals.labels(kind).inc()

    def reopened(self, by: ReopenedBy) -> None:
        reopened.labels(by).inc()

    def nurture_step_armed(self, track: str, kind: NurtureStepKind) -> None:
        nurture_steps_armed.labels(track, kind.value).inc()

    def nurture_step_fired(self, track: str, kind: NurtureStepKind) -> None:
        nurture_steps_fired.labels(track, kind.value).inc()

    def nurture_stopped(self, reason: StopReason) -> None:
        nurture_stops.labels(reason).inc()

    def outcome_closed(self, result: str) -> None:
        outcomes_closed.labels(result).inc()

    def calibrated(self, model: WinModel) -> None:
        calibration_version.set(model.number)
        calibration_trained.set(model.trained_at.timestamp())
        calibration_outcomes.set(model.outcomes)
        calibration_auc.set(model.auc)
        calibration_brier.set(model.brier)
