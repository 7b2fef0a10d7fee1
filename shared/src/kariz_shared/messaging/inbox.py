"""The inbox: each consumer group applies each event once.

A consumer records the id of every event it handled in ``processed_events``, in the same transaction as
the event's effect, so an event delivered again (a redelivery after a crash, a replayed dead letter, the
relay publishing twice) changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import Event
from kariz_shared.persistence.store import PROCESSED_EVENTS, Store, Transaction


async def handle_once(
    store: Store,
    consumer: str,
    envelopes: list[Envelope[Event]],
    work: Callable[[Envelope[Event], Transaction], Awaitable[None]],
) -> list[bool]:
    """Apply ``work`` to each event, in order, in one transaction, skipping those this consumer already
    handled; their "handled" markers are written in the same transaction. Returns, per envelope,
    whether it was applied (False: a duplicate). Any failure aborts the whole batch.

    One look for the markers already there, one write of the new ones, one outbox write and one
    commit for the whole batch: the per-event cost is the handler's own reads and writes."""
    markers = [f"{consumer}:{envelope.id}" for envelope in envelopes]

    async def apply_all(tx: Transaction) -> list[bool]:
        done = {
            doc["_id"]
            async for doc in tx.db[PROCESSED_EVENTS].find(
                {"_id": {"$in": markers}}, projection={"_id": 1}, session=tx.session
            )
        }
        applied: list[bool] = []
        fresh: list[Envelope[Event]] = []
        for marker, envelope in zip(markers, envelopes, strict=True):
            first = marker not in done
            done.add(marker)  # the same event twice in one batch (republished) counts once
            applied.append(first)
            if first:
                fresh.append(envelope)
        if fresh:
            now = datetime.now(UTC)
            await tx.db[PROCESSED_EVENTS].insert_many(
                [
                    {
                        "_id": f"{consumer}:{envelope.id}",
                        "consumer": consumer,
                        "event_id": envelope.id,
                        "type": envelope.event.ce_type(),
                        "subject": envelope.key,
                        "handled_at": now,
                    }
                    for envelope in fresh
                ],
                session=tx.session,
            )
        tx.events = [envelope.event for envelope in fresh]
        for envelope in fresh:
            # What the handler emits continues this event's story.
            tx.correlation_id, tx.causation_id = envelope.correlation_id, envelope.id
            await work(envelope, tx)
        return applied

    # A consumer retries anyway; a longer limit saves redoing work that was merely slow under load.
    return await store.transaction(apply_all, timeout_s=store.settings.consumer_transaction_timeout_s)
