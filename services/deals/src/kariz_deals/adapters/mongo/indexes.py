"""The indexes of the deals database: one per query the service makes."""

from __future__ import annotations

import contextlib

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.errors import OperationFailure

from kariz_deals.adapters.mongo import quotes
from kariz_deals.adapters.mongo.documents import ACCOUNTS, DEALS
from kariz_shared.persistence.store import Store

#: Backs "one deal per qualified lead" against two replicas opening the same lead at once: unique on the
#: lead whose qualification opened the deal, which stays when a merge moves the deal to the survivor.
DEAL_OF_LEAD = "opened_for_unique"
#: Unique on lead_id before merges were followed: a survivor of a merge may have two deals, so dropped.
FORMER_DEAL_OF_LEAD = "lead_id_unique"
#: Backs "one account per company" (its domain, or its name without one).
ACCOUNT_OF_COMPANY = "key_unique"


async def ensure_indexes(store: Store) -> None:
    deals = store.db[DEALS]
    await backfill_opened_for(store)
    await deals.create_index([("opened_for", ASCENDING)], unique=True, name=DEAL_OF_LEAD)
    with contextlib.suppress(OperationFailure):  # absent: a new database, or dropped already
        await deals.drop_index(FORMER_DEAL_OF_LEAD)
    # A lead's deals (GET /deals?lead_id=, the deals a merge moves, "has the lead a deal").
    await deals.create_index([("lead_id", ASCENDING), ("opened_at", DESCENDING)], name="lead_opened")
    await deals.create_index([("opened_at", DESCENDING), ("_id", DESCENDING)], name="opened")
    await deals.create_index([("owner", ASCENDING), ("opened_at", DESCENDING)], name="owner_opened")
    await deals.create_index([("stage", ASCENDING), ("opened_at", DESCENDING)], name="stage_opened")
    await deals.create_index([("account.id", ASCENDING), ("opened_at", DESCENDING)], name="account_opened")
    # The open deals of a pipeline (a new version of it); the stalled ones (GET /deals?stalled=true, the
    # gauge): a range on the time a deal stalls at.
    await deals.create_index([("pipeline", ASCENDING), ("stage", ASCENDING)], name="pipeline_stage")
    await deals.create_index([("rots_at", ASCENDING)], name="rots_at")
    accounts = store.db[ACCOUNTS]
    await accounts.create_index([("key", ASCENDING)], unique=True, name=ACCOUNT_OF_COMPANY)
    await accounts.create_index([("name_key", ASCENDING), ("created_at", ASCENDING)], name="name_key_created")
    await quotes.ensure_indexes(store)


async def backfill_opened_for(store: Store, batch: int = 500) -> int:
    """Deals stored before merges were followed were opened for their lead: ``opened_for`` written
    before its unique index is built (several deals without it would be one missing value twice). Once
    done, the read finds nothing; how many were written."""
    deals = store.db[DEALS]
    written = 0
    updates: list[UpdateOne] = []
    async for doc in deals.find({"opened_for": {"$exists": False}}, projection={"lead_id": 1}):
        updates.append(UpdateOne({"_id": doc["_id"]}, {"$set": {"opened_for": doc["lead_id"]}}))
        if len(updates) >= batch:
            written += (await deals.bulk_write(updates, ordered=False)).modified_count
            updates = []
    if updates:
        written += (await deals.bulk_write(updates, ordered=False)).modified_count
    return written
