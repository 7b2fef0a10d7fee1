"""What the database needs before the service works: the indexes of its queries, and a rule set."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from kariz_qualification.adapters.mongo.documents import CURRENT, LEADS, RULE_SETS, rules_to_document
from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet
from kariz_shared.persistence.store import Store
from kariz_shared.runtime.clock import Clock

log = logging.getLogger(__name__)

Db = AsyncDatabase[dict[str, Any]]


async def ensure_indexes(db: Db) -> None:
    """One index per query: the review queues list leads by status (and owner), newest first."""
    await db[LEADS].create_index([("status", ASCENDING), ("captured_at", DESCENDING)], name="status_captured")
    await db[LEADS].create_index(
        [("status", ASCENDING), ("owner", ASCENDING), ("captured_at", DESCENDING)],
        name="status_owner_captured",
    )


async def seed_rules(db: Db, rules: RuleSet, at: datetime) -> bool:
    """Store ``rules`` as the rule set unless there is one already. Returns True when it seeded."""
    result = await db[RULE_SETS].update_one(
        {"_id": CURRENT},
        {"$setOnInsert": {"rules": rules_to_document(rules), "version": 1, "updated_at": at}},
        upsert=True,
    )
    return result.upserted_id is not None


async def prepare(store: Store, clock: Clock) -> None:
    """Start-up: indexes, and the default rule set when the database has none (a restart keeps an
    edited one)."""
    await ensure_indexes(store.db)
    if await seed_rules(store.db, DEFAULT_RULES, clock.now()):
        log.info("seeded the default scoring rule set")
