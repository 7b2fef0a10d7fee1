"""Wiring: the qualification service. ``build()`` does no I/O (the AsyncAPI generator calls it)."""

from __future__ import annotations

from kariz_qualification.adapters.mongo.indexes import prepare
from kariz_qualification.adapters.mongo.unit_of_work import MongoQualificationUnitOfWork
from kariz_qualification.entrypoints import engagements, http, kafka, scoring
from kariz_qualification.settings import QualificationSettings
from kariz_shared.persistence.store import Store
from kariz_shared.persistence.unit_of_work import MongoUnitsOfWork
from kariz_shared.runtime.clock import Clock
from kariz_shared.service import Service
from kariz_shared.system import service as registered


def build(settings: QualificationSettings | None = None, clock: Clock | None = None) -> Service:
    settings = settings or QualificationSettings()
    service = Service(
        settings,
        title="Kariz qualification",
        description=(
            "Scores captured leads for fit (and, after a qualification call, BANT answers) with an editable "
            "rule set, and decides once: qualified, disqualified with a reason, or nurtured until it can."
        ),
        publishes=registered("qualification").publishes,
        clock=clock,
    )
    units = MongoUnitsOfWork(service.store, service.clock, MongoQualificationUnitOfWork)

    async def prepare_database(store: Store) -> None:
        await prepare(store, service.clock)

    service.on_startup(prepare_database)
    service.subscribe_all(units, kafka.SUBSCRIPTIONS)
    service.api.include_router(http.router(units))
    service.api.include_router(scoring.router(units))
    # Marketing systems report engagement with keys issued here (scope engagements:record).
    service.accept_api_keys()
    service.api.include_router(engagements.router(units))
    return service
