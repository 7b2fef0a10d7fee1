"""The managed webhook subscriptions in MongoDB (collection ``subscriptions``, ``_id`` = id)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from kariz_notifications.domain.subscriptions import ManagedSubscription
from kariz_shared.persistence.store import Transaction

SUBSCRIPTIONS = "subscriptions"
Doc = dict[str, Any]


def subscription_document(s: ManagedSubscription) -> Doc:
    return {
        "_id": s.id,
        "url": s.url,
        "events": sorted(s.events),
        "secret": s.secret,
        "created_by": s.created_by,
        "created_at": s.created_at,
    }


def subscription_from_document(doc: Doc) -> ManagedSubscription:
    return ManagedSubscription(
        id=doc["_id"],
        url=doc["url"],
        events=frozenset(doc["events"]),
        secret=doc["secret"],
        created_by=doc["created_by"],
        created_at=doc["created_at"].astimezone(UTC),
    )


class MongoManagedSubscriptions:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db[SUBSCRIPTIONS]

    async def all(self) -> list[ManagedSubscription]:
        found = self.collection.find({}, session=self.tx.session).sort([("created_at", 1), ("_id", 1)])
        return [subscription_from_document(doc) async for doc in found]

    async def add(self, subscription: ManagedSubscription) -> None:
        await self.collection.insert_one(subscription_document(subscription), session=self.tx.session)

    async def remove(self, subscription_id: str) -> bool:
        result = await self.collection.delete_one({"_id": subscription_id}, session=self.tx.session)
        return result.deleted_count == 1


class MongoSubscriptionSecrets:
    """The sender's look-up of a managed subscription's secret, at send time, outside any transaction."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.collection = db[SUBSCRIPTIONS]

    async def secret(self, subscription_id: str) -> str | None:
        doc = await self.collection.find_one({"_id": subscription_id}, projection={"secret": 1})
        return str(doc["secret"]) if doc else None
