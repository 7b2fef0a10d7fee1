"""Qualification's unit of work in memory: the use-case tests run the real handlers on it.

Its repositories keep the same contract as the MongoDB ones: a loaded lead is a copy (a change is
stored only by ``add``/``save``), a save of a stale copy is refused, events are never stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from kariz_qualification.domain.lead import Lead, Outcome, Scoring, Trigger
from kariz_qualification.domain.queries import LeadsByStatus, LeadSummary
from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet
from kariz_qualification.service_layer.unit_of_work import QualificationUnitOfWork
from kariz_shared.contracts.errors import Conflict
from kariz_shared.persistence.in_memory import InMemoryUnitOfWork, InMemoryVersionedAggregates
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


@dataclass
class InMemoryRuleSetRepository:
    rules: RuleSet | None = None
    version: int = 0
    updated_at: datetime | None = None

    async def current(self) -> RuleSet:
        return self.rules or DEFAULT_RULES

    async def replace(self, rules: RuleSet, at: datetime) -> None:
        self.rules, self.version, self.updated_at = rules, self.version + 1, at


@dataclass
class RecordedMetrics:
    """What a test can look at instead of Prometheus."""

    scores: list[tuple[Trigger, int]] = field(default_factory=list)
    decisions: list[Outcome] = field(default_factory=list)

    def scored(self, scoring: Scoring) -> None:
        self.scores.append((scoring.trigger, scoring.score))

    def decided(self, outcome: Outcome) -> None:
        self.decisions.append(outcome)


class InMemoryQualificationUnitOfWork(InMemoryUnitOfWork, QualificationUnitOfWork):
    # Metrics are observed after a unit committed; a rolled-back unit observed nothing to undo.
    not_state = InMemoryUnitOfWork.not_state | {"metrics"}

    def __init__(self, clock: Clock | None = None, rules: RuleSet | None = None) -> None:
        super().__init__(clock)
        self.leads: InMemoryLeadRepository = InMemoryLeadRepository()
        self.rules: InMemoryRuleSetRepository = InMemoryRuleSetRepository(rules)
        self.metrics: RecordedMetrics = RecordedMetrics()
