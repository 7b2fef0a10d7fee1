"""The reports' storage in memory, for the use-case tests: the same handlers and queries, no database."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, date, datetime, tzinfo

from kariz_reports.domain.facts import Contribution, DealFacts, LeadFacts
from kariz_reports.domain.figures import DailyFigure, RowKey, bumps, moved
from kariz_reports.domain.plans import ForecastCall, Quota
from kariz_reports.domain.snapshots import Snapshot, SnapshotLine, line_of
from kariz_reports.service_layer.unit_of_work import ReportsUnitOfWork, Teams
from kariz_shared.contracts.errors import DuplicateRecord
from kariz_shared.persistence.in_memory import InMemoryUnitOfWork
from kariz_shared.runtime.clock import Clock


class InMemoryFacts:
    def __init__(self) -> None:
        self.leads: dict[str, LeadFacts] = {}
        self.deals: dict[str, DealFacts] = {}

    async def lead(self, lead_id: str) -> LeadFacts | None:
        return copy.deepcopy(self.leads.get(lead_id))

    async def deal(self, deal_id: str) -> DealFacts | None:
        return copy.deepcopy(self.deals.get(deal_id))

    async def deals_of(self, lead_id: str) -> list[DealFacts]:
        return [copy.deepcopy(d) for d in self.deals.values() if d.lead_id == lead_id]

    async def deals_by_id(self, deal_ids: Sequence[str]) -> list[DealFacts]:
        return [copy.deepcopy(self.deals[d]) for d in deal_ids if d in self.deals]

    async def forecast_deals(self, start: date | None, end: date | None) -> list[DealFacts]:
        counted = [(d, line_of(d)) for d in self.deals.values()]
        return [
            copy.deepcopy(d)
            for d, line in counted
            if line is not None
            and (start is None or start <= line.close)
            and (end is None or line.close < end)
        ]

    async def keep_lead(self, facts: LeadFacts) -> None:
        self.leads[facts.lead_id] = copy.deepcopy(facts)

    async def keep_deal(self, facts: DealFacts) -> None:
        self.deals[facts.deal_id] = copy.deepcopy(facts)


class InMemoryFigures:
    def __init__(self) -> None:
        self.by_key: dict[RowKey, DailyFigure] = {}

    async def change(self, retract: Sequence[Contribution], add: Sequence[Contribution]) -> None:
        for key, bump in bumps(retract, add).items():
            row = self.by_key.get(key) or DailyFigure(*key)
            self.by_key[key] = moved(row, bump)

    async def rows(
        self, metrics: Sequence[str], scope: str, dim: str, start: date | None, end: date
    ) -> list[DailyFigure]:
        return [
            copy.deepcopy(row)
            for (day, metric, s, d, _), row in self.by_key.items()
            if metric in metrics and s == scope and d == dim and (start is None or start <= day) and day < end
        ]


class InMemoryQuotas:
    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], Quota] = {}

    async def get(self, period: str, whom: str) -> Quota | None:
        return self.stored.get((period, whom))

    async def put(self, quota: Quota) -> None:
        self.stored[(quota.period, quota.whom)] = quota

    async def of_period(self, period: str) -> list[Quota]:
        return sorted((q for (p, _), q in self.stored.items() if p == period), key=lambda q: q.whom)


class InMemoryForecastCalls:
    def __init__(self) -> None:
        self.stored: list[ForecastCall] = []

    async def add(self, call: ForecastCall) -> None:
        self.stored.append(call)

    async def of_period(self, period: str) -> list[ForecastCall]:
        return sorted(
            (c for c in self.stored if c.period == period), key=lambda c: (c.at, c.id), reverse=True
        )


class InMemoryForecastSnapshots:
    def __init__(self) -> None:
        self.stored: dict[str, tuple[Snapshot, list[SnapshotLine]]] = {}

    async def get(self, snapshot_id: str) -> Snapshot | None:
        kept = self.stored.get(snapshot_id)
        return kept[0] if kept else None

    async def add(self, snapshot: Snapshot, lines: Sequence[SnapshotLine]) -> None:
        if snapshot.id in self.stored:
            raise DuplicateRecord(f"forecast snapshot {snapshot.id} is kept already", index="_id_")
        self.stored[snapshot.id] = (snapshot, list(lines))

    async def newest(self, before: datetime | None = None) -> Snapshot | None:
        return next(
            iter(s for s in await self.listing(len(self.stored)) if before is None or s.due_at < before), None
        )

    async def listing(self, limit: int) -> list[Snapshot]:
        return sorted((s for s, _ in self.stored.values()), key=lambda s: s.due_at, reverse=True)[:limit]

    async def lines(self, snapshot_id: str, start: date, end: date) -> list[SnapshotLine]:
        _, lines = self.stored[snapshot_id]
        return [line for line in lines if start <= line.close < end]


class NoTeams:
    def team_of(self, email: str) -> str | None:
        return None


class InMemoryReportsUnitOfWork(InMemoryUnitOfWork, ReportsUnitOfWork):
    not_state = InMemoryUnitOfWork.not_state | {"teams", "zone"}

    def __init__(self, clock: Clock | None = None, *, teams: Teams | None = None, zone: tzinfo = UTC) -> None:
        super().__init__(clock)
        self.facts = InMemoryFacts()
        self.figures = InMemoryFigures()
        self.quotas = InMemoryQuotas()
        self.calls = InMemoryForecastCalls()
        self.snapshots = InMemoryForecastSnapshots()
        self.teams = teams or NoTeams()
        self.zone = zone
