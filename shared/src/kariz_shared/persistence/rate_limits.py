"""Rate limits on what anyone on the internet can send (captures, imports): a count per caller and per
client address in fixed one-minute windows, kept in the service's database so every replica shares it.
A window's count expires with a TTL index once the window is past."""

from __future__ import annotations

import math
from datetime import timedelta

from pymongo import ASCENDING, ReturnDocument

from kariz_shared.persistence.store import Store
from kariz_shared.runtime.clock import Clock

RATE_LIMITS = "rate_limits"
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
        counted = await self.store.db[RATE_LIMITS].find_one_and_update(
            {"_id": f"{bucket}:{window}"},
            {"$inc": {"n": 1}, "$setOnInsert": {"expires_at": now + timedelta(seconds=2 * WINDOW_S)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        if counted["n"] <= self.per_minute:
            return None
        return (window + 1) * WINDOW_S - now.timestamp()
