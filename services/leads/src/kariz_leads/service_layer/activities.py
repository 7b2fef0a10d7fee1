"""The rep's working day: activities logged on leads, and follow-ups (tasks) with their timers.

One function per command and per consumed event, as in :mod:`.handlers`. Who may do what is checked on
the records loaded in the unit of work (``seen``: whose records the caller reaches), so a lead or a
follow-up out of reach answers the same 404 as an absent one. An activity's and a follow-up's events
continue their lead's story (its correlation id), and a follow-up's ``FollowUpDue`` timer is armed,
moved or disarmed in the same unit as the change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial

from kariz_leads.domain.activity import CLOCK_SKEW, Activity
from kariz_leads.domain.history import LeadChange
from kariz_leads.domain.lead import Lead
from kariz_leads.domain.task import Task, TaskFilter
from kariz_leads.service_layer.merge import survivor_of
from kariz_leads.service_layer.response import stop_response_timers_if_answered
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_shared.contracts.errors import Forbidden, RuleViolation, found
from kariz_shared.contracts.events import (
    ActivityChannel,
    ActivityDirection,
    ActivityOutcome,
    NurtureStepDue,
    NurtureStepKind,
    TaskKind,
    TaskRequested,
)
from kariz_shared.contracts.identity import EVERYONE, Actor, Owners, same_person
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.system import source_of

# --- commands -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenFollowUp:
    """A next step: what kind, by when, for whom (None: the lead's owner)."""

    kind: TaskKind
    title: str
    due_at: datetime
    assignee: str | None = None
    note: str | None = None
    deal_id: str | None = None


@dataclass(frozen=True)
class LogActivity:
    channel: ActivityChannel
    outcome: ActivityOutcome
    direction: ActivityDirection = ActivityDirection.OUTBOUND
    duration_s: int | None = None
    note: str | None = None
    agreed: str | None = None
    deal_id: str | None = None
    #: When it happened; None: now.
    occurred_at: datetime | None = None
    #: The next step, opened with it.
    follow_up: OpenFollowUp | None = None


@dataclass(frozen=True)
class CompleteFollowUp:
    """Done: by a logged activity (its id), by one logged now, or by neither."""

    activity_id: str | None = None
    activity: LogActivity | None = None


@dataclass(frozen=True)
class Logged:
    lead: Lead
    activity: Activity
    follow_up: Task | None


def new_id() -> str:
    return str(uuid.uuid4())


# --- commands' handlers ---------------------------------------------------------------------------


async def log_activity(
    units: UnitsOfWork[LeadsUnitOfWork], lead_id: str, command: LogActivity, *, seen: Owners, by: Actor
) -> Logged:
    """Log an activity on a lead the caller reaches (``ActivityLogged``), count the attempt, and open its
    next step when it names one."""

    async def work(uow: LeadsUnitOfWork) -> Logged:
        lead = await _lead_in_reach(uow, lead_id, seen)
        lead.must_not_be_merged()
        activity = await _log_in(uow, lead, command, by)
        follow_up = None
        if command.follow_up is not None:
            follow_up = await _open_in(uow, lead, command.follow_up, seen, by, field="follow_up.")
        return Logged(lead, activity, follow_up)

    return await units.run(work)


async def open_follow_up(
    units: UnitsOfWork[LeadsUnitOfWork], lead_id: str, command: OpenFollowUp, *, seen: Owners, by: Actor
) -> Task:
    async def work(uow: LeadsUnitOfWork) -> Task:
        lead = await _lead_in_reach(uow, lead_id, seen)
        lead.must_not_be_merged()
        return await _open_in(uow, lead, command, seen, by)

    return await units.run(work)


async def complete_follow_up(
    units: UnitsOfWork[LeadsUnitOfWork], task_id: str, command: CompleteFollowUp, *, seen: Owners, by: Actor
) -> Task:
    """Mark an open follow-up done, linking the activity that did it, and disarm its timer."""
    if command.activity_id is not None and command.activity is not None:
        raise RuleViolation("activity: name a logged activity (activity_id) or log one, not both")

    async def work(uow: LeadsUnitOfWork) -> Task:
        task = await _task_in_reach(uow, task_id, seen)
        task.must_be_open("completed")  # before anything is logged
        activity_id = command.activity_id
        if activity_id is not None:
            activity = await uow.activities.get(activity_id)
            if activity is None or activity.lead_id != task.lead_id:
                raise RuleViolation(f"activity_id: no activity {activity_id!r} on this follow-up's lead")
        elif command.activity is not None:
            lead = found(await uow.leads.get(task.lead_id), f"no lead with id {task.lead_id!r}")
            # About the follow-up's deal unless it names another.
            logged = replace(command.activity, deal_id=command.activity.deal_id or task.deal_id)
            activity_id = (await _log_in(uow, lead, logged, by)).id
        task.complete(uow.clock.now(), by, activity_id)
        await uow.tasks.save(task)
        uow.timers.cancel(task.timer_key())
        uow.history.add(task.pull_changes())
        return task

    return await units.run(work)


async def snooze_follow_up(
    units: UnitsOfWork[LeadsUnitOfWork], task_id: str, until: datetime, *, seen: Owners, by: Actor
) -> Task:
    """Move an open follow-up to a later due time; its timer moves with it."""

    async def work(uow: LeadsUnitOfWork) -> Task:
        task = await _task_in_reach(uow, task_id, seen)
        task.snooze(until, uow.clock.now(), by)
        await _save_and_arm(uow, task)
        return task

    return await units.run(work)


async def reassign_follow_up(
    units: UnitsOfWork[LeadsUnitOfWork], task_id: str, to: str, *, seen: Owners, by: Actor
) -> Task:
    """Give an open follow-up to someone the caller reaches (a manager's team, anyone for an admin); its
    timer is armed again, to tell the new assignee."""

    async def work(uow: LeadsUnitOfWork) -> Task:
        task = await _task_in_reach(uow, task_id, seen)
        assignee = same_person(to)
        _may_assign(seen, assignee, "assignee")
        if task.reassign(assignee, uow.clock.now(), by):
            await _save_and_arm(uow, task)
        return task

    return await units.run(work)


async def cancel_follow_up(
    units: UnitsOfWork[LeadsUnitOfWork], task_id: str, *, seen: Owners, by: Actor
) -> Task:
    async def work(uow: LeadsUnitOfWork) -> Task:
        task = await _task_in_reach(uow, task_id, seen)
        task.cancel(uow.clock.now(), by)
        await uow.tasks.save(task)
        uow.timers.cancel(task.timer_key())
        uow.history.add(task.pull_changes())
        return task

    return await units.run(work)


async def move_open_follow_ups(
    uow: LeadsUnitOfWork, lead: Lead, from_owner: str, *, at: datetime, by: Actor
) -> list[Task]:
    """After ``lead`` changed owner (in the caller's unit): its open follow-ups that were ``from_owner``'s
    become its new owner's, each timer armed again to tell them. Others' follow-ups stay with them."""
    moved = []
    for task in await uow.tasks.open_of_lead(lead.id):
        if task.assignee == from_owner and task.reassign(lead.owner, at, by):
            await _save_and_arm(uow, task)
            moved.append(task)
    return moved


# --- consumed events ------------------------------------------------------------------------------


async def record_task_requested(uow: LeadsUnitOfWork, event: TaskRequested) -> None:
    """Another service's request for a follow-up: one per request id (the follow-up's id), for the named
    assignee or the lead's owner. ``NotFound`` for a lead never captured."""
    command = OpenFollowUp(
        kind=event.kind,
        title=event.title,
        due_at=event.due_at,
        assignee=event.assignee,
        note=event.note,
        deal_id=event.deal_id,
    )
    await _open_requested(uow, event.lead_id, event.request_id, command, Actor(source_of(TaskRequested)))


async def record_nurture_task(uow: LeadsUnitOfWork, event: NurtureStepDue) -> None:
    """A task step of a lead's nurture track fell due: a follow-up for the lead's owner, due now, one
    per step (its step id is the follow-up's id). Content steps are notifications' to send."""
    if event.kind is not NurtureStepKind.TASK:
        return
    command = OpenFollowUp(
        kind=event.task_kind or TaskKind.OTHER,
        title=event.title,
        due_at=event.due_at,
        note=f"Nurture track {event.track}, step {event.step + 1}",
    )
    await _open_requested(uow, event.lead_id, event.step_id, command, Actor(source_of(NurtureStepDue)))


# --- the read side --------------------------------------------------------------------------------


async def activities_of(
    units: UnitsOfWork[LeadsUnitOfWork], lead_id: str, seen: Owners, *, limit: int, offset: int
) -> tuple[list[Activity], int]:
    async def read(uow: LeadsUnitOfWork) -> tuple[list[Activity], int]:
        await _lead_in_reach(uow, lead_id, seen)
        return await uow.activities.of_lead(lead_id, limit=limit, offset=offset)

    return await units.read(read)


async def timeline(
    units: UnitsOfWork[LeadsUnitOfWork], lead_id: str, seen: Owners, *, limit: int, offset: int
) -> tuple[list[LeadChange], int]:
    """A lead's story newest first: its history (captures, touches, verdicts, activities, status
    changes, follow-ups) is kept as one collection, so one query pages it."""

    async def read(uow: LeadsUnitOfWork) -> tuple[list[LeadChange], int]:
        await _lead_in_reach(uow, lead_id, seen)
        return await uow.history.of(lead_id, limit=limit, offset=offset)

    return await units.read(read)


async def follow_up(units: UnitsOfWork[LeadsUnitOfWork], task_id: str, seen: Owners) -> Task:
    async def read(uow: LeadsUnitOfWork) -> Task:
        return await _task_in_reach(uow, task_id, seen)

    return await units.read(read)


async def follow_ups(
    units: UnitsOfWork[LeadsUnitOfWork], criteria: TaskFilter, *, limit: int, offset: int
) -> tuple[list[Task], int]:
    async def read(uow: LeadsUnitOfWork) -> tuple[list[Task], int]:
        return await uow.tasks.search(criteria, limit=limit, offset=offset)

    return await units.read(read)


# --- internals ------------------------------------------------------------------------------------


async def _lead_in_reach(uow: LeadsUnitOfWork, lead_id: str, seen: Owners) -> Lead:
    missing = f"no lead with id {lead_id!r}"
    lead = found(await uow.leads.get(lead_id), missing)
    seen.sees(lead.owner, missing)
    return lead


async def _task_in_reach(uow: LeadsUnitOfWork, task_id: str, seen: Owners) -> Task:
    missing = f"no follow-up with id {task_id!r}"
    task = found(await uow.tasks.get(task_id), missing)
    seen.sees(task.assignee, missing)
    return task


def _may_assign(seen: Owners, assignee: str, field: str) -> None:
    if not seen.include(assignee):
        raise Forbidden(f"{field}: {assignee} is not one of the people you may give follow-ups to")


async def _log_in(uow: LeadsUnitOfWork, lead: Lead, command: LogActivity, by: Actor) -> Activity:
    activity = Activity.log(
        activity_id=new_id(),
        lead_id=lead.id,
        lead_captured_at=lead.created_at,
        owner=lead.owner,
        channel=command.channel,
        direction=command.direction,
        outcome=command.outcome,
        duration_s=command.duration_s,
        note=command.note,
        agreed=command.agreed,
        deal_id=command.deal_id,
        occurred_at=command.occurred_at,
        at=uow.clock.now(),
        by=by,
    )
    latest_before = lead.last_activity_at
    lead.record_activity(activity)
    await uow.activities.add(activity)
    # A note changes the lead only when it is its latest activity (a backdated one leaves it alone).
    if activity.is_contact or lead.last_activity_at != latest_before:
        await uow.leads.save_activity(lead)
    uow.history.add(lead.pull_changes())
    for event in activity.pull_events():
        uow.emit(event, correlation_id=lead.correlation_id)
    stop_response_timers_if_answered(uow, lead)
    uow.after_commit(partial(uow.metrics.activity_logged, activity.channel, activity.outcome))
    return activity


async def _open_requested(
    uow: LeadsUnitOfWork, lead_id: str, request_id: str, command: OpenFollowUp, by: Actor
) -> None:
    """Another service's follow-up: once per request id (the follow-up's id), on the lead or the one it
    was merged into since. ``NotFound`` for a lead never captured."""
    if await uow.tasks.get(request_id) is not None:
        return  # this request made its follow-up already
    lead = found(await uow.leads.get_for_event(lead_id), f"no lead with id {lead_id!r}")
    lead = await survivor_of(uow, lead)  # asked for a record merged meanwhile: its survivor's follow-up
    await _open_in(uow, lead, command, EVERYONE, by, task_id=request_id, request_id=request_id)


async def _open_in(
    uow: LeadsUnitOfWork,
    lead: Lead,
    command: OpenFollowUp,
    seen: Owners,
    by: Actor,
    *,
    field: str = "",
    task_id: str | None = None,
    request_id: str | None = None,
) -> Task:
    """Open a follow-up on ``lead`` and arm its timer. A person's must be due from now on (a small clock
    skew allowed) and go to someone they reach; a requested one may be due already (it fires at once)."""
    now = uow.clock.now()
    assignee = same_person(command.assignee) if command.assignee else lead.owner
    if request_id is None:
        _may_assign(seen, assignee, f"{field}assignee")
        if command.due_at < now - CLOCK_SKEW:
            raise RuleViolation(f"{field}due_at: {command.due_at.isoformat()} is in the past")
    try:
        task = Task.open(
            task_id=task_id or new_id(),
            lead_id=lead.id,
            deal_id=command.deal_id,
            assignee=assignee,
            kind=command.kind,
            title=command.title,
            note=command.note,
            due_at=command.due_at,
            correlation_id=lead.correlation_id,
            at=now,
            by=by,
            request_id=request_id,
        )
    except RuleViolation as exc:
        raise RuleViolation(f"{field}{exc}") from exc
    await uow.tasks.add(task)
    _arm(uow, task, first=True)
    uow.history.add(task.pull_changes())
    return task


async def _save_and_arm(uow: LeadsUnitOfWork, task: Task) -> None:
    await uow.tasks.save(task)
    _arm(uow, task, first=False)
    uow.history.add(task.pull_changes())


def _arm(uow: LeadsUnitOfWork, task: Task, *, first: bool) -> None:
    uow.timers.arm(task.timer_key(), task.due_at, task.due(), first=first, correlation_id=task.correlation_id)
