"""MongoDB repositories: leads under qualification and the rule set.

Collections: ``leads`` (one document per lead, ``_id`` = lead id, with ``status`` and ``score`` kept at
the top level for queries) and ``rule_sets`` (one document, ``_id`` = ``"current"``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from kariz_qualification.domain.lead import Decision, Lead, Scoring, Status
from kariz_qualification.domain.rules import RuleSet
from kariz_shared.contracts.errors import Conflict
from kariz_shared.contracts.events import BantAnswers, Company, Contact, LeadSource, ScoreLine, lead_id_of
from kariz_shared.persistence.store import Transaction, find_page

Db = AsyncDatabase[dict[str, Any]]
LEADS = "leads"
RULE_SETS = "rule_sets"
CURRENT = "current"


async def ensure_indexes(db: Db) -> None:
    """One index per query: the review queues list leads by status (and owner), newest first."""
    await db[LEADS].create_index([("status", ASCENDING), ("captured_at", DESCENDING)], name="status_captured")
    await db[LEADS].create_index(
        [("status", ASCENDING), ("owner", ASCENDING), ("captured_at", DESCENDING)],
        name="status_owner_captured",
    )


async def seed_rules(db: Db, rules: RuleSet) -> bool:
    """Store ``rules`` as the rule set unless there is one already. Returns True when it seeded."""
    result = await db[RULE_SETS].update_one(
        {"_id": CURRENT},
        {"$setOnInsert": {"rules": _rules_document(rules), "version": 1, "updated_at": datetime.now(UTC)}},
        upsert=True,
    )
    return result.upserted_id is not None


def _rules_document(rules: RuleSet) -> dict[str, Any]:
    return rules.model_dump(mode="json")


class RuleSetRepository:
    def __init__(self, db: Db, session: AsyncClientSession | None = None) -> None:
        self.collection = db[RULE_SETS]
        self.session = session

    async def get(self) -> RuleSet | None:
        doc = await self.collection.find_one({"_id": CURRENT}, session=self.session)
        return None if doc is None else RuleSet.model_validate(doc["rules"])

    async def replace(self, rules: RuleSet, at: datetime) -> None:
        await self.collection.update_one(
            {"_id": CURRENT},
            {"$set": {"rules": _rules_document(rules), "updated_at": at}, "$inc": {"version": 1}},
            upsert=True,
            session=self.session,
        )


class LeadRepository:
    def __init__(self, db: Db, session: AsyncClientSession | None = None) -> None:
        self.collection = db[LEADS]
        self.session = session

    async def get(self, lead_id: str) -> Lead | None:
        doc = await self.collection.find_one({"_id": lead_id}, session=self.session)
        return None if doc is None else _to_lead(doc)

    @staticmethod
    async def get_in_batch(tx: Transaction, lead_id: str) -> Lead | None:
        """The lead, read together with the leads of the other events of ``tx``'s batch."""
        doc = await tx.find_one_for_batch(LEADS, "_id", lead_id, of_event=lead_id_of)
        return None if doc is None else _to_lead(doc)

    @staticmethod
    def is_queued(tx: Transaction, lead_id: str) -> bool:
        """Whether ``tx`` already queued this lead with :meth:`add` (reads do not see it yet)."""
        return any(doc["_id"] == lead_id for doc in tx.queued(LEADS))

    @staticmethod
    def add(tx: Transaction, lead: Lead) -> None:
        """Insert a new lead when ``tx`` commits, together with the batch's other new leads."""
        tx.insert_later(LEADS, {**_to_document(lead), "version": 1})
        lead.version = 1

    async def save(self, lead: Lead) -> None:
        """Write ``lead`` back if nobody changed it since it was loaded; else refuse."""
        result = await self.collection.update_one(
            {"_id": lead.lead_id, "version": lead.version},
            {"$set": {**_to_document(lead), "version": lead.version + 1}},
            session=self.session,
        )
        if result.matched_count == 0:
            raise Conflict(f"lead {lead.lead_id} was changed by another request meanwhile; reload and retry")
        lead.version += 1

    async def page(
        self, status: Status, owner: str | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of lead summaries (lead_id, owner, company, status, score, captured_at, decided_at)."""
        query: dict[str, Any] = {"status": status}
        if owner is not None:
            query["owner"] = owner
        fields = ("owner", "company.name", "status", "score", "captured_at", "decision.at")
        projection = dict.fromkeys(fields, 1)
        docs, total = await find_page(
            self.collection,
            query,
            sort=[("captured_at", DESCENDING)],
            limit=limit,
            offset=offset,
            projection=projection,
            session=self.session,
        )
        rows = [
            {
                "lead_id": doc["_id"],
                "owner": doc["owner"],
                "company": doc["company"]["name"],
                "status": doc["status"],
                "score": doc["score"],
                "captured_at": doc["captured_at"],
                "decided_at": (doc.get("decision") or {}).get("at"),
            }
            for doc in docs
        ]
        return rows, total


# --- mapping ------------------------------------------------------------------------------------


def _to_document(lead: Lead) -> dict[str, Any]:
    return {
        "_id": lead.lead_id,
        "owner": lead.owner,
        "contact": lead.contact.model_dump(),
        "company": lead.company.model_dump(),
        "source": lead.source.value,
        "campaign": lead.campaign,
        "correlation_id": lead.correlation_id,
        "captured_at": lead.captured_at,
        "answers": None if lead.answers is None else lead.answers.model_dump(),
        "scorings": [
            {
                "at": s.at,
                "score": s.score,
                "breakdown": [line.model_dump() for line in s.breakdown],
                "trigger": s.trigger,
            }
            for s in lead.scorings
        ],
        "decision": None
        if lead.decision is None
        else {
            "outcome": lead.decision.outcome,
            "at": lead.decision.at,
            "reason": lead.decision.reason,
            "threshold": lead.decision.threshold,
            "manual": lead.decision.manual,
        },
        # Denormalised for the queries that list leads.
        "status": lead.status,
        "score": lead.score,
    }


def _to_lead(doc: dict[str, Any]) -> Lead:
    decision = doc.get("decision")
    return Lead(
        lead_id=doc["_id"],
        owner=doc["owner"],
        contact=Contact.model_validate(doc["contact"]),
        company=Company.model_validate(doc["company"]),
        source=LeadSource(doc["source"]),
        campaign=doc.get("campaign"),
        correlation_id=doc["correlation_id"],
        captured_at=doc["captured_at"],
        answers=None if doc.get("answers") is None else BantAnswers.model_validate(doc["answers"]),
        scorings=[
            Scoring(
                at=s["at"],
                score=s["score"],
                breakdown=tuple(ScoreLine.model_validate(line) for line in s["breakdown"]),
                trigger=s["trigger"],
            )
            for s in doc.get("scorings", [])
        ],
        decision=None
        if decision is None
        else Decision(
            outcome=decision["outcome"],
            at=decision["at"],
            reason=decision.get("reason"),
            threshold=decision.get("threshold"),
            manual=decision.get("manual", False),
        ),
        version=doc.get("version", 0),
    )
