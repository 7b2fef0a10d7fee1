"""Requests a client may send again without doing their work twice (``Idempotency-Key``).

A client that got no answer (a timeout, a dropped connection) cannot tell whether its request was done;
sending it again must not capture or touch twice. The outcome of a request that names a key is stored in
the transaction that does its work, under the key and who sent it: a repeat finds it and answers the
same, and a key reused for a different request is refused. Kept a day (``RETAINED``), then the key
is new again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from kariz_shared.contracts.errors import Conflict
from kariz_shared.persistence.store import Store, Transaction
from kariz_shared.runtime.clock import Clock

IDEMPOTENCY_KEYS = "idempotency_keys"
#: ``DuplicateRecord.index`` when a concurrent request with the same key committed first.
SAME_REQUEST = "_id_"
#: How long a key answers a repeat: far longer than any client retries.
RETAINED = timedelta(days=1)

Outcome = dict[str, Any]


@dataclass(frozen=True)
class RequestKey:
    """A client's key for one request, scoped to who sent it (two callers' keys never meet), and a
    fingerprint of what the request said."""

    key: str
    fingerprint: str

    @classmethod
    def of(cls, sender: str, key: str, request: str | bytes) -> RequestKey:
        body = request.encode() if isinstance(request, str) else request
        return cls(f"{sender}\n{key}", hashlib.sha256(body).hexdigest())

    def check(self, fingerprint: str) -> None:
        if fingerprint != self.fingerprint:
            raise Conflict(
                "Idempotency-Key: this key was used for a different request; send a new key with a new "
                "request"
            )


class RequestRecords(Protocol):
    async def recall(self, key: RequestKey) -> Outcome | None:
        """The outcome stored under ``key`` (None for a new key, or one older than RETAINED);
        ``Conflict`` when the key was used for a different request."""
        ...

    async def remember(self, key: RequestKey, outcome: Outcome) -> None:
        """Store the outcome in the unit: a concurrent request with the same key that commits first
        makes this unit fail (``DuplicateRecord(index="_id_")`` or a write conflict, retried)."""
        ...


class MongoRequestRecords:
    def __init__(self, tx: Transaction, now: datetime) -> None:
        self.tx, self.now = tx, now

    async def recall(self, key: RequestKey) -> Outcome | None:
        doc = await self.tx.db[IDEMPOTENCY_KEYS].find_one(
            {"_id": key.key, "at": {"$gte": self.now - RETAINED}}, session=self.tx.session
        )
        if doc is None:
            return None
        key.check(doc["fingerprint"])
        outcome: Outcome = doc["outcome"]
        return outcome

    async def remember(self, key: RequestKey, outcome: Outcome) -> None:
        # Over an expired record of the key (the TTL monitor may not have run yet), else a new one: an
        # upsert whose filter misses a fresh record inserts, and its _id refuses the second.
        await self.tx.db[IDEMPOTENCY_KEYS].replace_one(
            {"_id": key.key, "at": {"$lt": self.now - RETAINED}},
            {"fingerprint": key.fingerprint, "outcome": outcome, "at": self.now},
            upsert=True,
            session=self.tx.session,
        )


class InMemoryRequestRecords:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.records: dict[str, tuple[str, Outcome, datetime]] = {}

    async def recall(self, key: RequestKey) -> Outcome | None:
        found = self.records.get(key.key)
        if found is None or found[2] < self.clock.now() - RETAINED:
            return None
        key.check(found[0])
        return found[1]

    async def remember(self, key: RequestKey, outcome: Outcome) -> None:
        self.records[key.key] = (key.fingerprint, outcome, self.clock.now())


async def ensure_request_records(store: Store) -> None:
    """Keys expire after RETAINED (a TTL index, where the database runs them); their collection exists
    before a transaction inserts into it."""
    await store.db[IDEMPOTENCY_KEYS].create_index("at", expireAfterSeconds=int(RETAINED.total_seconds()))
