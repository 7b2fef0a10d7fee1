"""The response SLA's timers as the use cases run them: armed at capture, stopped by what answers the
lead (a verdict, a first contact activity), so the timer worker never needs to look at the lead."""

from __future__ import annotations

from datetime import datetime

from kariz_leads.domain.lead import Lead
from kariz_leads.domain.response import ResponseSla
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork


def arm_response_timers(uow: LeadsUnitOfWork, sla: ResponseSla, lead: Lead) -> None:
    """At capture: the lead's response timer and, with an escalation configured, its escalation timer.
    The lead is new in this unit, so nothing is armed under their keys yet (armed with an insert alone)."""
    timer = sla.timer_for(lead)
    if timer is not None:
        uow.timers.arm(timer.key, timer.due_at, timer.overdue, first=True, correlation_id=lead.correlation_id)
    escalation = sla.escalation_for(lead)
    if escalation is not None:
        uow.timers.arm(
            escalation.key, escalation.due_at, escalation.due, first=True, correlation_id=lead.correlation_id
        )


def rearm_response_timers_for_new_owner(
    uow: LeadsUnitOfWork, sla: ResponseSla, lead: Lead, at: datetime
) -> None:
    """After a reassignment: a lead still awaiting a response owes its new owner's answer one SLA from
    ``at`` (in the new owner's calendar), and is not escalated (again, or over a manager's choice)."""
    uow.timers.cancel(lead.escalation_timer_key())
    timer = sla.timer_for(lead, since=at)
    if timer is None:
        uow.timers.cancel(lead.response_timer_key())
    else:
        uow.timers.arm(timer.key, timer.due_at, timer.overdue, correlation_id=lead.correlation_id)


def stop_response_timers_if_answered(uow: LeadsUnitOfWork, lead: Lead) -> None:
    """Stop the lead's response timers (the overdue one and the escalation) once it no longer awaits a
    response; called by every change that can answer a lead."""
    if not lead.awaits_response:
        uow.timers.cancel(lead.response_timer_key())
        uow.timers.cancel(lead.escalation_timer_key())
