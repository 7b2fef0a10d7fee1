"""The managed webhook subscriptions in MongoDB (collection ``subscriptions``, ``_id`` = id)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from kariz_notifications.domain.automation import Condition, Operator
from kariz_notifications.domain.subscriptions import (
    DeliveryHealth,
    ManagedSubscription,
    Replay,
    ReplayState,
    SubscriptionState,
)
from kariz_shared.persistence.in_force import InForce
from kariz_shared.persistence.store import Transaction
from kariz_shared.runtime.clock import Clock

SUBSCRIPTIONS = "subscriptions"
HEALTH = "subscription_health"
REPLAYS = "subscription_replays"
ORDER = [("created_at", 1), ("_id", 1)]
Doc = dict[str, Any]


def subscription_document(s: ManagedSubscription) -> Doc:
    return {
        "_id": s.id,
        "url": s.url,
        "events": sorted(s.events),
        "secret": s.secret,
        "created_by": s.created_by,
        "created_at": s.created_at,
        "contact": s.contact,
        "filters": [{"field": c.field, "op": c.op.value, "value": c.value} for c in s.filters],
        "state": s.state.value,
        "state_changed_at": s.state_changed_at,
        "state_reason": s.state_reason,
        "previous_secret": s.previous_secret,
        "previous_until": s.previous_until,
        "debounce_seconds": s.debounce_seconds,
    }


def subscription_from_document(doc: Doc) -> ManagedSubscription:
    return ManagedSubscription(
        id=doc["_id"],
        url=doc["url"],
        events=frozenset(doc["events"]),
        secret=doc["secret"],
        created_by=doc["created_by"],
        created_at=doc["created_at"].astimezone(UTC),
        contact=doc.get("contact"),
        filters=tuple(
            Condition(c["field"], Operator(c["op"]), c.get("value")) for c in doc.get("filters", [])
        ),
        state=SubscriptionState(doc.get("state", SubscriptionState.ACTIVE.value)),
        state_changed_at=_utc(doc.get("state_changed_at")),
        state_reason=doc.get("state_reason"),
        previous_secret=doc.get("previous_secret"),
        previous_until=_utc(doc.get("previous_until")),
        debounce_seconds=doc.get("debounce_seconds"),
    )


def _utc(at: datetime | None) -> datetime | None:
    return at.astimezone(UTC) if at is not None else None


class MongoSubscriptionHealth:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db[HEALTH]

    async def get(self, subscription_id: str) -> DeliveryHealth:
        doc = await self.collection.find_one({"_id": subscription_id}, session=self.tx.session)
        if doc is None:
            return DeliveryHealth(subscription_id)
        return DeliveryHealth(
            subscription_id=subscription_id,
            delivered=doc["delivered"],
            failed=doc["failed"],
            failed_attempts=doc["failed_attempts"],
            failing_in_a_row=doc["failing_in_a_row"],
            last_success_at=_utc(doc.get("last_success_at")),
            last_failure_at=_utc(doc.get("last_failure_at")),
            last_error=doc.get("last_error"),
            suspensions=doc.get("suspensions", 0),
        )

    async def save(self, health: DeliveryHealth) -> None:
        doc = {
            "delivered": health.delivered,
            "failed": health.failed,
            "failed_attempts": health.failed_attempts,
            "failing_in_a_row": health.failing_in_a_row,
            "last_success_at": health.last_success_at,
            "last_failure_at": health.last_failure_at,
            "last_error": health.last_error,
            "suspensions": health.suspensions,
        }
        await self.collection.replace_one(
            {"_id": health.subscription_id}, doc, upsert=True, session=self.tx.session
        )


class MongoManagedSubscriptions:
    def __init__(
        self, tx: Transaction, clock: Clock, in_force: InForce[list[ManagedSubscription]] | None = None
    ) -> None:
        self.tx, self.clock, self.cache = tx, clock, in_force
        self.collection = tx.db[SUBSCRIPTIONS]

    async def all(self) -> list[ManagedSubscription]:
        found = self.collection.find({}, session=self.tx.session).sort(ORDER)
        return [subscription_from_document(doc) async for doc in found]

    async def in_force(self) -> list[ManagedSubscription]:
        if self.cache is None:
            return await self.all()
        return await self.cache.get(self.clock.now(), self._read_outside)

    async def _read_outside(self) -> list[ManagedSubscription]:
        # The process's copy is shared by every unit: read outside this one's transaction.
        return [subscription_from_document(doc) async for doc in self.collection.find({}).sort(ORDER)]

    async def get(self, subscription_id: str) -> ManagedSubscription | None:
        doc = await self.collection.find_one({"_id": subscription_id}, session=self.tx.session)
        return subscription_from_document(doc) if doc is not None else None

    async def add(self, subscription: ManagedSubscription) -> None:
        await self.collection.insert_one(subscription_document(subscription), session=self.tx.session)
        self._changed()

    async def save(self, subscription: ManagedSubscription) -> None:
        await self.collection.replace_one(
            {"_id": subscription.id}, subscription_document(subscription), session=self.tx.session
        )
        self._changed()

    async def remove(self, subscription_id: str) -> bool:
        result = await self.collection.delete_one({"_id": subscription_id}, session=self.tx.session)
        if result.deleted_count == 1:
            self._changed()
        return result.deleted_count == 1

    def _changed(self) -> None:
        if self.cache is not None:
            self.tx.after_commit(self.cache.invalidate)


class MongoReplays:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db[REPLAYS]

    async def get(self, replay_id: str) -> Replay | None:
        doc = await self.collection.find_one({"_id": replay_id}, session=self.tx.session)
        return _replay(doc) if doc else None

    async def latest(self, subscription_id: str) -> Replay | None:
        found = self.collection.find({"subscription_id": subscription_id}, session=self.tx.session)
        docs = await found.sort([("requested_at", -1), ("_id", -1)]).limit(1).to_list(1)
        return _replay(docs[0]) if docs else None

    async def save(self, replay: Replay) -> None:
        doc = {
            "subscription_id": replay.subscription_id,
            "since": replay.since,
            "requested_by": replay.requested_by,
            "requested_at": replay.requested_at,
            "state": replay.state.value,
            "read": replay.read,
            "matched": replay.matched,
            "finished_at": replay.finished_at,
            "error": replay.error,
            "claimed_until": replay.claimed_until,
        }
        await self.collection.replace_one({"_id": replay.id}, doc, upsert=True, session=self.tx.session)

    async def claimable(self, now: datetime) -> Replay | None:
        waiting = {
            "$or": [
                {"state": ReplayState.PENDING.value},
                {"state": ReplayState.RUNNING.value, "claimed_until": {"$lt": now}},
            ]
        }
        found = self.collection.find(waiting, session=self.tx.session)
        docs = await found.sort([("requested_at", 1), ("_id", 1)]).limit(1).to_list(1)
        return _replay(docs[0]) if docs else None


def _replay(doc: Doc) -> Replay:
    return Replay(
        id=doc["_id"],
        subscription_id=doc["subscription_id"],
        since=doc["since"].astimezone(UTC),
        requested_by=doc["requested_by"],
        requested_at=doc["requested_at"].astimezone(UTC),
        state=ReplayState(doc["state"]),
        read=doc["read"],
        matched=doc["matched"],
        finished_at=_utc(doc.get("finished_at")),
        error=doc.get("error"),
        claimed_until=_utc(doc.get("claimed_until")),
    )


class MongoSubscriptionSecrets:
    """The sender's look-up of a managed subscription's secrets, at send time, outside any transaction:
    the current one, and the previous one while a rotation's grace lasts (the clock's time)."""

    def __init__(self, db: AsyncDatabase[Doc], clock: Clock) -> None:
        self.collection = db[SUBSCRIPTIONS]
        self.clock = clock

    async def secret(self, subscription_id: str) -> list[str] | None:
        doc = await self.collection.find_one({"_id": subscription_id})
        return subscription_from_document(doc).signing_secrets(self.clock.now()) if doc else None
