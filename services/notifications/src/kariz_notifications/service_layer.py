"""Use cases: turn an event into deliveries (inside the consumer's transaction), deliver them (the
worker), and read the delivery log and the hand-overs."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from kariz_notifications import metrics
from kariz_notifications.adapters.repository import DeliveryFilter, DeliveryRepository, HandoverRepository
from kariz_notifications.domain import rules
from kariz_notifications.domain.model import (
    Attempt,
    Audience,
    Channel,
    Delivery,
    DeliveryRecord,
    DeliveryStatus,
    EventContext,
    Handover,
    HandoverStatus,
    SendResult,
)
from kariz_notifications.domain.schedule import LEASE, NextStep, after_attempt
from kariz_shared.contracts.errors import NotFound
from kariz_shared.contracts.events import Event
from kariz_shared.persistence.store import Store, Transaction

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MIN_IDLE_S = 0.01
# New deliveries a worker keeps in memory to take by id (each a few kB).
MAX_FRESH = 10_000


def utcnow() -> datetime:
    return datetime.now(UTC)


async def record_notifications(
    tx: Transaction, event: Event, audience: Audience, *, now: datetime | None = None
) -> list[Delivery]:
    """Write the deliveries (and the hand-over) an event causes. Nothing is sent here: sending is a side
    effect that must not happen inside a transaction that may be retried or rolled back."""
    if tx.causation_id is None or tx.correlation_id is None:
        raise ValueError("recording notifications needs the event's id and correlation id")
    context = EventContext(event_id=tx.causation_id, correlation_id=tx.correlation_id)
    plan = rules.plan(event, context, audience)
    at = now or utcnow()
    for delivery in plan.deliveries:
        DeliveryRepository.add(tx, delivery, at)
    if plan.handover is not None:
        await HandoverRepository(tx.db, tx.session).add(plan.handover, context.correlation_id, at)
    return plan.deliveries


class Sender(Protocol):
    async def send(self, delivery: Delivery) -> SendResult: ...

    async def aclose(self) -> None: ...


class DeliveryWorker:
    """Sends due deliveries, each lane claiming a batch at a time and sending it side by side; every step
    is kept in the database, so a restart (or another replica) carries on where this one stopped. Several
    lanes keep one slow subscriber from holding up every other message."""

    def __init__(
        self,
        store: Store,
        senders: dict[Channel, Sender],
        *,
        max_attempts: int,
        backoff_s: float,
        poll_interval_s: float,
        concurrency: int = 1,
        batch: int = 1,
        lease: timedelta = LEASE,
        clock: Clock = utcnow,
    ) -> None:
        self.store = store
        self.senders = senders
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.poll_interval_s = poll_interval_s
        self.concurrency = concurrency
        self.batch = batch
        self.lease = lease
        self.clock = clock
        self._wake = asyncio.Event()
        # Deliveries this process just recorded, taken by id before any look at the queue (bounded:
        # past the bound they wait in the database for a look like any other).
        self._fresh: collections.deque[Delivery] = collections.deque()
        # When a lane next looks at the queue (monotonic): one lane a poll interval, sooner when a retry
        # falls due. The other lanes take fresh deliveries or sleep; they do not all look on every wake.
        self._next_look = -math.inf

    def wake(self, fresh: list[Delivery] | None = None) -> None:
        """New deliveries were committed: send them now rather than at the next poll."""
        room = MAX_FRESH - len(self._fresh)
        self._fresh.extend((fresh or [])[: max(room, 0)])
        self._wake.set()

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as lanes:
                for _ in range(self.concurrency):
                    lanes.create_task(self._lane())
        finally:
            for sender in self.senders.values():
                await sender.aclose()

    async def _lane(self) -> None:
        while True:
            # Cleared before looking, so a commit during this round wakes the next one at once.
            self._wake.clear()
            try:
                worked = await self.deliver_due()
            except Exception:
                # The database is away or busy: the deliveries wait there, nothing is lost.
                log.warning("delivery round failed; retrying", exc_info=True)
                worked = False
            if not worked:
                await self._idle()

    async def _idle(self) -> None:
        """Wait for a commit's wake-up or the next look at the queue (the poll interval, or a retry due)."""
        delay = min(self.poll_interval_s, max(MIN_IDLE_S, self._next_look - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    def _look_by(self, due: datetime) -> None:
        """Look at the queue again no later than when ``due`` comes."""
        self._next_look = min(self._next_look, time.monotonic() + (due - self.clock()).total_seconds())

    async def deliver_due(self) -> bool:
        """Claim a batch of due deliveries, send them side by side and record each. False when nothing
        is due."""
        repo = DeliveryRepository(self.store.db)
        token = uuid.uuid4().hex
        now = self.clock()
        records: list[DeliveryRecord] = []
        # New deliveries first, by id; the queue is looked at once per poll interval (so retries and a
        # dead sender's deliveries are not starved by a steady stream) and when a retry falls due.
        look = time.monotonic() >= self._next_look
        if self._fresh and not look:
            fresh = [self._fresh.popleft() for _ in range(min(self.batch, len(self._fresh)))]
            records = await repo.claim_new(fresh, now, now + self.lease, token)
        if not records and look:
            # Set before the look, so the lanes woken with this one do not look as well.
            self._next_look = time.monotonic() + self.poll_interval_s
            records = await repo.claim(now, now + self.lease, token, limit=self.batch)
            if len(records) == self.batch and not self._fresh:
                # A backlog (after a restart, say) with nothing new: the next free lane looks again at
                # once. While new ones come, they are taken by id and the backlog a batch an interval.
                self._next_look = -math.inf
            elif not records:
                # Nothing due: when the earliest pending one is (another replica's retry, say).
                due = await repo.next_due()
                if due is not None:
                    self._look_by(due)
        if not records and self._fresh:
            return True  # the fresh ones left may still be unclaimed: no idling before trying them
        if not records:
            return False
        sent = await asyncio.gather(*(self._send(record, now) for record in records))
        # One write records the whole batch: the embedded database's cost is per command.
        recorded = await repo.record([(d.key, attempt, step) for d, attempt, step in sent], token)
        for delivery, attempt, step in sent:
            channel, delivery_key = delivery.channel.value, {"delivery": delivery.key}
            if delivery.key not in recorded:
                log.warning("lost the lease on a delivery; its new sender records it", extra=delivery_key)
            elif attempt.succeeded:
                metrics.sent.labels(channel).inc()
            else:
                metrics.failed.labels(channel).inc()
                if step.status is DeliveryStatus.FAILED:
                    metrics.gave_up.labels(channel).inc()
                elif step.next_attempt_at is not None:
                    self._look_by(step.next_attempt_at)  # the retry is taken from the queue when due
                log.warning(
                    "delivery attempt failed",
                    extra={"delivery": delivery.key, "status": step.status.value, "error": attempt.error},
                )
        return True

    async def _send(self, record: DeliveryRecord, now: datetime) -> tuple[Delivery, Attempt, NextStep]:
        """Send one delivery; what to record of it."""
        delivery = record.delivery
        channel = delivery.channel.value
        if record.resumed_after_crash:
            # At least once: the dead sender may have delivered it; the same delivery id lets the
            # recipient (and the crash test) drop the repeat.
            metrics.resumed.labels(channel).inc()
            log.warning("resending a delivery whose sender died mid-send", extra={"delivery": delivery.key})
        started = time.perf_counter()
        try:
            result = await self.senders[delivery.channel].send(delivery)
        except Exception as exc:
            # A sender bug must still count as an attempt, or the delivery would be retried for ever.
            log.exception("sender failed unexpectedly", extra={"delivery": delivery.key})
            result = SendResult(ok=False, error=f"{type(exc).__name__}: {exc}")
        elapsed = time.perf_counter() - started
        metrics.delivery_seconds.labels(channel).observe(elapsed)
        attempt = Attempt(
            at=now,
            succeeded=result.ok,
            duration_ms=round(elapsed * 1000),
            error=result.error,
            status_code=result.status_code,
        )
        step = after_attempt(
            attempt, len(record.attempts) + 1, max_attempts=self.max_attempts, backoff_s=self.backoff_s
        )
        return delivery, attempt, step


async def delivery_log(
    store: Store, where: DeliveryFilter, *, limit: int, offset: int
) -> tuple[list[DeliveryRecord], int]:
    return await DeliveryRepository(store.db).find(where, limit=limit, offset=offset)


async def delivery(store: Store, key: str) -> DeliveryRecord:
    found = await DeliveryRepository(store.db).get(key)
    if found is None:
        raise NotFound(f"no notification {key!r}")
    return found


async def handovers(
    store: Store, *, status: HandoverStatus | None, limit: int, offset: int
) -> tuple[list[tuple[Handover, datetime]], int]:
    return await HandoverRepository(store.db).find(status=status, limit=limit, offset=offset)
