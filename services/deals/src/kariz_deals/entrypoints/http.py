"""The HTTP API of the deals service: deals, their moves through the pipeline, accounts, the pipeline."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kariz_deals.domain import Account, Deal, DealCriteria, Pipeline, PipelineSummary
from kariz_deals.entrypoints import objections
from kariz_deals.service_layer import handlers, views
from kariz_deals.service_layer.commands import MoveDeal
from kariz_deals.service_layer.pipelines import pipeline_in_force, pipelines_in_force
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_deals.service_layer.views import DealReads
from kariz_shared.contracts.identity import PEOPLE, Role
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate
from kariz_shared.runtime.http import Limit, Offset, Page

# Amounts are Decimals and serialise as JSON strings ("1250.00"); probabilities are plain numbers.
Amount = Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=2)]


# --- requests -------------------------------------------------------------------------------------


class StageMoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    stage: str = Field(min_length=1, max_length=50, description="The stage to move to, e.g. proposal")
    amount: Amount | None = Field(default=None, description="The deal's amount; needed from proposal on")
    reason: str | None = Field(
        default=None,
        max_length=500,
        description="Why: needed to move back and for lost (the loss reason); for won, the win reason",
    )
    note: str | None = Field(default=None, max_length=2000, description="What happened, for the history")
    competitor: str | None = Field(default=None, max_length=200, description="Whom a lost deal went to")


# --- responses ------------------------------------------------------------------------------------


class StageView(BaseModel):
    name: str
    order: int
    probability: float
    forecast_category: str
    needs_amount: bool
    closed: bool


class PipelineView(BaseModel):
    name: str
    stages: list[StageView]

    @classmethod
    def of(cls, pipeline: Pipeline) -> PipelineView:
        return cls(
            name=pipeline.name,
            stages=[
                StageView(
                    name=s.name,
                    order=s.order,
                    probability=float(s.probability),
                    forecast_category=s.forecast_category.value,
                    needs_amount=s.needs_amount,
                    closed=s.is_closed,
                )
                for s in pipeline.stages
            ],
        )


class AccountRefView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    domain: str | None


class StageVisitView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    stage: str
    entered_at: datetime
    left_at: datetime | None
    note: str | None
    by: str | None = Field(
        default=None,
        description="Who moved the deal into this stage; none for the first (deals opened it when the "
        "lead qualified)",
    )


class ContactView(BaseModel):
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    title: str | None = None


class RfpView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    issuer: str
    response_due_at: datetime
    requirements: list[str]
    reminder_before: timedelta
    decision: str | None
    decided_at: datetime | None
    decided_by: str | None


class DealView(BaseModel):
    # Read from the aggregate's attributes by name: no hand-kept mapping of a deal's fields.
    model_config = ConfigDict(from_attributes=True)

    id: str
    lead_id: str
    pipeline: str
    account: AccountRefView
    owner: str
    stage: str
    amount: Decimal | None
    currency: str
    probability: float
    forecast_category: str
    weighted_amount: Decimal | None
    history: list[StageVisitView]
    opened_at: datetime
    closed_at: datetime | None
    lost_reason: str | None
    correlation_id: str
    contact: ContactView
    source: str | None
    # --- what sales teams keep on a deal, and how long it has sat in its stage ---
    expected_close_date: date | None = None
    next_step: str | None = None
    deal_type: str = "new_business"
    product_line: str | None = None
    decision_maker: str | None = None
    win_reason: str | None = None
    competitor: str | None = None
    checklist: list[str] = Field(default_factory=list, description="The exit criteria's items done")
    accepted_quote_id: str | None = Field(default=None, description="The quote the customer accepted")
    contract_status: str | None = Field(default=None, description="sent, viewed, signed or declined")
    blocking_objections: int = Field(default=0, description="Open objections with status blocking")
    days_in_stage: float = Field(default=0.0, description="Days since the deal entered its stage")
    rots_at: datetime | None = Field(
        default=None, description="When it stalls in its stage unless it moves (none: no rot limit)"
    )
    stalled: bool = Field(default=False, description="Past its stage's rot limit")
    first_contact_after_win_at: datetime | None = None
    seconds_from_win_to_first_contact: float | None = None
    rfp: RfpView | None = None
    linked_deal_ids: list[str] = Field(default_factory=list, description="The won deals it builds on")

    @field_validator("pipeline", mode="before")
    @classmethod
    def _pipeline_name(cls, pipeline: object) -> object:
        return pipeline.name if isinstance(pipeline, Pipeline) else pipeline

    @field_validator("checklist", mode="before")
    @classmethod
    def _checklist(cls, checklist: object) -> object:
        return sorted(checklist) if isinstance(checklist, frozenset) else checklist

    @classmethod
    def of(cls, deal: Deal, at: datetime | None = None) -> DealView:
        view = cls.model_validate(deal)
        if at is not None:
            view.days_in_stage = round(deal.seconds_in_stage(at) / 86400, 2)
            view.stalled = deal.is_stalled(at)
        return view


class AccountView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    domain: str | None
    industry: str | None
    size: int | None
    country: str | None
    created_at: datetime

    @classmethod
    def of(cls, account: Account) -> AccountView:
        return cls.model_validate(account)


class StageSummaryView(BaseModel):
    stage: str
    probability: float
    forecast_category: str
    count: int
    value: Decimal
    weighted_value: Decimal


class PipelineSummaryView(BaseModel):
    pipeline: str
    currency: str
    owner: str | None
    stages: list[StageSummaryView]
    open_count: int
    open_value: Decimal
    open_weighted_value: Decimal
    won_count: int
    won_value: Decimal

    @classmethod
    def of(cls, summary: PipelineSummary, *, currency: str, owner: str | None) -> PipelineSummaryView:
        return cls(
            pipeline=summary.pipeline.name,
            currency=currency,
            owner=owner,
            stages=[
                StageSummaryView(
                    stage=s.stage.name,
                    probability=float(s.stage.probability),
                    forecast_category=s.stage.forecast_category.value,
                    count=s.count,
                    value=s.value,
                    weighted_value=s.weighted_value,
                )
                for s in summary.stages
            ],
            open_count=summary.open_count,
            open_value=summary.open_value,
            open_weighted_value=summary.open_weighted_value,
            won_count=summary.won_count,
            won_value=summary.won_value,
        )


# --- routes ---------------------------------------------------------------------------------------

ERRORS: dict[int | str, dict[str, str]] = {
    404: {"description": "No such deal"},
    409: {"description": "The deal is closed or already in that stage"},
    422: {"description": "Unknown stage, missing amount or reason, or an invalid body"},
}


def router(
    units: UnitsOfWork[DealsUnitOfWork], reads: DealReads, *, pipeline: Pipeline, default_currency: str
) -> APIRouter:
    """The deals API. ``pipeline`` is the one deals are opened in (``/pipeline``, ``/pipeline/stages``);
    ``default_currency`` the one summaries are in unless asked for another."""
    # Every route needs a signed-in caller; a deal is seen and moved by its owner (and up).
    api = APIRouter(tags=["deals"], dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    @api.get("/pipeline/stages", summary="The default pipeline's stages, in order")
    async def get_default_stages() -> PipelineView:
        return PipelineView.of((await pipeline_in_force(units, pipeline.name)).pipeline)

    @api.get("/pipeline", summary="Deals and value per stage, weighted by win probability")
    async def get_pipeline_summary(
        owner: Annotated[str | None, Query(max_length=320, description="Only this rep's deals")] = None,
        currency: Annotated[
            str | None, Query(pattern="^[A-Z]{3}$", description="Default: the deal currency")
        ] = None,
        *,
        caller: Authenticated,
    ) -> PipelineSummaryView:
        if not caller.has(Role.MANAGER, Role.ADMIN):
            owner = caller.subject  # a rep's pipeline is their own
        elif owner is not None:
            caller.sees(owner, f"no rep {owner!r} in your reach")
        cur = currency or default_currency
        summary = await views.pipeline_summary(reads, pipeline, currency=cur, owner=owner, seen=caller.seen)
        return PipelineSummaryView.of(summary, currency=cur, owner=owner)

    @api.get("/deals", summary="Deals, newest first", responses={422: ERRORS[422]})
    async def list_deals(
        lead_id: Annotated[str | None, Query(max_length=200)] = None,
        owner: Annotated[str | None, Query(max_length=320)] = None,
        stage: Annotated[str | None, Query(max_length=50)] = None,
        account_id: Annotated[str | None, Query(max_length=200)] = None,
        stalled: Annotated[
            bool | None, Query(description="true: only the deals past their stage's rot limit now")
        ] = None,
        *,
        caller: Authenticated,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[DealView]:
        now = units.clock.now()
        where = DealCriteria(
            lead_id=lead_id,
            owner=owner,
            stage=stage,
            account_id=account_id,
            stalled_at=now if stalled else None,
        ).seen_by(caller)
        # A stage of an admin's pipeline is a stage too (read only when a stage is asked for).
        others = (
            tuple(v.pipeline for v in await pipelines_in_force(units))
            if stage is not None and not pipeline.has_stage(stage)
            else ()
        )
        deals, total = await views.deals(reads, where, pipeline, limit=limit, offset=offset, others=others)
        return Page[DealView](
            items=[DealView.of(d, now) for d in deals], total=total, limit=limit, offset=offset
        )

    @api.get("/deals/{deal_id}", summary="One deal", responses={404: ERRORS[404]})
    async def get_deal(deal_id: str, caller: Authenticated) -> DealView:
        deal = await views.deal(reads, deal_id)
        caller.sees(deal.owner, f"no deal {deal_id!r}")
        return DealView.of(deal, units.clock.now())

    @api.post(
        "/deals/{deal_id}/stage",
        summary="Move a deal to another stage (forward, back, won or lost)",
        responses=ERRORS,
    )
    async def move_deal(deal_id: str, body: StageMoveRequest, caller: Authenticated) -> DealView:
        caller.require(*PEOPLE)
        command = MoveDeal(
            deal_id=deal_id,
            stage=body.stage,
            amount=body.amount,
            reason=body.reason,
            note=body.note or None,
            seen=caller.seen,
            by=caller.as_actor,
            competitor=body.competitor or None,
        )
        return DealView.of(await handlers.move_deal(units, command), units.clock.now())

    @api.get("/accounts/{account_id}", summary="One account", tags=["accounts"], responses={404: {}})
    async def get_account(account_id: str) -> AccountView:
        return AccountView.of(await views.account(reads, account_id))

    api.include_router(objections.router(units))  # /deals/{id}/objections, /objection-answers
    return api
