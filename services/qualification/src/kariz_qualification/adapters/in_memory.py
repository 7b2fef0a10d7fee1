"""Qualification's unit of work in memory: the use-case tests run the real handlers on it.

Its repositories keep the same contract as the MongoDB ones: a loaded lead is a copy (a change is
stored only by ``add``/``save``), a save of a stale copy is refused, events are never stored.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime

from kariz_qualification.domain.lead import Lead, Outcome, Scoring, Trigger
from kariz_qualification.domain.queries import LeadsByStatus, LeadSummary
from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet
from kariz_qualification.service_layer.unit_of_work import QualificationUnitOfWork
from kariz_shared.contracts.errors import Conflict
from kariz_shared.persistence.in_memory import InMemoryUnitOfWork, as_stored
from kariz_shared.runtime.clock import Clock


class InMemoryLeadRepository:
    def __init__(self) -> None:
        self.leads: dict[str, Lead] = {}

    async def get(self, lead_id: str) -> Lead | None:
        lead = self.leads.get(lead_id)
        return None if lead is None else copy.deepcopy(lead)

    async def is_known(self, lead_id: str) -> bool:
        return lead_id in self.leads

    def add(self, lead: Lead) -> None:
        if lead.lead_id in self.leads:
            raise Conflict(f"lead {lead.lead_id} is already under qualification")
        lead.version = 1
        self.leads[lead.lead_id] = as_stored(lead)

    async def save(self, lead: Lead) -> None:
        stored = self.leads.get(lead.lead_id)
        if stored is None or stored.version != lead.version:
            raise Conflict(f"lead {lead.lead_id} was changed by another request meanwhile; reload and retry")
        lead.version += 1
        self.leads[lead.lead_id] = as_stored(lead)

    async def page(self, query: LeadsByStatus, limit: int, offset: int) -> tuple[list[LeadSummary], int]:
        selected = sorted(
            (lead for lead in self.leads.values() if query.matches(lead)),
            key=lambda lead: lead.captured_at,
            reverse=True,
        )
        return [LeadSummary.of(lead) for lead in selected[offset : offset + limit]], len(selected)


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
