"""Qualification's unit of work in memory: the use-case tests run the real handlers on it.

Its repositories keep the same contract as the MongoDB ones: a loaded lead is a copy (a change is
stored only by ``add``/``save``), a save of a stale copy is refused, a second rule-set version of one
number is refused, events are never stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kariz_qualification.domain.calibration import WinModel
from kariz_qualification.domain.customers import WonAccount
from kariz_qualification.domain.engagement import EngagementKind
from kariz_qualification.domain.lead import Decision, Lead, Outcome, ReasonKind, ReopenedBy, Scoring, Trigger
from kariz_qualification.domain.nurture import StopReason
from kariz_qualification.domain.outcomes import QualifiedLead
from kariz_qualification.domain.queries import LeadsByStatus, LeadSummary
from kariz_qualification.domain.rule_versions import RuleSetVersion
from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet
from kariz_qualification.service_layer.unit_of_work import QualificationUnitOfWork
from kariz_shared.contracts.errors import Conflict, DuplicateRecord
from kariz_shared.contracts.events import NurtureStepKind
from kariz_shared.persistence.in_memory import InMemoryUnitOfWork, InMemoryVersionedAggregates
from kariz_shared.persistence.lead_merges import InMemoryLeadMerges
from kariz_shared.runtime.clock import Clock


class InMemoryLeadRepository(InMemoryVersionedAggregates[Lead]):
    async def is_known(self, lead_id: str) -> bool:
        return lead_id in self.by_id

    def add(self, lead: Lead) -> None:
        if lead.lead_id in self.by_id:
            raise Conflict(f"lead {lead.lead_id} is already under qualification")
        lead.version = 1
        self.keep(lead.lead_id, lead)

    async def save(self, lead: Lead) -> None:
        stale = f"lead {lead.lead_id} was changed by another request meanwhile; reload and retry"
        self.keep_version(lead.lead_id, lead, stale=stale)

    async def page(self, query: LeadsByStatus, limit: int, offset: int) -> tuple[list[LeadSummary], int]:
        leads, total = self.select(query.matches, lambda lead: lead.captured_at, limit=limit, offset=offset)
        return [LeadSummary.of(lead) for lead in leads], total

    async def by_email(self, email: str) -> Lead | None:
        return self.first(lambda lead: lead.contact.email == email and lead.merged_into is None)


@dataclass
class InMemoryRuleSetRepository:
    """The rule set's versions in order, oldest first; version 0 kept from the start, as start-up seeds
    it on MongoDB."""

    versions: list[RuleSetVersion]

    async def current(self) -> RuleSetVersion:
        return self.versions[-1]

    async def get(self, number: int) -> RuleSetVersion | None:
        return next((v for v in self.versions if v.number == number), None)

    async def add(self, version: RuleSetVersion) -> None:
        # What the unique _id of a version does on MongoDB.
        if any(v.number == version.number for v in self.versions):
            raise DuplicateRecord(f"version {version.number} of the rule set exists", index="_id_")
        self.versions.append(version)

    async def page(self, limit: int, offset: int) -> tuple[list[RuleSetVersion], int]:
        newest_first = sorted(self.versions, key=lambda v: v.number, reverse=True)
        return newest_first[offset : offset + limit], len(newest_first)


@dataclass
class InMemoryWonAccountRepository:
    by_key: dict[str, WonAccount] = field(default_factory=dict)

    async def get(self, key: str) -> WonAccount | None:
        return self.by_key.get(key)

    async def add(self, account: WonAccount) -> None:
        self.by_key[account.key] = account


@dataclass
class InMemoryQualifiedLeadRepository:
    by_id: dict[str, QualifiedLead] = field(default_factory=dict)

    async def get(self, lead_id: str) -> QualifiedLead | None:
        return self.by_id.get(lead_id)

    def add(self, lead: QualifiedLead) -> None:
        self.by_id.setdefault(lead.lead_id, lead)

    async def save(self, lead: QualifiedLead) -> None:
        self.by_id[lead.lead_id] = lead

    async def closed_counts(self) -> tuple[int, int]:
        results = [lead.result for lead in self.by_id.values()]
        return results.count("won"), results.count("lost")

    async def closed(self, newest: int) -> list[QualifiedLead]:
        closed = [lead for lead in self.by_id.values() if lead.is_closed]
        # Newest first, as the MongoDB query sorts; the same lead ids in the same order each time.
        closed.sort(key=lambda lead: (lead.closed_at, lead.lead_id), reverse=True)
        return closed[:newest]

    async def every(self) -> list[QualifiedLead]:
        return list(self.by_id.values())


@dataclass
class InMemoryCalibrationRepository:
    models: list[WinModel] = field(default_factory=list)

    async def latest(self) -> WinModel | None:
        return self.models[-1] if self.models else None

    async def add(self, model: WinModel) -> None:
        if any(m.number == model.number for m in self.models):
            raise DuplicateRecord(f"calibration {model.number} exists", index="_id_")
        self.models.append(model)

    async def page(self, limit: int, offset: int) -> tuple[list[WinModel], int]:
        newest_first = list(reversed(self.models))
        return newest_first[offset : offset + limit], len(newest_first)


@dataclass
class RecordedMetrics:
    """What a test can look at instead of Prometheus."""

    scores: list[tuple[Trigger, int]] = field(default_factory=list)
    decisions: list[Outcome] = field(default_factory=list)
    #: ``(outcome, kind of reason)`` of each decision, as the metric's labels have them.
    decision_reasons: list[tuple[Outcome, ReasonKind | None]] = field(default_factory=list)
    signals: list[EngagementKind] = field(default_factory=list)
    reopenings: list[ReopenedBy] = field(default_factory=list)
    #: ``(track, kind)`` of each nurture step armed, and of each that fell due and was taken.
    nurture_armed: list[tuple[str, NurtureStepKind]] = field(default_factory=list)
    nurture_fired: list[tuple[str, NurtureStepKind]] = field(default_factory=list)
    nurture_stops: list[StopReason] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    calibrations: list[int] = field(default_factory=list)

    def scored(self, scoring: Scoring) -> None:
        self.scores.append((scoring.trigger, scoring.score))

    def decided(self, decision: Decision) -> None:
        self.decisions.append(decision.outcome)
        self.decision_reasons.append((decision.outcome, decision.reason_kind))

    def engaged(self, kind: EngagementKind) -> None:
        self.signals.append(kind)

    def reopened(self, by: ReopenedBy) -> None:
        self.reopenings.append(by)

    def nurture_step_armed(self, track: str, kind: NurtureStepKind) -> None:
        self.nurture_armed.append((track, kind))

    def nurture_step_fired(self, track: str, kind: NurtureStepKind) -> None:
        self.nurture_fired.append((track, kind))

    def nurture_stopped(self, reason: StopReason) -> None:
        self.nurture_stops.append(reason)

    def outcome_closed(self, result: str) -> None:
        self.outcomes.append(result)

    def calibrated(self, model: WinModel) -> None:
        self.calibrations.append(model.number)


class InMemoryQualificationUnitOfWork(InMemoryUnitOfWork, QualificationUnitOfWork):
    # Metrics are observed after a unit committed; a rolled-back unit observed nothing to undo.
    not_state = InMemoryUnitOfWork.not_state | {"metrics"}

    def __init__(self, clock: Clock | None = None, rules: RuleSet | None = None) -> None:
        super().__init__(clock)
        self.leads: InMemoryLeadRepository = InMemoryLeadRepository()
        self.merges: InMemoryLeadMerges = InMemoryLeadMerges()
        seeded = RuleSetVersion.seeded(rules or DEFAULT_RULES, self.clock.now())
        self.rules: InMemoryRuleSetRepository = InMemoryRuleSetRepository([seeded])
        self.accounts: InMemoryWonAccountRepository = InMemoryWonAccountRepository()
        self.outcomes: InMemoryQualifiedLeadRepository = InMemoryQualifiedLeadRepository()
        self.calibrations: InMemoryCalibrationRepository = InMemoryCalibrationRepository()
        self.metrics: RecordedMetrics = RecordedMetrics()
