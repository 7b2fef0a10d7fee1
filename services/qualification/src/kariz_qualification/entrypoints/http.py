"""HTTP API: the scoring rule set, a lead's qualification, the qualification call, manual
disqualification, and the review queues."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from kariz_qualification.domain.lead import Lead, Outcome, Status, Trigger
from kariz_qualification.domain.queries import LeadsByStatus, LeadSummary
from kariz_qualification.domain.rules import Authority, Budget, Need, RuleSet, Timeline
from kariz_qualification.service_layer import handlers, views
from kariz_qualification.service_layer.commands import DisqualifyLead, RecordAnswers, ReplaceRules
from kariz_qualification.service_layer.unit_of_work import QualificationUnitOfWork
from kariz_shared.contracts.events import BantAnswers, ScoreLine
from kariz_shared.contracts.identity import PEOPLE, Role
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate
from kariz_shared.runtime.http import Limit, Offset, Page

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
LeadId = Annotated[str, StringConstraints(min_length=1, max_length=100)]

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such lead here (its LeadCaptured event may not have arrived yet)"},
    409: {"description": "The lead is already decided: a decision is final"},
    422: {"description": "The body is invalid; the message says which field and why"},
}


# --- requests -------------------------------------------------------------------------------------


class BantRequest(BaseModel):
    """The answers of a qualification call (the fields of the ``BantAnswers`` event value)."""

    model_config = ConfigDict(extra="forbid")

    budget: Budget
    budget_amount: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)] | None = None
    authority: Authority
    decision_maker: ShortText | None = None
    need: Need
    pain: LongText | None = None
    timeline: Timeline
    notes: LongText | None = None

    def to_answers(self) -> BantAnswers:
        return BantAnswers(**self.model_dump())


class DisqualifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


# --- views ----------------------------------------------------------------------------------------


class DecisionView(BaseModel):
    outcome: Outcome
    reason: str | None
    at: datetime
    threshold: int | None = Field(description="The qualify threshold in force when a lead qualified")
    manual: bool = Field(description="Decided by a rep (manual disqualification) rather than by the score")


class ScoringView(BaseModel):
    at: datetime
    score: int
    breakdown: list[ScoreLine]
    trigger: Trigger


class QualificationView(BaseModel):
    lead_id: str
    owner: str
    company: str
    status: Status
    score: int
    breakdown: list[ScoreLine]
    answers: BantAnswers | None
    decision: DecisionView | None
    scorings: list[ScoringView]
    captured_at: datetime

    @classmethod
    def of(cls, lead: Lead) -> QualificationView:
        d = lead.decision
        return cls(
            lead_id=lead.lead_id,
            owner=lead.owner,
            company=lead.company.name,
            status=lead.status,
            score=lead.score,
            breakdown=list(lead.breakdown),
            answers=lead.answers,
            decision=None
            if d is None
            else DecisionView(
                outcome=d.outcome, reason=d.reason, at=d.at, threshold=d.threshold, manual=d.manual
            ),
            scorings=[
                ScoringView(at=s.at, score=s.score, breakdown=list(s.breakdown), trigger=s.trigger)
                for s in lead.scorings
            ],
            captured_at=lead.captured_at,
        )


def router(units: UnitsOfWork[QualificationUnitOfWork]) -> APIRouter:
    # Every route needs a signed-in caller; the rule set is an admin's, a lead its owner's (and up).
    api = APIRouter(dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    @api.get("/rules", tags=["rules"], summary="The scoring rule set in force")
    async def get_rules() -> RuleSet:
        return await views.current_rules(units)

    @api.put(
        "/rules",
        tags=["rules"],
        summary="Replace the whole scoring rule set (later scorings use it; past ones stay)",
        responses={422: ERRORS[422]},
    )
    async def put_rules(rules: RuleSet, caller: Authenticated) -> RuleSet:
        caller.require(Role.ADMIN)
        return await handlers.replace_rules(units, ReplaceRules(rules))

    @api.get(
        "/leads/{lead_id}/qualification",
        tags=["leads"],
        summary="A lead's status, score, breakdown, answers, decision and scoring history",
        responses={404: ERRORS[404]},
    )
    async def get_qualification(lead_id: LeadId, caller: Authenticated) -> QualificationView:
        return QualificationView.of(await views.qualification_of(units, lead_id, caller.seen))

    @api.put(
        "/leads/{lead_id}/bant",
        tags=["leads"],
        summary="Record the qualification call's answers (BANT); the lead is rescored and may be decided",
        responses=ERRORS,
    )
    async def put_bant(lead_id: LeadId, body: BantRequest, caller: Authenticated) -> QualificationView:
        caller.require(*PEOPLE)
        lead = await handlers.record_answers(units, RecordAnswers(lead_id, body.to_answers(), caller.seen))
        return QualificationView.of(lead)

    @api.post(
        "/leads/{lead_id}/disqualify",
        tags=["leads"],
        summary="Disqualify a lead by hand, with a reason",
        responses=ERRORS,
    )
    async def post_disqualify(
        lead_id: LeadId, body: DisqualifyRequest, caller: Authenticated
    ) -> QualificationView:
        caller.require(*PEOPLE)
        return QualificationView.of(
            await handlers.disqualify_lead(units, DisqualifyLead(lead_id, body.reason, caller.seen))
        )

    @api.get("/leads", tags=["leads"], summary="Leads by status (the nurture queue by default), newest first")
    async def list_leads(
        status: Status = "nurture",
        owner: Annotated[str | None, Query(max_length=320)] = None,
        *,
        caller: Authenticated,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[LeadSummary]:
        # The queue's row is the domain's summary as it is: one definition of what a row shows.
        rows, total = await views.leads_by_status(
            units, LeadsByStatus(status, owner).seen_by(caller), limit, offset
        )
        return Page[LeadSummary](items=rows, total=total, limit=limit, offset=offset)

    return api
