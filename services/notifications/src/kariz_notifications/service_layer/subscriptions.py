"""The use cases of ``/subscriptions``: register an endpoint (its secret generated here and returned
once), list them (without secrets), read, change and remove one. An admin reaches every subscription,
an integrator's key its own: one of another owner is answered as missing (404)."""

from __future__ import annotations

import dataclasses
import logging
import re
import secrets
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Protocol

from kariz_notifications.domain import rendering
from kariz_notifications.domain.automation import TRIGGERS, Condition
from kariz_notifications.domain.model import (
    ALL_EVENTS,
    SUBSCRIPTION,
    Channel,
    Delivery,
    DeliveryStatus,
    EventContext,
    WebhookPost,
)
from kariz_notifications.domain.subscriptions import (
    PREFIX,
    DeliveryHealth,
    ManagedSubscription,
    Replay,
    ReplayState,
    SubscriptionState,
    checked_debounce,
    checked_endpoint,
    checked_events,
    checked_filters,
    checked_url,
    replay_delivery_key,
    seen_by,
    suspension_notice,
)
from kariz_notifications.service_layer.handlers import Outcome
from kariz_notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.errors import Conflict, NotFound, RuleViolation
from kariz_shared.contracts.events import EVENTS, Event
from kariz_shared.contracts.identity import Caller
from kariz_shared.persistence.unit_of_work import UnitsOfWork

log = logging.getLogger(__name__)

ADDRESS = re.compile(r"^[^@\s,;<>:]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


class Keep(Enum):
    """A change's way of saying "leave this as it is" where None means "none"."""

    KEEP = "keep"


def contact_of(caller: Caller) -> str | None:
    """Whom news of a caller's subscription goes to: a person's address; for a key, whom it acts for
    (the issuing admin unless the key names someone), if that is an address."""
    who = caller.on_behalf_of if caller.key is not None else caller.actor
    return who if who is not None and ADDRESS.match(who) else None


async def register(
    units: UnitsOfWork[NotificationsUnitOfWork],
    url: str,
    events: Iterable[str],
    caller: Caller,
    *,
    filters: Sequence[Condition] = (),
    debounce_seconds: int | None = None,
    allow_http: bool,
) -> ManagedSubscription:
    endpoint, wanted = checked_endpoint(url, events, allow_http=allow_http)
    tests = checked_filters(filters, wanted)
    debounce = checked_debounce(debounce_seconds)

    async def work(uow: NotificationsUnitOfWork) -> ManagedSubscription:
        subscription = ManagedSubscription(
            id=uuid.uuid4().hex[:16],
            url=endpoint,
            events=wanted,
            secret=new_secret(),
            created_by=caller.actor,
            created_at=uow.clock.now(),
            contact=contact_of(caller),
            filters=tests,
            debounce_seconds=debounce,
        )
        await uow.subscriptions.add(subscription)
        return subscription

    return await units.run(work)


async def listed(units: UnitsOfWork[NotificationsUnitOfWork], caller: Caller) -> list[ManagedSubscription]:
    async def read(uow: NotificationsUnitOfWork) -> list[ManagedSubscription]:
        return [s for s in await uow.subscriptions.all() if s.visible_to(caller)]

    return await units.read(read)


async def one(
    units: UnitsOfWork[NotificationsUnitOfWork], subscription_id: str, caller: Caller
) -> ManagedSubscription:
    async def read(uow: NotificationsUnitOfWork) -> ManagedSubscription:
        return seen_by(await uow.subscriptions.get(subscription_id), caller, subscription_id)

    return await units.read(read)


async def change(
    units: UnitsOfWork[NotificationsUnitOfWork],
    subscription_id: str,
    caller: Caller,
    *,
    url: str | None = None,
    events: Iterable[str] | None = None,
    filters: Sequence[Condition] | None = None,
    debounce_seconds: int | Keep | None = Keep.KEEP,
    allow_http: bool,
) -> ManagedSubscription:
    """Change what is given of a subscription's endpoint, event types and filters; the rest stays. The
    filters are checked against the event types it will have."""
    new_url = checked_url(url, allow_http=allow_http) if url is not None else None
    new_events = checked_events(events) if events is not None else None
    debounce = checked_debounce(debounce_seconds) if not isinstance(debounce_seconds, Keep) else None

    async def work(uow: NotificationsUnitOfWork) -> ManagedSubscription:
        found = seen_by(await uow.subscriptions.get(subscription_id), caller, subscription_id)
        wanted = new_events if new_events is not None else found.events
        changed = dataclasses.replace(
            found,
            url=new_url or found.url,
            events=wanted,
            filters=checked_filters(filters if filters is not None else found.filters, wanted),
            debounce_seconds=found.debounce_seconds if isinstance(debounce_seconds, Keep) else debounce,
        )
        await uow.subscriptions.save(changed)
        return changed

    return await units.run(work)


async def remove(units: UnitsOfWork[NotificationsUnitOfWork], subscription_id: str, caller: Caller) -> None:
    async def work(uow: NotificationsUnitOfWork) -> bool:
        found = await uow.subscriptions.get(subscription_id)
        if found is None or not found.visible_to(caller):
            return False
        return await uow.subscriptions.remove(subscription_id)

    if not await units.run(work):
        raise NotFound(f"no subscription {subscription_id!r}")


def new_secret() -> str:
    # 32 random bytes: the HMAC key the receiver verifies with (kariz_shared.contracts.webhooks).
    return secrets.token_urlsafe(32)


async def rotate_secret(
    units: UnitsOfWork[NotificationsUnitOfWork], subscription_id: str, caller: Caller, *, grace: timedelta
) -> ManagedSubscription:
    """A new secret (returned once); the current one signs deliveries too for ``grace``."""

    async def work(uow: NotificationsUnitOfWork) -> ManagedSubscription:
        found = seen_by(await uow.subscriptions.get(subscription_id), caller, subscription_id)
        rotated = found.rotated(new_secret(), uow.clock.now(), grace)
        await uow.subscriptions.save(rotated)
        return rotated

    return await units.run(work)


async def health(
    units: UnitsOfWork[NotificationsUnitOfWork], subscription_id: str, caller: Caller
) -> tuple[ManagedSubscription, DeliveryHealth]:
    """A subscription and how its deliveries fare."""

    async def read(uow: NotificationsUnitOfWork) -> tuple[ManagedSubscription, DeliveryHealth]:
        found = seen_by(await uow.subscriptions.get(subscription_id), caller, subscription_id)
        return found, await uow.subscription_health.get(subscription_id)

    return await units.read(read)


async def pause(
    units: UnitsOfWork[NotificationsUnitOfWork], subscription_id: str, caller: Caller
) -> ManagedSubscription:
    """No new deliveries until resumed (a paused one stays paused; a suspended one becomes paused)."""

    async def work(uow: NotificationsUnitOfWork) -> ManagedSubscription:
        found = seen_by(await uow.subscriptions.get(subscription_id), caller, subscription_id)
        if found.state is SubscriptionState.PAUSED:
            return found
        paused = found.moved_to(SubscriptionState.PAUSED, uow.clock.now(), f"paused by {caller.actor}")
        await uow.subscriptions.save(paused)
        return paused

    return await units.run(work)


async def resume(
    units: UnitsOfWork[NotificationsUnitOfWork], subscription_id: str, caller: Caller
) -> ManagedSubscription:
    """Deliver again from the next event on; a suspended one gets its full allowance of failures again."""

    async def work(uow: NotificationsUnitOfWork) -> ManagedSubscription:
        found = seen_by(await uow.subscriptions.get(subscription_id), caller, subscription_id)
        if found.state is SubscriptionState.ACTIVE:
            return found
        active = found.moved_to(SubscriptionState.ACTIVE, uow.clock.now(), f"resumed by {caller.actor}")
        await uow.subscriptions.save(active)
        await uow.subscription_health.save((await uow.subscription_health.get(subscription_id)).resumed())
        return active

    return await units.run(work)


class SubscriptionMetrics(Protocol):
    def suspended(self) -> None:
        """A subscription was suspended after persistent failure."""
        ...


async def count_deliveries(
    units: UnitsOfWork[NotificationsUnitOfWork],
    outcomes: Sequence[Outcome],
    *,
    suspend_after: int,
    metrics: SubscriptionMetrics,
) -> list[Delivery]:
    """Count a batch's attempts to managed subscriptions in their health, in one unit; an active one
    whose last ``suspend_after`` deliveries were all given up is suspended, and its contact told by an
    e-mail recorded in the same unit (returned, for the sender to take at once)."""
    by_subscription: defaultdict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        d = outcome.delivery
        # Only what its sender recorded: a delivery whose lease was lost is counted by its new sender.
        if outcome.recorded and d.channel is Channel.WEBHOOK and d.recipient.startswith(PREFIX):
            by_subscription[d.recipient.removeprefix(PREFIX)].append(outcome)
    if not by_subscription:
        return []
    suspended: list[str] = []

    async def work(uow: NotificationsUnitOfWork) -> list[Delivery]:
        suspended.clear()
        notices: list[Delivery] = []
        at = uow.clock.now()
        for subscription_id, attempts in sorted(by_subscription.items()):
            fared = await uow.subscription_health.get(subscription_id)
            for a in sorted(attempts, key=lambda x: x.attempt.at):
                fared = fared.after_attempt(
                    succeeded=a.attempt.succeeded,
                    gave_up=a.step.status is DeliveryStatus.FAILED,
                    at=a.attempt.at,
                    error=a.attempt.error,
                )
            found = await uow.subscriptions.get(subscription_id)
            if (
                found is not None
                and found.state is SubscriptionState.ACTIVE
                and fared.failing_in_a_row >= suspend_after
            ):
                fared = dataclasses.replace(fared, suspensions=fared.suspensions + 1)
                reason = (
                    f"{fared.failing_in_a_row} deliveries in a row failed; last error: {fared.last_error}"
                )
                await uow.subscriptions.save(found.moved_to(SubscriptionState.SUSPENDED, at, reason))
                suspended.append(subscription_id)
                notice = suspension_notice(found, fared, attempts[-1].delivery.correlation_id)
                if notice is None:
                    log.warning(
                        "a suspended subscription has no contact to tell",
                        extra={"subscription": subscription_id},
                    )
                else:
                    uow.deliveries.add(notice, at)
                    notices.append(notice)
            await uow.subscription_health.save(fared)
        return notices

    notices = await units.run(work)
    for subscription_id in suspended:
        metrics.suspended()
        log.warning(
            "subscription suspended after persistent failure", extra={"subscription": subscription_id}
        )
    return notices


# --- replay ------------------------------------------------------------------------------------------

#: A replay's events are recorded for delivery this many at a time, each batch in one unit.
REPLAY_BATCH = 100
#: How long a replica owns the replay it runs before another may take it over (it renews per batch).
REPLAY_LEASE = timedelta(minutes=5)


class History(Protocol):
    """What the topics retain (``kariz_shared.messaging.history.TopicHistory``)."""

    def since(self, kinds: Sequence[type[Event]], since: datetime) -> AsyncIterator[Envelope[Any]]: ...


async def request_replay(
    units: UnitsOfWork[NotificationsUnitOfWork], subscription_id: str, caller: Caller, since: datetime
) -> Replay:
    """Ask for a replay of what the topics retain since ``since``: run in the background; its status is
    the subscription's ``last_replay``."""

    async def work(uow: NotificationsUnitOfWork) -> Replay:
        found = seen_by(await uow.subscriptions.get(subscription_id), caller, subscription_id)
        now = uow.clock.now()
        if since > now:
            raise RuleViolation("since: a time in the past (the replay re-delivers what already happened)")
        if found.state is not SubscriptionState.ACTIVE:
            raise Conflict(f"the subscription is {found.state.value}: resume it first")
        latest = await uow.replays.latest(subscription_id)
        if latest is not None and latest.state in (ReplayState.PENDING, ReplayState.RUNNING):
            raise Conflict(f"replay {latest.id} of this subscription is still {latest.state.value}")
        replay = Replay(
            id=uuid.uuid4().hex[:16],
            subscription_id=subscription_id,
            since=since,
            requested_by=caller.actor,
            requested_at=now,
        )
        await uow.replays.save(replay)
        return replay

    return await units.run(work)


async def last_replay(units: UnitsOfWork[NotificationsUnitOfWork], subscription_id: str) -> Replay | None:
    async def read(uow: NotificationsUnitOfWork) -> Replay | None:
        return await uow.replays.latest(subscription_id)

    return await units.read(read)


def kinds_of(subscription: ManagedSubscription) -> list[type[Event]]:
    """The event types whose topics a replay of ``subscription`` reads."""
    names = TRIGGERS if ALL_EVENTS in subscription.events else subscription.events & TRIGGERS
    return [EVENTS[name] for name in sorted(names)]


async def run_next_replay(
    units: UnitsOfWork[NotificationsUnitOfWork],
    history: History,
    on_recorded: Callable[[list[Delivery]], None],
) -> Replay | None:
    """Claim the oldest waiting replay (None: none waits) and run it to its end: every matching event the
    topics retain since its start, each recorded as a new delivery with the original event's id (a
    replay run again after a crash records nothing twice: the keys are the replay's)."""
    lease = uuid.uuid4().hex

    async def claim(uow: NotificationsUnitOfWork) -> tuple[Replay, ManagedSubscription | None] | None:
        waiting = await uow.replays.claimable(uow.clock.now())
        if waiting is None:
            return None
        running = dataclasses.replace(
            waiting,
            state=ReplayState.RUNNING,
            read=0,
            matched=0,
            claimed_until=uow.clock.now() + REPLAY_LEASE,
        )
        await uow.replays.save(running)
        return running, await uow.subscriptions.get(waiting.subscription_id)

    claimed = await units.run(claim)
    if claimed is None:
        return None
    replay, subscription = claimed
    extra = {"replay": replay.id, "subscription": replay.subscription_id, "lease": lease}
    try:
        if subscription is None:
            raise LookupError("the subscription was removed")
        pending: list[Envelope[Any]] = []
        read = matched = 0
        async for envelope in history.since(kinds_of(subscription), replay.since):
            read += 1
            event = envelope.event
            if subscription.accepts(event.event_name(), event.model_dump()):
                pending.append(envelope)
            if len(pending) >= REPLAY_BATCH:
                matched += len(pending)
                replay = await _record_replayed(
                    units, replay, subscription, pending, read, matched, on_recorded
                )
                pending = []
        matched += len(pending)
        replay = await _record_replayed(units, replay, subscription, pending, read, matched, on_recorded)
        finished = dataclasses.replace(replay, state=ReplayState.DONE, claimed_until=None)
    except Exception as exc:
        log.warning("a replay failed", extra={**extra, "error": f"{type(exc).__name__}: {exc}"})
        finished = dataclasses.replace(
            replay, state=ReplayState.FAILED, error=f"{type(exc).__name__}: {exc}", claimed_until=None
        )

    async def finish(uow: NotificationsUnitOfWork) -> Replay:
        done = dataclasses.replace(finished, finished_at=uow.clock.now())
        await uow.replays.save(done)
        return done

    return await units.run(finish)


async def _record_replayed(
    units: UnitsOfWork[NotificationsUnitOfWork],
    replay: Replay,
    subscription: ManagedSubscription,
    envelopes: Sequence[Envelope[Any]],
    read: int,
    matched: int,
    on_recorded: Callable[[list[Delivery]], None],
) -> Replay:
    """One batch of a replay's deliveries and its progress, in one unit; its lease renewed."""

    async def work(uow: NotificationsUnitOfWork) -> tuple[Replay, list[Delivery]]:
        now = uow.clock.now()
        deliveries = [replayed_delivery(e, subscription, replay.id) for e in envelopes]
        for delivery in deliveries:
            uow.deliveries.add(delivery, now)
        progressed = dataclasses.replace(replay, read=read, matched=matched, claimed_until=now + REPLAY_LEASE)
        await uow.replays.save(progressed)
        return progressed, deliveries

    progressed, deliveries = await units.run(work)
    if deliveries:
        on_recorded(deliveries)
    return progressed


def replayed_delivery(envelope: Envelope[Any], subscription: ManagedSubscription, replay_id: str) -> Delivery:
    event = envelope.event
    context = EventContext(event_id=envelope.id, correlation_id=envelope.correlation_id)
    return Delivery(
        key=replay_delivery_key(envelope.id, subscription, replay_id),
        channel=Channel.WEBHOOK,
        recipient=subscription.name,
        event_type=event.event_name(),
        event_id=envelope.id,
        subject=event.key(),
        correlation_id=envelope.correlation_id,
        message=WebhookPost(
            url=subscription.url, subscriber=subscription.name, body=rendering.webhook_body(event, context)
        ),
        rule=SUBSCRIPTION,
    )
