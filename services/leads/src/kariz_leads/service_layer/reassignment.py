"""Reassignment: a lead changes owner, by a manager's (or an admin's) hand or because its response SLA's
escalation threshold passed with the lead still unanswered.

Either way the lead raises ``LeadReassigned``, its history records the change, its open follow-ups of
the old owner become the new owner's (unless a manager says ``keep_tasks``), and its response timers
follow the rule of :mod:`kariz_leads.domain.response`: a lead still awaiting a response owes its new
owner's answer one SLA from the reassignment (a fresh overdue timer in the new owner's calendar) and is
never escalated again; a lead that was answered has no timer to move.
"""

from __future__ import annotations

import logging
from datetime import datetime

from kariz_leads.domain.assignment import AssignedBy, SalesTeam
from kariz_leads.domain.lead import Lead
from kariz_leads.domain.response import ResponseSla
from kariz_leads.service_layer.activities import move_open_follow_ups
from kariz_leads.service_layer.assignment import next_rep_of_team
from kariz_leads.service_layer.commands import AssignLead
from kariz_leads.service_layer.response import rearm_response_timers_for_new_owner
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_leads.service_layer.views import lead_or_not_found
from kariz_shared.contracts.errors import Forbidden, RuleViolation, found
from kariz_shared.contracts.events import LeadResponseEscalationDue
from kariz_shared.contracts.identity import Actor, Owners, same_person
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.system import source_of

log = logging.getLogger(__name__)

#: The reason a response SLA's escalation gives in ``LeadReassigned``.
ESCALATION_REASON = "response_sla_escalation"


async def reassign_lead(
    units: UnitsOfWork[LeadsUnitOfWork],
    sla: ResponseSla,
    command: AssignLead,
    *,
    seen: Owners,
    assignable: Owners,
    by: Actor,
    correlation_id: str,
) -> Lead:
    """Hand a lead the caller sees (404 otherwise, as if absent) to a rep they may assign to
    (``assignable``: their team's reps for a manager, anyone for an admin; 403 otherwise)."""
    reason = command.reason.strip()
    if not reason:
        raise RuleViolation("reason: say why the lead changes owner")
    to_owner = same_person(command.owner)

    async def work(uow: LeadsUnitOfWork) -> Lead:
        lead = await lead_or_not_found(uow, command.lead_id)
        seen.sees(lead.owner, f"no lead with id {command.lead_id!r}")
        lead.must_not_be_merged()
        if not assignable.include(to_owner):
            raise Forbidden(f"owner: {to_owner} is not a rep of your team; a manager assigns within it")
        from_owner, at = _reassign(uow, sla, lead, to_owner, reason, by, AssignedBy.MANUAL)
        await uow.leads.save_owner(lead)
        if not command.keep_tasks:
            await move_open_follow_ups(uow, lead, from_owner, at=at, by=by)
        return lead

    return await units.run(work, correlation_id=correlation_id)


async def escalate_unanswered_lead(
    uow: LeadsUnitOfWork, team: SalesTeam, sla: ResponseSla, event: LeadResponseEscalationDue
) -> None:
    """The escalation timer fired: a lead still awaiting its owner's response goes to the next rep of
    its rotation (for a lead an assignment rule gave its owner, the next available rep of their team in
    the roster). Nothing when it was answered or already reassigned meanwhile (its timer should have
    been stopped; a timer that fired in the same instant is let be), or when its rotation has nobody else."""
    lead = found(await uow.leads.get_for_event(event.lead_id), f"no lead with id {event.lead_id!r}")
    if not lead.awaits_response or lead.owner != event.owner:
        return
    if lead.assigned_by is AssignedBy.RULE:  # the next rep of the rule's team, as the roster has it now
        to_owner = await next_rep_of_team(uow, lead.owner)
    else:
        to_owner = team.rotation_for(lead.company.country).after(lead.owner)
    if to_owner is None:
        log.warning(
            "no other rep to escalate the unanswered lead to", extra={"lead_id": lead.id, "owner": lead.owner}
        )
        return
    by = Actor(source_of(type(event)))
    # Its timer's story is the lead's own, which the reassignment continues.
    from_owner, at = _reassign(
        uow, sla, lead, to_owner, ESCALATION_REASON, by, AssignedBy.ESCALATION, lead.correlation_id
    )
    await uow.leads.save_owner(lead)
    # The next rep works the lead now, and its follow-ups with it.
    await move_open_follow_ups(uow, lead, from_owner, at=at, by=by)


def _reassign(
    uow: LeadsUnitOfWork,
    sla: ResponseSla,
    lead: Lead,
    to_owner: str,
    reason: str,
    by: Actor,
    assigned_by: AssignedBy,
    correlation_id: str | None = None,
) -> tuple[str, datetime]:
    """Hand ``lead`` over; its previous owner and the time. ``correlation_id``: the story
    ``LeadReassigned`` continues (default: the unit's, a request's)."""
    at, from_owner = uow.clock.now(), lead.owner
    lead.reassign(to_owner, reason, at, by, assigned_by=assigned_by)
    uow.history.add(lead.pull_changes())
    for event in lead.pull_events():
        uow.emit(event, correlation_id=correlation_id)
    rearm_response_timers_for_new_owner(uow, sla, lead, at)
    return from_owner, at
