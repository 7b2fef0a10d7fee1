"""The roster and the assignment rules' versions in memory, for the use-case tests: the same contracts as
:mod:`kariz_leads.adapters.mongo.roster` (a version's number is unique, reps are sorted by address)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from kariz_leads.domain.assignment_rules import AssignmentRulesVersion
from kariz_leads.domain.lead import Lead, LeadStatus
from kariz_leads.domain.roster import Rep
from kariz_shared.contracts.errors import DuplicateRecord

#: The statuses of a lead its owner still works: what a rep's capacity counts.
OPEN = (LeadStatus.NEW, LeadStatus.WORKING)


class StoredLeads(Protocol):
    """The in-memory leads (the unit's lead repository), whose open ones a capacity counts."""

    by_id: dict[str, Lead]


class InMemoryRepRepository:
    def __init__(self, leads: StoredLeads) -> None:
        self.by_email: dict[str, Rep] = {}
        self.leads = leads

    async def get(self, email: str) -> Rep | None:
        return self.by_email.get(email)

    async def save(self, rep: Rep) -> None:
        self.by_email[rep.email] = rep

    async def of_teams(self, teams: list[str]) -> list[Rep]:
        return sorted((r for r in self.by_email.values() if r.team in teams), key=lambda r: r.email)

    async def page(self, team: str | None, *, limit: int, offset: int) -> tuple[list[Rep], int]:
        reps = sorted(
            (r for r in self.by_email.values() if team is None or r.team == team), key=lambda r: r.email
        )
        return reps[offset : offset + limit], len(reps)

    async def open_leads(self, emails: list[str]) -> dict[str, int]:
        wanted = set(emails)
        return dict(
            Counter(
                lead.owner
                for lead in self.leads.by_id.values()
                if lead.owner in wanted and lead.status in OPEN
            )
        )


class InMemoryAssignmentRuleVersions:
    def __init__(self, now: Callable[[], datetime]) -> None:
        # A function, not the clock: a rolled-back unit's state is a deep copy, the clock is not state.
        self.now = now
        self.versions: dict[int, AssignmentRulesVersion] = {}

    def _seeded(self) -> None:
        # Version 0 (no rules) took effect when the service first looked, as MongoDB's is stored at start.
        if 0 not in self.versions:
            self.versions[0] = AssignmentRulesVersion.seeded(self.now())

    async def current(self) -> AssignmentRulesVersion:
        self._seeded()
        return self.versions[max(self.versions)]

    async def in_force(self) -> AssignmentRulesVersion:
        return await self.current()

    async def get(self, number: int) -> AssignmentRulesVersion | None:
        self._seeded()
        return self.versions.get(number)

    async def add(self, version: AssignmentRulesVersion) -> None:
        self._seeded()
        if version.number in self.versions:
            raise DuplicateRecord(f"version {version.number} exists", index="_id_")
        self.versions[version.number] = version

    async def page(self, *, limit: int, offset: int) -> tuple[list[AssignmentRulesVersion], int]:
        self._seeded()
        newest = [self.versions[n] for n in sorted(self.versions, reverse=True)]
        return newest[offset : offset + limit], len(newest)
