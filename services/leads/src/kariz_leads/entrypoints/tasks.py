"""The HTTP API of follow-ups (tasks): my day, one follow-up, and completing, snoozing, reassigning or
cancelling it. A follow-up is opened on a lead (:mod:`.activities`) or by another service's request."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, field_validator

from kariz_leads.domain.task import TaskFilter, TaskStatus
from kariz_leads.entrypoints.activities import InlineActivityRequest, Moment, TaskView, in_utc
from kariz_leads.entrypoints.http import ErrorView
from kariz_leads.service_layer import activities
from kariz_leads.service_layer.activities import CompleteFollowUp
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.identity import PEOPLE, Role
from kariz_shared.contracts.normalisation import normalise_email
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate
from kariz_shared.runtime.http import Limit, Offset, Page


class StatusQuery(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"
    ANY = "any"


class CompleteRequest(BaseModel):
    activity_id: str | None = Field(
        default=None, max_length=100, description="The logged activity that did it"
    )
    activity: InlineActivityRequest | None = Field(default=None, description="Or the activity, logged now")


class SnoozeRequest(BaseModel):
    due_at: Moment = Field(description="The new due time (ISO 8601, UTC without a zone), after now")


class ReassignRequest(BaseModel):
    assignee: str = Field(max_length=320, description="Whose it becomes (an e-mail address)")

    @field_validator("assignee")
    @classmethod
    def _assignee(cls, value: str) -> str:
        return normalise_email(value)


NO_TASK: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorView, "description": "No follow-up with this id"}
}
NOT_OPEN: dict[int | str, dict[str, object]] = {
    409: {"model": ErrorView, "description": "The follow-up is done or cancelled"}
}


def router(units: UnitsOfWork[LeadsUnitOfWork]) -> APIRouter:
    routes = APIRouter(tags=["follow-ups"], dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    @routes.get(
        "/tasks",
        summary="Follow-ups, soonest due first (default: my open ones)",
        description="A rep sees their own, a manager their team's, an admin everyone's. `assignee`: one "
        "address, or `*` for everyone the caller sees (default: the caller). `overdue=true`: open and due "
        "before now. `due_before`: due before this time (my day: the end of today).",
        responses={422: {"model": ErrorView, "description": "An invalid filter value"}},
    )
    async def find(
        assignee: Annotated[str | None, Query(max_length=320)] = None,
        due_before: Annotated[datetime | None, Query(description="ISO 8601; without a zone, UTC")] = None,
        status: StatusQuery = StatusQuery.OPEN,
        overdue: bool = False,
        *,
        caller: Authenticated,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[TaskView]:
        caller.require(*PEOPLE)
        now = units.clock.now()
        try:
            before = in_utc(due_before) if due_before is not None else None
        except ValueError as exc:
            raise RuleViolation(f"due_before: {exc}") from exc
        criteria = TaskFilter.of(
            caller.seen,
            assignee=caller.subject if assignee is None else assignee,
            status=None if status is StatusQuery.ANY else TaskStatus(status.value),
            due_before=before,
            overdue=overdue,
            now=now,
        )
        found, total = await activities.follow_ups(units, criteria, limit=limit, offset=offset)
        return Page[TaskView](
            items=[TaskView.of(t, now) for t in found], total=total, limit=limit, offset=offset
        )

    @routes.get("/tasks/{task_id}", summary="One follow-up", responses=NO_TASK)
    async def get(task_id: str, caller: Authenticated) -> TaskView:
        caller.require(*PEOPLE)
        task = await activities.follow_up(units, task_id, caller.seen)
        return TaskView.of(task, units.clock.now())

    @routes.post(
        "/tasks/{task_id}/complete",
        summary="Mark a follow-up done, with the activity that did it",
        description="Name a logged activity of its lead (`activity_id`), log one now (`activity`), or "
        "neither. Its `FollowUpDue` will not come.",
        responses={
            **NO_TASK,
            **NOT_OPEN,
            422: {"model": ErrorView, "description": "An unknown activity, both given, or an invalid one"},
        },
    )
    async def complete(task_id: str, caller: Authenticated, body: CompleteRequest | None = None) -> TaskView:
        caller.require(*PEOPLE)
        body = body or CompleteRequest()
        command = CompleteFollowUp(
            activity_id=body.activity_id, activity=body.activity.command() if body.activity else None
        )
        task = await activities.complete_follow_up(
            units, task_id, command, seen=caller.seen, by=caller.as_actor
        )
        return TaskView.of(task, units.clock.now())

    @routes.post(
        "/tasks/{task_id}/snooze",
        summary="Move a follow-up to a later due time",
        description="Its `FollowUpDue` comes at the new time.",
        responses={
            **NO_TASK,
            **NOT_OPEN,
            422: {"model": ErrorView, "description": "The new time is not after now"},
        },
    )
    async def snooze(task_id: str, body: SnoozeRequest, caller: Authenticated) -> TaskView:
        caller.require(*PEOPLE)
        task = await activities.snooze_follow_up(
            units, task_id, body.due_at, seen=caller.seen, by=caller.as_actor
        )
        return TaskView.of(task, units.clock.now())

    @routes.post(
        "/tasks/{task_id}/reassign",
        summary="Give a follow-up to someone else (a manager within their team, an admin anyone)",
        description="Its `FollowUpDue` names the new assignee.",
        responses={
            **NO_TASK,
            **NOT_OPEN,
            403: {
                "model": ErrorView,
                "description": "Not a manager or admin, or the assignee is out of reach",
            },
            422: {"model": ErrorView, "description": "Not an e-mail address"},
        },
    )
    async def reassign(task_id: str, body: ReassignRequest, caller: Authenticated) -> TaskView:
        caller.require(Role.MANAGER, Role.ADMIN)
        task = await activities.reassign_follow_up(
            units, task_id, body.assignee, seen=caller.seen, by=caller.as_actor
        )
        return TaskView.of(task, units.clock.now())

    @routes.post(
        "/tasks/{task_id}/cancel",
        summary="Cancel a follow-up",
        description="Its `FollowUpDue` will not come.",
        responses={**NO_TASK, **NOT_OPEN},
    )
    async def cancel(task_id: str, caller: Authenticated) -> TaskView:
        caller.require(*PEOPLE)
        task = await activities.cancel_follow_up(units, task_id, seen=caller.seen, by=caller.as_actor)
        return TaskView.of(task, units.clock.now())

    return routes
