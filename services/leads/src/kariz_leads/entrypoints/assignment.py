"""The HTTP API of reassignment: a manager hands a lead of their team to another of its reps, an admin to
anyone (``POST /leads/{id}/assign``)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, field_validator

from kariz_leads.domain.response import ResponseSla
from kariz_leads.entrypoints.http import ErrorView, LeadView
from kariz_leads.service_layer import reassignment
from kariz_leads.service_layer import roster as roster_views
from kariz_leads.service_layer.commands import AssignLead
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_shared.contracts.identity import EVERYONE, Caller, Owners, Role, Teams
from kariz_shared.contracts.normalisation import normalise_email
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate
from kariz_shared.runtime.logging import correlation_id


class AssignLeadRequest(BaseModel):
    owner: str = Field(max_length=320, description="The rep who works the lead from now on (their e-mail)")
    reason: str = Field(min_length=1, max_length=500, examples=["Sam covers Alex's accounts this month"])
    keep_tasks: bool = Field(
        default=False,
        description="Leave the lead's open follow-ups with their assignees; by default those of the old "
        "owner move to the new one",
    )

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        return normalise_email(value)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("say why the lead changes owner")
        return value.strip()


def assignable_by(caller: Caller, roster: Teams) -> Owners:
    """Whom the caller may hand a lead to: anyone for an admin, the reps of their team for a manager."""
    if caller.has(Role.ADMIN):
        return EVERYONE
    return Owners(roster.members(caller.team))


async def with_roster_rep(
    units: UnitsOfWork[LeadsUnitOfWork], caller: Caller, assignable: Owners, owner: str
) -> Owners:
    """``assignable`` and, for a manager, ``owner`` when this service's roster (``/reps``) has them
    active in the manager's team: a rep put there a moment ago, before every replica's roster read
    their ``RepProfile``, can get a lead (one from the team's queue, say) at once."""
    if assignable.include(owner) or not caller.has(Role.MANAGER) or not caller.team:
        return assignable
    rep = await roster_views.rep_or_none(units, owner)
    if rep is None or not rep.active or rep.team != caller.team or assignable.these is None:
        return assignable
    return Owners(assignable.these | {rep.email})


def router(units: UnitsOfWork[LeadsUnitOfWork], sla: ResponseSla, roster: Teams) -> APIRouter:
    routes = APIRouter(tags=["leads"], dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    @routes.post(
        "/leads/{lead_id}/assign",
        summary="Reassign a lead to another rep",
        description="A manager reassigns a lead of their team to another rep of it, an admin to anyone. "
        "`LeadReassigned` is published with the caller as its actor and the lead's history records it. "
        "A lead still awaiting its first response owes the new owner's answer one response SLA from now "
        "(in the new owner's business hours) and is no longer escalated. A lead waiting in a team's queue "
        "(owner `queue:<team>`) is handed out the same way by the team's manager.",
        responses={
            403: {"model": ErrorView, "description": "A rep, or a new owner outside the manager's team"},
            404: {"model": ErrorView, "description": "No lead with this id"},
            422: {"model": ErrorView, "description": "An invalid owner or reason, or the lead's own owner"},
        },
    )
    async def assign(lead_id: str, body: AssignLeadRequest, caller: Authenticated) -> LeadView:
        caller.require(Role.MANAGER, Role.ADMIN)
        command = AssignLead(lead_id, body.owner, body.reason, keep_tasks=body.keep_tasks)
        lead = await reassignment.reassign_lead(
            units,
            sla,
            command,
            seen=caller.seen,
            assignable=await with_roster_rep(units, caller, assignable_by(caller, roster), body.owner),
            by=caller.as_actor,
            correlation_id=correlation_id.get() or str(uuid.uuid4()),
        )
        return LeadView.of(lead)

    return routes
