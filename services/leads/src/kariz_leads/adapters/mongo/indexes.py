"""What the database needs before the service works: one index per query the service runs, and the
turn counters' collection."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.errors import CollectionInvalid, OperationFailure

from kariz_leads.adapters.mongo.activities import ACTIVITIES, TASKS
from kariz_leads.adapters.mongo.documents import (
    HISTORY,
    LEADS,
    LOOKUP_VERSION,
    OPEN_FOLLOW_UPS,
    TURNS,
    lead_from_document,
    lookup_to_document,
)
from kariz_leads.adapters.mongo.imports import ensure_import_indexes
from kariz_leads.adapters.mongo.roster import ensure_roster_indexes
from kariz_leads.domain.task import TaskStatus
from kariz_leads.service_layer.unit_of_work import ONE_LEAD_PER_ADDRESS
from kariz_shared.persistence.idempotency import ensure_request_records
from kariz_shared.persistence.store import Store

NAMESPACE_EXISTS = 48


async def ensure_indexes(store: Store) -> None:
    """The duplicate check (unique, the last word when two captures of one address race) and each list
    filter with the newest-first order."""
    leads = store.db[LEADS]
    await leads.create_index([("contact.email", ASCENDING)], unique=True, name=ONE_LEAD_PER_ADDRESS)
    await leads.create_index([("created_at", DESCENDING), ("_id", DESCENDING)], name="newest_first")
    for name, key in (
        ("source", "source"),
        ("status", "status"),
        ("owner", "owner"),
        ("industry", "company.industry"),
        ("country", "company.country"),
        ("campaign", "campaign"),
        ("size", "company.size"),
        # Text search: a prefix range on the folded words (a multikey index; adapters.mongo.documents).
        ("search", "search"),
        # Duplicate candidates: the same phone, the same company domain.
        ("phone", "phone_e164"),
        ("domain", "company.domain"),
        # Leads with (or without) an open follow-up: the count the follow-ups' writes keep.
        ("follow_up", OPEN_FOLLOW_UPS),
        # Leads by when they were last worked (GET /leads?last_activity_before=: the neglected ones).
        ("last_activity", "last_activity_at"),
    ):
        await leads.create_index(
            [(key, ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name=f"{name}_newest_first"
        )
    # Duplicate candidates: the same name at the same company.
    await leads.create_index(
        [("name_key", ASCENDING), ("company_key", ASCENDING), ("created_at", DESCENDING), ("_id", -1)],
        name="name_at_company_newest_first",
    )
    # A lead's history, newest first (GET /leads/{id}/history).
    await store.db[HISTORY].create_index(
        [("lead_id", ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)], name="lead_newest_first"
    )
    # A lead's activities, latest first (GET /leads/{id}/activities).
    await store.db[ACTIVITIES].create_index(
        [("lead_id", ASCENDING), ("occurred_at", DESCENDING), ("_id", DESCENDING)], name="lead_latest_first"
    )
    # Follow-ups, soonest due first (GET /tasks): of some assignees, of everyone; in a status or any;
    # a lead's open ones (they move with a reassigned lead).
    tasks = store.db[TASKS]
    for name, keys in (
        ("assignee_status_due", ["assignee", "status"]),
        ("status_due", ["status"]),
        ("due", []),
        ("lead_status_due", ["lead_id", "status"]),
    ):
        await tasks.create_index(
            [*((key, ASCENDING) for key in keys), ("due_at", ASCENDING), ("_id", ASCENDING)], name=name
        )
    # CSV imports: jobs by starter and age, claimable jobs, a job's failed rows (adapters/mongo/imports).
    await ensure_import_indexes(store)
    await ensure_request_records(store)
    # The roster: a team's reps; a rep's open leads by owner and status (adapters/mongo/roster).
    await ensure_roster_indexes(store)
    # Leads stored before touches were counted: their whole list is the count (once; then none match).
    await leads.update_many(
        {"touch_count": {"$exists": False}}, [{"$set": {"touch_count": {"$size": "$touches"}}}]
    )
    await backfill_lookup_keys(store)
    # A counter may be upserted while a transaction is open; its collection must exist before.
    try:
        await store.db.create_collection(TURNS)
    except CollectionInvalid:
        pass
    except OperationFailure as exc:
        if exc.code != NAMESPACE_EXISTS:
            raise


async def backfill_lookup_keys(store: Store, batch: int = 500) -> int:
    """Give the leads stored before the lookup keys (search words, phone, name and company keys, the
    count of open follow-ups), or with an older version of them, the current ones: once, in bulk writes
    of ``batch``; then none match. Computed in Python (phone numbers need their library), outside any
    transaction, and idempotent, so a start that stops halfway is finished by the next. Answers how
    many it wrote. (A follow-up opened by a replica already on this version while a stale lead is
    rewritten here may be counted twice or not at all: only during the first start of the version.)"""
    leads = store.db[LEADS]
    stale = {"lookup_version": {"$ne": LOOKUP_VERSION}}
    if await leads.find_one(stale, projection={"_id": 1}) is None:
        return 0
    tasks = store.db[TASKS].find({"status": TaskStatus.OPEN.value}, projection={"lead_id": 1})
    open_follow_ups = Counter([doc["lead_id"] async for doc in tasks])
    last_activity: dict[str, datetime] = {}
    async for doc in store.db[ACTIVITIES].find({}, projection={"lead_id": 1, "occurred_at": 1}):
        kept = last_activity.get(doc["lead_id"])
        last_activity[doc["lead_id"]] = doc["occurred_at"] if kept is None else max(kept, doc["occurred_at"])
    written = 0
    updates: list[UpdateOne] = []
    async for doc in leads.find(stale):
        keys = {**lookup_to_document(lead_from_document(doc)), OPEN_FOLLOW_UPS: open_follow_ups[doc["_id"]]}
        if doc.get("last_activity_at") is None and doc["_id"] in last_activity:
            keys["last_activity_at"] = last_activity[doc["_id"]]
        updates.append(UpdateOne({"_id": doc["_id"], **stale}, {"$set": keys}))
        if len(updates) >= batch:
            written += (await leads.bulk_write(updates, ordered=False)).modified_count
            updates = []
    if updates:
        written += (await leads.bulk_write(updates, ordered=False)).modified_count
    return written
