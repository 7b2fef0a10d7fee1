"""The consumed events: which event goes to which handler. Each runs in the consumer's batch
transaction (``MongoUnitsOfWork.handler`` in bootstrap)."""

from __future__ import annotations

from collections.abc import Callable

from kariz_notifications.domain.model import Delivery
from kariz_notifications.service_layer import handlers
from kariz_notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from kariz_shared import system
from kariz_shared.contracts.events import DigestDue, Event, NotificationDue, SubscriptionDebounceDue
from kariz_shared.persistence.unit_of_work import Subscriptions


def subscriptions(
    on_recorded: Callable[[list[Delivery]], None] = lambda deliveries: None,
    on_skipped: Callable[[list[Delivery]], None] = lambda deliveries: None,
) -> Subscriptions[NotificationsUnitOfWork]:
    """Every event that notifies someone records its deliveries; once they are committed,
    ``on_recorded`` hands them to this process's sender, which takes them at once by id, and
    ``on_skipped`` hears of those kept unsent (content to a contact without consent: the metrics)."""

    def after(uow: NotificationsUnitOfWork, deliveries: list[Delivery]) -> None:
        due = [d for d in deliveries if d.skipped is None]
        skipped = [d for d in deliveries if d.skipped is not None]
        # Only once committed: before that the sender could not see them.
        if due:
            uow.after_commit(lambda: on_recorded(due))
        if skipped:
            uow.after_commit(lambda: on_skipped(skipped))

    async def notify(uow: NotificationsUnitOfWork, event: Event) -> None:
        # The handler is looked up on each call, not bound here: a test may stand in for it.
        after(uow, await handlers.record_notifications(uow, event))

    async def fire(uow: NotificationsUnitOfWork, due: NotificationDue) -> None:
        after(uow, await handlers.record_due_action(uow, due))

    # Every event the service consumes (kariz_shared.system): the rules in force say what each sends;
    # its own NotificationDue is a rule's deferred action come due, its DigestDue a digest window's end,
    # its SubscriptionDebounceDue a subscription's debounce window's end.
    table: Subscriptions[NotificationsUnitOfWork] = {
        event_cls: notify for event_cls in system.service("notifications").consumes
    }

    async def digest(uow: NotificationsUnitOfWork, window: DigestDue) -> None:
        after(uow, await handlers.send_digest(uow, window))

    async def debounced(uow: NotificationsUnitOfWork, window: SubscriptionDebounceDue) -> None:
        after(uow, await handlers.deliver_debounced(uow, window))

    table[NotificationDue] = fire
    table[DigestDue] = digest
    # A subscription's debounce window ended: its subject's latest event goes.
    table[SubscriptionDebounceDue] = debounced
    return table
