"""What the use cases see of the reports' storage: the facts kept per lead and deal, the daily figures
they contribute to, and the organisation's calendar.

The implementations are in ``adapters.mongo`` (MongoDB) and ``adapters.in_memory`` (the use-case tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, tzinfo
from typing import Protocol

from kariz_reports.domain.facts import Contribution, DealFacts, LeadFacts
from kariz_reports.domain.figures import DailyFigure
from kariz_reports.domain.plans import ForecastCall, Quota
from kariz_reports.domain.snapshots import Snapshot, SnapshotLine
from kariz_shared.persistence.unit_of_work import UnitOfWork


class Facts(Protocol):
    """The per-lead and per-deal facts (``leads``, ``deals``), by id."""

    async def lead(self, lead_id: str) -> LeadFacts | None: ...

    async def deal(self, deal_id: str) -> DealFacts | None: ...

    async def deals_of(self, lead_id: str) -> list[DealFacts]:
        """The deals of a lead, so a dimension learnt late reaches their figures too."""
        ...

    async def deals_by_id(self, deal_ids: Sequence[str]) -> list[DealFacts]:
        """The deals of these ids that are known."""
        ...

    async def forecast_deals(self, start: date | None, end: date | None) -> list[DealFacts]:
        """The open deals that count in a forecast (a close date, a counted category) closing on days
        ``start <= day < end`` (without bounds: all of them)."""
        ...

    async def keep_lead(self, facts: LeadFacts) -> None: ...

    async def keep_deal(self, facts: DealFacts) -> None: ...


class Figures(Protocol):
    """The daily figures, per day x metric x scope x dimension value."""

    async def change(self, retract: Sequence[Contribution], add: Sequence[Contribution]) -> None:
        """Take ``retract`` out of the figures they were added to and add ``add``."""
        ...

    async def rows(
        self, metrics: Sequence[str], scope: str, dim: str, start: date | None, end: date
    ) -> list[DailyFigure]:
        """The rows of ``metrics`` for ``scope`` and dimension ``dim``, days ``start <= day < end``
        (from the first day when ``start`` is None)."""
        ...


class Quotas(Protocol):
    """The quotas (``quotas``, one per period and whom, its history inside), outside the generations."""

    async def get(self, period: str, whom: str) -> Quota | None: ...

    async def put(self, quota: Quota) -> None: ...

    async def of_period(self, period: str) -> list[Quota]: ...


class ForecastCalls(Protocol):
    """The forecast calls (``forecast_calls``), every submission kept, outside the generations."""

    async def add(self, call: ForecastCall) -> None: ...

    async def of_period(self, period: str) -> list[ForecastCall]:
        """Every call for ``period``, newest first."""
        ...


class ForecastSnapshots(Protocol):
    """The forecast snapshots (``forecast_snapshots``, their lines in ``forecast_snapshot_deals``): the
    reports' own history, outside the generations."""

    async def get(self, snapshot_id: str) -> Snapshot | None: ...

    async def add(self, snapshot: Snapshot, lines: Sequence[SnapshotLine]) -> None: ...

    async def newest(self, before: datetime | None = None) -> Snapshot | None:
        """The snapshot due last (before ``before``, when given)."""
        ...

    async def listing(self, limit: int) -> list[Snapshot]:
        """The newest ``limit`` snapshots, newest first."""
        ...

    async def lines(self, snapshot_id: str, start: date, end: date) -> list[SnapshotLine]:
        """The snapshot's lines closing on days ``start <= day < end``."""
        ...


class Teams(Protocol):
    def team_of(self, email: str) -> str | None: ...


class PlansUnitOfWork(UnitOfWork):
    """Quotas and forecast calls: what a write of the reports' API changes."""

    quotas: Quotas
    calls: ForecastCalls
    snapshots: ForecastSnapshots


class ReportsUnitOfWork(PlansUnitOfWork):
    facts: Facts
    figures: Figures
    #: The roster as it is now: the team a rep's figures count for.
    teams: Teams
    #: The organisation's time zone: figures are kept per local day.
    zone: tzinfo
