"""The repositories of qualification on MongoDB, inside one transaction.

A consumed batch of ``LeadCaptured`` events is one transaction: the repositories read the batch's leads
with one ``$in``, insert its new leads with one ``insert_many`` and read the rule set once (the
transaction's batch helpers), which is what keeps a batch cheap on the embedded database.
"""

from __future__ import annotations

from typing import Any

from pymongo import DESCENDING

from kariz_qualification.adapters.mongo.documents import (
    CALIBRATIONS,
    LEADS,
    QUALIFIED_LEADS,
    RULE_SET_VERSIONS,
    SUMMARY_FIELDS,
    WON_ACCOUNTS,
    calibration_from_document,
    calibration_to_document,
    lead_from_document,
    lead_to_document,
    qualified_lead_from_document,
    qualified_lead_to_document,
    summary_from_document,
    version_from_document,
    version_to_document,
)
from kariz_qualification.domain.calibration import WinModel
from kariz_qualification.domain.customers import WonAccount, account_key_of
from kariz_qualification.domain.lead import Lead
from kariz_qualification.domain.outcomes import QualifiedLead
from kariz_qualification.domain.queries import LeadsByStatus, LeadSummary
from kariz_qualification.domain.rule_versions import RuleSetVersion
from kariz_qualification.domain.rules import DEFAULT_RULES
from kariz_shared.contracts.errors import Conflict
from kariz_shared.contracts.events import lead_id_of
from kariz_shared.persistence.store import Transaction, find_page
from kariz_shared.runtime.clock import Clock


class MongoLeadRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db[LEADS]

    async def get(self, lead_id: str) -> Lead | None:
        doc = await self.collection.find_one({"_id": lead_id}, session=self.tx.session)
        return None if doc is None else lead_from_document(doc)

    async def is_known(self, lead_id: str) -> bool:
        # Queued inserts first: reads do not see them yet, and a repeat in the batch need not read.
        if any(doc["_id"] == lead_id for doc in self.tx.queued(LEADS)):
            return True
        doc = await self.tx.find_one_for_batch(LEADS, "_id", lead_id, of_event=lead_id_of)
        return doc is not None

    def add(self, lead: Lead) -> None:
        self.tx.insert_later(LEADS, {**lead_to_document(lead), "version": 1})
        lead.version = 1

    async def save(self, lead: Lead) -> None:
        result = await self.collection.update_one(
            {"_id": lead.lead_id, "version": lead.version},
            {"$set": {**lead_to_document(lead), "version": lead.version + 1}},
            session=self.tx.session,
        )
        if result.matched_count == 0:
            raise Conflict(f"lead {lead.lead_id} was changed by another request meanwhile; reload and retry")
        lead.version += 1

    async def page(self, query: LeadsByStatus, limit: int, offset: int) -> tuple[list[LeadSummary], int]:
        # Served by the status_captured and status_owner_captured indexes.
        selector: dict[str, Any] = {"status": query.status}
        if query.owner is not None:
            selector["owner"] = query.owner
        if query.seen.these is not None:
            selector["owner"] = {"$in": sorted(query.seen.these)}
        docs, total = await find_page(
            self.collection,
            selector,
            sort=[("captured_at", DESCENDING)],
            limit=limit,
            offset=offset,
            projection=dict.fromkeys(SUMMARY_FIELDS, 1),
            session=self.tx.session,
        )
        return [summary_from_document(doc) for doc in docs], total

    async def by_email(self, email: str) -> Lead | None:
        # Served by the contact_email index.
        doc = await self.collection.find_one(
            {"contact.email": email, "merged_into": None}, session=self.tx.session
        )
        return None if doc is None else lead_from_document(doc)


class MongoRuleSetRepository:
    def __init__(self, tx: Transaction, clock: Clock) -> None:
        self.tx = tx
        self.clock = clock
        self.collection = tx.db[RULE_SET_VERSIONS]

    async def current(self) -> RuleSetVersion:
        async def load() -> RuleSetVersion:
            doc = await self.collection.find_one({}, sort=[("_id", DESCENDING)], session=self.tx.session)
            if doc is None:
                # Seeded at start-up; the defaults only matter if someone emptied the collection meanwhile.
                return RuleSetVersion.seeded(DEFAULT_RULES, self.clock.now())
            return version_from_document(doc)

        return await self.tx.once("rule_set", load)

    async def get(self, number: int) -> RuleSetVersion | None:
        doc = await self.collection.find_one({"_id": number}, session=self.tx.session)
        return None if doc is None else version_from_document(doc)

    async def add(self, version: RuleSetVersion) -> None:
        # A DuplicateKeyError on _id (a concurrent replacement took the number) becomes DuplicateRecord in
        # MongoUnitsOfWork.run.
        await self.collection.insert_one(version_to_document(version), session=self.tx.session)

    async def page(self, limit: int, offset: int) -> tuple[list[RuleSetVersion], int]:
        docs, total = await find_page(
            self.collection,
            {},
            sort=[("_id", DESCENDING)],
            limit=limit,
            offset=offset,
            session=self.tx.session,
        )
        return [version_from_document(doc) for doc in docs], total


class MongoWonAccountRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    async def get(self, key: str) -> WonAccount | None:
        # One $in for the accounts of every capture in the batch: a capture reads it on the hot path.
        doc = await self.tx.find_one_for_batch(WON_ACCOUNTS, "_id", key, of_event=account_key_of)
        if doc is None:
            return None
        return WonAccount(doc["_id"], doc["account_id"], doc["account_name"], doc["won_at"], doc["deal_id"])

    async def add(self, account: WonAccount) -> None:
        fields = {
            "account_id": account.account_id,
            "account_name": account.account_name,
            "won_at": account.won_at,
            "deal_id": account.deal_id,
        }
        await self.tx.db[WON_ACCOUNTS].update_one(
            {"_id": account.key}, {"$set": fields}, upsert=True, session=self.tx.session
        )


CLOSED = {"result": {"$in": ["won", "lost"]}}


class MongoQualifiedLeadRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db[QUALIFIED_LEADS]

    async def get(self, lead_id: str) -> QualifiedLead | None:
        doc = await self.collection.find_one({"_id": lead_id}, session=self.tx.session)
        return None if doc is None else qualified_lead_from_document(doc)

    def add(self, lead: QualifiedLead) -> None:
        # With the batch's other inserts; kept once even if a redelivery qualified it again.
        self.tx.insert_later(QUALIFIED_LEADS, qualified_lead_to_document(lead), unless_present=True)

    async def save(self, lead: QualifiedLead) -> None:
        document = qualified_lead_to_document(lead)
        await self.collection.replace_one(
            {"_id": document["_id"]}, document, upsert=True, session=self.tx.session
        )

    async def closed_counts(self) -> tuple[int, int]:
        # Served by the result_closed index.
        won = await self.collection.count_documents({"result": "won"}, session=self.tx.session)
        lost = await self.collection.count_documents({"result": "lost"}, session=self.tx.session)
        return won, lost

    async def closed(self, newest: int) -> list[QualifiedLead]:
        # Served by the result_closed index.
        cursor = self.collection.find(
            CLOSED,
            sort=[("closed_at", DESCENDING), ("_id", DESCENDING)],
            limit=newest,
            session=self.tx.session,
        )
        return [qualified_lead_from_document(doc) async for doc in cursor]

    async def every(self) -> list[QualifiedLead]:
        cursor = self.collection.find({}, session=self.tx.session)
        return [qualified_lead_from_document(doc) async for doc in cursor]


class MongoCalibrationRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db[CALIBRATIONS]

    async def latest(self) -> WinModel | None:
        doc = await self.collection.find_one({}, sort=[("_id", DESCENDING)], session=self.tx.session)
        return None if doc is None else calibration_from_document(doc)

    async def add(self, model: WinModel) -> None:
        # A duplicate _id (another calibrated version n first) becomes DuplicateRecord in the unit.
        await self.collection.insert_one(calibration_to_document(model), session=self.tx.session)

    async def page(self, limit: int, offset: int) -> tuple[list[WinModel], int]:
        docs, total = await find_page(
            self.collection,
            {},
            sort=[("_id", DESCENDING)],
            limit=limit,
            offset=offset,
            session=self.tx.session,
        )
        return [calibration_from_document(doc) for doc in docs], total
