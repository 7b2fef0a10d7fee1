"""The timer worker: fires a service's due timers as events, once each, whatever crashes.

Timers are armed, moved and cancelled by use cases through their unit of work
(:mod:`kariz_shared.persistence.unit_of_work`), in the transaction of the change that caused them. This
worker, one in every replica, does the rest:

1. **Claim** the due timers under a lease: one read of candidates, one ``update_many`` that takes those
   still due and unclaimed (or whose claim lapsed) for this claim's token, one read back of what the
   token holds. Several replicas never hold one timer at once.
2. **Fire** them in one transaction: read what this claim still holds (a timer re-armed or cancelled
   since was replaced or deleted, so it is not there), delete those, write their events to the outbox,
   and arm a repeating one again. A claim that dies before this commits fired nothing; its timers are
   claimed again once the lease lapses, so each fires exactly once.
3. **Sleep** until the next due time, or until this process arms an earlier timer (``Store.timer_alarm``),
   or at most ``timer_idle_s`` (for timers other replicas arm): no busy poll, since the embedded database
   serves one command at a time. The time comes from the service's :class:`~kariz_shared.runtime.clock.Clock`,
   so tests move a fake clock instead of waiting.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING

from kariz_shared.persistence.store import TIMERS, Store, Transaction
from kariz_shared.persistence.unit_of_work import Timer
from kariz_shared.runtime.clock import Clock
from kariz_shared.runtime.metrics import timers_fired, timers_oldest_overdue, timers_pending
from kariz_shared.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)


def _claimable(now: datetime) -> dict[str, Any]:
    return {"due_at": {"$lte": now}, "$or": [{"claim_until": None}, {"claim_until": {"$lt": now}}]}


class TimerWorker:
    def __init__(self, store: Store, clock: Clock, settings: ServiceSettings) -> None:
        self.store = store
        self.clock = clock
        self.service = settings.service_name
        self.owner = settings.instance_id
        self.lease = timedelta(seconds=settings.timer_lease_s)
        self.batch = settings.timer_batch_max
        self.idle = timedelta(seconds=settings.timer_idle_s)
        self._retry_s = settings.startup_retry_initial_s
        # The series exist from the start at 0, so increase() counts the first timer fired.
        timers_fired.labels(self.service)

    @property
    def timers(self) -> Any:
        return self.store.db[TIMERS]

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                while await self.fire_due() >= self.batch:
                    pass  # a full batch: more may be due
                alarm = self.store.timer_alarm
                alarm.listen()
                next_due = await self.next_due()
                wake_at = self.clock.now() + self.idle
                if next_due is not None and next_due < wake_at:
                    wake_at = next_due
                alarm.plan(wake_at)
                failures = 0
                await self.clock.sleep_until(wake_at, alarm.wake)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database is away or busy: the timers wait in it; try again after a pause.
                failures += 1
                log.warning("could not fire timers; will retry", exc_info=True)
                await asyncio.sleep(min(self._retry_s * 2 ** min(failures, 5), 10.0))

    async def next_due(self) -> datetime | None:
        """The earliest due time of an unclaimed timer. A claim that lapsed (its worker died) is taken at
        the latest ``timer_idle_s`` after it lapsed, by whichever worker wakes first."""
        doc = await self.timers.find_one(
            {"claim_until": None}, projection={"due_at": 1}, sort=[("due_at", ASCENDING)]
        )
        return doc["due_at"] if doc else None

    async def claim(self) -> tuple[str, list[str]]:
        """Take up to a batch of due timers for a new claim token; returns the token and their keys."""
        now = self.clock.now()
        candidates = [
            doc["_id"]
            async for doc in self.timers.find(_claimable(now), projection={"_id": 1}).limit(self.batch)
        ]
        token = f"{self.owner}:{uuid.uuid4().hex[:8]}"
        if not candidates:
            return token, []
        # The filter is checked again per document as it is written, so two workers never take one timer.
        await self.timers.update_many(
            {"_id": {"$in": candidates}, **_claimable(now)},
            {"$set": {"claimed_by": token, "claim_until": now + self.lease}},
        )
        # Read back by id (the _id index), not by token alone, which no index serves.
        held = self.timers.find({"_id": {"$in": candidates}, "claimed_by": token}, {"_id": 1})
        return token, [doc["_id"] async for doc in held]

    async def fire_claimed(self, token: str, keys: list[str]) -> int:
        """Write the events of the timers this claim still holds and delete (or re-arm) them, at once."""

        async def fire(tx: Transaction) -> int:
            held = [
                doc
                async for doc in tx.db[TIMERS].find(
                    {"_id": {"$in": keys}, "claimed_by": token}, session=tx.session
                )
            ]
            if not held:
                return 0
            await tx.db[TIMERS].delete_many(
                {"_id": {"$in": [d["_id"] for d in held]}, "claimed_by": token}, session=tx.session
            )
            for doc in held:
                timer = Timer.from_document(doc)
                tx.emit(timer.event, correlation_id=timer.correlation_id)
                if timer.every is not None:
                    again = Timer.armed(
                        timer.key, timer.due_at + timer.every, timer.event, timer.correlation_id, timer.every
                    )
                    await tx.db[TIMERS].insert_one(again.to_document(), session=tx.session)
            tx.after_commit(lambda: timers_fired.labels(self.service).inc(len(held)))
            return len(held)

        return await self.store.transaction(fire)

    async def fire_due(self) -> int:
        """Claim and fire what is due now; the number of timers claimed (a full batch: look again)."""
        token, keys = await self.claim()
        if not keys:
            return 0
        fired = await self.fire_claimed(token, keys)
        if fired:
            log.info("fired timers", extra={"timers": fired})
        return len(keys)

    async def measure(self) -> None:
        """The gauges: timers pending, and how long the most overdue one has waited."""
        pending = await self.timers.estimated_document_count()
        now = self.clock.now()
        oldest = await self.timers.find_one(
            {"due_at": {"$lte": now}}, projection={"due_at": 1}, sort=[("due_at", ASCENDING)]
        )
        timers_pending.labels(self.service).set(pending)
        overdue = (now - oldest["due_at"]).total_seconds() if oldest else 0.0
        timers_oldest_overdue.labels(self.service).set(max(0.0, overdue))
