"""The indexes of notifications' collections, each for a query that uses it."""

from __future__ import annotations

import contextlib

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import OperationFailure

from kariz_notifications.adapters.mongo.content import CONTENT, CONTENT_NEWEST_FIRST
from kariz_notifications.adapters.mongo.documents import (
    DELIVERIES,
    HANDOVERS,
    HANDOVERS_NEWEST_FIRST,
    NEWEST_FIRST,
)
from kariz_notifications.adapters.mongo.subscriptions import REPLAYS
from kariz_notifications.domain.queries import DeliveryCriteria
from kariz_shared.persistence.store import Store


async def ensure_indexes(store: Store) -> None:
    deliveries = store.db[DELIVERIES]
    # The worker's two claims: due pending ones, and "sending" ones whose sender died.
    await deliveries.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
    await deliveries.create_index([("status", ASCENDING), ("lease_until", ASCENDING)])
    # GET /notifications: newest first, alone or with one filter.
    await deliveries.create_index(NEWEST_FIRST)
    for field in DeliveryCriteria.FIELDS:
        await deliveries.create_index([(field, ASCENDING), *NEWEST_FIRST])
    # No query filters by event id, and every index costs each delivery write: dropped where an earlier
    # version made it.
    with contextlib.suppress(OperationFailure):
        await deliveries.drop_index("event_id_1_created_at_-1_order_-1")
    await store.db[HANDOVERS].create_index(HANDOVERS_NEWEST_FIRST)
    await store.db[HANDOVERS].create_index([("status", ASCENDING), ("created_at", DESCENDING)])
    # GET /content: newest first, by retired, and by tag; content actions read the active ones.
    await store.db[CONTENT].create_index([("retired", ASCENDING), *CONTENT_NEWEST_FIRST])
    await store.db[CONTENT].create_index([("tags", ASCENDING), ("retired", ASCENDING), *CONTENT_NEWEST_FIRST])
    # A subscription's newest replay (GET /subscriptions/{id}, a new request); the replay worker's look
    # for one waiting or left by a replica that died.
    await store.db[REPLAYS].create_index([("subscription_id", ASCENDING), ("requested_at", DESCENDING)])
    await store.db[REPLAYS].create_index([("state", ASCENDING), ("requested_at", ASCENDING)])
