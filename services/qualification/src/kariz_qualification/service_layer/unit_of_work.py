"""What the use cases see of qualification's storage: the unit of work and its repositories' contracts.

The MongoDB adapter (:mod:`kariz_qualification.adapters.mongo`) and the in-memory one
(:mod:`kariz_qualification.adapters.in_memory`) both honour these contracts; the use-case tests run on
the second.
"""

from __future__ import annotations

from typing import Protocol

from kariz_qualification.domain.calibration import WinModel
from kariz_qualification.domain.customers import WonAccount
from kariz_qualification.domain.engagement import EngagementKind
from kariz_qualification.domain.lead import Decision, Lead, ReopenedBy, Scoring
from kariz_qualification.domain.nurture import StopReason
from kariz_qualification.domain.outcomes import QualifiedLead
from kariz_qualification.domain.queries import LeadsByStatus, LeadSummary
from kariz_qualification.domain.rule_versions import RuleSetVersion
from kariz_shared.contracts.events import NurtureStepKind
from kariz_shared.persistence.lead_merges import LeadMerges
from kariz_shared.persistence.unit_of_work import UnitOfWork


class LeadRepository(Protocol):
    """Leads under qualification, by lead id."""

    async def get(self, lead_id: str) -> Lead | None:
        """The lead as stored, or None."""
        ...

    async def is_known(self, lead_id: str) -> bool:
        """Whether the lead is under qualification already: stored, or added earlier in this unit.

        Meant for the consumed ``LeadCaptured`` events of a batch: on MongoDB the first call reads the
        leads of all the batch's events at once."""
        ...

    def add(self, lead: Lead) -> None:
        """Take a new lead in; it is written when the unit commits (with the batch's other new leads)."""
        ...

    async def save(self, lead: Lead) -> None:
        """Write a loaded lead back; raises ``Conflict`` if someone changed it since it was loaded."""
        ...

    async def page(self, query: LeadsByStatus, limit: int, offset: int) -> tuple[list[LeadSummary], int]:
        """One page of the leads ``query`` selects, newest capture first, and how many it selects."""
        ...

    async def by_email(self, email: str) -> Lead | None:
        """The lead (not merged into another) whose contact has the normalised address ``email``."""
        ...


class RuleSetRepository(Protocol):
    """The versions of the scoring rule set, by number; the newest is in force. Append-only: a version
    is added, never changed."""

    async def current(self) -> RuleSetVersion:
        """The version in force (version 0, the defaults, if none is stored), read once per unit: a batch
        of captures is scored under one rule set."""
        ...

    async def get(self, number: int) -> RuleSetVersion | None:
        """Version ``number`` as stored, or None."""
        ...

    async def add(self, version: RuleSetVersion) -> None:
        """Store a new version; one of the same number stored meanwhile (a concurrent replacement) fails
        the unit with ``DuplicateRecord``. Scorings already made keep the version they used."""
        ...

    async def page(self, limit: int, offset: int) -> tuple[list[RuleSetVersion], int]:
        """One page of the versions, newest first, and how many there are."""
        ...


class WonAccountRepository(Protocol):
    """The accounts with a won deal, by account key (``domain.customers.account_key``)."""

    async def get(self, key: str) -> WonAccount | None:
        """The won account of that key; on MongoDB the first call reads those of the batch's captures."""
        ...

    async def add(self, account: WonAccount) -> None:
        """Keep the account (a later won deal of it replaces the one kept)."""
        ...


class QualifiedLeadRepository(Protocol):
    """The qualified leads and what became of them, by lead id (the closed loop's data)."""

    async def get(self, lead_id: str) -> QualifiedLead | None: ...

    def add(self, lead: QualifiedLead) -> None:
        """Keep a lead that qualified just now; written when the unit commits (with the batch's others)."""
        ...

    async def save(self, lead: QualifiedLead) -> None:
        """Write the lead's outcome (stored or not: a lead qualified before outcomes were kept)."""
        ...

    async def closed_counts(self) -> tuple[int, int]:
        """How many were won and how many lost."""
        ...

    async def closed(self, newest: int) -> list[QualifiedLead]:
        """The ``newest`` whose deal was won or lost, the most recently closed: what a calibration is
        trained on."""
        ...

    async def every(self) -> list[QualifiedLead]:
        """All of them, open ones too: what the performance report counts."""
        ...


class WinModelRepository(Protocol):
    """The calibrations by number; the newest is in force. Append-only."""

    async def latest(self) -> WinModel | None: ...

    async def add(self, model: WinModel) -> None:
        """Store a new version; one of the same number stored meanwhile (another replica calibrated at
        the same time) fails the unit with ``DuplicateRecord``."""
        ...

    async def page(self, limit: int, offset: int) -> tuple[list[WinModel], int]:
        """One page of the versions, newest first, and how many there are."""
        ...


class QualificationMetrics(Protocol):
    """The business metrics; observed only once the unit that made the fact committed."""

    def scored(self, scoring: Scoring) -> None: ...

    def decided(self, decision: Decision) -> None:
        """A decision was made (its outcome and its kind of reason)."""
        ...

    def engaged(self, kind: EngagementKind) -> None: ...

    def reopened(self, by: ReopenedBy) -> None: ...

    def nurture_step_armed(self, track: str, kind: NurtureStepKind) -> None: ...

    def nurture_step_fired(self, track: str, kind: NurtureStepKind) -> None: ...

    def nurture_stopped(self, reason: StopReason) -> None: ...

    def outcome_closed(self, result: str) -> None: ...

    def calibrated(self, model: WinModel) -> None: ...


class QualificationUnitOfWork(UnitOfWork):
    leads: LeadRepository
    merges: LeadMerges
    rules: RuleSetRepository
    accounts: WonAccountRepository
    outcomes: QualifiedLeadRepository
    calibrations: WinModelRepository
    metrics: QualificationMetrics
