"""What the use cases see of the roster's and the assignment rules' storage (the MongoDB adapter in
:mod:`kariz_leads.adapters.mongo.roster`, the in-memory one in :mod:`kariz_leads.adapters.in_memory_roster`),
and the in-process copy of the rules in force that captures read."""

from __future__ import annotations

from typing import Protocol

from kariz_leads.domain.assignment_rules import AssignmentRulesVersion
from kariz_leads.domain.roster import Rep
from kariz_shared.persistence.in_force import InForce


class RepRepository(Protocol):
    """The roster's reps by e-mail (collection ``reps``); a rep is replaced, never deleted."""

    async def get(self, email: str) -> Rep | None: ...

    async def save(self, rep: Rep) -> None:
        """Store the rep in place of the stored one with its address, or as a new one."""
        ...

    async def of_teams(self, teams: list[str]) -> list[Rep]:
        """Every rep of these teams, active or not (one indexed read for a whole capture)."""
        ...

    async def page(self, team: str | None, *, limit: int, offset: int) -> tuple[list[Rep], int]:
        """One page of the reps (of ``team`` only, when given) by e-mail, and how many in all."""
        ...

    async def open_leads(self, emails: list[str]) -> dict[str, int]:
        """How many open leads (new or working) each of these reps owns (one indexed count for all);
        a rep with none is left out."""
        ...


class AssignmentRuleVersions(Protocol):
    """The assignment rules' versions (collection ``assignment_rule_versions``, ``_id`` = number)."""

    async def current(self) -> AssignmentRulesVersion:
        """The newest version, read now (version 0, no rules, when none is stored)."""
        ...

    async def in_force(self) -> AssignmentRulesVersion:
        """The version a capture assigns by: on MongoDB the process's copy (:class:`RulesInForce`),
        at most its refresh interval old."""
        ...

    async def get(self, number: int) -> AssignmentRulesVersion | None: ...

    async def add(self, version: AssignmentRulesVersion) -> None:
        """Store a new version; ``DuplicateRecord`` when its number is taken (a concurrent replacement
        committed it first)."""
        ...

    async def page(self, *, limit: int, offset: int) -> tuple[list[AssignmentRulesVersion], int]:
        """One page of the versions, newest first, and how many there are."""
        ...


#: The process's copy of the assignment rules in force that captures read (refreshed now and then).
RulesInForce = InForce[AssignmentRulesVersion]
