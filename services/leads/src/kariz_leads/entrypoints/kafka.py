"""The subscriptions table: which consumed event goes to which handler.

Each entry runs as ``handle(uow, event)`` in the consumer's batch transaction, once per event id
(bootstrap wraps it with ``MongoUnitsOfWork.handler``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from kariz_leads.service_layer import handlers
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_shared.contracts.errors import NotFound, RejectedEvent
from kariz_shared.contracts.events import Event, LeadDisqualified, LeadQualified

# The handlers are looked up on each event, not bound at build: a test may replace one in a running
# service (tests/test_poison_messages.py makes them fail for chosen events).


async def on_lead_qualified(uow: LeadsUnitOfWork, event: LeadQualified) -> None:
    try:
        await handlers.record_qualified(uow, event)
    except NotFound as exc:
        # Qualification only knows leads this service published, so this can never be applied.
        raise RejectedEvent(f"LeadQualified for a lead leads never captured: {exc}") from exc


async def on_lead_disqualified(uow: LeadsUnitOfWork, event: LeadDisqualified) -> None:
    try:
        await handlers.record_disqualified(uow, event)
    except NotFound as exc:
        raise RejectedEvent(f"LeadDisqualified for a lead leads never captured: {exc}") from exc


SUBSCRIPTIONS: dict[type[Event], Callable[[LeadsUnitOfWork, Any], Awaitable[None]]] = {
    LeadQualified: on_lead_qualified,
    LeadDisqualified: on_lead_disqualified,
}
