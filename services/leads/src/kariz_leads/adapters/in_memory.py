"""The leads' unit of work in memory: the use-case tests run the real handlers on it.

Its repositories keep the same contract as the MongoDB ones: a loaded lead is a copy (a change is stored
only by ``add_all``, ``add_touch`` or ``save_verdict``), a second lead with a known address is refused
as the unique index refuses it, events are never stored, and taken turns stay taken when a unit fails.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from kariz_leads.adapters.in_memory_imports import InMemoryImportJobs
from kariz_leads.adapters.in_memory_roster import InMemoryAssignmentRuleVersions, InMemoryRepRepository
from kariz_leads.domain.activity import Activity
from kariz_leads.domain.duplicates import DOMAIN_SCAN, PER_REASON, LookupKeys
from kariz_leads.domain.history import LeadChange
from kariz_leads.domain.lead import RECENT_TOUCHES, Lead, Touch
from kariz_leads.domain.queries import LeadFilter
from kariz_leads.domain.task import Task, TaskFilter, TaskStatus
from kariz_leads.service_layer.unit_of_work import ONE_LEAD_PER_ADDRESS, LeadsUnitOfWork
from kariz_shared.contracts.errors import DuplicateRecord
from kariz_shared.contracts.events import ActivityChannel, ActivityOutcome, LeadSource
from kariz_shared.contracts.identity import Owners
from kariz_shared.contracts.paging import Cursor
from kariz_shared.persistence.idempotency import InMemoryRequestRecords
from kariz_shared.persistence.in_memory import InMemoryAggregates, InMemoryUnitOfWork
from kariz_shared.runtime.clock import Clock


class InMemoryLeadRepository(InMemoryAggregates[Lead]):
    async def get_for_event(self, lead_id: str) -> Lead | None:
        return await self.get(lead_id)

    async def with_emails(self, emails: list[str]) -> dict[str, Lead]:
        wanted = set(emails)
        return {lead.email: copy.deepcopy(lead) for lead in self.by_id.values() if lead.email in wanted}

    async def add_all(self, leads: list[Lead]) -> None:
        known = {lead.email for lead in self.by_id.values()}
        for lead in leads:
            if lead.id in self.by_id:
                raise DuplicateRecord(f"lead {lead.id} exists", index="_id_")
            if lead.email in known:
                raise DuplicateRecord(f"{lead.email} is a lead already", index=ONE_LEAD_PER_ADDRESS)
            known.add(lead.email)
            self.keep(lead.id, lead)
            self.by_id[lead.id].pull_changes()  # a database stores the lead, its history apart

    async def add_touch(self, lead: Lead, touch: Touch) -> None:
        stored = self.by_id[lead.id]
        stored.touches = [*stored.touches, touch][-RECENT_TOUCHES:]
        stored.touch_count += 1
        stored.touches_by_source[touch.source.value] = stored.touches_by_source.get(touch.source.value, 0) + 1
        stored.updated_at = lead.updated_at

    async def save_verdict(self, lead: Lead) -> None:
        stored = self.by_id[lead.id]
        stored.status, stored.score = lead.status, lead.score
        stored.disqualification_reason, stored.updated_at = lead.disqualification_reason, lead.updated_at

    async def save_owner(self, lead: Lead) -> None:
        stored = self.by_id[lead.id]
        stored.owner, stored.assigned_by, stored.updated_at = lead.owner, lead.assigned_by, lead.updated_at

    async def save_merge(self, lead: Lead) -> None:
        stored = self.by_id[lead.id]
        stored.status, stored.score, stored.disqualification_reason = (
            lead.status,
            lead.score,
            lead.disqualification_reason,
        )
        stored.merged_into, stored.updated_at = lead.merged_into, lead.updated_at
        stored.touches, stored.touch_count = list(lead.touches), lead.touch_count
        stored.touches_by_source = dict(lead.touches_by_source)
        stored.attempts, stored.first_contact_at = dict(lead.attempts), lead.first_contact_at
        stored.last_activity_at = lead.last_activity_at

    async def search(self, criteria: LeadFilter, *, limit: int, offset: int) -> tuple[list[Lead], int]:
        return self.select(
            self._matching(criteria), lambda lead: (lead.created_at, lead.id), limit=limit, offset=offset
        )

    async def search_after(
        self, criteria: LeadFilter, *, after: Cursor | None, limit: int
    ) -> tuple[list[Lead], bool]:
        return self.select_after(
            self._matching(criteria), lambda lead: (lead.created_at, lead.id), after=after, limit=limit
        )

    #: The unit's follow-ups, for ``has_open_follow_up`` (MongoDB keeps a count on each lead instead).
    follow_ups: InMemoryTaskRepository | None = None

    def _matching(self, criteria: LeadFilter) -> Callable[[Lead], bool]:
        wanted = criteria.has_open_follow_up
        if wanted is None:
            return criteria.matches
        tasks = self.follow_ups.by_id.values() if self.follow_ups else []
        with_open = {t.lead_id for t in tasks if t.status is TaskStatus.OPEN}
        return lambda lead: criteria.matches(lead) and (lead.id in with_open) == wanted

    async def candidates(self, lead: Lead, seen: Owners) -> list[Lead]:
        # The same keys and bounds as MongoDB's reads (documents.candidate_queries), newest first.
        keys = LookupKeys.of(lead)
        newest = sorted(self.by_id.values(), key=lambda other: (other.created_at, other.id), reverse=True)
        reachable = [other for other in newest if seen.include(other.owner) and other.id != lead.id]
        by_phone = [o for o in reachable if keys.phone and LookupKeys.of(o).phone == keys.phone]
        by_name = [
            o
            for o in reachable
            if keys.name
            and keys.company
            and (LookupKeys.of(o).name, LookupKeys.of(o).company) == (keys.name, keys.company)
        ]
        by_domain = [o for o in reachable if lead.company.domain and o.company.domain == lead.company.domain]
        found = {o.id: o for o in [*by_phone[:PER_REASON], *by_name[:PER_REASON], *by_domain[:DOMAIN_SCAN]]}
        return [copy.deepcopy(o) for o in found.values()]

    async def save_activity(self, lead: Lead) -> None:
        stored = self.by_id[lead.id]
        stored.attempts, stored.first_contact_at = dict(lead.attempts), lead.first_contact_at
        stored.status, stored.updated_at = lead.status, lead.updated_at
        stored.last_activity_at = lead.last_activity_at


class InMemoryActivityRepository(InMemoryAggregates[Activity]):
    async def add(self, activity: Activity) -> None:
        self.keep(activity.id, activity)

    async def of_lead(self, lead_id: str, *, limit: int, offset: int) -> tuple[list[Activity], int]:
        return self.select(
            lambda a: a.lead_id == lead_id, lambda a: (a.occurred_at, a.id), limit=limit, offset=offset
        )

    async def move(self, from_lead_id: str, to_lead_id: str) -> None:
        for activity in self.by_id.values():
            if activity.lead_id == from_lead_id:
                activity.lead_id = to_lead_id


class InMemoryTaskRepository(InMemoryAggregates[Task]):
    async def add(self, task: Task) -> None:
        if task.id in self.by_id:
            raise DuplicateRecord(f"follow-up {task.id} exists", index="_id_")
        self.keep(task.id, task)
        self.by_id[task.id].pull_changes()  # its changes go to the lead's history

    async def save(self, task: Task) -> None:
        self.keep(task.id, task)
        self.by_id[task.id].pull_changes()

    async def open_of_lead(self, lead_id: str) -> list[Task]:
        mine = [t for t in self.by_id.values() if t.lead_id == lead_id and t.is_open]
        return [copy.deepcopy(t) for t in sorted(mine, key=lambda t: (t.due_at, t.id))]

    async def move(self, from_lead_id: str, to_lead_id: str) -> None:
        # The leads' open follow-ups are counted from these, so nothing else moves.
        for task in self.by_id.values():
            if task.lead_id == from_lead_id:
                task.move_to_lead(to_lead_id)

    async def search(self, criteria: TaskFilter, *, limit: int, offset: int) -> tuple[list[Task], int]:
        # Soonest due first: the reverse of select's newest-first order.
        matching = sorted(
            (t for t in self.by_id.values() if criteria.matches(t)), key=lambda t: (t.due_at, t.id)
        )
        return [copy.deepcopy(t) for t in matching[offset : offset + limit]], len(matching)


class InMemoryLeadHistory:
    def __init__(self) -> None:
        self.changes: list[LeadChange] = []

    def add(self, changes: list[LeadChange]) -> None:
        self.changes.extend(changes)

    async def of(self, lead_id: str, *, limit: int, offset: int) -> tuple[list[LeadChange], int]:
        # Newest first; changes at one instant in the reverse of their recording, as MongoDB's order does.
        mine = [c for c in reversed(self.changes) if c.lead_id == lead_id]
        mine.sort(key=lambda c: c.at, reverse=True)
        return mine[offset : offset + limit], len(mine)

    async def move(self, from_lead_id: str, to_lead_id: str) -> None:
        self.changes = [
            replace(c, lead_id=to_lead_id) if c.lead_id == from_lead_id else c for c in self.changes
        ]


class InMemoryTurnCounters:
    def __init__(self) -> None:
        self.taken: Counter[str] = Counter()

    async def take(self, rotation_key: str, count: int) -> range:
        start = self.taken[rotation_key]
        self.taken[rotation_key] += count
        return range(start, start + count)


@dataclass
class RecordedMetrics:
    """What a test can look at instead of Prometheus."""

    captures: list[LeadSource] = field(default_factory=list)
    touches: list[LeadSource] = field(default_factory=list)
    activities: list[tuple[ActivityChannel, ActivityOutcome]] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    merges: int = 0

    def captured(self, source: LeadSource) -> None:
        self.captures.append(source)

    def touched(self, source: LeadSource) -> None:
        self.touches.append(source)

    def activity_logged(self, channel: ActivityChannel, outcome: ActivityOutcome) -> None:
        self.activities.append((channel, outcome))

    def queued(self, team: str) -> None:
        self.queues.append(team)

    def merged(self) -> None:
        self.merges += 1


class InMemoryLeadsUnitOfWork(InMemoryUnitOfWork, LeadsUnitOfWork):
    # Turns are taken outside the unit (see TurnCounters.take) and metrics observed after it committed:
    # a rolled-back unit gives neither back.
    not_state = InMemoryUnitOfWork.not_state | {"turns", "metrics"}

    def __init__(self, clock: Clock | None = None) -> None:
        super().__init__(clock)
        self.leads: InMemoryLeadRepository = InMemoryLeadRepository()
        self.history: InMemoryLeadHistory = InMemoryLeadHistory()
        self.activities: InMemoryActivityRepository = InMemoryActivityRepository()
        self.tasks: InMemoryTaskRepository = InMemoryTaskRepository()
        self.leads.follow_ups = self.tasks
        self.turns: InMemoryTurnCounters = InMemoryTurnCounters()
        self.requests: InMemoryRequestRecords = InMemoryRequestRecords(self.clock)
        self.metrics: RecordedMetrics = RecordedMetrics()
        self.imports: InMemoryImportJobs = InMemoryImportJobs(self.leads, self.clock)
        self.reps: InMemoryRepRepository = InMemoryRepRepository(self.leads)
        self.assignment_rules: InMemoryAssignmentRuleVersions = InMemoryAssignmentRuleVersions(
            lambda: self.clock.now()
        )
