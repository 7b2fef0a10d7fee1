"""Kafka event handlers: each consumed event becomes delivery documents (and perhaps a hand-over)."""

from __future__ import annotations

from collections.abc import Callable

from kariz_notifications import service_layer
from kariz_notifications.domain.model import Audience, Delivery
from kariz_shared.contracts.events import Event
from kariz_shared.persistence.store import Transaction


class EventHandlers:
    def __init__(
        self, audience: Audience, on_recorded: Callable[[list[Delivery]], None] = lambda deliveries: None
    ) -> None:
        self.audience = audience
        self.on_recorded = on_recorded

    async def notify(self, event: Event, tx: Transaction) -> None:
        deliveries = await service_layer.record_notifications(tx, event, self.audience)
        if deliveries:
            # Only once committed: before that the worker could not see them.
            tx.after_commit(lambda: self.on_recorded(deliveries))
