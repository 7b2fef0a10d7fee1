"""The deals service's unit of work in memory, for the use-case tests: the same contracts as MongoDB
(one deal per lead, one account per company, a save over a stale version refused), no database.

Repositories keep copies, as a database would: a deal taken out is not the one stored, and what a deal
raised stays with the use case that made it.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from kariz_deals.adapters.in_memory_objections import (
    InMemoryObjectionAnswerRepository,
    InMemoryObjectionRepository,
)
from kariz_deals.domain import (
    Account,
    Deal,
    DealCriteria,
    PipelineScope,
    PipelineVersion,
    StageMove,
    StageTotal,
)
from kariz_deals.domain.catalogue import PriceBook, Product
from kariz_deals.domain.contract import Contract
from kariz_deals.domain.quote import Quote
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_shared.contracts.errors import Conflict, DuplicateRecord
from kariz_shared.contracts.events import ObjectionCategory
from kariz_shared.contracts.versions import raced
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

    async def of_account(self, account_id: str) -> list[Deal]:
        return [copy.deepcopy(d) for d in self.by_id.values() if d.account.id == account_id]

    async def open_in_pipeline(self, pipeline: str) -> list[Deal]:
        mine = [d for d in self.by_id.values() if d.pipeline.name == pipeline and not d.is_closed]
        return [copy.deepcopy(d) for d in sorted(mine, key=lambda d: (d.opened_at, d.id))]


class InMemoryPipelineVersions:
    """Versions by (name, number); the default's version 0 is there from the start, as seeded."""

    def __init__(self, seeded: PipelineVersion) -> None:
        self.versions: dict[tuple[str, int], PipelineVersion] = {(seeded.name, 0): seeded}

    async def in_force(self, name: str) -> PipelineVersion | None:
        mine = [v for (n, _), v in self.versions.items() if n == name]
        return max(mine, key=lambda v: v.number, default=None)

    async def all_in_force(self) -> list[PipelineVersion]:
        names = sorted({n for n, _ in self.versions})
        return [v for n in names if (v := await self.in_force(n)) is not None]

    async def add(self, version: PipelineVersion) -> None:
        if (version.name, version.number) in self.versions:
            raise raced(f"pipeline {version.name!r}", version.number)
        self.versions[(version.name, version.number)] = version

    async def page(self, name: str, *, limit: int, offset: int) -> tuple[list[PipelineVersion], int]:
        mine = sorted((v for (n, _), v in self.versions.items() if n == name), key=lambda v: -v.number)
        return mine[offset : offset + limit], len(mine)


class InMemoryAccountRepository:
    def __init__(self) -> None:
        self.by_id: dict[str, Account] = {}

    async def of_company(self, domain: str | None, name_key: str) -> Account | None:
        if domain:
            return next((a for a in self.by_id.values() if a.domain == domain), None)
        # As on MongoDB: the oldest account whose name reads the same, with a domain or without.
        named = [a for a in self.by_id.values() if a.name_key == name_key]
        return min(named, key=lambda a: (a.created_at, a.id), default=None)

    async def get(self, account_id: str) -> Account | None:
        return self.by_id.get(account_id)

    def add(self, account: Account) -> None:
        if any(a.key == account.key for a in self.by_id.values()):
            raise DuplicateRecord(f"an account for {account.key} exists already", index="key_unique")
        self.by_id[account.id] = account


# --- the catalogue, quotes and contracts (issue E, e-quotes) ---------------------------------------


class InMemoryProductRepository:
    def __init__(self) -> None:
        self.by_sku: dict[str, Product] = {}

    async def get(self, sku: str) -> Product | None:
        return copy.deepcopy(self.by_sku.get(sku))

    async def of_skus(self, skus: set[str]) -> dict[str, Product]:
        return {sku: copy.deepcopy(p) for sku, p in self.by_sku.items() if sku in skus}

    async def page(self, *, limit: int, offset: int) -> tuple[list[Product], int]:
        ordered = [self.by_sku[sku] for sku in sorted(self.by_sku)]
        return copy.deepcopy(ordered[offset : offset + limit]), len(ordered)

    async def put(self, product: Product) -> None:
        kept = self.by_sku.get(product.sku)
        if (kept.version if kept is not None else 0) != product.version - 1:
            raise raced(f"product {product.sku!r}", product.version)
        self.by_sku[product.sku] = copy.deepcopy(product)


class InMemoryPriceBookRepository:
    def __init__(self) -> None:
        self.by_name: dict[str, PriceBook] = {}

    async def get(self, name: str) -> PriceBook | None:
        return copy.deepcopy(self.by_name.get(name))

    async def page(self, *, limit: int, offset: int) -> tuple[list[PriceBook], int]:
        ordered = [self.by_name[name] for name in sorted(self.by_name)]
        return copy.deepcopy(ordered[offset : offset + limit]), len(ordered)

    async def put(self, book: PriceBook) -> None:
        kept = self.by_name.get(book.name)
        if (kept.version if kept is not None else 0) != book.version - 1:
            raise raced(f"price book {book.name!r}", book.version)
        self.by_name[book.name] = copy.deepcopy(book)


class InMemoryQuoteRepository(InMemoryVersionedAggregates[Quote]):
    async def numbered(self, deal_id: str, number: int) -> Quote | None:
        return self.first(lambda q: q.deal_id == deal_id and q.number == number)

    async def of_deal(self, deal_id: str) -> list[Quote]:
        mine = sorted((q for q in self.by_id.values() if q.deal_id == deal_id), key=lambda q: q.number)
        return copy.deepcopy(mine)

    def add(self, quote: Quote) -> None:
        if any(q.deal_id == quote.deal_id and q.number == quote.number for q in self.by_id.values()):
            raise DuplicateRecord(
                f"deal {quote.deal_id} has a quote {quote.number} already", index="deal_number_unique"
            )
        self.keep(quote.id, quote)

    async def save(self, quote: Quote) -> None:
        stale = f"quote {quote.number} of deal {quote.deal_id} was changed meanwhile; reload it and try again"
        self.keep_version(quote.id, quote, stale=stale)


class InMemoryContractRepository:
    def __init__(self) -> None:
        self.by_deal: dict[str, Contract] = {}

    async def get(self, deal_id: str) -> Contract | None:
        return copy.deepcopy(self.by_deal.get(deal_id))

    async def put(self, contract: Contract) -> None:
        kept = self.by_deal.get(contract.deal_id)
        if contract.version != (kept.version if kept is not None else 0):
            raise Conflict(f"deal {contract.deal_id}'s contract was changed meanwhile; try again")
        contract.version += 1
        self.by_deal[contract.deal_id] = copy.deepcopy(contract)


@dataclass
class RecordingDealsMetrics:
    """What the metrics were told, once each unit committed."""

    opened_count: int = 0
    moves: list[StageMove] = field(default_factory=list)
    quote_moves: list[tuple[str | None, str]] = field(default_factory=list)
    objections: list[ObjectionCategory] = field(default_factory=list)

    def opened(self) -> None:
        self.opened_count += 1

    def moved(self, move: StageMove) -> None:
        self.moves.append(move)

    def quote_moved(self, from_status: str | None, to_status: str) -> None:
        self.quote_moves.append((from_status, to_status))

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
        self.pipelines: InMemoryPipelineVersions = InMemoryPipelineVersions(
            PipelineVersion.seeded(self.clock.now())
        )
        self.products: InMemoryProductRepository = InMemoryProductRepository()
        self.price_books: InMemoryPriceBookRepository = InMemoryPriceBookRepository()
        self.quotes: InMemoryQuoteRepository = InMemoryQuoteRepository()
        self.contracts: InMemoryContractRepository = InMemoryContractRepository()
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

    async def stalled_by_stage(self, at: datetime) -> Mapping[tuple[str, str], int]:
        stalled = Counter(
            (d.pipeline.name, d.stage) for d in self.uow.deals.by_id.values() if d.is_stalled(at)
        )
        return dict(stalled)
