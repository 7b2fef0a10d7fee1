"""What the database needs before the service works: one index per query the service runs, and the
turn counters' collection."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import CollectionInvalid, OperationFailure

from kariz_leads.adapters.mongo.documents import HISTORY, LEADS, TURNS
from kariz_leads.service_layer.unit_of_work import ONE_LEAD_PER_ADDRESS
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
    ):
        await leads.create_index(
            [(key, ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name=f"{name}_newest_first"
        )
    # A lead's history, newest first (GET /leads/{id}/history).
    await store.db[HISTORY].create_index(
        [("lead_id", ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)], name="lead_newest_first"
    )
    # Leads stored before touches were counted: their whole list is the count (once; then none match).
    await leads.update_many(
        {"touch_count": {"$exists": False}}, [{"$set": {"touch_count": {"$size": "$touches"}}}]
    )
    # A counter may be upserted while a transaction is open; its collection must exist before.
    try:
        await store.db.create_collection(TURNS)
    except CollectionInvalid:
        pass
    except OperationFailure as exc:
        if exc.code != NAMESPACE_EXISTS:
            raise
