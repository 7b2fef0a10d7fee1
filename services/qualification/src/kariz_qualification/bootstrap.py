"""Wiring: the qualification service. ``build()`` does no I/O (the AsyncAPI generator calls it)."""

from __future__ import annotations

from kariz_qualification import api, handlers, service_layer
from kariz_qualification.settings import QualificationSettings
from kariz_shared.contracts.events import LeadCaptured, LeadDisqualified, LeadQualified
from kariz_shared.service import Service


def build(settings: QualificationSettings | None = None) -> Service:
    settings = settings or QualificationSettings()
    service = Service(
        settings,
        title="Kariz qualification",
        description=(
            "Scores captured leads for fit (and, after a qualification call, BANT answers) with an editable "
            "rule set, and decides once: qualified, disqualified with a reason, or nurtured until it can."
        ),
        publishes=[LeadQualified, LeadDisqualified],
    )
    service.on_startup(service_layer.prepare)
    service.subscribe(LeadCaptured, handlers.on_lead_captured)
    service.api.include_router(api.router(service.store))
    return service
