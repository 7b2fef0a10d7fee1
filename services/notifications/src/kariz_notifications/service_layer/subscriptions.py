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
from collections.abc import Iterable, Sequence
from datetime import timedelta
from enum import Enum
from typing import Protocol

from kariz_notifications.domain.automation import Condition
from kariz_notifications.domain.model import Channel, Delivery, DeliveryStatus
from kariz_notifications.domain.subscriptions import (
    PREFIX,
    DeliveryHealth,
    ManagedSubscription,
    SubscriptionState,
    checked_debounce,
    checked_endpoint,
    checked_events,
    checked_filters,
    checked_url,
    seen_by,
    suspension_notice,
)
from kariz_notifications.service_layer.handlers import Outcome
from kariz_notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from kariz_shared.contracts.errors import NotFound
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
