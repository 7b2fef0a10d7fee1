"""The leads' unit of work on MongoDB: one transaction, its repositories built on it."""

from __future__ import annotations

from kariz_leads.adapters.metrics import PrometheusMetrics
from kariz_leads.adapters.mongo.activities import MongoActivityRepository, MongoTaskRepository
from kariz_leads.adapters.mongo.imports import MongoImportJobs
from kariz_leads.adapters.mongo.repositories import (
    MongoLeadHistory,
    MongoLeadRepository,
    MongoTurnCounters,
)
from kariz_leads.adapters.mongo.roster import MongoAssignmentRuleVersions, MongoRepRepository
from kariz_leads.service_layer.roster_store import RulesInForce
from kariz_leads.service_layer.unit_of_work import LeadsMetrics, LeadsUnitOfWork
from kariz_shared.persistence.idempotency import MongoRequestRecords
from kariz_shared.persistence.store import Transaction
from kariz_shared.persistence.unit_of_work import MongoUnitOfWork
from kariz_shared.runtime.clock import Clock

PROMETHEUS = PrometheusMetrics()


class MongoLeadsUnitOfWork(MongoUnitOfWork, LeadsUnitOfWork):
    def __init__(
        self,
        tx: Transaction,
        clock: Clock,
        metrics: LeadsMetrics = PROMETHEUS,
        rules_in_force: RulesInForce | None = None,
    ) -> None:
        super().__init__(tx, clock)
        self.leads = MongoLeadRepository(tx)
        self.history = MongoLeadHistory(tx)
        self.activities = MongoActivityRepository(tx)
        self.tasks = MongoTaskRepository(tx)
        self.turns = MongoTurnCounters(tx.db)
        self.requests = MongoRequestRecords(tx, clock.now())
        self.metrics = metrics
        self.imports = MongoImportJobs(tx, clock)
        self.reps = MongoRepRepository(tx)
        # Without the process's copy (a test's own units) captures read the rules in force each time.
        self.assignment_rules = MongoAssignmentRuleVersions(tx, clock, rules_in_force)
