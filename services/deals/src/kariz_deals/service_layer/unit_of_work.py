"""What the use cases see of the deals service's storage: the unit of work and its repositories'
contracts.

The MongoDB adapter (:mod:`kariz_deals.adapters.mongo`) and the in-memory one
(:mod:`kariz_deals.adapters.in_memory`) both honour these contracts; the use-case tests run on the
second.
"""

from __future__ import annotations

from typing import Protocol

from kariz_deals.domain import Account, Deal, PipelineVersion, StageMove
from kariz_deals.domain.catalogue import PriceBook, Product
from kariz_deals.domain.contract import Contract
from kariz_deals.domain.objection import Objection, ObjectionAnswer, Outcome
from kariz_deals.domain.quote import Quote
from kariz_shared.contracts.aggregate import Aggregate
from kariz_shared.contracts.events import ObjectionCategory
from kariz_shared.persistence.lead_merges import LeadMerges
from kariz_shared.persistence.unit_of_work import UnitOfWork


class DealRepository(Protocol):
    """Deals, by id and by their lead. One deal per qualified lead (``Deal.opened_for``); a lead may have
    more after a merge in leads moved the duplicate's deals to the survivor."""

    async def get(self, deal_id: str) -> Deal | None:
        """The deal as stored, or None."""
        ...

    async def for_lead(self, lead_id: str) -> Deal | None:
        """A deal of the lead (its deal, but for a survivor of a merge): stored, or added earlier in this
        unit; None if it has none.

        Meant for the consumed ``LeadQualified`` events of a batch: on MongoDB the first call reads the
        deals of all the batch's leads at once."""
        ...

    async def of_lead(self, lead_id: str) -> list[Deal]:
        """Every stored deal of the lead, oldest first (a merge moves them all)."""
        ...

    def add(self, deal: Deal) -> None:
        """Take a new deal in; it is written when the unit commits (with the batch's other new deals).
        A second deal opened for the same qualified lead fails the unit with ``DuplicateRecord``."""
        ...

    async def save(self, deal: Deal) -> None:
        """Write a loaded deal back; ``Conflict`` if it changed since it was loaded."""
        ...

    async def open_in_pipeline(self, pipeline: str) -> list[Deal]:
        """Every open deal of the pipeline (a new version of it is followed by them all)."""
        ...

    async def of_account(self, account_id: str) -> list[Deal]:
        """Every stored deal of the account (whose they are says who may open more for it)."""
        ...


class AccountRepository(Protocol):
    """Accounts: one per company, known by its web domain or, without one, by its name."""

    async def of_company(self, domain: str | None, name_key: str) -> Account | None:
        """The company's account: by ``domain`` when there is one, else the oldest whose name reads
        ``name_key``; accounts added earlier in this unit count too. On MongoDB the first ask by domain
        reads the accounts of all the batch's companies at once."""
        ...

    async def get(self, account_id: str) -> Account | None:
        """The account as stored, or None."""
        ...

    def add(self, account: Account) -> None:
        """Take a new account in; it is written when the unit commits. A second account for the same
        domain (or name, without one) fails the unit with ``DuplicateRecord``."""
        ...


class PipelineVersionRepository(Protocol):
    """The pipelines' versions, stored for good; the newest of each name is in force. ``default``'s
    version 0 is the built-in pipeline, in force until an admin replaces it."""

    async def in_force(self, name: str) -> PipelineVersion | None:
        """The version in force of pipeline ``name``, or None when there is no such pipeline."""
        ...

    async def all_in_force(self) -> list[PipelineVersion]:
        """The version in force of every pipeline, by name (read once per unit of work)."""
        ...

    async def add(self, version: PipelineVersion) -> None:
        """Store a new version; one that another unit stored first with the same number is refused (409)."""
        ...

    async def page(self, name: str, *, limit: int, offset: int) -> tuple[list[PipelineVersion], int]:
        """The versions of pipeline ``name``, newest first, and how many there are."""


# --- the catalogue, quotes and contracts (issue E, e-quotes) ---------------------------------------


class ProductRepository(Protocol):
    """The catalogue's products, by SKU."""

    async def get(self, sku: str) -> Product | None: ...

    async def of_skus(self, skus: set[str]) -> dict[str, Product]:
        """The stored products of ``skus`` (those the catalogue lacks are left out), read at once."""
        ...

    async def page(self, *, limit: int, offset: int) -> tuple[list[Product], int]:
        """One page of the products by SKU, and how many there are."""
        ...

    async def put(self, product: Product) -> None:
        """Store the product in place of its previous version (``product.version`` - 1; version 1 is
        new); ``Conflict`` when another edit stored that version's successor first."""
        ...


class PriceBookRepository(Protocol):
    """Price books, by name."""

    async def get(self, name: str) -> PriceBook | None: ...

    async def page(self, *, limit: int, offset: int) -> tuple[list[PriceBook], int]: ...

    async def put(self, book: PriceBook) -> None:
        """As ``ProductRepository.put``: over its previous version, or ``Conflict``."""
        ...


class QuoteRepository(Protocol):
    """Quotes, by deal and number (unique per deal)."""

    async def get(self, quote_id: str) -> Quote | None: ...

    async def numbered(self, deal_id: str, number: int) -> Quote | None:
        """The deal's quote of that number, or None."""
        ...

    async def of_deal(self, deal_id: str) -> list[Quote]:
        """Every quote of the deal, by number."""
        ...

    def add(self, quote: Quote) -> None:
        """Take a new quote in; a second quote with the same number for the deal fails the unit with
        ``DuplicateRecord``."""
        ...

    async def save(self, quote: Quote) -> None:
        """Write a loaded quote back; ``Conflict`` if it changed since it was loaded."""
        ...


class ContractRepository(Protocol):
    """A deal's contract (its signature request), by deal."""

    async def get(self, deal_id: str) -> Contract | None: ...

    async def put(self, contract: Contract) -> None:
        """Store the contract over the version it was read at (a new one at version 0); ``Conflict``
        if it changed meanwhile."""


class ObjectionRepository(Protocol):
    """Objections on deals, by id and by deal."""

    async def get(self, objection_id: str) -> Objection | None: ...

    async def of_deal(self, deal_id: str) -> list[Objection]:
        """The deal's objections, oldest first."""
        ...

    async def add(self, objection: Objection) -> None: ...

    async def save(self, objection: Objection) -> None:
        """Write a loaded objection back; ``Conflict`` if it changed since it was loaded."""
        ...


class ObjectionAnswerRepository(Protocol):
    """The library of standard answers. Its usage and outcomes move by atomic updates, not by saves of
    a loaded answer: two reps giving a popular answer at once never refuse each other, and a curator's
    edit (a versioned save) never undoes a count."""

    async def get(self, answer_id: str) -> ObjectionAnswer | None: ...

    async def search(
        self, text: str | None, category: ObjectionCategory | None, *, limit: int, offset: int
    ) -> tuple[list[ObjectionAnswer], int]:
        """One page of the answers that match (``ObjectionAnswer.matches``), by category and title."""
        ...

    async def add(self, answer: ObjectionAnswer) -> None: ...

    async def save(self, answer: ObjectionAnswer) -> None:
        """Write a revised answer's words over the version loaded; ``Conflict`` if it moved on."""
        ...

    async def count_use(self, answer_id: str) -> None:
        """It was given to an objection once more."""
        ...

    async def count_outcome(self, answer_id: str, deal_id: str, outcome: Outcome) -> None:
        """A deal it was given on closed with ``outcome``; once per deal (a second count changes nothing)."""
        ...


class DealsMetrics(Protocol):
    """The business metrics; observed only once the unit that made the fact committed."""

    def opened(self) -> None: ...

    def moved(self, move: StageMove) -> None: ...

    def quote_moved(self, from_status: str | None, to_status: str) -> None:
        """A quote changed status (from None: it was made)."""
        ...

    def objection_recorded(self, category: ObjectionCategory) -> None: ...


class DealsUnitOfWork(UnitOfWork):
    deals: DealRepository
    merges: LeadMerges
    accounts: AccountRepository
    metrics: DealsMetrics
    pipelines: PipelineVersionRepository
    products: ProductRepository
    price_books: PriceBookRepository
    quotes: QuoteRepository
    contracts: ContractRepository
    objections: ObjectionRepository
    objection_answers: ObjectionAnswerRepository

    def publish(self, *aggregates: Aggregate) -> None:
        """Emit what each aggregate raised. A deal's events continue its lead's story whoever moved it
        (a rep over HTTP, days later): they carry the correlation id kept with the deal."""
        for aggregate in aggregates:
            story = aggregate.correlation_id if isinstance(aggregate, Deal) else None
            for event in aggregate.pull_events():
                self.emit(event, correlation_id=story)
