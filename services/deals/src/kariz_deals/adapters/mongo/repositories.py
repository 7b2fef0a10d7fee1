"""The deals service's repositories on MongoDB, and its read side.

The repositories work inside the unit of work's transaction (``session=`` on every call) and hide its
batching: a consumed batch's deals and accounts are read with one ``$in`` each
(``Transaction.find_one_for_batch``), new ones are written with one ``insert_many`` per collection at
commit (``insert_later``), and found again before that (``queued``). Every write of a deal adds its
change to the transaction's one pipeline delta. :class:`MongoDealReads` reads outside any transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pymongo import ASCENDING, DESCENDING

from kariz_deals.adapters.mongo import pipeline_totals
from kariz_deals.adapters.mongo.documents import (
    ACCOUNTS,
    DEALS,
    Document,
    account_from_document,
    account_to_document,
    deal_filter,
    deal_from_document,
    deal_to_document,
)
from kariz_deals.domain import LOST, WON, Account, Deal, DealCriteria, PipelineScope, StageTotal
from kariz_deals.domain.account import account_key, normalise_domain
from kariz_shared.contracts.errors import Conflict
from kariz_shared.contracts.events import Event, lead_id_of
from kariz_shared.persistence.store import Store, Transaction, find_page

# --- writes, inside a transaction -----------------------------------------------------------------


class MongoDealRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.deals = tx.db[DEALS]
        # Each deal as read, so a save knows what the pipeline totals hold of it without a read.
        self._as_read: dict[str, Document] = {}

    async def get(self, deal_id: str) -> Deal | None:
        doc = await self.deals.find_one({"_id": deal_id}, session=self.tx.session)
        return self._read(doc)

    def _read(self, doc: Document | None) -> Deal | None:
        if doc is None:
            return None
        self._as_read[doc["_id"]] = doc
        return deal_from_document(doc)

    async def for_lead(self, lead_id: str) -> Deal | None:
        queued = [d for d in self.tx.queued(DEALS) if d["lead_id"] == lead_id]
        doc = (
            queued[0]
            if queued
            # Read with the deals of the batch's other leads (one of them: a survivor may have several).
            else await self.tx.find_one_for_batch(DEALS, "lead_id", lead_id, of_event=lead_id_of)
        )
        return self._read(doc)

    async def of_lead(self, lead_id: str) -> list[Deal]:
        # Along the lead_opened index; a lead has a deal or two, sorted here.
        docs = await self.deals.find({"lead_id": lead_id}, session=self.tx.session).to_list()
        deals = [deal for doc in docs if (deal := self._read(doc)) is not None]
        return sorted(deals, key=lambda deal: (deal.opened_at, deal.id))

    def add(self, deal: Deal) -> None:
        """Insert a new deal when the transaction commits, together with the batch's other new deals."""
        doc = deal_to_document(deal)
        self.tx.insert_later(DEALS, doc)
        pipeline_totals.record_change(self.tx, None, doc)

    async def save(self, deal: Deal) -> None:
        """Write the deal over the version it was read at; a newer one means it moved meanwhile."""
        read_version = deal.version
        doc = deal_to_document(deal)
        doc["version"] = read_version + 1
        before = self._as_read.get(deal.id) or await self.deals.find_one(
            {"_id": deal.id}, session=self.tx.session
        )
        result = await self.deals.replace_one(
            {"_id": deal.id, "version": read_version}, doc, session=self.tx.session
        )
        if result.matched_count != 1 or before is None:
            raise Conflict(
                f"deal {deal.id} was changed by another request meanwhile; reload it and try again"
            )
        # The version replaced is the one read (a save replaces only that version).
        pipeline_totals.record_change(self.tx, before, doc)
        self._as_read[deal.id] = doc
        deal.version = read_version + 1

    async def of_account(self, account_id: str) -> list[Deal]:
        # Along the account_opened index; an account has a few deals.
        docs = await self.deals.find({"account.id": account_id}, session=self.tx.session).to_list()
        return [deal for doc in docs if (deal := self._read(doc)) is not None]

    async def open_in_pipeline(self, pipeline: str) -> list[Deal]:
        # Along the pipeline_stage index; a new version of a pipeline is rare, its deals are read once.
        docs = await self.deals.find(
            {"pipeline": pipeline, "stage": {"$nin": [WON, LOST]}}, session=self.tx.session
        ).to_list()
        deals = [deal for doc in docs if (deal := self._read(doc)) is not None]
        return sorted(deals, key=lambda deal: (deal.opened_at, deal.id))


def _account_key_of(event: Event) -> str | None:
    """The account key of the event's company, when it has a domain (as ``Account.for_company`` makes it)."""
    company = getattr(event, "company", None)
    domain = normalise_domain(company.domain) if company is not None else None
    return account_key(domain, "") if domain else None


class MongoAccountRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.accounts = tx.db[ACCOUNTS]

    async def of_company(self, domain: str | None, name_key: str) -> Account | None:
        # Accounts this transaction added are newer than any stored, so they count only when none is.
        queued = [
            d
            for d in self.tx.queued(ACCOUNTS)
            if (d["key"] == f"domain:{domain}" if domain else d["name_key"] == name_key)
        ]
        if domain:
            # Read with the accounts of the batch's other companies (the key is unique).
            doc = await self.tx.find_one_for_batch(
                ACCOUNTS, "key", account_key(domain, name_key), of_event=_account_key_of
            )
        else:
            doc = await self.accounts.find_one(
                {"name_key": name_key},
                sort=[("created_at", ASCENDING), ("_id", ASCENDING)],
                session=self.tx.session,
            )
        if doc is None and queued:
            doc = queued[0]
        return account_from_document(doc) if doc else None

    async def get(self, account_id: str) -> Account | None:
        doc = await self.accounts.find_one({"_id": account_id}, session=self.tx.session)
        return account_from_document(doc) if doc else None

    def add(self, account: Account) -> None:
        # The unique key makes a second replica opening the same company at the same time fail and retry.
        self.tx.insert_later(ACCOUNTS, account_to_document(account))


# --- reads, for the API and the gauges ------------------------------------------------------------


class MongoDealReads:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def deal(self, deal_id: str) -> Deal | None:
        doc = await self.store.db[DEALS].find_one({"_id": deal_id})
        return deal_from_document(doc) if doc else None

    async def deals(self, where: DealCriteria, *, limit: int, offset: int) -> tuple[list[Deal], int]:
        docs, total = await find_page(
            self.store.db[DEALS],
            deal_filter(where),
            sort=[("opened_at", DESCENDING), ("_id", DESCENDING)],
            limit=limit,
            offset=offset,
        )
        return [deal_from_document(d) for d in docs], total

    async def account(self, account_id: str) -> Account | None:
        doc = await self.store.db[ACCOUNTS].find_one({"_id": account_id})
        return account_from_document(doc) if doc else None

    async def stage_totals(self, scope: PipelineScope) -> Mapping[str, StageTotal]:
        return await pipeline_totals.stage_totals(self.store.db, scope)

    async def fold_totals(self) -> None:
        await pipeline_totals.compact_all(self.store)

    async def stalled_by_stage(self, at: datetime) -> Mapping[tuple[str, str], int]:
        # Along the rots_at index: only deals with a stall clock have the field set.
        counted = await self.store.db[DEALS].aggregate(
            [
                {"$match": {"rots_at": {"$lte": at}}},
                {"$group": {"_id": {"pipeline": "$pipeline", "stage": "$stage"}, "count": {"$sum": 1}}},
            ]
        )
        return {(d["_id"]["pipeline"], d["_id"]["stage"]): d["count"] async for d in counted}
