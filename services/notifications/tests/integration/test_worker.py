"""The delivery worker on its own against the real database, SMTP server and webhook receiver (no
broker): a commit wakes it, a retry waits only for its backoff, a backlog goes at once, and idle lanes
leave the queue alone."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring

from kariz_devkit.testing import eventually, unique
from kariz_notifications.adapters.email import SmtpMailer
from kariz_notifications.adapters.metrics import PrometheusDeliveryMetrics
from kariz_notifications.adapters.mongo.indexes import ensure_indexes
from kariz_notifications.adapters.mongo.repositories import MongoDeliveryQueue
from kariz_notifications.adapters.mongo.unit_of_work import MongoNotificationsUnitOfWork
from kariz_notifications.adapters.webhook import WebhookPoster
from kariz_notifications.domain.model import Channel, Delivery
from kariz_notifications.domain.schedule import RetryPolicy
from kariz_notifications.entrypoints import kafka
from kariz_notifications.entrypoints.workers import DeliveryWorker
from kariz_notifications.service_layer.handlers import Sender
from kariz_notifications.settings import NotificationsSettings
from kariz_shared.contracts.events import Event
from kariz_shared.contracts.identity import LiveRoster
from kariz_shared.persistence.store import Store, Transaction
from kariz_shared.persistence.unit_of_work import MongoUnitsOfWork
from kariz_shared.runtime.clock import Clock, SystemClock

pytestmark = pytest.mark.integration

POLL_S = 30.0  # so long that only a wake-up or a due retry can explain a prompt delivery
CLOCK = SystemClock()


@pytest.fixture
async def store(settings_for: Callable[..., Any], inbox: Any, receiver: Any) -> AsyncIterator[Store]:
    settings: NotificationsSettings = settings_for(
        NotificationsSettings,
        service_name="notifications",
        smtp_port=inbox.port,
        team_emails=[f"{unique('team')}@kariz.test"],
        handover_emails=[],
        webhook_subscribers=[
            {"name": "flaky", "url": receiver.url("/flaky"), "secret": "s" * 32, "events": ["*"]}
        ],
    )
    store = Store(settings)
    await ensure_indexes(store)
    yield store
    await store.close()


@contextlib.asynccontextmanager
async def working(
    store: Store, poll_interval_s: float = POLL_S, concurrency: int = 2
) -> AsyncIterator[DeliveryWorker]:
    settings = store.settings
    assert isinstance(settings, NotificationsSettings)
    senders: dict[Channel, Sender] = {
        Channel.EMAIL: SmtpMailer(
            "127.0.0.1",
            settings.smtp_port,
            settings.smtp_sender,
            5.0,
            CLOCK,
            deadline_s=settings.smtp_deadline_s,
        ),
        Channel.WEBHOOK: WebhookPoster(settings.subscriber_secret, 2.0),
    }
    worker = DeliveryWorker(
        MongoDeliveryQueue(store.db),
        senders,
        clock=CLOCK,
        policy=RetryPolicy(max_attempts=3, backoff_s=0.05),
        metrics=PrometheusDeliveryMetrics(),
        poll_interval_s=poll_interval_s,
        concurrency=concurrency,
    )
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.2)  # the lanes have looked once and now sleep for the poll interval
    try:
        yield worker
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def commit(
    store: Store, event: Event, event_id: str, on_recorded: Callable[[list[Delivery]], None] = lambda d: None
) -> None:
    """Apply ``event`` as the consumer does: its handler in a transaction that knows the event's id."""
    assert isinstance(store.settings, NotificationsSettings)
    audience = store.settings.audience()

    def unit_of_work(tx: Transaction, clock: Clock) -> MongoNotificationsUnitOfWork:
        return MongoNotificationsUnitOfWork(tx, clock, audience, LiveRoster())

    handle = MongoUnitsOfWork(store, CLOCK, unit_of_work).handler(
        kafka.subscriptions(on_recorded)[type(event)]
    )
    await store.transaction(
        lambda tx: handle(event, tx), correlation_id=unique("corr"), causation_id=event_id
    )


async def test_a_commit_wakes_the_worker_and_retries_follow_their_backoff(  # type: ignore[no-untyped-def]
    store: Store, inbox, receiver, sample
) -> None:
    event_id, deal = unique("evt"), unique("D")
    async with working(store) as worker:
        started = time.monotonic()
        await commit(store, sample.deal_won(deal_id=deal), event_id, worker.wake)
        await eventually(lambda: len(inbox.about(event_id)) == 2, timeout=10, interval=0.02)

        async def all_sent() -> bool:
            return await store.db.deliveries.count_documents({"event_id": event_id, "status": "sent"}) == 3

        await eventually(all_sent, timeout=10, interval=0.02)
        elapsed = time.monotonic() - started
    # Two e-mails at once and a webhook that failed twice, all well before the first poll.
    assert elapsed < 5, elapsed
    assert len(receiver.about(event_id, "/flaky")) == 3
    hook = await store.db.deliveries.find_one({"_id": f"{event_id}:webhook:flaky"})
    assert hook is not None and [a["outcome"] for a in hook["attempts"]] == ["failed", "failed", "sent"]


async def test_a_backlog_left_by_a_restart_is_sent_at_once_not_a_batch_per_poll_interval(  # type: ignore[no-untyped-def]
    store: Store, inbox, sample
) -> None:
    # Committed while no worker ran (nobody was woken); the worker then starts with a 30 s poll interval.
    events = [unique("evt") for _ in range(8)]
    for event_id in events:
        await commit(store, sample.deal_won(deal_id=unique("D")), event_id)
    async with working(store):
        # Two e-mails an event, taken one batch at a time by lanes that look again while batches are full.
        await eventually(lambda: all(len(inbox.about(e)) == 2 for e in events), timeout=10, interval=0.05)


class DeliveryFinds(monitoring.CommandListener):
    """Counts the finds of the deliveries collection a client sends."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.count += event.command_name == "find" and event.command["find"] == "deliveries"

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_idle_lanes_look_at_the_queue_once_a_poll_interval_whatever_wakes_them(store: Store) -> None:
    # Four lanes, woken every 20 ms by commits of other work (nothing new for them). One look at the
    # queue is two finds (orphaned, due) and one more for the next due time when nothing was due.
    # Were each wake-up to send every lane to the queue, that would be up to 4 x 3 finds a wake-up.
    poll_s, idle_s = 0.2, 1.0
    finds = DeliveryFinds()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        store.settings.mongodb_uri, event_listeners=[finds]
    )
    store.db = client[store.db.name]
    try:
        async with working(store, poll_interval_s=poll_s, concurrency=4) as worker:
            before = finds.count
            wakes = 0
            started = time.monotonic()
            while time.monotonic() - started < idle_s:
                worker.wake([])
                wakes += 1
                await asyncio.sleep(0.02)
            elapsed = time.monotonic() - started
            looked = finds.count - before
    finally:
        await client.close()
    looks_allowed = int(elapsed / poll_s) + 2  # one per interval, and one straddling each end
    assert wakes >= 10
    assert 0 < looked <= 3 * looks_allowed, (looked, wakes, elapsed)
