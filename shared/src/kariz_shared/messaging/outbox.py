"""The outbox relay: publishes what transactions wrote to the ``outbox`` collection, in order.

At-least-once: an event is marked published only after Kafka acknowledged it, so a crash between the
two publishes it again, with the same ``ce_id``; consumers drop the repeat
(:mod:`kariz_shared.messaging.inbox`).
Order per key holds because a batch is read in outbox order and sent in that order, and the next batch
is read only after the whole batch was acknowledged.

Several replicas of a service share one outbox. Only the holder of the relay lease (a document in the
service's database, renewed while it works) publishes, so replicas never race each other through the
same events; when the holder dies, another takes over once the lease runs out, and a holder that stops
cleanly hands it over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from kariz_shared.messaging.broker import ensure_topics, kafka_client_options
from kariz_shared.persistence.store import OUTBOX, Store
from kariz_shared.runtime.metrics import (
    events_published,
    outbox_backlog,
    outbox_oldest_age,
    outbox_relay_leader,
)
from kariz_shared.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)

RELAY_LEASE = "outbox_relay_lease"
LEASE_ID = "relay"


class OutboxRelay:
    def __init__(self, store: Store, broker: KafkaBroker, settings: ServiceSettings) -> None:
        self.store = store
        self.broker = broker
        self.settings = settings
        self.service = settings.service_name
        self.owner = settings.instance_id
        self.lease = timedelta(seconds=settings.outbox_lease_s)
        self._lease_until: datetime | None = None
        self._stopping = asyncio.Event()
        self._next_measure = 0.0

    @property
    def leading(self) -> bool:
        """This replica holds the lease (with a margin, so it never publishes on a lapsing lease)."""
        return self._lease_until is not None and datetime.now(UTC) < self._lease_until - self.lease / 3

    async def take_lease(self) -> bool:
        """Take or renew the relay lease. False while another live replica holds it."""
        now = datetime.now(UTC)
        try:
            doc = await self.store.db[RELAY_LEASE].find_one_and_update(
                {"_id": LEASE_ID, "$or": [{"owner": self.owner}, {"expires_at": {"$lte": now}}]},
                {"$set": {"owner": self.owner, "expires_at": now + self.lease, "renewed_at": now}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            doc = None  # held by another replica: the upsert met its document
        if doc is None or doc["owner"] != self.owner:
            if self._lease_until is not None:
                log.warning("outbox relay lease lost to another replica")
            self._lease_until = None
        else:
            if self._lease_until is None:
                log.info("outbox relay lease taken", extra={"owner": self.owner})
            self._lease_until = now + self.lease
        outbox_relay_leader.labels(self.service).set(1 if self._lease_until else 0)
        return self._lease_until is not None

    async def release_lease(self) -> None:
        """Hand the lease over at once: the next replica need not wait for it to run out."""
        if self._lease_until is None:
            return
        self._lease_until = None
        outbox_relay_leader.labels(self.service).set(0)
        await self.store.db[RELAY_LEASE].update_one(
            {"_id": LEASE_ID, "owner": self.owner}, {"$set": {"expires_at": datetime.now(UTC)}}
        )

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished events, if this replica holds the lease. Returns how many."""
        if not self.leading and not await self.take_lease():
            return 0
        outbox = self.store.db[OUTBOX]
        batch: list[dict[str, Any]] = (
            await outbox.find({"published_at": None})
            .sort("order", 1)
            .limit(self.settings.outbox_batch_size)
            .to_list()
        )
        if not batch:
            return 0
        # Sent without waiting for each acknowledgement; aiokafka keeps per-partition order.
        pending = [
            await self.broker.publish(
                doc["value"],
                doc["topic"],
                key=doc["key"].encode(),
                headers=doc["headers"],
                correlation_id=doc["headers"].get("ce_correlationid"),
                no_confirm=True,
            )
            for doc in batch
        ]
        # Bounded: a broker that lost a topic can leave a send waiting for ever. The batch is then sent
        # again (same ce_ids, consumers drop repeats) rather than holding up the outbox.
        await asyncio.wait_for(asyncio.gather(*pending), timeout=self.settings.outbox_publish_timeout_s)
        await outbox.update_many(
            {"_id": {"$in": [doc["_id"] for doc in batch]}}, {"$set": {"published_at": datetime.now(UTC)}}
        )
        for doc in batch:
            events_published.labels(self.service, doc["topic"]).inc()
        return len(batch)

    async def measure_backlog(self) -> None:
        outbox = self.store.db[OUTBOX]
        backlog = await outbox.count_documents({"published_at": None})
        outbox_backlog.labels(self.service).set(backlog)
        oldest = await outbox.find_one(
            {"published_at": None}, sort=[("order", 1)], projection={"created_at": 1}
        )
        age = (datetime.now(UTC) - oldest["created_at"]).total_seconds() if oldest else 0.0
        outbox_oldest_age.labels(self.service).set(age)

    async def run(self) -> None:
        backoff = self.settings.outbox_poll_interval_s
        while not self._stopping.is_set():
            # Cleared before reading, so a commit during this batch wakes the next round at once.
            self.store.outbox_signal.clear()
            try:
                published = await self.publish_pending()
                if time.monotonic() >= self._next_measure:
                    # Two reads: once a second is plenty for a gauge, and keeps them off the busy path.
                    await self.measure_backlog()
                    self._next_measure = time.monotonic() + 1.0
                backoff = self.settings.outbox_poll_interval_s
                if published:
                    continue  # there may be more
                if not self.leading:
                    # A follower looks again well before the leader's lease could run out.
                    backoff = max(backoff, self.settings.outbox_lease_s / 3)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The broker or the database is away: events wait in the outbox, nothing is lost.
                log.warning("outbox relay could not publish; will retry", extra={"error": repr(exc)})
                backoff = min(backoff * 2, 10.0)
                await self._recreate_topics()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.store.outbox_signal.wait(), timeout=backoff)

    async def _recreate_topics(self) -> None:
        """Where Kariz manages its topics (dev stack, tests), a broker that lost them (the embedded one
        keeps them in memory) gets them back, so publishing resumes by itself."""
        if not self.settings.kafka_create_topics:
            return
        with contextlib.suppress(Exception):
            created = await ensure_topics(
                self.settings.kafka_bootstrap_servers,
                partitions=self.settings.kafka_topic_partitions,
                replication_factor=self.settings.kafka_replication_factor,
                client_options=kafka_client_options(self.settings),
            )
            if created:
                log.warning("the broker had lost topics; created them again", extra={"topics": len(created)})

    async def stop(self) -> None:
        """Stop after the batch in flight, then publish what is left (when leading): a clean shutdown
        leaves no backlog, and hands the lease over."""
        self._stopping.set()
        self.store.outbox_signal.set()
        with contextlib.suppress(Exception):
            while self.leading and await self.publish_pending():
                pass
        with contextlib.suppress(Exception):
            await self.release_lease()
