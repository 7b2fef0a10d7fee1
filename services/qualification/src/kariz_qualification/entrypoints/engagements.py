"""HTTP API: engagement reported by marketing systems (``POST /engagements``), with an API key of the
scope ``engagements:record`` issued on this service's ``/api-keys``, or by a signed-in person; and a
manager's re-opening of a disqualified lead (``POST /leads/{id}/reopen``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from kariz_qualification.domain.engagement import MarketingKind
from kariz_qualification.entrypoints.http import QualificationView
from kariz_qualification.service_layer import engagement, views
from kariz_qualification.service_layer.commands import RecordEngagement, ReopenLead
from kariz_qualification.service_layer.unit_of_work import QualificationUnitOfWork
from kariz_shared.contracts.identity import EVERYONE, PEOPLE, Role, Scope
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No lead under qualification has that id or contact address"},
    409: {"description": "The lead was changed by another request meanwhile; send it again"},
    422: {
        "description": "The body is invalid (e.g. both or neither of lead_id and email, a time in the "
        "future); the message names the field"
    },
}


class EngagementRequest(BaseModel):
    """One engagement of a lead's contact, named by the lead's id or the contact's e-mail address."""

    model_config = ConfigDict(extra="forbid")

    kind: MarketingKind
    occurred_at: AwareDatetime = Field(description="When the contact did it (with a time zone)")
    lead_id: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320)] | None = (
        None
    )
    engagement_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        default=None, description="The sender's id of this engagement: sent again, it counts once"
    )

    @model_validator(mode="after")
    def _one_lead(self) -> EngagementRequest:
        if (self.lead_id is None) == (self.email is None):
            raise ValueError("lead_id, email: name the lead by exactly one of them")
        if self.email is not None and "@" not in self.email:
            raise ValueError("email: not an e-mail address")
        return self


class ReopenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class EngagementReceipt(BaseModel):
    recorded: bool = Field(description="False when this engagement_id was recorded before: it counts once")


def router(units: UnitsOfWork[QualificationUnitOfWork]) -> APIRouter:
    api = APIRouter(tags=["engagement"], dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    @api.post(
        "/engagements",
        summary="Record an engagement of a lead's contact (an e-mail opened or clicked, a page visited, "
        "content downloaded, a webinar attended); the lead is rescored and may qualify",
        responses=ERRORS,
    )
    async def post_engagement(body: EngagementRequest, caller: Authenticated) -> EngagementReceipt:
        caller.require(*PEOPLE, scope=Scope.ENGAGEMENTS_RECORD)
        # A marketing system reports for every lead, as a capture key captures for any owner; a person
        # only for the leads they see.
        seen = EVERYONE if caller.key is not None else caller.seen
        command = RecordEngagement(
            kind=body.kind,
            occurred_at=body.occurred_at,
            lead_id=body.lead_id,
            email=body.email,
            engagement_id=body.engagement_id,
            seen=seen,
            by=caller.actor,
        )
        _, recorded = await engagement.record_engagement(units, command)
        return EngagementReceipt(recorded=recorded)

    @api.post(
        "/leads/{lead_id}/reopen",
        tags=["leads"],
        summary="Re-open a disqualified lead (a manager's or an admin's): back in nurture, its "
        "disqualification kept in its decisions; LeadReopened is published",
        responses={
            404: {"description": "No such lead here, or not one of the caller's team"},
            409: {"description": "The lead is not disqualified (in nurture, qualified or merged)"},
            422: {"description": "The body is invalid; the message names the field"},
        },
    )
    async def post_reopen(
        lead_id: Annotated[str, StringConstraints(min_length=1, max_length=100)],
        body: ReopenRequest,
        caller: Authenticated,
    ) -> QualificationView:
        caller.require(Role.MANAGER, Role.ADMIN)
        lead = await engagement.reopen_lead(
            units, ReopenLead(lead_id, body.reason, caller.seen, by=caller.actor)
        )
        rules, model = await views.rules_and_calibration(units)
        return QualificationView.of(lead, rules, lead.reopenings[-1].at, odds=model)

    return api
