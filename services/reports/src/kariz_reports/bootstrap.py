"""Wiring: settings, the service, its consumers over the projections' generations, the reports API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from kariz_reports.adapters.mongo import (
    MongoPlansUnitOfWork,
    MongoReportsUnitOfWork,
    ensure_indexes,
    read_generations,
)
from kariz_reports.entrypoints import forecast_http, http, kafka
from kariz_reports.entrypoints.rebuild import Rebuild, refresh_gauges
from kariz_reports.service_layer import snapshots
from kariz_reports.service_layer.unit_of_work import ReportsUnitOfWork
from kariz_reports.settings import ReportsSettings
from kariz_shared import system
from kariz_shared.contracts.events import ForecastSnapshotDue
from kariz_shared.persistence.store import Store, Transaction
from kariz_shared.persistence.unit_of_work import MongoUnitsOfWork
from kariz_shared.runtime.clock import Clock
from kariz_shared.runtime.periodic import refreshing
from kariz_shared.service import Service

T = TypeVar("T")
Handle = Callable[[ReportsUnitOfWork, Any], Awaitable[None]]


class ActiveGeneration:
    """Queries on the generation the reports read now (looked up per query: a rebuild may switch it)."""

    def __init__(self, store: Store, clock: Clock, service: Service, settings: ReportsSettings) -> None:
        self.store, self.clock, self.service, self.settings = store, clock, service, settings

    async def read(self, work: Callable[[ReportsUnitOfWork], Awaitable[T]]) -> T:
        state = await read_generations(self.store.db)
        tx = Transaction(None, self.store.db, self.store.source, None, None)
        uow = MongoReportsUnitOfWork(tx, self.clock, state.active, self.service.roster, self.settings.zone)
        return await work(uow)


def build(settings: ReportsSettings | None = None, clock: Clock | None = None) -> Service:
    """The reports service, ready to run. No I/O happens here."""
    settings = settings or ReportsSettings()
    service = Service(
        settings,
        title="Kariz reports",
        description=(
            "Reports built from the public sales events alone: funnel, win rate, cycle length, velocity, "
            "outcomes, stages and activity, per period and dimension, against the previous period and the "
            "average of the four before."
        ),
        publishes=system.service("reports").publishes,
        clock=clock,
    )
    service.on_startup(ensure_indexes)
    # A BI tool reads the reports with a key issued here (scope reports:read).
    service.accept_api_keys()
    zone = settings.zone

    def in_generations(handle: Handle) -> Callable[[Any, Transaction], Awaitable[None]]:
        async def apply(event: Any, tx: Transaction) -> None:
            state = await tx.once("generations", lambda: read_generations(tx.db, tx.session))
            # The active generation and, while a rebuild runs, the one it fills.
            for generation in state.written:
                await handle(
                    MongoReportsUnitOfWork(tx, service.clock, generation, service.roster, zone), event
                )

        return apply

    for event_cls, handle in kafka.subscriptions().items():
        service.subscribe(event_cls, in_generations(handle))

    # The weekly forecast snapshot: its timer armed at start-up, its due event taken on the active
    # generation (a snapshot is the reports' own history, not a projection).
    schedule = settings.snapshot_schedule
    take = kafka.on_snapshot_due(schedule)

    async def snapshot_due(event: ForecastSnapshotDue, tx: Transaction) -> None:
        state = await read_generations(tx.db, tx.session)
        await take(MongoReportsUnitOfWork(tx, service.clock, state.active, service.roster, zone), event)

    service.subscribe(ForecastSnapshotDue, snapshot_due)
    service.add_worker(
        "generation-gauges",
        refreshing("generation", lambda: refresh_gauges(service.store), settings.metrics_refresh_interval_s),
    )
    reads = ActiveGeneration(service.store, service.clock, service, settings)
    service.api.include_router(http.router(reads, service.clock, settings))
    # Quotas and forecast calls: the reports' own records, written in a transaction of their own.
    plans = MongoUnitsOfWork(service.store, service.clock, MongoPlansUnitOfWork)

    async def arm_snapshots(_: Store) -> None:
        await plans.run(lambda uow: snapshots.arm_snapshots(uow, schedule))

    service.on_startup(arm_snapshots)
    service.api.include_router(forecast_http.router(reads, plans, service.clock, settings))
    return service


def rebuild(settings: ReportsSettings | None = None, clock: Clock | None = None) -> tuple[Service, Rebuild]:
    """The service (for its store and roster, not started) and a rebuild of its projections."""
    settings = settings or ReportsSettings()
    service = build(settings, clock)
    job = Rebuild(
        service.store,
        settings,
        service.clock,
        service.roster,
        settings.zone,
        dict(kafka.subscriptions()),
        progress_every=settings.rebuild_progress_every,
    )
    return service, job
