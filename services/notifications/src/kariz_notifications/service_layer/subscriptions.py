"""The use cases of ``/subscriptions``: register an endpoint (its secret generated here and returned
once), list them (without secrets), remove one."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable

from kariz_notifications.domain.subscriptions import ManagedSubscription, checked_endpoint
from kariz_notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from kariz_shared.contracts.errors import NotFound
from kariz_shared.persistence.unit_of_work import UnitsOfWork


async def register(
    units: UnitsOfWork[NotificationsUnitOfWork],
    url: str,
    events: Iterable[str],
    actor: str,
    *,
    allow_http: bool,
) -> ManagedSubscription:
    endpoint, wanted = checked_endpoint(url, events, allow_http=allow_http)

    async def work(uow: NotificationsUnitOfWork) -> ManagedSubscription:
        subscription = ManagedSubscription(
            id=uuid.uuid4().hex[:16],
            url=endpoint,
            events=wanted,
            # 32 random bytes: the HMAC key the receiver verifies with (kariz_shared.contracts.webhooks).
            secret=secrets.token_urlsafe(32),
            created_by=actor,
            created_at=uow.clock.now(),
        )
        await uow.subscriptions.add(subscription)
        return subscription

    return await units.run(work)


async def listed(units: UnitsOfWork[NotificationsUnitOfWork]) -> list[ManagedSubscription]:
    async def read(uow: NotificationsUnitOfWork) -> list[ManagedSubscription]:
        return await uow.subscriptions.all()

    return await units.read(read)


async def remove(units: UnitsOfWork[NotificationsUnitOfWork], subscription_id: str) -> None:
    async def work(uow: NotificationsUnitOfWork) -> bool:
        return await uow.subscriptions.remove(subscription_id)

    if not await units.run(work):
        raise NotFound(f"no subscription {subscription_id!r}")
