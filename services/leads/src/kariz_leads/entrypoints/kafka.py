"""The subscriptions table: which consumed event goes to which handler.

Each entry runs as ``handle(uow, event)`` in the consumer's batch transaction, once per event id
(bootstrap wraps it with ``MongoUnitsOfWork.handler``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from kariz_leads.service_layer import activities, handlers
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_shared.contracts.errors import NotFound, RejectedEvent, RuleViolation
from kariz_shared.contracts.events import Event, LeadDisqualified, LeadQualified, TaskRequested

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


async def on_task_requested(uow: LeadsUnitOfWork, event: TaskRequested) -> None:
    try:
        await activities.record_task_requested(uow, event)
    except NotFound as exc:
        raise RejectedEvent(f"TaskRequested for a lead leads never captured: {exc}") from exc
    except RuleViolation as exc:  # e.g. a blank title: no retry makes it a follow-up
        raise RejectedEvent(f"TaskRequested that cannot be a follow-up: {exc}") from exc


SUBSCRIPTIONS: dict[type[Event], Callable[[LeadsUnitOfWork, Any], Awaitable[None]]] = {
    LeadQualified: on_lead_qualified,
    LeadDisqualified: on_lead_disqualified,
    TaskRequested: on_task_requested,
}
