"""The HTTP API of objections: those a customer raised on a deal (``/deals/{id}/objections``), and the
library of standard answers (``/objection-answers``), each with its usage and win rate.

A deal's objections are seen and recorded by whoever sees the deal (its owner, their manager, an
admin); the library is read by every rep and curated by managers and admins.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kariz_deals.domain.objection import Objection, ObjectionAnswer, ObjectionChange
from kariz_deals.service_layer import objections
from kariz_deals.service_layer.objections import ChangeObjection, RecordObjection, WriteAnswer
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_shared.contracts.events import ObjectionCategory, ObjectionJudgement, ObjectionStatus
from kariz_shared.contracts.identity import PEOPLE, Role
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate
from kariz_shared.runtime.http import IF_MATCH, Limit, Offset, Page, edited_version, version_etag

# --- requests -------------------------------------------------------------------------------------


def text(value: str | None) -> str | None:
    """Free text: trimmed (its lines kept); blank is absent."""
    return (value.strip() or None) if value is not None else None


class ObjectionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: ObjectionCategory
    words: str = Field(min_length=1, max_length=2000, description="What the customer said, in their words")
    judgement: ObjectionJudgement | None = Field(
        default=None, description="Whether the rep judges it the customer's real concern or an excuse"
    )
    status: ObjectionStatus = ObjectionStatus.OPEN
    answer_id: str | None = Field(default=None, max_length=100, description="The library answer given")
    answer_text: str | None = Field(
        default=None, max_length=4000, description="The answer given, in your words"
    )
    note: str | None = Field(default=None, max_length=2000, description="For the objection's history")

    _texts = field_validator("answer_id", "answer_text", "note")(text)

    @field_validator("words")
    @classmethod
    def _words(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("say what the customer said")
        return value.strip()

    def command(self) -> RecordObjection:
        return RecordObjection(
            category=self.category,
            words=self.words,
            status=self.status,
            judgement=self.judgement,
            answer_id=self.answer_id,
            answer_text=self.answer_text,
            note=self.note,
        )


class ObjectionChangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: ObjectionStatus | None = None
    judgement: ObjectionJudgement | None = None
    answer_id: str | None = Field(default=None, max_length=100, description="The library answer given")
    answer_text: str | None = Field(
        default=None, max_length=4000, description="The answer given, in your words"
    )
    note: str | None = Field(default=None, max_length=2000, description="For the objection's history")

    _texts = field_validator("answer_id", "answer_text", "note")(text)

    def command(self) -> ChangeObjection:
        return ChangeObjection(
            status=self.status,
            judgement=self.judgement,
            answer_id=self.answer_id,
            answer_text=self.answer_text,
            note=self.note,
        )


class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: ObjectionCategory
    title: str = Field(min_length=1, max_length=200, examples=["Cost of doing nothing"])
    text: str = Field(min_length=1, max_length=4000)

    @field_validator("title", "text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    def command(self) -> WriteAnswer:
        return WriteAnswer(category=self.category, title=self.title, text=self.text)


# --- responses ------------------------------------------------------------------------------------


class ObjectionChangeView(BaseModel):
    at: datetime
    by: str
    changed: dict[str, str | None] = Field(description="What was set: field -> new value")
    note: str | None

    @classmethod
    def of(cls, change: ObjectionChange) -> ObjectionChangeView:
        return cls(at=change.at, by=change.by, changed=dict(change.changed), note=change.note)


class ObjectionView(BaseModel):
    id: str
    deal_id: str
    category: ObjectionCategory
    words: str
    judgement: ObjectionJudgement | None
    status: ObjectionStatus
    answer_id: str | None = Field(description="The library answer given, if one was")
    answer_text: str | None = Field(description="The answer given (the library's text then, or free text)")
    recorded_by: str
    recorded_at: datetime
    updated_at: datetime
    history: list[ObjectionChangeView]

    @classmethod
    def of(cls, objection: Objection) -> ObjectionView:
        answer = objection.answer
        return cls(
            id=objection.id,
            deal_id=objection.deal_id,
            category=objection.category,
            words=objection.words,
            judgement=objection.judgement,
            status=objection.status,
            answer_id=answer.answer_id if answer else None,
            answer_text=answer.text if answer else None,
            recorded_by=objection.recorded_by,
            recorded_at=objection.recorded_at,
            updated_at=objection.updated_at,
            history=[ObjectionChangeView.of(c) for c in objection.history],
        )


class AnswerView(BaseModel):
    id: str
    category: ObjectionCategory
    title: str
    text: str
    times_used: int = Field(description="How many times it was given to an objection")
    deals_closed: int = Field(description="Closed deals it was given on (each counted once)")
    deals_won: int
    win_rate: Decimal | None = Field(description="deals_won / deals_closed; none before a deal closed")
    version: int
    written_by: str
    written_at: datetime
    updated_by: str
    updated_at: datetime

    @classmethod
    def of(cls, answer: ObjectionAnswer) -> AnswerView:
        return cls(
            id=answer.id,
            category=answer.category,
            title=answer.title,
            text=answer.text,
            times_used=answer.times_used,
            deals_closed=answer.deals_closed,
            deals_won=answer.deals_won,
            win_rate=answer.win_rate,
            version=answer.version,
            written_by=answer.written_by,
            written_at=answer.written_at,
            updated_by=answer.updated_by,
            updated_at=answer.updated_at,
        )


# --- routes ---------------------------------------------------------------------------------------

OBJECTION_ERRORS: dict[int | str, dict[str, str]] = {
    404: {"description": "No such deal (or not yours to see), or no such objection on it"},
    409: {"description": "The deal is closed, or the objection changed meanwhile"},
    422: {"description": "An invalid body, an unknown library answer, or an answered objection without one"},
}
LIBRARY_ERRORS: dict[int | str, dict[str, str]] = {
    403: {"description": "Only managers and admins curate the library"},
    404: {"description": "No such answer"},
    409: {"description": "If-Match names a version no longer current (another edit came first)"},
    422: {"description": "An invalid body"},
}


def router(units: UnitsOfWork[DealsUnitOfWork]) -> APIRouter:
    api = APIRouter(dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    @api.get(
        "/deals/{deal_id}/objections",
        summary="A deal's objections, oldest first, with their history",
        tags=["objections"],
        responses={404: OBJECTION_ERRORS[404]},
    )
    async def list_objections(
        deal_id: str, caller: Authenticated, limit: Limit = 50, offset: Offset = 0
    ) -> Page[ObjectionView]:
        caller.require(*PEOPLE)
        found = await objections.objections_of(units, deal_id, seen=caller.seen)
        items = [ObjectionView.of(o) for o in found[offset : offset + limit]]
        return Page[ObjectionView](items=items, total=len(found), limit=limit, offset=offset)

    @api.post(
        "/deals/{deal_id}/objections",
        summary="Record a customer's objection on a deal",
        tags=["objections"],
        status_code=201,
        responses=OBJECTION_ERRORS,
    )
    async def record_objection(deal_id: str, body: ObjectionRequest, caller: Authenticated) -> ObjectionView:
        caller.require(*PEOPLE)
        objection = await objections.record_objection(
            units, deal_id, body.command(), seen=caller.seen, by=caller.as_actor
        )
        return ObjectionView.of(objection)

    @api.patch(
        "/deals/{deal_id}/objections/{objection_id}",
        summary="Change an objection's status, judgement or the answer given",
        tags=["objections"],
        responses=OBJECTION_ERRORS,
    )
    async def change_objection(
        deal_id: str, objection_id: str, body: ObjectionChangeRequest, caller: Authenticated
    ) -> ObjectionView:
        caller.require(*PEOPLE)
        objection = await objections.change_objection(
            units, deal_id, objection_id, body.command(), seen=caller.seen, by=caller.as_actor
        )
        return ObjectionView.of(objection)

    @api.get(
        "/objection-answers",
        summary="The library of standard answers, by category and title; searchable",
        tags=["objection answers"],
        responses={422: LIBRARY_ERRORS[422]},
    )
    async def search_answers(
        caller: Authenticated,
        q: Annotated[
            str | None, Query(max_length=200, description="Words that must all be in the title or text")
        ] = None,
        category: ObjectionCategory | None = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[AnswerView]:
        caller.require(*PEOPLE)
        answers, total = await objections.search_library(units, q, category, limit=limit, offset=offset)
        return Page[AnswerView](
            items=[AnswerView.of(a) for a in answers], total=total, limit=limit, offset=offset
        )

    @api.get(
        "/objection-answers/{answer_id}",
        summary="One answer of the library (its version in the ETag)",
        tags=["objection answers"],
        responses={404: LIBRARY_ERRORS[404]},
    )
    async def get_answer(answer_id: str, caller: Authenticated, response: Response) -> AnswerView:
        caller.require(*PEOPLE)
        answer = await objections.library_answer(units, answer_id)
        response.headers["ETag"] = version_etag(answer.version)
        return AnswerView.of(answer)

    @api.post(
        "/objection-answers",
        summary="Add a standard answer to the library (managers and admins)",
        tags=["objection answers"],
        status_code=201,
        responses={403: LIBRARY_ERRORS[403], 422: LIBRARY_ERRORS[422]},
    )
    async def write_answer(body: AnswerRequest, caller: Authenticated, response: Response) -> AnswerView:
        caller.require(Role.MANAGER, Role.ADMIN)
        answer = await objections.write_answer(units, body.command(), by=caller.as_actor)
        response.headers["ETag"] = version_etag(answer.version)
        return AnswerView.of(answer)

    @api.put(
        "/objection-answers/{answer_id}",
        summary="Replace an answer's category, title and text (managers and admins); usage stays",
        tags=["objection answers"],
        responses=LIBRARY_ERRORS,
    )
    async def revise_answer(
        answer_id: str,
        body: AnswerRequest,
        caller: Authenticated,
        response: Response,
        if_match: Annotated[
            str | None,
            Header(
                pattern=IF_MATCH,
                description='The ETag of the version edited (from GET, e.g. "3"); refused with 409 when '
                "another edit came first. Absent or *: whatever version is current",
            ),
        ] = None,
    ) -> AnswerView:
        caller.require(Role.MANAGER, Role.ADMIN)
        answer = await objections.revise_answer(
            units, answer_id, body.command(), edited=edited_version(if_match), by=caller.as_actor
        )
        response.headers["ETag"] = version_etag(answer.version)
        return AnswerView.of(answer)

    return api
