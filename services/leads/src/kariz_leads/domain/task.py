"""A follow-up (task): the next thing someone is to do about a lead, by when. Opened by a person (on its
own or as an activity's next step) or at another service's request (``TaskRequested``); done (with the
activity that did it), snoozed to a later time, reassigned or cancelled.

While it is open a timer runs under :meth:`Task.timer_key`; at its due time ``FollowUpDue`` is emitted.
Every change that ends or moves the follow-up disarms or re-arms that timer, so the timer never needs to
look at the task when it fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from kariz_leads.domain.history import Detail, LeadChange, LeadChangeKind
from kariz_shared.contracts.aggregate import Aggregate
from kariz_shared.contracts.errors import Conflict, RuleViolation
from kariz_shared.contracts.events import FollowUpDue, TaskKind
from kariz_shared.contracts.identity import Actor, Owners
from kariz_shared.contracts.normalisation import InvalidValue, normalise_email


class TaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


@dataclass
class Task(Aggregate):
    id: str
    lead_id: str
    deal_id: str | None
    assignee: str
    kind: TaskKind
    title: str
    note: str | None
    due_at: datetime
    created_by: str
    created_at: datetime
    #: The story of its lead (the lead's correlation id): ``FollowUpDue`` continues it.
    correlation_id: str
    status: TaskStatus = TaskStatus.OPEN
    completed_by: str | None = None
    completed_at: datetime | None = None
    #: The activity that did it, when completing it named or logged one.
    completed_activity_id: str | None = None
    cancelled_by: str | None = None
    cancelled_at: datetime | None = None
    snoozed: int = 0
    #: For a follow-up another service asked for: its request's id (a repeat makes nothing new).
    request_id: str | None = None
    updated_at: datetime | None = None

    @classmethod
    def open(
        cls,
        *,
        task_id: str,
        lead_id: str,
        deal_id: str | None,
        assignee: str,
        kind: TaskKind,
        title: str,
        note: str | None,
        due_at: datetime,
        correlation_id: str,
        at: datetime,
        by: Actor,
        request_id: str | None = None,
    ) -> Task:
        title = title.strip()
        if not title:
            raise RuleViolation("title: a follow-up needs a title")
        task = cls(
            id=task_id,
            lead_id=lead_id,
            deal_id=deal_id,
            assignee=assignee,
            kind=kind,
            title=title,
            note=note,
            due_at=due_at,
            created_by=by.who,
            created_at=at,
            correlation_id=correlation_id,
            request_id=request_id,
            updated_at=at,
        )
        task._record(LeadChangeKind.FOLLOW_UP_OPENED, at, by, kind=kind.value, title=title, note=note)
        return task

    @property
    def is_open(self) -> bool:
        return self.status is TaskStatus.OPEN

    def is_overdue(self, now: datetime) -> bool:
        return self.is_open and self.due_at < now

    def timer_key(self) -> str:
        return f"task:{self.id}:due"

    def due(self) -> FollowUpDue:
        """What its timer emits at its due time."""
        return FollowUpDue(
            task_id=self.id,
            lead_id=self.lead_id,
            deal_id=self.deal_id,
            assignee=self.assignee,
            kind=self.kind,
            title=self.title,
            due_at=self.due_at,
        )

    def complete(self, at: datetime, by: Actor, activity_id: str | None = None) -> None:
        self.must_be_open("completed")
        self.status = TaskStatus.DONE
        self.completed_by, self.completed_at, self.completed_activity_id = by.who, at, activity_id
        self.updated_at = at
        self._record(LeadChangeKind.FOLLOW_UP_COMPLETED, at, by, activity_id=activity_id)

    def snooze(self, until: datetime, at: datetime, by: Actor) -> None:
        """Due later: ``until`` must be after now."""
        self.must_be_open("snoozed")
        if until <= at:
            raise RuleViolation(f"due_at: a follow-up is snoozed to a later time than now ({at.isoformat()})")
        previous = self.due_at
        self.due_at = until
        self.snoozed += 1
        self.updated_at = at
        self._record(LeadChangeKind.FOLLOW_UP_SNOOZED, at, by, previous_due_at=previous.isoformat())

    def reassign(self, to: str, at: datetime, by: Actor) -> bool:
        """Give it to ``to``; False (nothing changed) when it is theirs already."""
        self.must_be_open("reassigned")
        if to == self.assignee:
            return False
        previous = self.assignee
        self.assignee = to
        self.updated_at = at
        self._record(LeadChangeKind.FOLLOW_UP_REASSIGNED, at, by, from_assignee=previous)
        return True

    def move_to_lead(self, lead_id: str) -> None:
        """Its lead was merged into ``lead_id`` (the survivor): the follow-up is that lead's now, and its
        ``FollowUpDue`` names it (the caller arms its timer again: the armed event is a copy)."""
        self.lead_id = lead_id

    def cancel(self, at: datetime, by: Actor) -> None:
        self.must_be_open("cancelled")
        self.status = TaskStatus.CANCELLED
        self.cancelled_by, self.cancelled_at = by.who, at
        self.updated_at = at
        self._record(LeadChangeKind.FOLLOW_UP_CANCELLED, at, by)

    def must_be_open(self, what: str) -> None:
        """Conflict unless it is open (only an open follow-up is completed, snoozed, moved, cancelled)."""
        if not self.is_open:
            raise Conflict(f"follow-up {self.id!r} is {self.status.value}: it cannot be {what}")

    def _record(self, what: LeadChangeKind, at: datetime, by: Actor, **details: Detail) -> None:
        # Every entry names the task, its assignee and due time as they are after the change.
        facts: dict[str, Detail] = {
            "task_id": self.id,
            "assignee": self.assignee,
            "due_at": self.due_at.isoformat(),
            **details,
        }
        self.__dict__.setdefault("_changes", []).append(LeadChange(self.lead_id, what, at, by, facts))

    def pull_changes(self) -> list[LeadChange]:
        """The changes recorded since the last pull, oldest first, for its lead's history (the timeline)."""
        changes: list[LeadChange] = self.__dict__.pop("_changes", [])
        return changes


@dataclass(frozen=True)
class TaskFilter:
    """Which follow-ups a list shows: of these assignees (a caller's reach, narrowed to the one they ask
    for), in this status, due before a time. Applied in the query."""

    assignees: Owners
    status: TaskStatus | None = TaskStatus.OPEN
    due_before: datetime | None = None

    @classmethod
    def of(
        cls,
        seen: Owners,
        *,
        assignee: str | None,
        status: TaskStatus | None,
        due_before: datetime | None,
        overdue: bool,
        now: datetime,
    ) -> TaskFilter:
        """``assignee`` an address (nobody's when out of reach) or ``*`` for everyone the caller sees;
        ``overdue``: open and due before ``now``."""
        if assignee is None or assignee.strip() == "*":
            assignees = seen
        else:
            try:
                assignees = seen.narrowed_to(normalise_email(assignee))
            except InvalidValue as exc:
                raise RuleViolation(f"assignee: {exc}") from exc
        if overdue:
            if status not in (None, TaskStatus.OPEN):
                raise RuleViolation(f"status: an overdue follow-up is open, not {status.value}")
            status = TaskStatus.OPEN
            due_before = now if due_before is None else min(due_before, now)
        return cls(assignees, status, due_before)

    def matches(self, task: Task) -> bool:
        return (
            self.assignees.include(task.assignee)
            and (self.status is None or task.status is self.status)
            and (self.due_before is None or task.due_at < self.due_before)
        )
