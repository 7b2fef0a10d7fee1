"""Deals and accounts in MongoDB.

Writes go through the repositories, which work inside a :class:`Transaction` (``session=`` on every
call). Reads for the API go through :class:`DealReader`, outside any transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from kariz_deals.adapters import pipeline_totals
from kariz_deals.domain import Account, AccountRef, Deal, StageTotal, StageVisit, pipeline_named
from kariz_deals.domain.account import account_key, normalise_domain
from kariz_shared.contracts.errors import Conflict
from kariz_shared.contracts.events import Event, lead_id_of
from kariz_shared.persistence.store import Store, Transaction, find_page

DEALS = "deals"
ACCOUNTS = "accounts"

Document = dict[str, Any]


async def ensure_indexes(store: Store) -> None:
    """One index per query the service makes; the unique lead_id backs "one deal per qualified lead"."""
    deals = store.db[DEALS]
    await deals.create_index([("lead_id", ASCENDING)], unique=True, name="lead_id_unique")
    await deals.create_index([("opened_at", DESCENDING), ("_id", DESCENDING)], name="opened")
    await deals.create_index([("owner", ASCENDING), ("opened_at", DESCENDING)], name="owner_opened")
    await deals.create_index([("stage", ASCENDING), ("opened_at", DESCENDING)], name="stage_opened")
    await deals.create_index([("account.id", ASCENDING), ("opened_at", DESCENDING)], name="account_opened")
    accounts = store.db[ACCOUNTS]
    await accounts.create_index([("key", ASCENDING)], unique=True, name="key_unique")
    await accounts.create_index([("name_key", ASCENDING), ("created_at", ASCENDING)], name="name_key_created")


async def ensure_pipeline_totals(store: Store) -> None:
    """Count the deals once into the pipeline totals where an earlier version never did."""
    await pipeline_totals.build(store, DEALS)


# --- mapping --------------------------------------------------------------------------------------


def deal_to_document(deal: Deal) -> Document:
    return {
        "_id": deal.id,
        "lead_id": deal.lead_id,
        "account": {"id": deal.account.id, "name": deal.account.name, "domain": deal.account.domain},
        "owner": deal.owner,
        "pipeline": deal.pipeline.name,
        "stage": deal.stage,
        "amount": deal.amount,
        "currency": deal.currency,
        "correlation_id": deal.correlation_id,
        "opened_at": deal.opened_at,
        "closed_at": deal.closed_at,
        "lost_reason": deal.lost_reason,
        "history": [
            {"stage": v.stage, "entered_at": v.entered_at, "left_at": v.left_at, "note": v.note}
            for v in deal.history
        ],
        "contact": deal.contact,
        "source": deal.source,
        "version": deal.version,
    }


def deal_from_document(doc: Document) -> Deal:
    account = doc["account"]
    return Deal(
        id=doc["_id"],
        lead_id=doc["lead_id"],
        account=AccountRef(account["id"], account["name"], account.get("domain")),
        owner=doc["owner"],
        pipeline=pipeline_named(doc["pipeline"]),
        stage=doc["stage"],
        amount=doc.get("amount"),
        currency=doc["currency"],
        correlation_id=doc["correlation_id"],
        opened_at=doc["opened_at"],
        closed_at=doc.get("closed_at"),
        lost_reason=doc.get("lost_reason"),
        history=[
            StageVisit(v["stage"], v["entered_at"], v.get("left_at"), v.get("note")) for v in doc["history"]
        ],
        version=doc.get("version", 0),
        contact=doc.get("contact") or {},
        source=doc.get("source"),
    )


def account_to_document(account: Account) -> Document:
    return {
        "_id": account.id,
        "key": account.key,
        "name": account.name,
        "domain": account.domain,
        "name_key": account.name_key,
        "industry": account.industry,
        "size": account.size,
        "country": account.country,
        "created_at": account.created_at,
    }


def account_from_document(doc: Document) -> Account:
    return Account(
        id=doc["_id"],
        name=doc["name"],
        domain=doc.get("domain"),
        name_key=doc["name_key"],
        created_at=doc["created_at"],
        industry=doc.get("industry"),
        size=doc.get("size"),
        country=doc.get("country"),
    )


# --- writes, inside a transaction -----------------------------------------------------------------


class DealRepository:
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
            # Read with the deals of the batch's other leads (lead_id is unique).
            else await self.tx.find_one_for_batch(DEALS, "lead_id", lead_id, of_event=lead_id_of)
        )
        return self._read(doc)

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


def _account_key_of(event: Event) -> str | None:
    """The account key of the event's company, when it has a domain (as ``Account.for_company`` makes it)."""
    company = getattr(event, "company", None)
    domain = normalise_domain(company.domain) if company is not None else None
    return account_key(domain, "") if domain else None


class AccountRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.accounts = tx.db[ACCOUNTS]

    async def find_for(self, domain: str | None, name_key: str) -> Account | None:
        """By domain when there is one; else the oldest account whose name reads the same."""
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

    def add(self, account: Account) -> None:
        # The unique key makes a second replica opening the same company at the same time fail and retry.
        self.tx.insert_later(ACCOUNTS, account_to_document(account))


# --- reads, for the API ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DealFilter:
    lead_id: str | None = None
    owner: str | None = None
    stage: str | None = None
    account_id: str | None = None

    def query(self) -> Document:
        fields = {
            "lead_id": self.lead_id,
            "owner": self.owner,
            "stage": self.stage,
            "account.id": self.account_id,
        }
        return {k: v for k, v in fields.items() if v is not None}


class DealReader:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    async def deal(self, deal_id: str) -> Deal | None:
        doc = await self.db[DEALS].find_one({"_id": deal_id})
        return deal_from_document(doc) if doc else None

    async def deals(self, where: DealFilter, *, limit: int, offset: int) -> tuple[list[Deal], int]:
        docs, total = await find_page(
            self.db[DEALS],
            where.query(),
            sort=[("opened_at", DESCENDING), ("_id", DESCENDING)],
            limit=limit,
            offset=offset,
        )
        return [deal_from_document(d) for d in docs], total

    async def account(self, account_id: str) -> Account | None:
        doc = await self.db[ACCOUNTS].find_one({"_id": account_id})
        return account_from_document(doc) if doc else None

    async def stage_totals(
        self, pipeline: str, currency: str, owner: str | None = None
    ) -> dict[str, StageTotal]:
        return await pipeline_totals.stage_totals(self.db, pipeline, currency, owner)
