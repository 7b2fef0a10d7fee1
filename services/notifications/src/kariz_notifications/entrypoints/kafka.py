"""The consumed events: which event goes to which handler. Each runs in the consumer's batch
transaction (``MongoUnitsOfWork.handler`` in bootstrap)."""

from __future__ import annotations

from collections.abc import Callable

from kariz_notifications.domain.model import Delivery
from kariz_notifications.service_layer import handlers
from kariz_notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from kariz_shared import system
from kariz_shared.contracts.events import DigestDue, Event, NotificationDue
from kariz_shared.persistence.unit_of_work import Subscriptions


def subscriptions(
    on_recorded: Callable[[list[Delivery]], None] = lambda deliveries: None,
) -> Subscriptions[NotificationsUnitOfWork]:
    """Every event that notifies someone records its deliveries; once they are committed,
    ``on_recorded`` hands them to this process's sender, which takes them at once by id."""

    async def notify(uow: NotificationsUnitOfWork, event: Event) -> None:
        # The handler is looked up on each call, not bound here: a test may stand in for it.
        deliveries = await handlers.record_notifications(uow, event)
        if deliveries:
            # Only once committed: before that the sender could not see them.
            uow.after_commit(lambda: on_recorded(deliveries))

    async def fire(uow: NotificationsUnitOfWork, due: NotificationDue) -> None:
        deliveries = await handlers.record_due_action(uow, due)
        if deliveries:
            uow.after_commit(lambda: on_recorded(deliveries))

    # Every event the service consumes (kariz_shared.system): the rules in force say what each sends;
    # its own NotificationDue is a rule's deferred action come due, its DigestDue a digest window's end.
    table: Subscriptions[NotificationsUnitOfWork] = {
        event_cls: notify for event_cls in system.service("notifications").consumes
    }

    async def digest(uow: NotificationsUnitOfWork, window: DigestDue) -> None:
        deliveries = await handlers.send_digest(uow, window)
        uow.after_commit(lambda: on_recorded(deliveries))

    table[NotificationDue] = fire
    table[DigestDue] = digest
    return table
