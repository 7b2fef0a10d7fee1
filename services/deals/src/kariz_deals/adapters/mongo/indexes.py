"""The indexes of the deals database: one per query the service makes."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING

from kariz_deals.adapters.mongo.documents import ACCOUNTS, DEALS
from kariz_shared.persistence.store import Store

#: Backs "one deal per qualified lead" against two replicas opening the same lead at once.
DEAL_OF_LEAD = "lead_id_unique"
#: Backs "one account per company" (its domain, or its name without one).
ACCOUNT_OF_COMPANY = "key_unique"


async def ensure_indexes(store: Store) -> None:
    deals = store.db[DEALS]
    await deals.create_index([("lead_id", ASCENDING)], unique=True, name=DEAL_OF_LEAD)
    await deals.create_index([("opened_at", DESCENDING), ("_id", DESCENDING)], name="opened")
    await deals.create_index([("owner", ASCENDING), ("opened_at", DESCENDING)], name="owner_opened")
    await deals.create_index([("stage", ASCENDING), ("opened_at", DESCENDING)], name="stage_opened")
    await deals.create_index([("account.id", ASCENDING), ("opened_at", DESCENDING)], name="account_opened")
    accounts = store.db[ACCOUNTS]
    await accounts.create_index([("key", ASCENDING)], unique=True, name=ACCOUNT_OF_COMPANY)
    await accounts.create_index([("name_key", ASCENDING), ("created_at", ASCENDING)], name="name_key_created")
