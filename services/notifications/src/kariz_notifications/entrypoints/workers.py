"""The delivery worker: lanes that claim due deliveries a batch at a time and hand each batch to
``handlers.deliver``. Every step is kept in the database, so a restart (or another replica) carries on
where this one stopped. Several lanes keep one slow subscriber from holding up every other message.

Two kinds of time meet here. When a delivery is due and how long its lease lasts are business times,
from the injected clock. How often the lanes look at the queue (the poll interval) is about I/O, on the
event loop's time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from kariz_notifications.domain.model import Channel, Delivery, DeliveryRecord
from kariz_notifications.domain.schedule import LEASE, RetryPolicy
from kariz_notifications.service_layer import handlers, subscriptions
from kariz_notifications.service_layer.commands import Deliver
from kariz_notifications.service_layer.handlers import DeliveryMetrics, Outcome, Sender
from kariz_notifications.service_layer.subscriptions import History
from kariz_notifications.service_layer.unit_of_work import DeliveryQueue, NotificationsUnitOfWork
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.clock import Clock

log = logging.getLogger(__name__)

#: The shortest idle wait, so a lane never spins.
MIN_IDLE = timedelta(milliseconds=10)
#: New deliveries a worker keeps in memory to take by id (each a few kB).
MAX_FRESH = 10_000


class DeliveryWorker:
    def __init__(
        self,
        queue: DeliveryQueue,
        senders: Mapping[Channel, Sender],
        *,
        clock: Clock,
        policy: RetryPolicy,
        metrics: DeliveryMetrics,
        poll_interval_s: float,
        concurrency: int = 1,
        batch: int = 1,
        lease: timedelta = LEASE,
        on_outcomes: Callable[[list[Outcome]], Awaitable[list[Delivery]]] | None = None,
    ) -> None:
        self.queue = queue
        self.senders = senders
        self.clock = clock
        self.policy = policy
        self.metrics = metrics
        self.poll_interval_s = poll_interval_s
        self.concurrency = concurrency
        self.batch = batch
        self.lease = lease
        # Hears of each batch's outcomes once recorded (the subscriptions' health); what it records in
        # turn (a suspension's e-mail) is taken at once.
        self.on_outcomes = on_outcomes
        self._wake = asyncio.Event()
        # Deliveries this process just recorded, taken by id before any look at the queue (bounded:
        # past the bound they wait in the database for a look like any other).
        self._fresh: collections.deque[Delivery] = collections.deque()
        # One lane looks at the queue a poll interval (monotonic), or sooner when a retry falls due (the
        # clock's time). The other lanes take fresh deliveries or sleep; they do not all look on every wake.
        self._next_poll = -math.inf
        self._next_due: datetime | None = None

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

    def _time_to_look(self) -> bool:
        due = self._next_due is not None and self.clock.now() >= self._next_due
        return due or time.monotonic() >= self._next_poll

    async def _idle(self) -> None:
        """Wait for a commit's wake-up, the next poll, or the clock reaching the next retry's due time."""
        min_idle_s = MIN_IDLE.total_seconds()
        poll_in = min(self.poll_interval_s, max(min_idle_s, self._next_poll - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            if self._next_due is None:
                await asyncio.wait_for(self._wake.wait(), poll_in)
            else:
                due = max(self._next_due, self.clock.now() + MIN_IDLE)
                await asyncio.wait_for(self.clock.sleep_until(due, self._wake), poll_in)

    def _look_by(self, due: datetime) -> None:
        """Look at the queue again no later than when ``due`` comes."""
        self._next_due = due if self._next_due is None else min(self._next_due, due)

    async def deliver_due(self) -> bool:
        """Claim a batch of due deliveries, send them side by side and record each. False when nothing
        is due."""
        token = uuid.uuid4().hex
        now = self.clock.now()
        lease_until = now + self.lease
        records: list[DeliveryRecord] = []
        # New deliveries first, by id; the queue is looked at once per poll interval (so retries and a
        # dead sender's deliveries are not starved by a steady stream) and when a retry falls due.
        look = self._time_to_look()
        if self._fresh and not look:
            fresh = [self._fresh.popleft() for _ in range(min(self.batch, len(self._fresh)))]
            records = await self.queue.claim_new(fresh, lease_until, token)
        if not records and look:
            # Set before the look, so the lanes woken with this one do not look as well.
            self._next_poll, self._next_due = time.monotonic() + self.poll_interval_s, None
            records = await self.queue.claim(now, lease_until, token, limit=self.batch)
            if len(records) == self.batch and not self._fresh:
                # A backlog (after a restart, say) with nothing new: the next free lane looks again at
                # once. While new ones come, they are taken by id and the backlog a batch an interval.
                self._next_poll = -math.inf
            elif not records:
                # Nothing due: when the earliest pending one is (another replica's retry, say).
                due = await self.queue.next_due()
                if due is not None:
                    self._look_by(due)
        if not records and self._fresh:
            return True  # the fresh ones left may still be unclaimed: no idling before trying them
        if not records:
            return False
        outcomes = await handlers.deliver(
            Deliver(claimed=tuple(records), token=token, at=now),
            queue=self.queue,
            senders=self.senders,
            policy=self.policy,
            metrics=self.metrics,
        )
        for outcome in outcomes:
            if outcome.recorded and outcome.step.next_attempt_at is not None:
                self._look_by(outcome.step.next_attempt_at)  # the retry is taken from the queue when due
        if self.on_outcomes is not None:
            try:
                recorded = await self.on_outcomes(outcomes)
            except Exception:
                # The deliveries are recorded: only their counts in the subscriptions' health are lost.
                log.warning("counting a batch's outcomes failed", exc_info=True)
            else:
                if recorded:
                    self.wake(recorded)
        return True


class ReplayWorker:
    """Runs the subscriptions' replays one after another, in the background: a request wakes it, and it
    looks for one waiting (or left by a replica that died) at least every ``poll_interval_s`` (I/O
    timing, on the event loop's time)."""

    def __init__(
        self,
        units: UnitsOfWork[NotificationsUnitOfWork],
        history: History,
        on_recorded: Callable[[list[Delivery]], None],
        *,
        poll_interval_s: float,
    ) -> None:
        self.units = units
        self.history = history
        self.on_recorded = on_recorded
        self.poll_interval_s = poll_interval_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                while await subscriptions.run_next_replay(self.units, self.history, self.on_recorded):
                    pass
            except Exception:
                log.warning("could not run the replays; retrying", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
