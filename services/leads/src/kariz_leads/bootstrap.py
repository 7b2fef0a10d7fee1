"""Wiring: the leads service from its settings. ``build()`` does no I/O (the AsyncAPI generator calls it)."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from kariz_leads.adapters.metrics import NewestCaptureGauge, start_queues_at_zero
from kariz_leads.adapters.mongo.indexes import ensure_indexes
from kariz_leads.adapters.mongo.roster import seed_rule_versions
from kariz_leads.adapters.mongo.unit_of_work import MongoLeadsUnitOfWork
from kariz_leads.domain import SalesTeam
from kariz_leads.entrypoints import (
    activities,
    assignment,
    duplicates,
    http,
    import_worker,
    kafka,
    merge,
    roster,
    tasks,
)
from kariz_leads.service_layer.roster_store import RulesInForce
from kariz_leads.settings import LeadsSettings
from kariz_shared.contracts.events import LeadResponseEscalationDue
from kariz_shared.persistence.unit_of_work import MongoUnitsOfWork
from kariz_shared.runtime.clock import Clock
from kariz_shared.runtime.periodic import refreshing
from kariz_shared.service import Service
from kariz_shared.system import service as registered


def build(settings: LeadsSettings | None = None, clock: Clock | None = None) -> Service:
    settings = settings or LeadsSettings()
    team = SalesTeam.of(settings.reps, settings.territories)
    # Per source and priority, in the teams' business hours, with its escalation (README, "Time as events").
    sla = settings.response_sla()
    service = Service(
        settings,
        title="Kariz leads",
        description="Captures leads from every source, normalises them, folds duplicates into touches, "
        "assigns an owner by territory or round robin, and publishes LeadCaptured; a lead still new a "
        "response SLA after capture is published as LeadResponseOverdue.",
        publishes=registered("leads").publishes,
        clock=clock,
    )
    # Captures assign by the process's copy of the assignment rules in force, refreshed now and then.
    rules_in_force = RulesInForce(
        timedelta(seconds=settings.assignment_rules_refresh_s), number=lambda version: version.number
    )
    units = MongoUnitsOfWork(
        service.store, service.clock, partial(MongoLeadsUnitOfWork, rules_in_force=rules_in_force)
    )
    service.on_startup(ensure_indexes)
    service.on_startup(partial(seed_rule_versions, clock=service.clock))
    # Web forms, partner feeds and scanners capture with keys (scopes leads:capture, leads:import).
    service.accept_api_keys()
    service.limit_rates()
    for event, handle in kafka.SUBSCRIPTIONS.items():
        service.subscribe(event, units.handler(handle))
    service.subscribe(LeadResponseEscalationDue, units.handler(kafka.on_response_escalation_due(team, sla)))
    service.api.include_router(
        http.router(units, team, sla, import_timeout_s=settings.consumer_transaction_timeout_s)
    )
    # A manager hands leads to the reps of their team as the live roster has it (KARIZ_TEAMS, /reps).
    service.api.include_router(assignment.router(units, sla, service.roster))
    service.api.include_router(duplicates.router(units))
    service.api.include_router(merge.router(units))
    service.api.include_router(activities.router(units))
    service.api.include_router(tasks.router(units))
    service.api.include_router(roster.router(units))  # /reps and /assignment-rules
    import_worker.install(service, units, team, sla, settings)  # CSV imports: routes and worker
    start_queues_at_zero(settings.teams)
    gauge = NewestCaptureGauge(service.store)
    service.add_worker(
        "capture-gauge", refreshing("capture", gauge.refresh, settings.metrics_refresh_interval_s)
    )
    return service
