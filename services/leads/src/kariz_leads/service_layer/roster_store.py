"""What the use cases see of the roster's and the assignment rules' storage (the MongoDB adapter in
:mod:`kariz_leads.adapters.mongo.roster`, the in-memory one in :mod:`kariz_leads.adapters.in_memory_roster`),
and the in-process copy of the rules in force that captures read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from kariz_leads.domain.assignment_rules import AssignmentRulesVersion
from kariz_leads.domain.roster import Rep


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


class RulesInForce:
    """The assignment rules in force as this process's captures see them: read at most once per
    ``refresh`` (the service's clock), so a capture costs no read of them; a replacement made in this
    process is seen at once (:meth:`took_effect`), another replica's within ``refresh``."""

    def __init__(self, refresh: timedelta) -> None:
        self.refresh = refresh
        self.version: AssignmentRulesVersion | None = None
        self.read_at: datetime | None = None

    async def get(
        self, now: datetime, load: Callable[[], Awaitable[AssignmentRulesVersion]]
    ) -> AssignmentRulesVersion:
        stale = self.read_at is None or not (self.read_at <= now < self.read_at + self.refresh)
        if self.version is None or stale:
            version = await load()
            # A replacement seen through took_effect meanwhile is not undone by an older read.
            if self.version is None or version.number >= self.version.number:
                self.version = version
            self.read_at = now
        return self.version

    def took_effect(self, version: AssignmentRulesVersion, now: datetime) -> None:
        """A replacement committed in this process: captures assign by it from now on."""
        if self.version is None or version.number >= self.version.number:
            self.version, self.read_at = version, now
