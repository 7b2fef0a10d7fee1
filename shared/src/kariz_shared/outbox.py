"""The outbox relay: publishes what transactions wrote to the ``outbox`` collection, in order.

At-least-once: an event is marked published only after Kafka acknowledged it, so a crash between the
two publishes it again, with the same ``ce_id``; consumers drop the repeat (see ``Store.handle_once``).
Order per key holds because a batch is read in outbox order and sent in that order, and the next batch
is read only after the whole batch was acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from faststream.kafka import KafkaBroker

from kariz_shared.metrics import events_published, outbox_backlog, outbox_oldest_age
from kariz_shared.persistence import OUTBOX, Store
from kariz_shared.settings import ServiceSettings

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(self, store: Store, broker: KafkaBroker, settings: ServiceSettings) -> None:
        self.store = store
        self.broker = broker
        self.settings = settings
        self.service = settings.service_name
        self._stopping = asyncio.Event()

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished events. Returns how many were published."""
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
        await asyncio.gather(*pending)
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
                await self.measure_backlog()
                backoff = self.settings.outbox_poll_interval_s
                if published:
                    continue  # there may be more
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("outbox relay could not publish; will retry", exc_info=True)
                backoff = min(backoff * 2, 10.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.store.outbox_signal.wait(), timeout=backoff)

    async def stop(self) -> None:
        """Stop after the batch in flight, then publish what is left: a clean shutdown leaves no backlog."""
        self._stopping.set()
        self.store.outbox_signal.set()
        with contextlib.suppress(Exception):
            while await self.publish_pending():
                pass
