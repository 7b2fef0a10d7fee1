"""The reports' storage in memory, for the use-case tests: the same handlers and queries, no database."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, date, tzinfo

from kariz_reports.domain.facts import Contribution, DealFacts, LeadFacts
from kariz_reports.domain.figures import DailyFigure, RowKey, bumps, moved
from kariz_reports.domain.plans import ForecastCall, Quota
from kariz_reports.service_layer.unit_of_work import ReportsUnitOfWork, Teams
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
        self.teams = teams or NoTeams()
        self.zone = zone
