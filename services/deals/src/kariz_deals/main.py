"""Wires the deals service: consumer, API routes, indexes. ``build()`` does no I/O."""

from __future__ import annotations

from kariz_deals import handlers
from kariz_deals.adapters.mongo import ensure_indexes
from kariz_deals.api import make_router
from kariz_deals.settings import DealsSettings
from kariz_shared.events import DealLost, DealOpened, DealWon, LeadQualified, StageChanged
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
    service.subscribe(LeadQualified, handlers.on_lead_qualified(settings))
    service.api.include_router(make_router(service.store, settings))
    return service


def main() -> None:
    build().run()
