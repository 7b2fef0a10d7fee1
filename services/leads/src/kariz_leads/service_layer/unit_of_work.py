"""What the use cases see of the leads' storage: the unit of work and its repositories' contracts.

The MongoDB adapter (:mod:`kariz_leads.adapters.mongo`) and the in-memory one
(:mod:`kariz_leads.adapters.in_memory`) both honour these contracts; the use-case tests run on the second.
"""

from __future__ import annotations

from typing import Protocol

from kariz_leads.domain.activity import Activity
from kariz_leads.domain.history import LeadChange
from kariz_leads.domain.lead import Lead, Touch
from kariz_leads.domain.queries import LeadFilter
from kariz_leads.domain.task import Task, TaskFilter
from kariz_leads.service_layer.import_store import ImportJobs
from kariz_leads.service_layer.roster_store import AssignmentRuleVersions, RepRepository
from kariz_shared.contracts.events import ActivityChannel, ActivityOutcome, LeadSource
from kariz_shared.contracts.identity import Owners
from kariz_shared.contracts.paging import Cursor
from kariz_shared.persistence.idempotency import RequestRecords
from kariz_shared.persistence.unit_of_work import UnitOfWork

#: The name under which storage refuses a second lead with one address: ``DuplicateRecord.index`` when
#: two captures of a new address race and the other one committed first (a unique index on MongoDB).
ONE_LEAD_PER_ADDRESS = "contact_email_unique"


class LeadRepository(Protocol):
    """Leads by id, and by their normalised e-mail address (unique)."""

    async def get(self, lead_id: str) -> Lead | None:
        """The lead as stored, or None."""
        ...

    async def get_for_event(self, lead_id: str) -> Lead | None:
        """The lead a consumed event is about: on MongoDB the first call reads the leads of every event
        of the consumed batch with one query."""
        ...

    async def with_emails(self, emails: list[str]) -> dict[str, Lead]:
        """The stored leads among these normalised addresses, by address: one query for a whole import."""
        ...

    async def add_all(self, leads: list[Lead]) -> None:
        """Store new leads, together; ``DuplicateRecord(index=ONE_LEAD_PER_ADDRESS)`` when an address is
        a lead already (a concurrent capture got there first)."""
        ...

    async def add_touch(self, lead: Lead, touch: Touch) -> None:
        """Record a stored lead's new touch; two touches at once never overwrite each other."""
        ...

    async def save_verdict(self, lead: Lead) -> None:
        """Write qualification's verdict on a stored lead: status, score, reason."""
        ...

    async def save_activity(self, lead: Lead) -> None:
        """Write what an activity changed on a stored lead: its attempts, first contact and status."""
        ...

    async def save_owner(self, lead: Lead) -> None:
        """Write a reassignment on a stored lead: its owner and how it was assigned."""
        ...

    async def save_merge(self, lead: Lead) -> None:
        """Write what a merge changed on a stored lead, the survivor or the duplicate: status, verdict,
        ``merged_into``, touches and their counts, contact attempts, first contact."""
        ...

    async def search(self, criteria: LeadFilter, *, limit: int, offset: int) -> tuple[list[Lead], int]:
        """One page of the leads matching ``criteria``, newest first, and how many match in all."""
        ...

    async def search_after(
        self, criteria: LeadFilter, *, after: Cursor | None, limit: int
    ) -> tuple[list[Lead], bool]:
        """Keyset paging: up to ``limit`` leads matching ``criteria`` captured before the cursor's
        (``created_at``, id), newest first, and whether more follow; nothing counted."""
        ...

    async def candidates(self, lead: Lead, seen: Owners) -> list[Lead]:
        """The leads of ``seen`` (``lead`` left out) that share one of its lookup keys: its phone in
        E.164, its name at its company name, or its company domain; a bounded number of the newest per
        key (see domain.duplicates), read along their indexes."""
        ...


class LeadHistory(Protocol):
    """Every lead's changes, append-only: kept apart from the lead, which keeps bounded lists only."""

    def add(self, changes: list[LeadChange]) -> None:
        """Store these changes with the unit's other writes (one bulk insert at commit on MongoDB)."""
        ...

    async def of(self, lead_id: str, *, limit: int, offset: int) -> tuple[list[LeadChange], int]:
        """One page of a lead's changes, newest first, and how many it has in all."""
        ...

    async def move(self, from_lead_id: str, to_lead_id: str) -> None:
        """A merge: every stored change of ``from_lead_id`` becomes ``to_lead_id``'s (one update, in the
        unit's transaction), so the survivor's history tells both stories in the order they happened."""
        ...


class ActivityRepository(Protocol):
    """Activities logged on leads, never changed."""

    async def get(self, activity_id: str) -> Activity | None: ...

    async def add(self, activity: Activity) -> None: ...

    async def of_lead(self, lead_id: str, *, limit: int, offset: int) -> tuple[list[Activity], int]:
        """One page of a lead's activities, latest ``occurred_at`` first, and how many it has in all."""
        ...

    async def move(self, from_lead_id: str, to_lead_id: str) -> None:
        """A merge: every activity of ``from_lead_id`` is ``to_lead_id``'s from now on (one update)."""
        ...


class TaskRepository(Protocol):
    """Follow-ups by id (a requested one's id is its request's, so a repeat is found)."""

    async def get(self, task_id: str) -> Task | None:
        """The follow-up as stored (or added in this unit), or None."""
        ...

    async def add(self, task: Task) -> None: ...

    async def save(self, task: Task) -> None:
        """Store a changed follow-up over the stored one."""
        ...

    async def open_of_lead(self, lead_id: str) -> list[Task]:
        """A lead's open follow-ups, soonest due first."""
        ...

    async def move(self, from_lead_id: str, to_lead_id: str) -> None:
        """A merge: every follow-up of ``from_lead_id`` (open or not) is ``to_lead_id``'s from now on
        (one update), and so are its open ones in the leads' counts (``has_open_follow_up``)."""
        ...

    async def search(self, criteria: TaskFilter, *, limit: int, offset: int) -> tuple[list[Task], int]:
        """One page of the follow-ups matching ``criteria``, soonest due first, and how many in all."""
        ...


class TurnCounters(Protocol):
    """The assignment rotations' turn counters, shared by every replica."""

    async def take(self, rotation_key: str, count: int) -> range:
        """Take ``count`` consecutive turns of a rotation (its first lead has turn 0). Taken at once and
        kept whatever becomes of the unit of work: on MongoDB outside its transaction, since inside every
        capture would write the one counter document and concurrent captures would conflict and retry
        each other into timeouts. A turn whose capture then fails is skipped; the rotation stays fair."""
        ...


class LeadsMetrics(Protocol):
    """The business metrics; observed only once the unit that made the fact committed."""

    def captured(self, source: LeadSource) -> None: ...

    def touched(self, source: LeadSource) -> None: ...

    def activity_logged(self, channel: ActivityChannel, outcome: ActivityOutcome) -> None: ...

    def queued(self, team: str) -> None:
        """A new lead went to ``team``'s queue (nobody of the team was available)."""
        ...

    def merged(self) -> None: ...


class LeadsUnitOfWork(UnitOfWork):
    leads: LeadRepository
    history: LeadHistory
    activities: ActivityRepository
    tasks: TaskRepository
    turns: TurnCounters
    metrics: LeadsMetrics
    imports: ImportJobs
    reps: RepRepository
    assignment_rules: AssignmentRuleVersions
    #: The outcomes of captures and imports sent with an Idempotency-Key (a repeat answers the same).
    requests: RequestRecords
