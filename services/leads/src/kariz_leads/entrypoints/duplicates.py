"""The HTTP API of duplicate candidates: the leads that may be one lead's contact again under another
e-mail address (same phone, same name at the same company, same domain and a similar name), scored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from kariz_leads.domain import LeadStatus
from kariz_leads.domain.duplicates import MAX_CANDIDATES, DuplicateCandidate, DuplicateReason
from kariz_leads.entrypoints.http import ErrorView
from kariz_leads.service_layer import views
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_shared.contracts.events import Company, Contact
from kariz_shared.contracts.identity import PEOPLE
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate


class EvidenceView(BaseModel):
    reason: DuplicateReason
    score: int = Field(ge=0, le=100, description="This reason's own score")


class DuplicateCandidateView(BaseModel):
    id: str
    contact: Contact
    company: Company
    owner: str
    status: LeadStatus
    created_at: datetime
    score: int = Field(ge=0, le=100, description="All reasons together, 0..100: the higher, the likelier")
    reasons: list[EvidenceView]

    @classmethod
    def of(cls, candidate: DuplicateCandidate) -> DuplicateCandidateView:
        lead = candidate.lead
        return cls(
            id=lead.id,
            contact=lead.contact,
            company=lead.company,
            owner=lead.owner,
            status=lead.status,
            created_at=lead.created_at,
            score=candidate.score,
            reasons=[EvidenceView(reason=e.reason, score=e.score) for e in candidate.reasons],
        )


class DuplicateCandidatesView(BaseModel):
    lead_id: str
    items: list[DuplicateCandidateView] = Field(description="Best first (then newest)")


def router(units: UnitsOfWork[LeadsUnitOfWork]) -> APIRouter:
    routes = APIRouter(tags=["leads"], dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    @routes.get(
        "/leads/{lead_id}/duplicates",
        summary="Leads that may be this lead's contact again, best first",
        description="Beyond the e-mail address (a second capture of it is a touch, never a lead): the "
        "same phone number in E.164 (`same_phone`, 80), the same name at the same company "
        "(`same_name_same_company`, 85), the same company domain and a similar name "
        "(`same_domain_similar_name`, 0.9 times the similarity, at least 85 of 100). A candidate's "
        "score combines its reasons: 100 * (1 - prod(1 - s/100)). Only leads the caller sees.",
        responses={404: {"model": ErrorView, "description": "No lead with this id (or out of reach)"}},
    )
    async def duplicates(
        lead_id: str,
        caller: Authenticated,
        limit: Annotated[int, Query(ge=1, le=MAX_CANDIDATES, description="Candidates, at most")] = 20,
    ) -> DuplicateCandidatesView:
        caller.require(*PEOPLE)
        found = await views.duplicate_candidates(units, lead_id, caller.seen, limit=limit)
        return DuplicateCandidatesView(lead_id=lead_id, items=[DuplicateCandidateView.of(c) for c in found])

    return routes
