"""Rate limits on what anyone on the internet can send (captures, imports): a count per caller and per
client address in fixed one-minute windows, kept in the service's database so every replica shares it.
A window's count expires with a TTL index once the window is past."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from kariz_shared.persistence.store import Store
from kariz_shared.runtime.clock import Clock

RATE_LIMITS = "rate_limits"
UPSERT_TRIES = 10
WINDOW_S = 60


class MongoRateLimits:
    def __init__(self, store: Store, clock: Clock, *, per_minute: int) -> None:
        self.store, self.clock, self.per_minute = store, clock, per_minute

    async def ensure_indexes(self, store: Store) -> None:
        await store.db[RATE_LIMITS].create_index([("expires_at", ASCENDING)], expireAfterSeconds=0)

    async def take(self, bucket: str) -> float | None:
        """Count one request of ``bucket``; None if it is within the limit, else the seconds until the
        window ends (the answer's Retry-After)."""
        now = self.clock.now()
        window = math.floor(now.timestamp() / WINDOW_S)
        key = {"_id": f"{bucket}:{window}"}
        count = {"$inc": {"n": 1}, "$setOnInsert": {"expires_at": now + timedelta(seconds=2 * WINDOW_S)}}
        limits = self.store.db[RATE_LIMITS]
        # The window's count exists but for the first requests of a window: one update that answers it.
        counted = await limits.find_one_and_update(
            key, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
        )
        if counted is None:
            counted = await self._first_of_window(key, count)
        if counted["n"] <= self.per_minute:
            return None
        return (window + 1) * WINDOW_S - now.timestamp()

    async def _first_of_window(self, key: dict[str, Any], count: dict[str, Any]) -> dict[str, Any]:
        """Create the window's count (or count in it, if a racing request created it first). An update,
        then a read: the embedded database's findAndModify can answer nothing for an upsert that raced
        another."""
        limits = self.store.db[RATE_LIMITS]
        for attempt in range(UPSERT_TRIES):
            try:
                await limits.update_one(key, count, upsert=True)
                break
            except DuplicateKeyError:
                # Another request inserted the count; once its insert shows, counting is an update.
                if attempt == UPSERT_TRIES - 1:
                    raise
                await asyncio.sleep(0.002 * (attempt + 1))
        counted = await limits.find_one(key)
        # Only a count that expired in between is gone: this request was its window's first.
        return counted or {"n": 1}
