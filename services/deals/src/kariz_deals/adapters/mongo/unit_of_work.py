"""The deals service's unit of work on MongoDB: its repositories on the transaction."""

from __future__ import annotations

from kariz_deals.adapters.mongo.objections import MongoObjectionAnswerRepository, MongoObjectionRepository
from kariz_deals.adapters.mongo.pipelines import MongoPipelineVersions
from kariz_deals.adapters.mongo.quotes import (
    MongoContractRepository,
    MongoPriceBookRepository,
    MongoProductRepository,
    MongoQuoteRepository,
)
from kariz_deals.adapters.mongo.repositories import (
    MongoAccountRepository,
    MongoDealRepository,
)
from kariz_deals.service_layer.unit_of_work import DealsMetrics, DealsUnitOfWork
from kariz_shared.persistence.lead_merges import MongoLeadMerges
from kariz_shared.persistence.store import Transaction
from kariz_shared.persistence.unit_of_work import MongoUnitOfWork
from kariz_shared.runtime.clock import Clock


class MongoDealsUnitOfWork(MongoUnitOfWork, DealsUnitOfWork):
    def __init__(self, tx: Transaction, clock: Clock, metrics: DealsMetrics) -> None:
        super().__init__(tx, clock)
        self.deals = MongoDealRepository(tx)
        self.merges = MongoLeadMerges(tx)
        self.accounts = MongoAccountRepository(tx)
        self.metrics = metrics
        self.pipelines = MongoPipelineVersions(tx, clock)
        self.products = MongoProductRepository(tx)
        self.price_books = MongoPriceBookRepository(tx)
        self.quotes = MongoQuoteRepository(tx)
        self.contracts = MongoContractRepository(tx)
        self.objections = MongoObjectionRepository(tx)
        self.objection_answers = MongoObjectionAnswerRepository(tx)
