"""Deliveries and hand-overs in MongoDB.

Inside a unit of work, new deliveries are queued and written with the batch's other new documents in
one ``insert_many`` at commit. Outside it, the senders claim and record with atomic updates per
document, a batch per command: one document is the whole unit of work there, and the lease token makes a
sender that lost its lease unable to overwrite the new owner's result.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from kariz_notifications.adapters.mongo.documents import (
    DELIVERIES,
    HANDOVERS,
    HANDOVERS_NEWEST_FIRST,
    NEWEST_FIRST,
    Doc,
    attempt_document,
    deliveries_query,
    delivery_document,
    delivery_record,
    handover_document,
    handover_record,
)
from kariz_notifications.domain.model import (
    Attempt,
    Delivery,
    DeliveryRecord,
    DeliveryStatus,
    Handover,
    HandoverRecord,
    HandoverStatus,
)
from kariz_notifications.domain.queries import DeliveryCriteria
from kariz_notifications.domain.schedule import NextStep
from kariz_shared.persistence.store import Transaction, find_page


class MongoDeliveries:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    def add(self, delivery: Delivery, at: datetime) -> None:
        # Queued, so that a batch of events writes its deliveries together.
        self.tx.insert_later(DELIVERIES, delivery_document(delivery, at), unless_present=True)


class MongoHandovers:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    async def open(self, handover: Handover, correlation_id: str, at: datetime) -> None:
        await self.tx.db[HANDOVERS].update_one(
            {"_id": handover.deal_id},
            {"$setOnInsert": handover_document(handover, correlation_id, at)},
            upsert=True,
            session=self.tx.session,
        )


def _taken_by(token: str, lease_until: datetime) -> Doc:
    """The update that hands a delivery to one sender until its lease runs out."""
    return {
        "$set": {"status": DeliveryStatus.SENDING.value, "lease_until": lease_until, "lease_token": token},
        "$inc": {"claims": 1},
    }


class MongoDeliveryQueue:
    """The senders' side of the deliveries (see ``service_layer.unit_of_work.DeliveryQueue``)."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self._collection = db[DELIVERIES]

    async def claim(
        self, now: datetime, lease_until: datetime, token: str, *, limit: int = 1
    ) -> list[DeliveryRecord]:
        # One indexed look for candidates, then one update of all of them that takes each only if it is
        # still claimable (the filter is checked again per document as it is written, so two senders
        # never take the same one), then one read of what this sender's token holds: three commands a
        # batch. Not a find-and-modify per delivery: the embedded database's costs ~100 ms at 10,000
        # deliveries whatever its filter; and its sorted look reads every pending delivery, so a look
        # serves a batch rather than one delivery.
        due = {"status": DeliveryStatus.PENDING.value, "next_attempt_at": {"$lte": now}}
        orphaned = {"status": DeliveryStatus.SENDING.value, "lease_until": {"$lte": now}}
        claimed: list[DeliveryRecord] = []
        for claimable, order in ((orphaned, "lease_until"), (due, "next_attempt_at")):
            if len(claimed) >= limit:
                break
            seen = await self._collection.find(
                claimable, sort=[(order, ASCENDING)], projection={"_id": 1}
            ).to_list(limit - len(claimed))
            claimed += await self._take([doc["_id"] for doc in seen], claimable, token, lease_until)
        return claimed

    async def claim_new(
        self, deliveries: Sequence[Delivery], lease_until: datetime, token: str
    ) -> list[DeliveryRecord]:
        # By id, no look at the queue: its sorted read costs the embedded database time in proportion
        # to the backlog.
        # A skipped delivery (content without consent) is never claimed: it is pending never.
        claimable = {"claims": 0, "status": DeliveryStatus.PENDING.value}
        return await self._take([d.key for d in deliveries], claimable, token, lease_until)

    async def _take(
        self, keys: list[str], claimable: Doc, token: str, lease_until: datetime
    ) -> list[DeliveryRecord]:
        """Hand those of ``keys`` that still match ``claimable`` to ``token``, and return them as taken
        (read back after the take, so their claim count and attempts are what this sender holds), in the
        order of ``keys``."""
        if not keys:
            return []
        result = await self._collection.update_many(
            {"_id": {"$in": keys}, **claimable}, _taken_by(token, lease_until)
        )
        if result.modified_count == 0:
            return []
        taken = {
            doc["_id"]: delivery_record(doc)
            async for doc in self._collection.find({"_id": {"$in": keys}, "lease_token": token})
        }
        return [taken[key] for key in keys if key in taken]

    async def next_due(self) -> datetime | None:
        doc = await self._collection.find_one(
            {"status": DeliveryStatus.PENDING.value},
            projection={"next_attempt_at": 1},
            sort=[("next_attempt_at", ASCENDING)],
        )
        return doc["next_attempt_at"] if doc is not None else None

    async def record(self, outcomes: Sequence[tuple[str, Attempt, NextStep]], token: str) -> set[str]:
        # All in one write: the embedded database's cost is per command.
        if not outcomes:
            return set()
        result = await self._collection.bulk_write(
            [
                UpdateOne(
                    {"_id": key, "lease_token": token},
                    {
                        "$push": {"attempts": attempt_document(attempt)},
                        "$set": {
                            "status": step.status.value,
                            "next_attempt_at": step.next_attempt_at,
                            "sent_at": step.sent_at,
                            "recorded_by": token,
                        },
                        "$unset": {"lease_until": "", "lease_token": ""},
                    },
                )
                for key, attempt, step in outcomes
            ],
            ordered=False,
        )
        keys = [key for key, _, _ in outcomes]
        if result.modified_count == len(keys):
            return set(keys)
        # Rare (a lease ran out mid-send): which were this sender's to record.
        return {
            doc["_id"]
            async for doc in self._collection.find(
                {"_id": {"$in": keys}, "recorded_by": token}, projection={"_id": 1}
            )
        }


class MongoNotificationsReads:
    """The delivery log and the hand-overs, read outside any transaction."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db

    async def deliveries(
        self, where: DeliveryCriteria, *, limit: int, offset: int
    ) -> tuple[list[DeliveryRecord], int]:
        docs, total = await find_page(
            self.db[DELIVERIES], deliveries_query(where), sort=NEWEST_FIRST, limit=limit, offset=offset
        )
        return [delivery_record(d) for d in docs], total

    async def delivery(self, key: str) -> DeliveryRecord | None:
        doc = await self.db[DELIVERIES].find_one({"_id": key})
        return delivery_record(doc) if doc is not None else None

    async def handovers(
        self, status: HandoverStatus | None, *, limit: int, offset: int
    ) -> tuple[list[HandoverRecord], int]:
        query: Doc = {} if status is None else {"status": status.value}
        docs, total = await find_page(
            self.db[HANDOVERS], query, sort=HANDOVERS_NEWEST_FIRST, limit=limit, offset=offset
        )
        return [handover_record(d) for d in docs], total
