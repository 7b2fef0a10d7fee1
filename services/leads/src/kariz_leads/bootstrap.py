"""Wiring: the leads service from its settings. ``build()`` does no I/O (the AsyncAPI generator calls it)."""

from __future__ import annotations

from datetime import datetime

from kariz_leads import handlers, metrics
from kariz_leads.adapters.mongo import ensure_indexes, newest_capture
from kariz_leads.api import make_router
from kariz_leads.domain import SalesTeam
from kariz_leads.settings import LeadsSettings
from kariz_shared.contracts.events import LeadCaptured, LeadDisqualified, LeadQualified
from kariz_shared.runtime.periodic import refreshing
from kariz_shared.service import Service


def build(settings: LeadsSettings | None = None) -> Service:
    settings = settings or LeadsSettings()
    team = SalesTeam.of(settings.reps, settings.territories)
    service = Service(
        settings,
        title="Kariz leads",
        description="Captures leads from every source, normalises them, folds duplicates into touches, "
        "assigns an owner by territory or round robin, and publishes LeadCaptured.",
        publishes=[LeadCaptured],
    )
    service.on_startup(ensure_indexes)
    service.subscribe(LeadQualified, handlers.on_lead_qualified)
    service.subscribe(LeadDisqualified, handlers.on_lead_disqualified)
    service.api.include_router(make_router(service.store, team))

    newest: datetime | None = None

    async def measure_newest_capture() -> None:
        nonlocal newest
        newest = await newest_capture(service.store.db, since=newest)
        metrics.last_captured.set(newest.timestamp() if newest else 0)

    service.add_worker(
        "capture-gauge", refreshing("capture", measure_newest_capture, settings.metrics_refresh_interval_s)
    )
    return service
