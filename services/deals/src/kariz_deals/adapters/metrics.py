"""Business metrics of the deals service. Labels are bounded (stage names, outcomes, loss-reason codes),
never ids, owners or free text. Amounts are in the deployment's currency (``KARIZ_DEAL_CURRENCY``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Gauge, Histogram

from kariz_deals.domain import Pipeline, PipelineSummary, StageMove
from kariz_deals.domain.quote import TRANSITIONS, QuoteStatus
from kariz_shared.contracts.events import ObjectionCategory

# A stage can last minutes (a demo booked at once) or months (an enterprise contract).
DURATION_BUCKETS = tuple(
    float(seconds)
    for seconds in (
        60,
        600,
        3600,
        4 * 3600,
        86400,
        2 * 86400,
        4 * 86400,
        7 * 86400,
        14 * 86400,
        30 * 86400,
        60 * 86400,
        90 * 86400,
        180 * 86400,
        365 * 86400,
    )
)

# A lost deal's reason is free text; the metric takes its leading code (``"competitor: chose Acme"``) when it
# is one of these, and ``other`` otherwise, so the label set stays bounded.
LOSS_REASONS = frozenset(
    {"price", "competitor", "no_budget", "no_decision", "timing", "product_fit", "lost_contact"}
)

deals_opened = Counter("kariz_deals_opened_total", "Deals opened from qualified leads")
stage_transitions = Counter(
    "kariz_deals_stage_transitions_total", "Deals moved from one stage to another", ["from_stage", "to_stage"]
)
deals_won = Counter("kariz_deals_won_total", "Deals closed won")
won_amount = Counter("kariz_deals_won_amount_total", "Sum of the amounts of deals closed won")
deals_lost = Counter(
    "kariz_deals_lost_total",
    "Deals closed lost, by the stage they were lost at and the reason's code",
    ["lost_at_stage", "reason"],
)
lost_amount = Counter(
    "kariz_deals_lost_amount_total", "Sum of the amounts of deals closed lost (deals without one count 0)"
)
stage_duration = Histogram(
    "kariz_deals_stage_duration_seconds",
    "Time a deal spent in a stage, observed when it leaves the stage",
    ["stage"],
    buckets=DURATION_BUCKETS,
)
cycle_duration = Histogram(
    "kariz_deals_cycle_duration_seconds",
    "Sales-cycle length: from deal opened to closed, by outcome (won, lost)",
    ["outcome"],
    buckets=DURATION_BUCKETS,
)
pipeline_deals = Gauge(
    "kariz_deals_pipeline_deals", "Deals in each stage now (read from the database)", ["pipeline", "stage"]
)
pipeline_value = Gauge(
    "kariz_deals_pipeline_value", "Sum of deal amounts in each stage now", ["pipeline", "stage"]
)
pipeline_weighted_value = Gauge(
    "kariz_deals_pipeline_weighted_value",
    "Sum of deal amounts in each stage weighted by the stage's win probability",
    ["pipeline", "stage"],
)
objections_recorded = Counter(
    "kariz_deals_objections_total", "Objections recorded on deals, by category", ["category"]
)
for _category in ObjectionCategory:
    objections_recorded.labels(_category.value)

# Quotes by status: each committed change, from (``new`` for a quote just made) and to a status.
quote_transitions = Counter(
    "kariz_deals_quote_transitions_total",
    "Quotes moved from one status to another (from_status new: a quote made)",
    ["from_status", "to_status"],
)
for _from, _tos in TRANSITIONS.items():
    for _to in _tos:
        quote_transitions.labels(_from.value, _to.value)
for _first in (QuoteStatus.DRAFT, QuoteStatus.AWAITING_APPROVAL):
    quote_transitions.labels("new", _first.value)

# Known label values start at 0, so increase() and rates see the first occurrence too (the stages' own
# are set up by PrometheusDealsMetrics for the pipeline it is given).
for _outcome in ("won", "lost"):
    cycle_duration.labels(_outcome)


def reason_code(reason: str | None) -> str:
    code = re.sub(r"[^a-z0-9]+", "_", (reason or "").split(":", 1)[0].strip().lower()).strip("_")
    return code if code in LOSS_REASONS else "other"


class PrometheusDealsMetrics:
    """The deals metrics of one pipeline (the one deals are opened in). Prometheus keeps one registry per
    process, so every instance counts into the same series."""

    def __init__(self, pipeline: Pipeline) -> None:
        for stage in pipeline.open_stages:
            stage_duration.labels(stage.name)
            # A deal moves from an open stage to any other (forward, back, or to a close).
            for to in pipeline.stages:
                if to.name != stage.name:
                    stage_transitions.labels(stage.name, to.name)
            # A deal is lost from an open stage; without these, the first loss after a restart would be a
            # new series whose first sample is 1, which increase() does not count (the win rate would
            # show no data).
            for reason in (*sorted(LOSS_REASONS), "other"):
                deals_lost.labels(stage.name, reason)

    def opened(self) -> None:
        deals_opened.inc()

    def moved(self, move: StageMove) -> None:
        record_move(move)

    def record_pipeline(self, summary: PipelineSummary) -> None:
        record_pipeline(summary)

    def quote_moved(self, from_status: str | None, to_status: str) -> None:
        quote_transitions.labels(from_status or "new", to_status).inc()

    def objection_recorded(self, category: ObjectionCategory) -> None:
        objections_recorded.labels(category.value).inc()


def record_move(move: StageMove) -> None:
    """Count a committed move."""
    stage_transitions.labels(move.from_stage, move.to_stage).inc()
    stage_duration.labels(move.from_stage).observe(move.seconds_in_from_stage)
    if move.won:
        deals_won.inc()
        won_amount.inc(float(move.amount or 0))
    elif move.lost:
        deals_lost.labels(move.from_stage, reason_code(move.reason)).inc()
        lost_amount.inc(float(move.amount or 0))
    if move.cycle_seconds is not None:
        cycle_duration.labels("won" if move.won else "lost").observe(move.cycle_seconds)


def record_pipeline(summary: PipelineSummary) -> None:
    for stage in summary.stages:
        labels = (summary.pipeline.name, stage.stage.name)
        pipeline_deals.labels(*labels).set(stage.count)
        pipeline_value.labels(*labels).set(float(stage.value))
        pipeline_weighted_value.labels(*labels).set(float(stage.weighted_value))


# --- stalled deals ----------------------------------------------------------------------------------

stalled_deals = Gauge(
    "kariz_deals_stalled",
    "Open deals past their stage's rot limit now, by pipeline and stage (read from the database)",
    ["pipeline", "stage"],
)


class StalledGauge:
    """``kariz_deals_stalled`` from each count; a stage that had stalled deals and has none now reads 0
    (a series left at its last value would show deals that moved on long ago)."""

    def __init__(self, pipelines: Iterable[Pipeline] = ()) -> None:
        # The known stages start at 0, so the dashboard and the alert see a series before a deal stalls.
        self.shown: set[tuple[str, str]] = {(p.name, s.name) for p in pipelines for s in p.open_stages}
        for labels in self.shown:
            stalled_deals.labels(*labels).set(0)

    def record(self, counts: Mapping[tuple[str, str], int]) -> None:
        for labels in self.shown - set(counts):
            stalled_deals.labels(*labels).set(0)
        for labels, count in counts.items():
            stalled_deals.labels(*labels).set(count)
        self.shown |= set(counts)
