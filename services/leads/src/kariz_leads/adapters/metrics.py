"""Business metrics of lead capture in Prometheus. Labels are bounded: the source is one of a fixed set.
Counted only after the unit of work that made the fact committed (the handlers see to it)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prometheus_client import Counter, Gauge

from kariz_leads.adapters.mongo.repositories import newest_capture
from kariz_shared.contracts.events import ActivityChannel, ActivityOutcome, LeadSource
from kariz_shared.persistence.store import Store
from kariz_shared.runtime.metrics import registry

captured = Counter(
    "kariz_leads_captured_total", "New leads captured, by source", ["source"], registry=registry
)
duplicates = Counter(
    "kariz_leads_duplicates_total",
    "Captures of a contact that already was a lead (recorded as a touch), by source",
    ["source"],
    registry=registry,
)
last_captured = Gauge(
    "kariz_leads_last_captured_timestamp_seconds",
    "Unix time of the newest lead captured (read from the database; 0 before the first lead)",
    registry=registry,
)

activities = Counter(
    "kariz_leads_activities_total",
    "Activities logged on leads, by channel and outcome",
    ["channel", "outcome"],
    registry=registry,
)

merges = Counter(
    "kariz_leads_merges_total",
    "Duplicate leads merged into another record of the same person",
    registry=registry,
)
queued = Counter(
    "kariz_leads_queued_total",
    "New leads an assignment rule gave a team none of whose reps was available (the team's queue), by team",
    ["team"],
    registry=registry,
)

# Every source starts at 0, so increase() and rates see a lead's first capture from a source too.
for _source in LeadSource:
    captured.labels(_source.value)
    duplicates.labels(_source.value)
for _channel in ActivityChannel:
    for _outcome in ActivityOutcome:
        activities.labels(_channel.value, _outcome.value)


def start_queues_at_zero(teams: Iterable[str]) -> None:
    """The queue counter of each team known at start (KARIZ_TEAMS) starts at 0: a first queued lead
    counts in increase(); a team only the rules name gets its series with its first queued lead."""
    for team in teams:
        queued.labels(team)


class PrometheusMetrics:
    """The ``LeadsMetrics`` of a running service."""

    def captured(self, source: LeadSource) -> None:
        captured.labels(source.value).inc()

    def touched(self, source: LeadSource) -> None:
        duplicates.labels(source.value).inc()

    def activity_logged(self, channel: ActivityChannel, outcome: ActivityOutcome) -> None:
        activities.labels(channel.value, outcome.value).inc()

    def queued(self, team: str) -> None:
        # Teams are the admins' (the assignment rules'), so the label stays bounded.
        queued.labels(team).inc()

    def merged(self) -> None:
        merges.inc()


class NewestCaptureGauge:
    """``kariz_leads_last_captured_timestamp_seconds``, refreshed from the database. It remembers its
    last answer and looks only at leads captured since (leads are never deleted)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.newest: datetime | None = None

    async def refresh(self) -> None:
        self.newest = await newest_capture(self.store.db, since=self.newest)
        last_captured.set(self.newest.timestamp() if self.newest else 0)
