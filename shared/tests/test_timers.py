"""Timers against the real database and broker: armed in the transaction of a change, fired as events
by the timer worker once each, on the injected clock.

- armed and then cancelled, a timer never fires;
- re-armed, it fires once, at the new time;
- the worker sleeps until the next due time and wakes when the clock reaches it, or when this process
  arms an earlier timer;
- a worker SIGKILLed between its claim and its commit leaves the timer to the next worker, which fires
  it exactly once after the claim's lease lapsed;
- two worker replicas fire 1,000 due timers, each exactly once, through the outbox onto Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kariz_devkit.testing import Backends, eventually, reading, unique
from kariz_shared.contracts.events import LeadResponseOverdue, LeadSource
from kariz_shared.messaging.broker import make_broker
from kariz_shared.messaging.outbox import OutboxRelay
from kariz_shared.messaging.timers import TimerWorker
from kariz_shared.persistence.store import OUTBOX, TIMERS, Store
from kariz_shared.persistence.unit_of_work import MongoUnitOfWork, MongoUnitsOfWork
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def overdue(lead_id: str, due_at: datetime = START) -> LeadResponseOverdue:
    return LeadResponseOverdue(
        lead_id=lead_id,
        owner="rep@kariz.example",
        source=LeadSource.WEB_FORM,
        captured_at=START,
        due_at=due_at,
    )


@pytest.fixture
def settings(settings_for: Callable[..., Any]) -> ServiceSettings:
    s: ServiceSettings = settings_for(ServiceSettings, service_name="timers", timer_lease_s=5.0)
    return s


@pytest.fixture
async def store(settings: ServiceSettings) -> AsyncIterator[Store]:
    store = Store(settings)
    await store.ensure_indexes()
    try:
        yield store
    finally:
        await store.client.drop_database(store.db.name)
        await store.close()


def units_of(store: Store, clock: FakeClock) -> MongoUnitsOfWork[MongoUnitOfWork]:
    return MongoUnitsOfWork(store, clock, MongoUnitOfWork)


async def fired(store: Store, lead_id: str) -> list[dict[str, Any]]:
    return await store.db[OUTBOX].find({"key": lead_id}).to_list()


async def test_a_timer_armed_then_cancelled_never_fires(store: Store, settings: ServiceSettings) -> None:
    clock = FakeClock(START)
    units, worker = units_of(store, clock), TimerWorker(store, clock, settings)

    async def arm(uow: MongoUnitOfWork) -> None:
        uow.timers.arm("lead:L-1:response", START + HOUR, overdue("L-1"))

    async def cancel(uow: MongoUnitOfWork) -> None:
        uow.timers.cancel("lead:L-1:response")

    await units.run(arm, correlation_id="c-1")
    assert await store.db[TIMERS].count_documents({}) == 1
    await units.run(cancel, correlation_id="c-2")
    clock.advance(2 * HOUR)
    assert await worker.fire_due() == 0
    assert await fired(store, "L-1") == []
    assert await store.db[TIMERS].count_documents({}) == 0


async def test_a_re_armed_timer_fires_once_at_its_new_time(store: Store, settings: ServiceSettings) -> None:
    clock = FakeClock(START)
    units, worker = units_of(store, clock), TimerWorker(store, clock, settings)

    async def arm_at(uow: MongoUnitOfWork, at: datetime) -> None:
        uow.timers.arm("lead:L-2:response", at, overdue("L-2", at))

    await units.run(lambda uow: arm_at(uow, START + HOUR), correlation_id="c-1")
    await units.run(lambda uow: arm_at(uow, START + 2 * HOUR), correlation_id="c-2")
    clock.advance(HOUR)
    assert await worker.fire_due() == 0, "the first time no longer holds"
    clock.advance(HOUR)
    assert await worker.fire_due() == 1
    assert await worker.fire_due() == 0
    events = await fired(store, "L-2")
    assert len(events) == 1
    assert json.loads(events[0]["value"])["due_at"].startswith("2026-03-02T11:00")
    assert events[0]["headers"]["ce_correlationid"] == "c-2", (
        "it continues the story of the change that armed it"
    )
    assert events[0]["headers"]["ce_actor"].startswith("/kariz/"), "the service fired it, nobody signed in"


async def test_a_repeating_timer_is_armed_again_when_it_fires(
    store: Store, settings: ServiceSettings
) -> None:
    clock = FakeClock(START)
    units, worker = units_of(store, clock), TimerWorker(store, clock, settings)

    async def arm(uow: MongoUnitOfWork) -> None:
        uow.timers.arm("nurture:L-3", START + HOUR, overdue("L-3"), every=24 * HOUR)

    await units.run(arm, correlation_id="c-1")
    clock.advance(HOUR)
    assert await worker.fire_due() == 1
    timer = await store.db[TIMERS].find_one({"_id": "nurture:L-3"})
    assert timer is not None and timer["due_at"] == START + 25 * HOUR
    clock.advance(24 * HOUR)
    assert await worker.fire_due() == 1
    assert len(await fired(store, "L-3")) == 2


async def test_the_worker_sleeps_until_the_clock_reaches_the_next_timer(
    store: Store, settings: ServiceSettings
) -> None:
    clock = FakeClock(START)
    # Idle for longer than the test's timers: only the clock and the arming wake the worker.
    idle = settings.model_copy(update={"timer_idle_s": 24 * 3600.0})
    units, worker = units_of(store, clock), TimerWorker(store, clock, idle)

    async def arm(uow: MongoUnitOfWork, key: str, at: datetime) -> None:
        uow.timers.arm(key, at, overdue(key, at))

    running = asyncio.create_task(worker.run())
    try:
        await units.run(lambda uow: arm(uow, "late", START + 3 * HOUR), correlation_id="c-1")
        await eventually(lambda: store.timer_alarm.planned == START + 3 * HOUR)
        # Armed in this process, earlier than the worker's plan: the arming itself wakes it.
        await units.run(lambda uow: arm(uow, "early", START + HOUR), correlation_id="c-2")
        await eventually(lambda: store.timer_alarm.planned == START + HOUR)
        assert await fired(store, "early") == []
        clock.advance(HOUR)
        await eventually(lambda: fired(store, "early"))
        assert await fired(store, "late") == []
        clock.advance(2 * HOUR)
        await eventually(lambda: fired(store, "late"))
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


CLAIM_AND_WAIT = textwrap.dedent(
    """
    import asyncio, sys
    from kariz_shared.messaging.timers import TimerWorker
    from kariz_shared.persistence.store import Store
    from kariz_shared.runtime.clock import SystemClock
    from kariz_shared.runtime.settings import ServiceSettings

    async def main() -> None:
        settings = ServiceSettings(mongodb_uri=sys.argv[1], mongodb_database=sys.argv[2], timer_lease_s=2.0)
        worker = TimerWorker(Store(settings), SystemClock(), settings)
        token, keys = await worker.claim()
        print(f"claimed {len(keys)}", flush=True)
        await asyncio.sleep(3600)  # killed here, between the claim and the commit

    asyncio.run(main())
    """
)


async def test_a_worker_killed_between_claim_and_commit_leaves_each_timer_to_fire_exactly_once(
    store: Store, settings: ServiceSettings, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    keys = [f"lead:{unique('K')}:response" for _ in range(20)]

    async def arm(uow: MongoUnitOfWork) -> None:
        for key in keys:
            uow.timers.arm(key, now - HOUR, overdue(key))

    await units_of(store, FakeClock(now)).run(arm, correlation_id="c-1")
    script = tmp_path / "claim.py"
    script.write_text(CLAIM_AND_WAIT)
    child = subprocess.Popen(  # noqa: ASYNC220 (a child to SIGKILL, read line by line in a thread)
        [sys.executable, str(script), settings.mongodb_uri, store.db.name],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout is not None
        line = await asyncio.to_thread(child.stdout.readline)
        assert line.strip() == "claimed 20"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert await store.db[TIMERS].count_documents({"claimed_by": {"$ne": None}}) == 20

    # The restarted worker's clock: before the dead claim's lease lapsed, then after it.
    clock = FakeClock(datetime.now(UTC))
    worker = TimerWorker(store, clock, settings)
    assert await worker.fire_due() == 0, "a live claim is not taken"
    clock.advance(timedelta(seconds=3))
    assert await worker.fire_due() == 20
    assert await worker.fire_due() == 0
    outbox = await store.db[OUTBOX].find({}, {"key": 1}).to_list()
    assert Counter(d["key"] for d in outbox) == dict.fromkeys(keys, 1)
    assert await store.db[TIMERS].count_documents({}) == 0


async def test_two_worker_replicas_fire_a_thousand_timers_each_exactly_once(
    backends: Backends, settings_for: Callable[..., Any]
) -> None:
    settings = settings_for(ServiceSettings, service_name="timers", timer_batch_max=40, timer_idle_s=1.0)
    run = unique("T")
    keys = [f"{run}-{n}" for n in range(1000)]
    stores = [Store(settings), Store(settings)]
    await stores[0].ensure_indexes()
    now = datetime.now(UTC)
    clock = FakeClock(now)

    async def arm(uow: MongoUnitOfWork) -> None:
        for n, key in enumerate(keys):
            uow.timers.arm(key, now + timedelta(milliseconds=n), overdue(key))

    await units_of(stores[0], clock).run(arm, correlation_id="c-1")
    assert await stores[0].db[TIMERS].count_documents({}) == 1000
    workers = [
        TimerWorker(s, clock, settings.model_copy(update={"instance_id": f"w{n}"}))
        for n, s in enumerate(stores)
    ]
    broker = make_broker(settings)
    relay = OutboxRelay(stores[0], broker, settings)
    await broker.start()
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        async with reading(backends.kafka_bootstrap, LeadResponseOverdue.topic()) as reader:
            tasks.append(asyncio.create_task(relay.run()))
            clock.advance(timedelta(seconds=2))  # all 1,000 are due now; both workers wake for it
            await reader.wait_for(lambda r: (r.key or "").startswith(run), count=1000, timeout=120)
            await asyncio.sleep(1.0)  # anything sent twice would show by now
            records = [r for r in reader.records if (r.key or "").startswith(run)]
        assert len(records) == 1000
        assert sorted(r.key or "" for r in records) == sorted(keys)
        assert len({r.headers["ce_id"] for r in records}) == 1000
        assert await stores[0].db[OUTBOX].count_documents({}) == 1000
        assert await stores[0].db[TIMERS].count_documents({}) == 0
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await relay.stop()
        await broker.stop()
        await stores[0].client.drop_database(stores[0].db.name)
        for s in stores:
            await s.close()
