"""The HTTP API of a lead's working day: log an activity (and its next step), open a follow-up, read a
lead's activities and its timeline. The follow-ups themselves are in :mod:`.tasks`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import AfterValidator, BaseModel, Field, field_validator

from kariz_leads.domain.activity import Activity
from kariz_leads.domain.lead import LeadStatus
from kariz_leads.domain.task import Task, TaskStatus
from kariz_leads.entrypoints.http import ErrorView, LeadChangeView
from kariz_leads.service_layer import activities
from kariz_leads.service_layer.activities import LogActivity, OpenFollowUp
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_shared.contracts.events import ActivityChannel, ActivityDirection, ActivityOutcome, TaskKind
from kariz_shared.contracts.identity import PEOPLE
from kariz_shared.contracts.normalisation import normalise_email
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate
from kariz_shared.runtime.clock import to_millisecond
from kariz_shared.runtime.http import Limit, Offset, Page

# --- requests -------------------------------------------------------------------------------------


def in_utc(moment: datetime) -> datetime:
    """A moment without a zone is UTC; every moment is kept in UTC, to the millisecond."""
    try:
        utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:00-05:00
        raise ValueError("the time is out of range") from exc
    return to_millisecond(utc)


#: A time in a request: ISO 8601, UTC when it names no zone.
Moment = Annotated[datetime, AfterValidator(in_utc)]


def text(value: str | None) -> str | None:
    """Free text: trimmed (its lines kept); blank is absent."""
    return (value.strip() or None) if value is not None else None


def assignee_address(value: str | None) -> str | None:
    return normalise_email(value) if value is not None and value.strip() else None


class FollowUpRequest(BaseModel):
    kind: TaskKind
    title: str = Field(min_length=1, max_length=200, examples=["Send the case study"])
    due_at: Moment = Field(description="ISO 8601 (UTC without a zone); not in the past")
    assignee: str | None = Field(
        default=None, max_length=320, description="Whose it is (an e-mail address); default the lead's owner"
    )
    note: str | None = Field(default=None, max_length=2000)
    deal_id: str | None = Field(default=None, max_length=100, description="The lead's deal it is about")

    _texts = field_validator("note", "deal_id")(text)
    _assignee = field_validator("assignee")(assignee_address)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a follow-up needs a title")
        return value.strip()

    def command(self) -> OpenFollowUp:
        return OpenFollowUp(
            kind=self.kind,
            title=self.title,
            due_at=self.due_at,
            assignee=self.assignee,
            note=self.note,
            deal_id=self.deal_id,
        )


class InlineActivityRequest(BaseModel):
    channel: ActivityChannel
    outcome: ActivityOutcome
    direction: ActivityDirection = ActivityDirection.OUTBOUND
    duration_s: int | None = Field(
        default=None, ge=0, le=86_400, strict=True, description="Seconds, a day at most"
    )
    note: str | None = Field(default=None, max_length=5000)
    agreed: str | None = Field(default=None, max_length=2000, description="What was agreed with the contact")
    deal_id: str | None = Field(default=None, max_length=100, description="The lead's deal it was about")
    occurred_at: Moment | None = Field(
        default=None,
        description="When it happened (ISO 8601, UTC without a zone); default now; not in the future, "
        "not before the lead was captured",
    )

    _texts = field_validator("note", "agreed", "deal_id")(text)

    def command(self, follow_up: OpenFollowUp | None = None) -> LogActivity:
        return LogActivity(
            channel=self.channel,
            outcome=self.outcome,
            direction=self.direction,
            duration_s=self.duration_s,
            note=self.note,
            agreed=self.agreed,
            deal_id=self.deal_id,
            occurred_at=self.occurred_at,
            follow_up=follow_up,
        )


class ActivityRequest(InlineActivityRequest):
    follow_up: FollowUpRequest | None = Field(default=None, description="The next step, opened with it")

    def as_command(self) -> LogActivity:
        return self.command(self.follow_up.command() if self.follow_up else None)


# --- views ----------------------------------------------------------------------------------------


class ActivityView(BaseModel):
    id: str
    lead_id: str
    deal_id: str | None
    owner: str = Field(description="The lead's owner when it was logged")
    channel: ActivityChannel
    direction: ActivityDirection
    outcome: ActivityOutcome
    reaching: bool = Field(description="The rep got through to the contact")
    duration_s: int | None
    note: str | None
    agreed: str | None
    occurred_at: datetime
    logged_at: datetime
    logged_by: str
    on_behalf_of: str | None = None

    @classmethod
    def of(cls, activity: Activity) -> ActivityView:
        return cls(
            id=activity.id,
            lead_id=activity.lead_id,
            deal_id=activity.deal_id,
            owner=activity.owner,
            channel=activity.channel,
            direction=activity.direction,
            outcome=activity.outcome,
            reaching=activity.reaching,
            duration_s=activity.duration_s,
            note=activity.note,
            agreed=activity.agreed,
            occurred_at=activity.occurred_at,
            logged_at=activity.logged_at,
            logged_by=activity.logged_by.who,
            on_behalf_of=activity.logged_by.on_behalf_of,
        )


class TaskView(BaseModel):
    id: str
    lead_id: str
    deal_id: str | None
    assignee: str
    kind: TaskKind
    title: str
    note: str | None
    due_at: datetime
    status: TaskStatus
    overdue: bool = Field(description="Open and due before now")
    created_by: str
    created_at: datetime
    completed_by: str | None
    completed_at: datetime | None
    completed_activity_id: str | None = Field(description="The activity that did it")
    cancelled_by: str | None
    cancelled_at: datetime | None
    snoozed: int = Field(description="How many times it was moved to a later time")
    request_id: str | None = Field(description="For a follow-up another service requested: its request")

    @classmethod
    def of(cls, task: Task, now: datetime) -> TaskView:
        return cls(
            id=task.id,
            lead_id=task.lead_id,
            deal_id=task.deal_id,
            assignee=task.assignee,
            kind=task.kind,
            title=task.title,
            note=task.note,
            due_at=task.due_at,
            status=task.status,
            overdue=task.is_overdue(now),
            created_by=task.created_by,
            created_at=task.created_at,
            completed_by=task.completed_by,
            completed_at=task.completed_at,
            completed_activity_id=task.completed_activity_id,
            cancelled_by=task.cancelled_by,
            cancelled_at=task.cancelled_at,
            snoozed=task.snoozed,
            request_id=task.request_id,
        )


class LoggedActivityView(BaseModel):
    activity: ActivityView
    follow_up: TaskView | None = Field(description="The next step opened with it, if any")
    lead_status: LeadStatus = Field(description="The lead's status after it (a first reach makes it working)")
    first_contact_at: datetime | None


# --- routes ---------------------------------------------------------------------------------------

NO_LEAD: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorView, "description": "No lead with this id"}
}


def router(units: UnitsOfWork[LeadsUnitOfWork]) -> APIRouter:
    routes = APIRouter(tags=["activities"], dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    @routes.post(
        "/leads/{lead_id}/activities",
        status_code=201,
        summary="Log an activity on a lead (a call, an e-mail, a meeting, a note, ...)",
        description="Counts a contact attempt by channel (a note is none); the first reaching one sets a "
        "new lead `working` and records its first contact; any contact stops the response SLA. Publishes "
        "`ActivityLogged`; a `follow_up` opens the next step with it.",
        responses={
            **NO_LEAD,
            403: {"model": ErrorView, "description": "The follow-up's assignee is out of the caller's reach"},
            422: {"model": ErrorView, "description": "Invalid activity (e.g. in the future); nothing stored"},
        },
    )
    async def log(lead_id: str, body: ActivityRequest, caller: Authenticated) -> LoggedActivityView:
        caller.require(*PEOPLE)
        logged = await activities.log_activity(
            units, lead_id, body.as_command(), seen=caller.seen, by=caller.as_actor
        )
        now = units.clock.now()
        return LoggedActivityView(
            activity=ActivityView.of(logged.activity),
            follow_up=TaskView.of(logged.follow_up, now) if logged.follow_up else None,
            lead_status=logged.lead.status,
            first_contact_at=logged.lead.first_contact_at,
        )

    @routes.get(
        "/leads/{lead_id}/activities",
        summary="A lead's activities, latest first",
        responses=NO_LEAD,
    )
    async def of_lead(
        lead_id: str, caller: Authenticated, limit: Limit = 50, offset: Offset = 0
    ) -> Page[ActivityView]:
        caller.require(*PEOPLE)
        found, total = await activities.activities_of(units, lead_id, caller.seen, limit=limit, offset=offset)
        items = [ActivityView.of(a) for a in found]
        return Page[ActivityView](items=items, total=total, limit=limit, offset=offset)

    @routes.get(
        "/leads/{lead_id}/timeline",
        summary="Everything that happened to a lead, newest first",
        description="Captures and touches, qualification's verdicts, activities (at when they happened), "
        "status changes and follow-ups opened, completed, snoozed, reassigned or cancelled; each with "
        "who did it.",
        responses=NO_LEAD,
    )
    async def timeline(
        lead_id: str, caller: Authenticated, limit: Limit = 50, offset: Offset = 0
    ) -> Page[LeadChangeView]:
        caller.require(*PEOPLE)
        changes, total = await activities.timeline(units, lead_id, caller.seen, limit=limit, offset=offset)
        items = [LeadChangeView.of(change) for change in changes]
        return Page[LeadChangeView](items=items, total=total, limit=limit, offset=offset)

    @routes.post(
        "/leads/{lead_id}/follow-ups",
        status_code=201,
        summary="Open a follow-up on a lead",
        description="Its assignee (default the lead's owner) gets `FollowUpDue` at its due time.",
        responses={
            **NO_LEAD,
            403: {"model": ErrorView, "description": "The assignee is out of the caller's reach"},
            422: {"model": ErrorView, "description": "Invalid follow-up (e.g. due in the past)"},
        },
    )
    async def open_follow_up(lead_id: str, body: FollowUpRequest, caller: Authenticated) -> TaskView:
        caller.require(*PEOPLE)
        task = await activities.open_follow_up(
            units, lead_id, body.command(), seen=caller.seen, by=caller.as_actor
        )
        return TaskView.of(task, units.clock.now())

    return routes
