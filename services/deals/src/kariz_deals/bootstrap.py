"""Wires the deals service: consumer, API routes, indexes. ``build()`` does no I/O."""

from __future__ import annotations

from kariz_deals import handlers, metrics, service_layer
from kariz_deals.adapters import pipeline_totals
from kariz_deals.adapters.mongo import ensure_indexes, ensure_pipeline_totals
from kariz_deals.api import make_router
from kariz_deals.domain.pipeline import PIPELINES
from kariz_deals.settings import DealsSettings
from kariz_shared.contracts.events import DealLost, DealOpened, DealWon, LeadQualified, StageChanged
from kariz_shared.runtime.periodic import refreshing
from kariz_shared.service import Service


def build(settings: DealsSettings | None = None) -> Service:
    settings = settings or DealsSettings()
    service = Service(
        settings,
        title="Kariz deals",
        description=(
            "Opens an account and a deal for every qualified lead, moves deals through the pipeline "
            "(forward, back, won, lost) and reports the pipeline and its forecast."
        ),
        publishes=[DealOpened, StageChanged, DealWon, DealLost],
    )
    service.on_startup(ensure_indexes)
    service.on_startup(ensure_pipeline_totals)
    service.subscribe(LeadQualified, handlers.on_lead_qualified(settings))
    service.api.include_router(make_router(service.store, settings))

    async def measure_pipeline() -> None:
        # The deltas since the last round are folded into the totals first, so the reads stay short.
        while await pipeline_totals.compact(service.store) == pipeline_totals.COMPACT_BATCH:
            pass
        for pipeline in PIPELINES:
            summary = await service_layer.pipeline_summary(
                service.store, pipeline=pipeline, currency=settings.deal_currency
            )
            metrics.record_pipeline(summary)

    service.add_worker(
        "pipeline-gauges", refreshing("pipeline", measure_pipeline, settings.metrics_refresh_interval_s)
    )
    return service
