"""Claiming deliveries against the real database: a lane takes a batch with one look, orphans of a
dead sender first, and two senders claiming at once never take the same delivery; a batch's attempts
are recorded with one write, only for the deliveries its sender still holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from kariz_devkit.testing import Backends, unique
from kariz_notifications.adapters.mongo.repositories import MongoDeliveryQueue
from kariz_notifications.domain.model import Attempt, Channel, Delivery, DeliveryStatus, Email
from kariz_notifications.domain.schedule import NextStep

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest_asyncio.fixture(loop_scope="session")
async def db(backends: Backends) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(backends.mongodb_uri, tz_aware=True)
    name = unique("claims")
    yield client[name]
    await client.drop_database(name)
    await client.close()


def delivery(key: str, status: str, *, due: datetime, lease_until: datetime | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": key,
        "channel": "email",
        "recipient": f"{key}@kariz.test",
        "event_type": "DealWon",
        "event_id": key,
        "subject": "D-1",
        "correlation_id": "c",
        "message": {"to": f"{key}@kariz.test", "subject": "s", "body": "b\n"},
        "status": status,
        "next_attempt_at": due,
        "created_at": NOW,
        "sent_at": None,
        "attempts": [],
    }
    if lease_until is not None:
        doc |= {"lease_until": lease_until, "lease_token": "dead", "claims": 1}
    return doc


async def test_a_claim_takes_a_batch_orphans_first_and_concurrent_claims_never_share(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    due = [delivery(f"due-{n:02}", "pending", due=NOW - timedelta(seconds=60 - n)) for n in range(15)]
    orphan = delivery("orphan", "sending", due=NOW, lease_until=NOW - timedelta(seconds=1))
    leased = delivery("leased", "sending", due=NOW, lease_until=NOW + timedelta(minutes=5))
    later = delivery("later", "pending", due=NOW + timedelta(minutes=5))
    await db.deliveries.insert_many([*due, orphan, leased, later])
    repo = MongoDeliveryQueue(db)

    first = await repo.claim(NOW, NOW + timedelta(minutes=1), "lane-1", limit=3)
    # The dead sender's delivery first, then the due ones, earliest first.
    assert [r.delivery.key for r in first] == ["orphan", "due-00", "due-01"]
    assert all(r.resumed_after_crash == (r.delivery.key == "orphan") for r in first)

    a, b = await asyncio.gather(
        repo.claim(NOW, NOW + timedelta(minutes=1), "lane-2", limit=10),
        repo.claim(NOW, NOW + timedelta(minutes=1), "lane-3", limit=10),
    )
    taken_a, taken_b = {r.delivery.key for r in a}, {r.delivery.key for r in b}
    assert not taken_a & taken_b
    # Both looked at the same candidates: what one took, the other lost and left pending for the next look.
    rest = await repo.claim(NOW, NOW + timedelta(minutes=1), "lane-4", limit=20)
    taken_rest = {r.delivery.key for r in rest}
    assert not (taken_a | taken_b) & taken_rest
    assert taken_a | taken_b | taken_rest == {d["_id"] for d in due[2:]}
    # Each is held by the sender that took it; the leased and the not yet due stay where they were.
    tokens = {doc["_id"]: doc.get("lease_token") async for doc in db.deliveries.find()}
    assert {tokens[key] for key in taken_a} <= {"lane-2"} and {tokens[key] for key in taken_b} <= {"lane-3"}
    assert (tokens["leased"], tokens["later"]) == ("dead", None)
    assert await repo.claim(NOW, NOW + timedelta(minutes=1), "lane-5", limit=10) == []


async def test_a_new_delivery_is_taken_by_id_once_and_then_never_by_a_look(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    fresh = {**delivery("fresh", "pending", due=NOW), "claims": 0}
    taken_before = {**delivery("taken", "sending", due=NOW, lease_until=NOW + timedelta(minutes=5))}
    await db.deliveries.insert_many([fresh, taken_before])
    repo = MongoDeliveryQueue(db)
    wanted = [
        Delivery(
            key=key,
            channel=Channel.EMAIL,
            recipient=f"{key}@kariz.test",
            event_type="DealWon",
            event_id=key,
            subject="D-1",
            correlation_id="c",
            message=Email(to=f"{key}@kariz.test", subject="s", body="b\n"),
        )
        for key in ("fresh", "taken")
    ]
    lease = NOW + timedelta(minutes=1)

    first = await repo.claim_new(wanted, lease, "lane-1")
    # Only the one nobody had claimed; the other stays with its sender.
    assert [(r.delivery.key, r.status.value, r.claims) for r in first] == [("fresh", "sending", 1)]
    assert not first[0].resumed_after_crash
    assert await repo.claim_new(wanted, lease, "lane-2") == []
    assert await repo.claim(NOW, lease, "lane-3", limit=10) == []
    tokens = {doc["_id"]: doc.get("lease_token") async for doc in db.deliveries.find()}
    assert tokens == {"fresh": "lane-1", "taken": "dead"}


async def test_a_batch_records_only_the_deliveries_its_sender_still_holds(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    await db.deliveries.insert_many(
        [
            {**delivery(key, "pending", due=NOW - timedelta(seconds=1)), "claims": 0}
            for key in ("kept", "lost")
        ]
    )
    repo = MongoDeliveryQueue(db)
    # lane-1 takes both with a lease that has already run out, so lane-2 takes "lost" over as an orphan.
    taken = await repo.claim(NOW, NOW - timedelta(milliseconds=1), "lane-1", limit=2)
    assert sorted(r.delivery.key for r in taken) == ["kept", "lost"]
    await db.deliveries.update_one({"_id": "kept"}, {"$set": {"lease_until": NOW + timedelta(minutes=1)}})
    [orphan] = await repo.claim(NOW, NOW + timedelta(minutes=1), "lane-2", limit=1)
    assert orphan.delivery.key == "lost" and orphan.resumed_after_crash

    sent = NextStep(DeliveryStatus.SENT, None, NOW)
    attempt = Attempt(at=NOW, succeeded=True, duration_ms=3)
    # One write for the batch; the one lane-1 lost stays for lane-2 to record.
    assert await repo.record([("kept", attempt, sent), ("lost", attempt, sent)], "lane-1") == {"kept"}
    assert await repo.record([("lost", attempt, sent)], "lane-2") == {"lost"}
    docs = {d["_id"]: d async for d in db.deliveries.find()}
    assert {key: (d["status"], len(d["attempts"])) for key, d in docs.items()} == {
        "kept": ("sent", 1),
        "lost": ("sent", 1),
    }
