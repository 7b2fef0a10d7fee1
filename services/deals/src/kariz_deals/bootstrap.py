"""Wires the deals service: consumer, API routes, indexes, the pipeline gauges. ``build()`` does no I/O.

This is where the default pipeline is handed out: deals are opened in it, the API reports it and the
metrics know its stages.
"""

from __future__ import annotations

from kariz_deals.adapters.metrics import PrometheusDealsMetrics
from kariz_deals.adapters.mongo import objections, pipeline_totals
from kariz_deals.adapters.mongo.indexes import ensure_indexes
from kariz_deals.adapters.mongo.repositories import MongoDealReads
from kariz_deals.adapters.mongo.unit_of_work import MongoDealsUnitOfWork
from kariz_deals.domain import DEFAULT_PIPELINE, PIPELINES
from kariz_deals.entrypoints import http, kafka, workers
from kariz_deals.settings import DealsSettings
from kariz_shared.persistence.store import Store, Transaction
from kariz_shared.persistence.unit_of_work import MongoUnitsOfWork
from kariz_shared.runtime.clock import Clock
from kariz_shared.service import Service
from kariz_shared.system import service as registered


def build(settings: DealsSettings | None = None, clock: Clock | None = None) -> Service:
    settings = settings or DealsSettings()
    service = Service(
        settings,
        title="Kariz deals",
        description=(
            "Opens an account and a deal for every qualified lead, moves deals through the pipeline "
            "(forward, back, won, lost) and reports the pipeline and its forecast."
        ),
        publishes=registered("deals").publishes,
        clock=clock,
    )
    pipeline, currency = DEFAULT_PIPELINE, settings.deal_currency
    metrics = PrometheusDealsMetrics(pipeline)

    def unit_of_work(tx: Transaction, clock: Clock) -> MongoDealsUnitOfWork:
        return MongoDealsUnitOfWork(tx, clock, metrics)

    units = MongoUnitsOfWork(service.store, service.clock, unit_of_work)
    reads = MongoDealReads(service.store)

    async def count_pipeline_totals(store: Store) -> None:
        # A database of a version before the totals: its deals are counted once.
        await pipeline_totals.build(store, service.clock)

    service.on_startup(ensure_indexes)
    service.on_startup(objections.ensure_indexes)
    service.on_startup(count_pipeline_totals)
    service.subscribe_all(units, kafka.subscriptions(pipeline=pipeline, currency=currency))
    service.api.include_router(http.router(units, reads, pipeline=pipeline, default_currency=currency))
    service.add_worker(
        "pipeline-gauges",
        workers.pipeline_gauges(
            reads,
            PIPELINES.values(),
            currency=currency,
            record=metrics.record_pipeline,
            interval_s=settings.metrics_refresh_interval_s,
        ),
    )
    return service
