"""The delivery loop on the in-memory deliveries and a fake clock: a commit wakes it, and a retry is
taken when the clock reaches its due time, not before, however long the poll interval."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from kariz_devkit.testing import eventually
from kariz_notifications.adapters.in_memory import InMemoryDeliveryQueue, InMemoryNotificationsUnitOfWork
from kariz_notifications.domain.model import Audience, Channel, DeliveryStatus, SendResult, Subscriber
from kariz_notifications.domain.schedule import RetryPolicy
from kariz_notifications.entrypoints import kafka
from kariz_notifications.entrypoints.workers import DeliveryWorker
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock

from .fakes import CountingMetrics, FakeSender


@contextlib.asynccontextmanager
async def running(worker: DeliveryWorker) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def settle() -> None:
    """Let the lanes run every round they can without the clock moving."""
    for _ in range(50):
        await asyncio.sleep(0)


async def test_a_retry_waits_for_the_clock_not_the_poll_interval(sample) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    audit = Subscriber("audit", "https://audit.example/in", frozenset({"*"}))
    uow = InMemoryNotificationsUnitOfWork(clock, Audience(subscribers=(audit,)))
    units = InMemoryUnitsOfWork(uow)
    hook = FakeSender(SendResult(ok=False, error="HTTP 503", status_code=503), SendResult(ok=True))
    mail = FakeSender()
    worker = DeliveryWorker(
        InMemoryDeliveryQueue(uow),
        {Channel.EMAIL: mail, Channel.WEBHOOK: hook},
        clock=clock,
        policy=RetryPolicy(max_attempts=3, backoff_s=5.0),
        metrics=CountingMetrics(),
        poll_interval_s=60.0,  # so long that only a wake-up or the clock can explain a delivery
        concurrency=2,
        batch=10,
    )
    async with running(worker):
        await settle()  # the first look at the (empty) queue
        uow.causation_id, uow.correlation_id = "evt-1", "corr-1"
        await units.handle(kafka.subscriptions(worker.wake)[type(sample.deal_lost())], sample.deal_lost())
        # The commit woke the worker: both went at once, the webhook failed.
        await eventually(lambda: len(mail.sent) == 1 and len(hook.sent) == 1, timeout=5, interval=0.01)
        await settle()
        record = uow.deliveries.stored["evt-1:webhook:audit"].record
        assert (record.status, len(record.attempts)) == (DeliveryStatus.PENDING, 1)
        assert record.next_attempt_at is not None

        clock.advance(timedelta(seconds=4))
        await settle()
        assert len(hook.sent) == 1  # due in five seconds, not four

        clock.set(record.next_attempt_at)
        await eventually(
            lambda: uow.deliveries.stored["evt-1:webhook:audit"].record.status is DeliveryStatus.SENT,
            timeout=5,
            interval=0.01,
        )
    assert len(hook.sent) == 2 and len(mail.sent) == 1
    assert [a.at for a in uow.deliveries.stored["evt-1:webhook:audit"].record.attempts][1] == clock.now()
