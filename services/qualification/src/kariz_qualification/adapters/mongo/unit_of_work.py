"""Qualification's unit of work on MongoDB: one transaction, its repositories built on it."""

from __future__ import annotations

from kariz_qualification.adapters.metrics import PrometheusMetrics
from kariz_qualification.adapters.mongo.repositories import (
    MongoCalibrationRepository,
    MongoLeadRepository,
    MongoQualifiedLeadRepository,
    MongoRuleSetRepository,
    MongoWonAccountRepository,
)
from kariz_qualification.service_layer.unit_of_work import QualificationMetrics, QualificationUnitOfWork
from kariz_shared.persistence.lead_merges import MongoLeadMerges
from kariz_shared.persistence.store import Transaction
from kariz_shared.persistence.unit_of_work import MongoUnitOfWork
from kariz_shared.runtime.clock import Clock

PROMETHEUS = PrometheusMetrics()


class MongoQualificationUnitOfWork(MongoUnitOfWork, QualificationUnitOfWork):
    def __init__(self, tx: Transaction, clock: Clock, metrics: QualificationMetrics = PROMETHEUS) -> None:
        super().__init__(tx, clock)
        self.leads = MongoLeadRepository(tx)
        self.merges = MongoLeadMerges(tx)
        self.rules = MongoRuleSetRepository(tx, clock)
        self.accounts = MongoWonAccountRepository(tx)
        self.outcomes = MongoQualifiedLeadRepository(tx)
        self.calibrations = MongoCalibrationRepository(tx)
        self.metrics = metrics
