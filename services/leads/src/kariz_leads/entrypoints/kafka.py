"""The subscriptions table: which consumed event goes to which handler.

Each entry runs as ``handle(uow, event)`` in the consumer's batch transaction, once per event id
(bootstrap wraps it with ``MongoUnitsOfWork.handler``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from kariz_leads.domain.assignment import SalesTeam
from kariz_leads.domain.response import ResponseSla
from kariz_leads.service_layer import activities, handlers, reassignment
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_shared.contracts.errors import NotFound, RejectedEvent, RuleViolation
from kariz_shared.contracts.events import (
    Event,
    LeadDisqualified,
    LeadQualified,
    LeadResponseEscalationDue,
    NurtureStepDue,
    TaskRequested,
)

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


async def on_nurture_step_due(uow: LeadsUnitOfWork, event: NurtureStepDue) -> None:
    try:
        await activities.record_nurture_task(uow, event)
    except NotFound as exc:
        raise RejectedEvent(f"NurtureStepDue for a lead leads never captured: {exc}") from exc
    except RuleViolation as exc:
        raise RejectedEvent(f"NurtureStepDue that cannot be a follow-up: {exc}") from exc


def on_response_escalation_due(
    team: SalesTeam, sla: ResponseSla
) -> Callable[[LeadsUnitOfWork, LeadResponseEscalationDue], Awaitable[None]]:
    """The handler of this service's own escalation timers (they need the rotations and the SLA)."""

    async def on_escalation_due(uow: LeadsUnitOfWork, event: LeadResponseEscalationDue) -> None:
        try:
            await reassignment.escalate_unanswered_lead(uow, team, sla, event)
        except NotFound as exc:
            raise RejectedEvent(f"LeadResponseEscalationDue for a lead leads never captured: {exc}") from exc

    return on_escalation_due


SUBSCRIPTIONS: dict[type[Event], Callable[[LeadsUnitOfWork, Any], Awaitable[None]]] = {
    LeadQualified: on_lead_qualified,
    LeadDisqualified: on_lead_disqualified,
    TaskRequested: on_task_requested,
    NurtureStepDue: on_nurture_step_due,
}
