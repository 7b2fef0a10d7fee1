"""Wires the deals service: consumer, API routes, indexes, the pipeline gauges. ``build()`` does no I/O.

This is where the default pipeline is handed out: deals are opened in it, the API reports it and the
metrics know its stages.
"""

from __future__ import annotations

from datetime import timedelta

from kariz_deals.adapters.metrics import PrometheusDealsMetrics, StalledGauge
from kariz_deals.adapters.mongo import objections, pipeline_totals
from kariz_deals.adapters.mongo.indexes import ensure_indexes
from kariz_deals.adapters.mongo.pipelines import ensure_pipeline_indexes, seed_default_pipeline
from kariz_deals.adapters.mongo.repositories import MongoDealReads
from kariz_deals.adapters.mongo.unit_of_work import MongoDealsUnitOfWork
from kariz_deals.domain import DEFAULT_PIPELINE, PIPELINES, Pipeline
from kariz_deals.entrypoints import catalogue, contracts, http, kafka, opening, pipelines, quotes, workers
from kariz_deals.service_layer import pipelines as pipeline_versions
from kariz_deals.service_layer.quotes import QuotePolicy
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

    async def seed_pipelines(store: Store) -> None:
        await ensure_pipeline_indexes(store)
        await seed_default_pipeline(store, service.clock)

    service.on_startup(seed_pipelines)

    async def pipelines_in_force() -> list[Pipeline]:
        return [v.pipeline for v in await pipeline_versions.pipelines_in_force(units)]

    service.subscribe_all(units, kafka.subscriptions(pipeline=pipeline, currency=currency))
    service.api.include_router(http.router(units, reads, pipeline=pipeline, default_currency=currency))
    service.api.include_router(pipelines.router(units))
    service.api.include_router(
        opening.router(units, service.roster, pipeline=pipeline, default_currency=currency)
    )
    # The catalogue, quotes and contracts (issue E): the webhook's signature is its credential.
    policy = QuotePolicy(settings.quote_discount_limit_pct, timedelta(days=settings.quote_validity_days))
    service.api.include_router(catalogue.router(units))
    service.api.include_router(quotes.router(units, policy, service.roster))
    service.api.include_router(contracts.router(units))
    service.api.include_router(contracts.webhook_router(units, settings.e_sign_webhook_secret))
    service.add_worker(
        "pipeline-gauges",
        workers.pipeline_gauges(
            reads,
            PIPELINES.values(),
            currency=currency,
            record=metrics.record_pipeline,
            interval_s=settings.metrics_refresh_interval_s,
            in_force=pipelines_in_force,
        ),
    )
    service.add_worker(
        "stalled-gauge",
        workers.stalled_gauge(
            reads,
            service.clock,
            record=StalledGauge(PIPELINES.values()).record,
            interval_s=settings.metrics_refresh_interval_s,
        ),
    )
    return service
