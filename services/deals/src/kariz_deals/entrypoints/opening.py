"""The HTTP API of deals opened by hand (``POST /deals``: an RFP/RFI, an upsell, a cross-sell, a renewal
for an existing account) and of an RFP's go/no-go (``POST /deals/{id}/rfp-decision``)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from fastapi import APIRouter, Depends
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from kariz_deals.domain import DealType, Pipeline
from kariz_deals.domain.rfp import RfpDecision, RfpDetails
from kariz_deals.entrypoints.http import DealView
from kariz_deals.service_layer import opening
from kariz_deals.service_layer.opening import DecideRfp, OpenDeal
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_shared.contracts.identity import EVERYONE, PEOPLE, Caller, Owners, Role, Teams
from kariz_shared.contracts.normalisation import normalise_email
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate


class RfpBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    issuer: str = Field(min_length=1, max_length=200, description="Who issued the RFP/RFI")
    response_due_at: AwareDatetime = Field(description="When the response is due (with its time zone)")
    requirements: list[str] = Field(default_factory=list, max_length=200)
    reminder_hours_before: int = Field(default=48, ge=1, le=24 * 90, description="The reminder's lead time")


class NewDealBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    account_id: str = Field(min_length=1, max_length=200)
    deal_type: DealType = Field(description="rfp, upsell, cross_sell or renewal")
    owner: str | None = Field(default=None, max_length=320, description="Default: the caller")
    amount: Decimal | None = Field(default=None, gt=0, max_digits=18, decimal_places=2)
    currency: str | None = Field(default=None, pattern="^[A-Z]{3}$", description="Default: the deal currency")
    expected_close_date: date | None = None
    product_line: str | None = Field(default=None, min_length=1, max_length=200)
    next_step: str | None = Field(default=None, min_length=1, max_length=500)
    rfp: RfpBody | None = Field(default=None, description="For an RFP deal: what was issued")

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        return None if value is None else normalise_email(value)


class RfpDecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    decision: RfpDecision
    reason: str | None = Field(default=None, max_length=500, description="Why; needed for a no-go")


def reach_of(caller: Caller, roster: Teams) -> Owners:
    """Whose accounts the caller opens deals for: a rep their own and their team's, a manager their
    team's, an admin anyone's."""
    if caller.has(Role.ADMIN):
        return EVERYONE
    team = roster.members(caller.team) if caller.team else frozenset()
    return Owners((caller.seen.these or frozenset()) | team | {caller.subject})


def router(
    units: UnitsOfWork[DealsUnitOfWork], roster: Teams, *, pipeline: Pipeline, default_currency: str
) -> APIRouter:
    routes = APIRouter(tags=["deals"], dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    @routes.post(
        "/deals",
        status_code=201,
        summary="Open an RFP, upsell, cross-sell or renewal deal for an existing account",
        description="An RFP deal arms a reminder before its response is due and an overdue timer at it "
        "(`RfpResponseDue`) and moves on only after a go; an upsell, cross-sell or renewal needs a won "
        "deal of the account and is linked to them. The routing rules choose its pipeline.",
        responses={
            403: {"description": "Another owner than the caller may give (a rep opens for themself)"},
            404: {"description": "No such account, or none of the caller's or their team's"},
            422: {"description": "An invalid body, an RFP without details, an upsell for no customer"},
        },
    )
    async def open_deal(body: NewDealBody, caller: Authenticated) -> DealView:
        caller.require(*PEOPLE)
        owner = body.owner or caller.subject
        if owner != caller.subject:
            caller.require(Role.MANAGER, Role.ADMIN)
            opening.require_reach(caller.seen, owner)
        now = units.clock.now()
        rfp = (
            RfpDetails.issued(
                body.rfp.issuer,
                body.rfp.response_due_at,
                tuple(body.rfp.requirements),
                now,
                timedelta(hours=body.rfp.reminder_hours_before),
            )
            if body.rfp
            else None
        )
        command = OpenDeal(
            account_id=body.account_id,
            deal_type=body.deal_type,
            owner=owner,
            currency=body.currency or default_currency,
            reach=reach_of(caller, roster),
            amount=body.amount,
            expected_close_date=body.expected_close_date,
            product_line=body.product_line,
            next_step=body.next_step,
            rfp=rfp,
            by=caller.as_actor,
        )
        return DealView.of(await opening.open_deal(units, command, default=pipeline), now)

    @routes.post(
        "/deals/{deal_id}/rfp-decision",
        summary="Decide go or no-go on an RFP deal (a no-go closes it lost)",
        responses={
            404: {"description": "No such deal"},
            409: {"description": "Decided already"},
            422: {"description": "Not an RFP deal, or a no-go without a reason"},
        },
    )
    async def decide(deal_id: str, body: RfpDecisionBody, caller: Authenticated) -> DealView:
        caller.require(*PEOPLE)
        command = DecideRfp(deal_id, body.decision, body.reason, caller.seen, caller.as_actor)
        return DealView.of(await opening.decide_rfp(units, command), units.clock.now())

    return routes
