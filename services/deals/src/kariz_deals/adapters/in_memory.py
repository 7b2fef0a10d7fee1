"""The deals service's unit of work in memory, for the use-case tests: the same contracts as MongoDB
(one deal per lead, one account per company, a save over a stale version refused), no database.

Repositories keep copies, as a database would: a deal taken out is not the one stored, and what a deal
raised stays with the use case that made it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from kariz_deals.adapters.in_memory_objections import (
    InMemoryObjectionAnswerRepository,
    InMemoryObjectionRepository,
)
from kariz_deals.domain import Account, Deal, DealCriteria, PipelineScope, StageMove, StageTotal
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_shared.contracts.errors import DuplicateRecord
from kariz_shared.contracts.events import ObjectionCategory
from kariz_shared.persistence.in_memory import InMemoryUnitOfWork, InMemoryVersionedAggregates
from kariz_shared.persistence.lead_merges import InMemoryLeadMerges
from kariz_shared.runtime.clock import Clock


class InMemoryDealRepository(InMemoryVersionedAggregates[Deal]):
    async def for_lead(self, lead_id: str) -> Deal | None:
        return self.first(lambda d: d.lead_id == lead_id)

    async def of_lead(self, lead_id: str) -> list[Deal]:
        mine = [d for d in self.by_id.values() if d.lead_id == lead_id]
        return [copy.deepcopy(d) for d in sorted(mine, key=lambda d: (d.opened_at, d.id))]

    def add(self, deal: Deal) -> None:
        if any(d.qualified_lead == deal.qualified_lead for d in self.by_id.values()):
            raise DuplicateRecord(f"lead {deal.qualified_lead} has a deal already", index="opened_for_unique")
        self.keep(deal.id, deal)

    async def save(self, deal: Deal) -> None:
        stale = f"deal {deal.id} was changed by another request meanwhile; reload it and try again"
        self.keep_version(deal.id, deal, stale=stale)


class InMemoryAccountRepository:
    def __init__(self) -> None:
        self.by_id: dict[str, Account] = {}

    async def of_company(self, domain: str | None, name_key: str) -> Account | None:
        if domain:
            return next((a for a in self.by_id.values() if a.domain == domain), None)
        # As on MongoDB: the oldest account whose name reads the same, with a domain or without.
        named = [a for a in self.by_id.values() if a.name_key == name_key]
        return min(named, key=lambda a: (a.created_at, a.id), default=None)

    def add(self, account: Account) -> None:
        if any(a.key == account.key for a in self.by_id.values()):
            raise DuplicateRecord(f"an account for {account.key} exists already", index="key_unique")
        self.by_id[account.id] = account


@dataclass
class RecordingDealsMetrics:
    """What the metrics were told, once each unit committed."""

    opened_count: int = 0
    moves: list[StageMove] = field(default_factory=list)
    objections: list[ObjectionCategory] = field(default_factory=list)

    def opened(self) -> None:
        self.opened_count += 1

    def moved(self, move: StageMove) -> None:
        self.moves.append(move)

    def objection_recorded(self, category: ObjectionCategory) -> None:
        self.objections.append(category)


class InMemoryDealsUnitOfWork(InMemoryUnitOfWork, DealsUnitOfWork):
    not_state = InMemoryUnitOfWork.not_state | {"metrics"}

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(clock)
        self.deals: InMemoryDealRepository = InMemoryDealRepository()
        self.merges: InMemoryLeadMerges = InMemoryLeadMerges()
        self.accounts: InMemoryAccountRepository = InMemoryAccountRepository()
        self.metrics: RecordingDealsMetrics = RecordingDealsMetrics()
        self.objections: InMemoryObjectionRepository = InMemoryObjectionRepository()
        self.objection_answers: InMemoryObjectionAnswerRepository = InMemoryObjectionAnswerRepository()


class InMemoryDealReads:
    """The read side over an in-memory unit of work's deals and accounts; totals are counted over the
    deals (what MongoDB's totals must agree with)."""

    def __init__(self, uow: InMemoryDealsUnitOfWork) -> None:
        self.uow = uow

    async def deal(self, deal_id: str) -> Deal | None:
        return await self.uow.deals.get(deal_id)

    async def deals(self, where: DealCriteria, *, limit: int, offset: int) -> tuple[list[Deal], int]:
        return self.uow.deals.select(where.matches, lambda d: (d.opened_at, d.id), limit=limit, offset=offset)

    async def account(self, account_id: str) -> Account | None:
        return self.uow.accounts.by_id.get(account_id)

    async def stage_totals(self, scope: PipelineScope) -> Mapping[str, StageTotal]:
        counted: dict[str, tuple[int, Decimal]] = {}
        for deal in self.uow.deals.by_id.values():
            if scope.counts(deal):
                count, value = counted.get(deal.stage, (0, Decimal(0)))
                counted[deal.stage] = (count + 1, value + (deal.amount or Decimal(0)))
        return {stage: StageTotal(count, value) for stage, (count, value) in counted.items()}

    async def fold_totals(self) -> None:
        """Nothing to fold: the totals are counted on each read."""
