"""Deliveries and hand-overs in MongoDB.

A delivery document's ``_id`` is its delivery key, so adding one twice leaves the first. The delivery
worker claims and records with single-document atomic updates: one document is the whole unit of work
there, and the lease token makes a sender that lost its lease unable to overwrite the new owner's result.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from kariz_notifications.domain.model import (
    Attempt,
    Channel,
    Delivery,
    DeliveryRecord,
    DeliveryStatus,
    Email,
    Handover,
    HandoverStatus,
    WebhookPost,
)
from kariz_notifications.domain.schedule import NextStep
from kariz_shared.persistence.store import Store, Transaction, find_page

DELIVERIES = "deliveries"
HANDOVERS = "handovers"

Doc = dict[str, Any]
# Deliveries written in the same millisecond keep the order they were written in (ObjectId grows).
NEWEST_FIRST = [("created_at", DESCENDING), ("order", DESCENDING)]


async def ensure_indexes(store: Store) -> None:
    deliveries = store.db[DELIVERIES]
    # The worker's two claims: due pending ones, and "sending" ones whose sender died.
    await deliveries.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
    await deliveries.create_index([("status", ASCENDING), ("lease_until", ASCENDING)])
    # GET /notifications: newest first, alone or with one filter.
    await deliveries.create_index(NEWEST_FIRST)
    for field in ("status", "channel", "event_type", "recipient", "subject"):
        await deliveries.create_index([(field, ASCENDING), *NEWEST_FIRST])
    # No query filters by event id, and every index costs each delivery write: dropped where an earlier
    # version made it.
    with contextlib.suppress(OperationFailure):
        await deliveries.drop_index("event_id_1_created_at_-1_order_-1")
    await store.db[HANDOVERS].create_index([("created_at", DESCENDING), ("_id", DESCENDING)])
    await store.db[HANDOVERS].create_index([("status", ASCENDING), ("created_at", DESCENDING)])


@dataclass(frozen=True)
class DeliveryFilter:
    status: DeliveryStatus | None = None
    channel: Channel | None = None
    event_type: str | None = None
    recipient: str | None = None
    subject: str | None = None

    def query(self) -> Doc:
        query: Doc = {}
        for name in ("status", "channel", "event_type", "recipient", "subject"):
            value = getattr(self, name)
            if value is not None:
                query[name] = str(value)
        return query


def _message_doc(message: Email | WebhookPost) -> Doc:
    if isinstance(message, Email):
        return {"to": message.to, "subject": message.subject, "body": message.body}
    return {"url": message.url, "subscriber": message.subscriber, "body": message.body}


def _attempt_doc(attempt: Attempt) -> Doc:
    doc: Doc = {"at": attempt.at, "outcome": attempt.outcome, "duration_ms": attempt.duration_ms}
    if attempt.error is not None:
        doc["error"] = attempt.error
    if attempt.status_code is not None:
        doc["status_code"] = attempt.status_code
    return doc


def _taken_by(token: str, lease_until: datetime) -> Doc:
    """The update that hands a delivery to one sender until its lease runs out."""
    return {
        "$set": {"status": DeliveryStatus.SENDING.value, "lease_until": lease_until, "lease_token": token},
        "$inc": {"claims": 1},
    }


def to_record(doc: Doc) -> DeliveryRecord:
    channel = Channel(doc["channel"])
    m = doc["message"]
    message: Email | WebhookPost = (
        Email(to=m["to"], subject=m["subject"], body=m["body"])
        if channel is Channel.EMAIL
        else WebhookPost(url=m["url"], subscriber=m["subscriber"], body=m["body"])
    )
    delivery = Delivery(
        key=doc["_id"],
        channel=channel,
        recipient=doc["recipient"],
        event_type=doc["event_type"],
        event_id=doc["event_id"],
        subject=doc["subject"],
        correlation_id=doc["correlation_id"],
        message=message,
    )
    attempts = tuple(
        Attempt(
            at=a["at"],
            succeeded=a["outcome"] == "sent",
            duration_ms=a["duration_ms"],
            error=a.get("error"),
            status_code=a.get("status_code"),
        )
        for a in doc.get("attempts", [])
    )
    return DeliveryRecord(
        delivery=delivery,
        status=DeliveryStatus(doc["status"]),
        attempts=attempts,
        created_at=doc["created_at"],
        next_attempt_at=doc.get("next_attempt_at"),
        sent_at=doc.get("sent_at"),
        claims=doc.get("claims", 0),
    )


class DeliveryRepository:
    def __init__(self, db: AsyncDatabase[Doc], session: AsyncClientSession | None = None) -> None:
        self.collection = db[DELIVERIES]
        self.session = session

    @staticmethod
    def add(tx: Transaction, delivery: Delivery, now: datetime) -> None:
        """Record a new pending delivery, due now, when ``tx`` commits; one that already exists stays as
        it is. Queued so that a batch of events writes its deliveries together."""
        doc: Doc = {
            "_id": delivery.key,
            "channel": delivery.channel.value,
            "recipient": delivery.recipient,
            "event_type": delivery.event_type,
            "event_id": delivery.event_id,
            "subject": delivery.subject,
            "correlation_id": delivery.correlation_id,
            "message": _message_doc(delivery.message),
            "status": DeliveryStatus.PENDING.value,
            "next_attempt_at": now,
            "created_at": now,
            "order": ObjectId(),
            "sent_at": None,
            "attempts": [],
            "claims": 0,
        }
        tx.insert_later(DELIVERIES, doc, unless_present=True)

    async def claim(
        self, now: datetime, lease_until: datetime, token: str, *, limit: int = 1
    ) -> list[DeliveryRecord]:
        """Take up to ``limit`` deliveries for this sender alone: those whose sender's lease ran out
        first (under a steady stream of new ones they would starve), then the due ones, earliest first."""
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
            seen = await self.collection.find(
                claimable, sort=[(order, ASCENDING)], projection={"_id": 1}, session=self.session
            ).to_list(limit - len(claimed))
            claimed += await self._take([doc["_id"] for doc in seen], claimable, token, lease_until)
        return claimed

    async def claim_new(
        self, deliveries: list[Delivery], now: datetime, lease_until: datetime, token: str
    ) -> list[DeliveryRecord]:
        """Take these just-recorded deliveries by id, each if no sender has claimed it yet: no look at
        the queue, whose sorted read costs the embedded database time in proportion to the backlog."""
        return await self._take([d.key for d in deliveries], {"claims": 0}, token, lease_until)

    async def _take(
        self, keys: list[str], claimable: Doc, token: str, lease_until: datetime
    ) -> list[DeliveryRecord]:
        """Hand those of ``keys`` that still match ``claimable`` to ``token``, and return them as taken
        (read back after the take, so their claim count and attempts are what this sender holds), in the
        order of ``keys``."""
        if not keys:
            return []
        result = await self.collection.update_many(
            {"_id": {"$in": keys}, **claimable}, _taken_by(token, lease_until), session=self.session
        )
        if result.modified_count == 0:
            return []
        taken = {
            doc["_id"]: to_record(doc)
            async for doc in self.collection.find(
                {"_id": {"$in": keys}, "lease_token": token}, session=self.session
            )
        }
        return [taken[key] for key in keys if key in taken]

    async def next_due(self) -> datetime | None:
        """When the earliest pending delivery falls due."""
        doc = await self.collection.find_one(
            {"status": DeliveryStatus.PENDING.value},
            projection={"next_attempt_at": 1},
            sort=[("next_attempt_at", ASCENDING)],
            session=self.session,
        )
        return doc["next_attempt_at"] if doc is not None else None

    async def record(self, outcomes: list[tuple[str, Attempt, NextStep]], token: str) -> set[str]:
        """Log each delivery's attempt and move it on, all in one write. Returns the keys recorded: a
        delivery this sender no longer holds the lease on is left to its new sender."""
        if not outcomes:
            return set()
        result = await self.collection.bulk_write(
            [
                UpdateOne(
                    {"_id": key, "lease_token": token},
                    {
                        "$push": {"attempts": _attempt_doc(attempt)},
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
            session=self.session,
        )
        keys = [key for key, _, _ in outcomes]
        if result.modified_count == len(keys):
            return set(keys)
        # Rare (a lease ran out mid-send): which were this sender's to record.
        return {
            doc["_id"]
            async for doc in self.collection.find(
                {"_id": {"$in": keys}, "recorded_by": token}, projection={"_id": 1}, session=self.session
            )
        }

    async def get(self, key: str) -> DeliveryRecord | None:
        doc = await self.collection.find_one({"_id": key}, session=self.session)
        return to_record(doc) if doc is not None else None

    async def find(
        self, where: DeliveryFilter, *, limit: int, offset: int
    ) -> tuple[list[DeliveryRecord], int]:
        docs, total = await find_page(
            self.collection,
            where.query(),
            sort=NEWEST_FIRST,
            limit=limit,
            offset=offset,
            session=self.session,
        )
        return [to_record(d) for d in docs], total


def _handover_from(doc: Doc) -> tuple[Handover, datetime]:
    account = doc["account"]
    handover = Handover(
        deal_id=doc["deal_id"],
        lead_id=doc["lead_id"],
        account_id=account["id"],
        account_name=account["name"],
        owner=doc["owner"],
        amount=doc["amount"],
        currency=doc["currency"],
        won_at=doc["won_at"],
        status=HandoverStatus(doc["status"]),
    )
    return handover, doc["created_at"]


class HandoverRepository:
    def __init__(self, db: AsyncDatabase[Doc], session: AsyncClientSession | None = None) -> None:
        self.collection = db[HANDOVERS]
        self.session = session

    async def add(self, handover: Handover, correlation_id: str, now: datetime) -> None:
        """One hand-over per deal: a second win of the same deal (a replay) changes nothing."""
        doc: Doc = {
            "deal_id": handover.deal_id,
            "lead_id": handover.lead_id,
            "account": {"id": handover.account_id, "name": handover.account_name},
            "owner": handover.owner,
            "amount": handover.amount,
            "currency": handover.currency,
            "won_at": handover.won_at,
            "status": handover.status.value,
            "correlation_id": correlation_id,
            "created_at": now,
        }
        await self.collection.update_one(
            {"_id": handover.deal_id}, {"$setOnInsert": doc}, upsert=True, session=self.session
        )

    async def find(
        self, *, status: HandoverStatus | None, limit: int, offset: int
    ) -> tuple[list[tuple[Handover, datetime]], int]:
        query: Doc = {} if status is None else {"status": status.value}
        docs, total = await find_page(
            self.collection,
            query,
            sort=[("created_at", DESCENDING), ("_id", DESCENDING)],
            limit=limit,
            offset=offset,
            session=self.session,
        )
        return [_handover_from(d) for d in docs], total
