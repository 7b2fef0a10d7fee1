"""The use cases on the in-memory unit of work: which deliveries an event records, that a repeat
records nothing, that a rule edit takes effect, how a failed send is retried and given up, and what the
delivery log shows. Business times come from a fake clock: no test waits through a backoff."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from kariz_notifications.adapters.in_memory import (
    InMemoryDeliveryQueue,
    InMemoryNotificationsReads,
    InMemoryNotificationsUnitOfWork,
)
from kariz_notifications.domain.model import (
    Audience,
    Channel,
    Delivery,
    DeliveryStatus,
    HandoverStatus,
    SendResult,
    Subscriber,
)
from kariz_notifications.domain.queries import DeliveryCriteria
from kariz_notifications.domain.schedule import RetryPolicy
from kariz_notifications.entrypoints import kafka
from kariz_notifications.service_layer import handlers, views
from kariz_notifications.service_layer.commands import Deliver
from kariz_shared.contracts.errors import NotFound
from kariz_shared.contracts.events import Event
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.system import service

from .fakes import CountingMetrics, FakeSender

TEAM = "sales-team@kariz.test"
ONBOARDING = "onboarding@kariz.test"
OWNER = "rep@kariz.test"
FINANCE = Subscriber("finance", "https://finance.example/hooks", frozenset({"DealWon"}))
AUDIT = Subscriber("audit", "https://audit.example/in", frozenset({"*"}))
POLICY = RetryPolicy(max_attempts=3, backoff_s=1.0)
LEASE = timedelta(seconds=30)

Units = InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def units(clock: FakeClock) -> Units:
    audience = Audience(team=(TEAM,), handover=(ONBOARDING,), subscribers=(FINANCE,))
    return InMemoryUnitsOfWork(InMemoryNotificationsUnitOfWork(clock, audience))


async def consume(
    units: Units, event: Event, event_id: str, woken: list[list[Delivery]] | None = None
) -> None:
    """Apply ``event`` as the consumer does: through the subscriptions table, in a unit of its own."""
    units.uow.causation_id, units.uow.correlation_id = event_id, f"corr-{event_id}"
    handle = kafka.subscriptions((woken if woken is not None else []).append)[type(event)]
    await units.handle(handle, event)


def stored(units: Units) -> dict[str, Any]:
    return {key: s.record for key, s in units.uow.deliveries.stored.items()}


async def send_due(
    units: Units, clock: FakeClock, senders: dict[Channel, FakeSender], metrics: CountingMetrics | None = None
) -> list[handlers.Outcome]:
    """Claim what is due at the clock's time and deliver it, as one round of a lane does."""
    queue = InMemoryDeliveryQueue(units.uow)
    now = clock.now()
    claimed = await queue.claim(now, now + LEASE, "lane", limit=100)
    return await handlers.deliver(
        Deliver(tuple(claimed), "lane", now),
        queue=queue,
        senders=senders,
        policy=POLICY,
        metrics=metrics or CountingMetrics(),
    )


def test_the_subscriptions_are_what_the_registry_says_notifications_consumes() -> None:
    assert set(kafka.subscriptions()) == set(service("notifications").consumes)


async def test_a_won_deal_records_one_delivery_per_recipient_and_channel_due_now(  # type: ignore[no-untyped-def]
    units: Units, clock: FakeClock, sample
) -> None:
    woken: list[list[Delivery]] = []
    await consume(units, sample.deal_won(deal_id="D-7", owner=OWNER), "evt-1", woken)

    records = stored(units)
    # Onboarding's hand-over, the team's and the owner's won notice, and the DealWon subscriber.
    assert list(records) == [
        f"evt-1:email:{ONBOARDING}",
        f"evt-1:email:{TEAM}",
        f"evt-1:email:{OWNER}",
        "evt-1:webhook:finance",
    ]
    for record in records.values():
        assert (record.status, record.attempts, record.claims) == (DeliveryStatus.PENDING, (), 0)
        assert record.created_at == record.next_attempt_at == clock.now()
        assert (record.delivery.event_id, record.delivery.subject) == ("evt-1", "D-7")
        assert record.delivery.correlation_id == "corr-evt-1"
    assert records[f"evt-1:email:{ONBOARDING}"].delivery.message.subject.startswith("Hand-over: Globex")
    [handover] = units.uow.handovers.opened.values()
    assert (handover.handover.deal_id, handover.handover.status, handover.created_at) == (
        "D-7",
        HandoverStatus.OPEN,
        clock.now(),
    )
    # Handed to this process's sender once committed, to be taken by id.
    assert [[d.key for d in batch] for batch in woken] == [list(records)]

    # A lost deal: the owner only; the finance subscriber hears of wins alone.
    await consume(units, sample.deal_lost(deal_id="D-8", owner=OWNER), "evt-2")
    assert [k for k in stored(units) if k.startswith("evt-2")] == [f"evt-2:email:{OWNER}"]
    # A forward move: nobody.
    await consume(units, sample.stage_changed(direction="forward"), "evt-3")
    assert not [k for k in stored(units) if k.startswith("evt-3")]


async def test_a_repeated_event_records_nothing_new(  # type: ignore[no-untyped-def]
    units: Units, clock: FakeClock, sample
) -> None:
    won = sample.deal_won(deal_id="D-7")
    await consume(units, won, "evt-1")
    first = stored(units)
    await send_due(units, clock, {Channel.EMAIL: FakeSender(), Channel.WEBHOOK: FakeSender()})

    clock.advance(timedelta(minutes=5))
    await consume(units, won, "evt-1")  # redelivered: same event id
    again = stored(units)
    assert list(again) == list(first)
    # What was sent stays sent: the repeat neither resets nor resends it.
    assert {r.status for r in again.values()} == {DeliveryStatus.SENT}
    assert {r.created_at for r in again.values()} == {first[next(iter(first))].created_at}

    # A second win of the same deal (another event, a replay upstream) keeps the one hand-over.
    await consume(units, sample.deal_won(deal_id="D-7", owner="other@kariz.test"), "evt-9")
    [handover] = units.uow.handovers.opened.values()
    assert handover.handover.owner == OWNER


async def test_a_rule_edit_takes_effect_with_the_next_event(  # type: ignore[no-untyped-def]
    units: Units, sample
) -> None:
    await consume(units, sample.deal_lost(deal_id="D-1"), "evt-1")
    assert [k for k in stored(units)] == [f"evt-1:email:{OWNER}"]

    # An audit subscriber to everything is added, and the team changes.
    units.uow.audience = Audience(team=("new-team@kariz.test",), handover=(ONBOARDING,), subscribers=(AUDIT,))
    await consume(units, sample.deal_lost(deal_id="D-2"), "evt-2")
    await consume(units, sample.deal_won(deal_id="D-3"), "evt-3")

    keys = list(stored(units))
    assert [k for k in keys if k.startswith("evt-1")] == [f"evt-1:email:{OWNER}"]  # recorded as it was
    assert [k for k in keys if k.startswith("evt-2")] == [f"evt-2:email:{OWNER}", "evt-2:webhook:audit"]
    assert [k for k in keys if k.startswith("evt-3")] == [
        f"evt-3:email:{ONBOARDING}",
        "evt-3:email:new-team@kariz.test",
        f"evt-3:email:{OWNER}",
        "evt-3:webhook:audit",
    ]


async def test_an_aborted_unit_records_nothing_and_wakes_nobody(  # type: ignore[no-untyped-def]
    units: Units, sample
) -> None:
    woken: list[list[Delivery]] = []
    handle = kafka.subscriptions(woken.append)[type(sample.deal_won())]
    units.uow.causation_id, units.uow.correlation_id = "evt-1", "corr-1"

    async def notify_then_fail(uow: InMemoryNotificationsUnitOfWork) -> None:
        await handle(uow, sample.deal_won())
        raise RuntimeError("the rest of the work failed")

    with pytest.raises(RuntimeError, match="the rest of the work failed"):
        await units.run(notify_then_fail)
    assert (stored(units), units.uow.handovers.opened, woken) == ({}, {}, [])

    # The same work committed: recorded once, and one wake-up.
    await units.handle(handle, sample.deal_won())
    assert len(stored(units)) == 4 and len(units.uow.handovers.opened) == 1
    assert len(woken) == 1


async def test_recording_needs_the_event_id(units: Units, sample) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="event's id"):
        await units.handle(handlers.record_notifications, sample.deal_won())


async def test_a_failed_send_is_retried_after_its_backoff_then_given_up(  # type: ignore[no-untyped-def]
    units: Units, clock: FakeClock, sample
) -> None:
    await consume(units, sample.deal_won(), "evt-1")
    hook = FakeSender(SendResult(ok=False, error="HTTP 500 Internal Server Error", status_code=500))
    senders = {Channel.EMAIL: FakeSender(), Channel.WEBHOOK: hook}
    metrics = CountingMetrics()
    started = clock.now()

    first = await send_due(units, clock, senders, metrics)
    assert len(first) == 4 and all(o.recorded for o in first)
    record = stored(units)["evt-1:webhook:finance"]
    [attempt] = record.attempts
    assert (record.status, attempt.at, attempt.outcome, attempt.status_code) == (
        DeliveryStatus.PENDING,
        started,
        "failed",
        500,
    )
    # Due again one backoff after the attempt ended.
    assert record.next_attempt_at == started + timedelta(milliseconds=attempt.duration_ms, seconds=1)

    # Not before: the clock has not moved.
    assert await send_due(units, clock, senders, metrics) == []
    clock.set(record.next_attempt_at)
    [second] = await send_due(units, clock, senders, metrics)
    assert second.step.status is DeliveryStatus.PENDING
    # Then twice the backoff.
    assert second.step.next_attempt_at == clock.now() + timedelta(
        milliseconds=second.attempt.duration_ms, seconds=2
    )
    clock.set(second.step.next_attempt_at)
    [third] = await send_due(units, clock, senders, metrics)
    assert (third.step.status, third.step.next_attempt_at) == (DeliveryStatus.FAILED, None)

    # The third failure was the last allowed attempt: given up for good, never due again.
    record = stored(units)["evt-1:webhook:finance"]
    assert (record.status, record.next_attempt_at, record.sent_at) == (DeliveryStatus.FAILED, None, None)
    assert [a.outcome for a in record.attempts] == ["failed"] * 3
    assert hook.sent == ["evt-1:webhook:finance"] * 3
    clock.advance(timedelta(hours=1))
    assert await send_due(units, clock, senders, metrics) == []
    assert await InMemoryDeliveryQueue(units.uow).next_due() is None
    assert metrics.counts == Counter(
        {
            ("sent", Channel.EMAIL): 3,
            ("took", Channel.EMAIL): 3,
            ("failed", Channel.WEBHOOK): 3,
            ("took", Channel.WEBHOOK): 3,
            ("gave_up", Channel.WEBHOOK): 1,
        }
    )
    # The e-mails went at the first attempt.
    assert {stored(units)[k].status for k in stored(units) if ":email:" in k} == {DeliveryStatus.SENT}


async def test_a_sender_that_raises_still_counts_an_attempt(  # type: ignore[no-untyped-def]
    units: Units, clock: FakeClock, sample
) -> None:
    await consume(units, sample.deal_lost(), "evt-1")
    [outcome] = await send_due(units, clock, {Channel.EMAIL: FakeSender(RuntimeError("boom"))})
    assert (outcome.attempt.outcome, outcome.attempt.error) == ("failed", "RuntimeError: boom")
    assert outcome.step.status is DeliveryStatus.PENDING


async def test_a_delivery_whose_sender_died_is_resent_and_counted(  # type: ignore[no-untyped-def]
    units: Units, clock: FakeClock, sample
) -> None:
    await consume(units, sample.deal_lost(), "evt-1")
    queue = InMemoryDeliveryQueue(units.uow)
    now = clock.now()
    # A sender takes it and dies: no attempt is recorded.
    [taken] = await queue.claim(now, now + LEASE, "dead", limit=10)
    assert await send_due(units, clock, {Channel.EMAIL: FakeSender()}) == []  # leased, not taken again

    clock.advance(LEASE)
    metrics = CountingMetrics()
    [outcome] = await send_due(units, clock, {Channel.EMAIL: FakeSender()}, metrics)
    assert outcome.recorded and metrics.counts["resumed", Channel.EMAIL] == 1
    record = stored(units)[taken.delivery.key]
    # Two claims, one attempt: the log shows it was resent after a crash.
    assert (record.status, record.claims, len(record.attempts)) == (DeliveryStatus.SENT, 2, 1)
    assert record.sent_at is not None and record.sent_at >= clock.now()

    # The dead sender, back, cannot overwrite what its successor recorded.
    assert await queue.record([(taken.delivery.key, outcome.attempt, outcome.step)], "dead") == set()


async def test_what_the_delivery_log_shows(units: Units, clock: FakeClock, sample) -> None:  # type: ignore[no-untyped-def]
    reads = InMemoryNotificationsReads(units.uow)
    await consume(units, sample.deal_won(deal_id="D-1"), "evt-1")
    clock.advance(timedelta(seconds=1))
    await consume(units, sample.deal_lost(deal_id="D-2"), "evt-2")
    await send_due(
        units,
        clock,
        {
            Channel.EMAIL: FakeSender(),
            Channel.WEBHOOK: FakeSender(SendResult(ok=False, error="HTTP 404 Not Found", status_code=404)),
        },
    )

    page, total = await views.delivery_log(reads, DeliveryCriteria(), limit=2, offset=0)
    # Newest first: the lost deal's e-mail, then the win's last recorded delivery.
    assert total == 5
    assert [r.delivery.key for r in page] == [f"evt-2:email:{OWNER}", "evt-1:webhook:finance"]

    async def keys(**criteria: Any) -> set[str]:
        found, count = await views.delivery_log(reads, DeliveryCriteria(**criteria), limit=50, offset=0)
        assert count == len(found)
        return {r.delivery.key for r in found}

    assert await keys(status=DeliveryStatus.PENDING) == {"evt-1:webhook:finance"}  # to be retried
    assert await keys(channel=Channel.EMAIL, subject="D-1") == {
        f"evt-1:email:{ONBOARDING}",
        f"evt-1:email:{TEAM}",
        f"evt-1:email:{OWNER}",
    }
    assert await keys(recipient=OWNER) == {f"evt-1:email:{OWNER}", f"evt-2:email:{OWNER}"}
    assert await keys(event_type="DealLost", status=DeliveryStatus.SENT) == {f"evt-2:email:{OWNER}"}
    assert await keys(event_type="LeadQualified") == set()

    hook = await views.delivery(reads, "evt-1:webhook:finance")
    [attempt] = hook.attempts
    assert (attempt.at, attempt.outcome, attempt.status_code, attempt.error) == (
        clock.now(),
        "failed",
        404,
        "HTTP 404 Not Found",
    )
    assert (hook.claims, hook.sent_at) == (1, None)
    assert hook.next_attempt_at is not None and hook.next_attempt_at > clock.now()
    with pytest.raises(NotFound, match="no notification 'nothing'"):
        await views.delivery(reads, "nothing")

    [handover], count = await views.handovers(reads, status=HandoverStatus.OPEN, limit=50, offset=0)
    assert (count, handover.handover.deal_id) == (1, "D-1")
    assert await views.handovers(reads, status=None, limit=50, offset=1) == ([], 1)
