"""The HTTP API of merging: two records of one person become one (``POST /leads/{id}/merge``, ``{id}``
the survivor)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, field_validator

from kariz_leads.entrypoints.http import ErrorView, LeadView
from kariz_leads.service_layer import merge
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_shared.contracts.identity import PEOPLE
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate
from kariz_shared.runtime.logging import correlation_id


class MergeLeadsRequest(BaseModel):
    duplicate_id: str = Field(
        min_length=1, max_length=100, description="The lead folded into this one; it becomes `merged`"
    )
    reason: str | None = Field(
        default=None, max_length=500, examples=["Same person: a private and a work address"]
    )

    @field_validator("duplicate_id")
    @classmethod
    def _duplicate_id(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("name the lead to merge into this one")
        return value.strip()

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str | None) -> str | None:
        return (value.strip() or None) if value is not None else None


def router(units: UnitsOfWork[LeadsUnitOfWork]) -> APIRouter:
    routes = APIRouter(tags=["leads"], dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    @routes.post(
        "/leads/{lead_id}/merge",
        summary="Merge a duplicate lead into this one",
        description="`{lead_id}` survives: it keeps both histories, activities, follow-ups and touches, "
        "the earliest first contact and the more advanced status (qualified > working > new > "
        "disqualified). The duplicate becomes `merged` with `merged_into` naming the survivor; its open "
        "follow-ups of its owner go to the survivor's owner, its response SLA stops, and a later capture "
        "of its address touches the survivor. `LeadsMerged` is published with the caller as its actor. "
        "A rep merges two leads of their own, a manager their team's, an admin any.",
        responses={
            403: {"model": ErrorView, "description": "An API key: merging is a person's decision"},
            404: {"model": ErrorView, "description": "No lead with this id (or duplicate_id) in reach"},
            409: {"model": ErrorView, "description": "One of the two was merged already"},
            422: {"model": ErrorView, "description": "A lead merged into itself, or an invalid body"},
        },
    )
    async def merge_into(lead_id: str, body: MergeLeadsRequest, caller: Authenticated) -> LeadView:
        caller.require(*PEOPLE)
        survivor = await merge.merge_leads(
            units,
            merge.MergeLeads(lead_id, body.duplicate_id, body.reason),
            seen=caller.seen,
            by=caller.as_actor,
            correlation_id=correlation_id.get() or str(uuid.uuid4()),
        )
        return LeadView.of(survivor)

    return routes
