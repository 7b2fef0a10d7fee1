"""The use cases of ``/subscriptions``: register an endpoint (its secret generated here and returned
once), list them (without secrets), read, change and remove one. An admin reaches every subscription,
an integrator's key its own: one of another owner is answered as missing (404)."""

from __future__ import annotations

import dataclasses
import re
import secrets
import uuid
from collections.abc import Iterable, Sequence

from kariz_notifications.domain.automation import Condition
from kariz_notifications.domain.subscriptions import (
    ManagedSubscription,
    checked_endpoint,
    checked_events,
    checked_filters,
    checked_url,
    seen_by,
)
from kariz_notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from kariz_shared.contracts.errors import NotFound
from kariz_shared.contracts.identity import Caller
from kariz_shared.persistence.unit_of_work import UnitsOfWork

ADDRESS = re.compile(r"^[^@\s,;<>:]+@[^@\s,;<>]+\.[^@\s,;<>]+$")


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
    allow_http: bool,
) -> ManagedSubscription:
    endpoint, wanted = checked_endpoint(url, events, allow_http=allow_http)
    tests = checked_filters(filters, wanted)

    async def work(uow: NotificationsUnitOfWork) -> ManagedSubscription:
        subscription = ManagedSubscription(
            id=uuid.uuid4().hex[:16],
            url=endpoint,
            events=wanted,
            # 32 random bytes: the HMAC key the receiver verifies with (kariz_shared.contracts.webhooks).
            secret=secrets.token_urlsafe(32),
            created_by=caller.actor,
            created_at=uow.clock.now(),
            contact=contact_of(caller),
            filters=tests,
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
    allow_http: bool,
) -> ManagedSubscription:
    """Change what is given of a subscription's endpoint, event types and filters; the rest stays. The
    filters are checked against the event types it will have."""
    new_url = checked_url(url, allow_http=allow_http) if url is not None else None
    new_events = checked_events(events) if events is not None else None

    async def work(uow: NotificationsUnitOfWork) -> ManagedSubscription:
        found = seen_by(await uow.subscriptions.get(subscription_id), caller, subscription_id)
        wanted = new_events if new_events is not None else found.events
        changed = dataclasses.replace(
            found,
            url=new_url or found.url,
            events=wanted,
            filters=checked_filters(filters if filters is not None else found.filters, wanted),
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
