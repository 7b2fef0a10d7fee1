"""The roster (collection ``reps``, ``_id`` = the rep's address) and the assignment rules' versions
(collection ``assignment_rule_versions``, ``_id`` = the version's number: two replacements at once cannot
both store version N) on MongoDB, inside the unit's transaction.

Captures read the rules through the process's :class:`RulesInForce` copy, not the collection; the reps
of a rule's team with one read along ``team_email``, their open leads along ``owner_status``.
"""

from __future__ import annotations

from collections import Counter

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from kariz_leads.adapters.mongo.documents import LEADS, Document, utc
from kariz_leads.domain.assignment_rules import AssignmentRule, AssignmentRules, AssignmentRulesVersion
from kariz_leads.domain.lead import LeadStatus
from kariz_leads.domain.regions import Region
from kariz_leads.domain.roster import Rep
from kariz_leads.service_layer.roster_store import RulesInForce
from kariz_shared.contracts.events import LeadSource
from kariz_shared.persistence.store import Store, Transaction, find_page
from kariz_shared.runtime.clock import Clock

REPS = "reps"
RULE_VERSIONS = "assignment_rule_versions"
#: The index a rep's capacity is counted along: a lead's owner and status (then the newest-first order,
#: so that it also serves an owner's leads in a status; two keys alone, it would outrank the owner's
#: newest-first index for the lists' owner filter on the embedded database's shortest-index planner).
OWNER_STATUS = "owner_status_newest_first"
#: The index of a team's reps, by address.
TEAM_EMAIL = "team_email"
OPEN = [LeadStatus.NEW.value, LeadStatus.WORKING.value]


def open_leads_query(emails: list[str]) -> Document:
    return {"owner": {"$in": emails}, "status": {"$in": OPEN}}


def rep_to_document(rep: Rep) -> Document:
    return {
        "_id": rep.email,
        "team": rep.team,
        "name": rep.name,
        "manager": rep.manager,
        "time_zone": rep.time_zone,
        "locale": rep.locale,
        "active": rep.active,
        "capacity": rep.capacity,
        "weight": rep.weight,
        "away_until": rep.away_until,
        "updated_at": rep.updated_at,
        "actor": rep.actor,
    }


def rep_from_document(doc: Document) -> Rep:
    away = doc.get("away_until")
    return Rep(
        email=doc["_id"],
        team=doc["team"],
        name=doc.get("name"),
        manager=doc.get("manager"),
        time_zone=doc.get("time_zone", "UTC"),
        locale=doc.get("locale", "en"),
        active=bool(doc.get("active", True)),
        capacity=doc.get("capacity"),
        weight=int(doc.get("weight", 1)),
        away_until=utc(away) if away else None,
        updated_at=utc(doc["updated_at"]),
        actor=doc["actor"],
    )


def rule_to_document(rule: AssignmentRule) -> Document:
    return {
        "name": rule.name,
        "team": rule.team,
        "countries": sorted(rule.countries),
        "regions": sorted(r.value for r in rule.regions),
        "industries": sorted(rule.industries),
        "size_min": rule.size_min,
        "size_max": rule.size_max,
        "sources": sorted(s.value for s in rule.sources),
        "campaigns": sorted(rule.campaigns),
    }


def rule_from_document(doc: Document) -> AssignmentRule:
    # Stored rules were checked when their version was made: read back as they are.
    return AssignmentRule(
        name=doc["name"],
        team=doc["team"],
        countries=frozenset(doc.get("countries", [])),
        regions=frozenset(Region(r) for r in doc.get("regions", [])),
        industries=frozenset(doc.get("industries", [])),
        size_min=doc.get("size_min"),
        size_max=doc.get("size_max"),
        sources=frozenset(LeadSource(s) for s in doc.get("sources", [])),
        campaigns=frozenset(doc.get("campaigns", [])),
    )


def version_to_document(version: AssignmentRulesVersion) -> Document:
    return {
        "_id": version.number,
        "took_effect_at": version.took_effect_at,
        "actor": version.actor,
        "rules": [rule_to_document(rule) for rule in version.rules.rules],
    }


def version_from_document(doc: Document) -> AssignmentRulesVersion:
    return AssignmentRulesVersion(
        number=int(doc["_id"]),
        rules=AssignmentRules(tuple(rule_from_document(r) for r in doc.get("rules", []))),
        took_effect_at=utc(doc["took_effect_at"]),
        actor=doc["actor"],
    )


class MongoRepRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.reps = tx.db[REPS]

    async def get(self, email: str) -> Rep | None:
        doc = await self.reps.find_one({"_id": email}, session=self.tx.session)
        return rep_from_document(doc) if doc else None

    async def save(self, rep: Rep) -> None:
        await self.reps.replace_one(
            {"_id": rep.email}, rep_to_document(rep), upsert=True, session=self.tx.session
        )

    async def of_teams(self, teams: list[str]) -> list[Rep]:
        found = self.reps.find({"team": {"$in": teams}}, session=self.tx.session).hint(TEAM_EMAIL)
        return [rep_from_document(doc) async for doc in found]

    async def page(self, team: str | None, *, limit: int, offset: int) -> tuple[list[Rep], int]:
        docs, total = await find_page(
            self.reps,
            {} if team is None else {"team": team},
            sort=[("_id", ASCENDING)],
            limit=limit,
            offset=offset,
            session=self.tx.session,
            hint=None if team is None else TEAM_EMAIL,
        )
        return [rep_from_document(doc) for doc in docs], total

    async def open_leads(self, emails: list[str]) -> dict[str, int]:
        # Only the owner is read, along the index (a covered read): a rep's open leads are few.
        found = (
            self.tx.db[LEADS]
            .find(open_leads_query(emails), projection={"owner": 1, "_id": 0}, session=self.tx.session)
            .hint(OWNER_STATUS)
        )
        return dict(Counter([doc["owner"] async for doc in found]))


class MongoAssignmentRuleVersions:
    def __init__(self, tx: Transaction, clock: Clock, in_force: RulesInForce | None) -> None:
        self.tx, self.clock, self.cache = tx, clock, in_force
        self.versions = tx.db[RULE_VERSIONS]

    async def current(self) -> AssignmentRulesVersion:
        doc = await self.versions.find_one({}, sort=[("_id", DESCENDING)], session=self.tx.session)
        return version_from_document(doc) if doc else AssignmentRulesVersion.seeded(self.clock.now())

    async def in_force(self) -> AssignmentRulesVersion:
        if self.cache is None:
            return await self.current()
        return await self.cache.get(self.clock.now(), self._read_outside)

    async def _read_outside(self) -> AssignmentRulesVersion:
        # The process's copy is shared by every unit: read outside this one's transaction.
        doc = await self.versions.find_one({}, sort=[("_id", DESCENDING)])
        return version_from_document(doc) if doc else AssignmentRulesVersion.seeded(self.clock.now())

    async def get(self, number: int) -> AssignmentRulesVersion | None:
        doc = await self.versions.find_one({"_id": number}, session=self.tx.session)
        return version_from_document(doc) if doc else None

    async def add(self, version: AssignmentRulesVersion) -> None:
        await self.versions.insert_one(version_to_document(version), session=self.tx.session)
        if self.cache is not None:
            cache, now = self.cache, self.clock.now()
            self.tx.after_commit(lambda: cache.took_effect(version, now))

    async def page(self, *, limit: int, offset: int) -> tuple[list[AssignmentRulesVersion], int]:
        docs, total = await find_page(
            self.versions, {}, sort=[("_id", DESCENDING)], limit=limit, offset=offset, session=self.tx.session
        )
        return [version_from_document(doc) for doc in docs], total


async def ensure_roster_indexes(store: Store) -> None:
    """A team's reps by address; leads by owner and status (a rep's open leads, for capacity)."""
    await store.db[REPS].create_index([("team", ASCENDING), ("_id", ASCENDING)], name=TEAM_EMAIL)
    await store.db[LEADS].create_index(
        [("owner", ASCENDING), ("status", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
        name=OWNER_STATUS,
    )


async def seed_rule_versions(store: Store, clock: Clock) -> None:
    """Version 0 of the assignment rules (no rules), stored once: when the first start put it in force."""
    seeded = version_to_document(AssignmentRulesVersion.seeded(clock.now()))
    del seeded["_id"]
    try:
        await store.db[RULE_VERSIONS].update_one({"_id": 0}, {"$setOnInsert": seeded}, upsert=True)
    except DuplicateKeyError:
        pass  # another replica seeded it at the same time
