"""Every route of every service, fuzzed from its own OpenAPI document (Schemathesis, property-based):
no input, valid or not, gets a 5xx. Each service's real routers run on its in-memory unit of work and
check real tokens of the test issuer, so the requests reach the handlers, not just the sign-in check.

The API-key routes (``/api-keys``, a MongoDB store) are fuzzed nowhere yet: they sit outside the routers
these apps mount (issue B goes on)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis
from fastapi import APIRouter, FastAPI
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error

from kariz_deals.adapters.in_memory import InMemoryDealReads, InMemoryDealsUnitOfWork
from kariz_deals.domain import DEFAULT_PIPELINE
from kariz_deals.entrypoints import catalogue as deals_catalogue
from kariz_deals.entrypoints import contracts as deals_contracts
from kariz_deals.entrypoints import http as deals_http
from kariz_deals.entrypoints import opening as deals_opening
from kariz_deals.entrypoints import pipelines as deals_pipelines
from kariz_deals.entrypoints import quotes as deals_quotes
from kariz_deals.service_layer.quotes import QuotePolicy
from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_leads.adapters.in_memory import InMemoryLeadsUnitOfWork
from kariz_leads.domain import ResponseSla, SalesTeam
from kariz_leads.entrypoints import activities as leads_activities
from kariz_leads.entrypoints import assignment as leads_assignment
from kariz_leads.entrypoints import duplicates as leads_duplicates
from kariz_leads.entrypoints import http as leads_http
from kariz_leads.entrypoints import imports as leads_imports
from kariz_leads.entrypoints import merge as leads_merge
from kariz_leads.entrypoints import roster as leads_roster
from kariz_leads.entrypoints import tasks as leads_tasks
from kariz_notifications.adapters.in_memory import InMemoryNotificationsReads, InMemoryNotificationsUnitOfWork
from kariz_notifications.domain.unsubscribe import UnsubscribeLinks
from kariz_notifications.entrypoints import content_http as notifications_content
from kariz_notifications.entrypoints import http as notifications_http
from kariz_notifications.entrypoints import subscriptions_http as notifications_subscriptions
from kariz_qualification.adapters.in_memory import InMemoryQualificationUnitOfWork
from kariz_qualification.entrypoints import engagements as qualification_engagements
from kariz_qualification.entrypoints import http as qualification_http
from kariz_reports.adapters.in_memory import InMemoryReportsUnitOfWork
from kariz_reports.entrypoints import http as reports_http
from kariz_reports.settings import ReportsSettings
from kariz_shared.contracts.identity import LiveRoster, Roster
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def deals_quotes_routers(units: InMemoryUnitsOfWork[InMemoryDealsUnitOfWork]) -> APIRouter:
    """The deals service's catalogue, quotes and contract routes, the e-sign webhook among them."""
    quotes = APIRouter()
    for router in (
        deals_catalogue.router(units),
        deals_quotes.router(units, QuotePolicy(), LiveRoster()),
        deals_contracts.router(units),
        deals_contracts.webhook_router(units, SecretStr("fuzz-secret")),
    ):
        quotes.include_router(router)
    return quotes


def routers() -> dict[str, APIRouter]:
    clock = FakeClock(T0)
    deals = InMemoryDealsUnitOfWork(clock)
    notifications = InMemoryNotificationsUnitOfWork(clock)
    leads_units = InMemoryUnitsOfWork(InMemoryLeadsUnitOfWork(clock))
    qualification_units = InMemoryUnitsOfWork(InMemoryQualificationUnitOfWork(clock))
    leads = APIRouter()
    for router in (
        leads_http.router(leads_units, SalesTeam.of(["alex@kariz.example"]), ResponseSla(timedelta(hours=4))),
        leads_duplicates.router(leads_units),
        leads_merge.router(leads_units),
        leads_assignment.router(
            leads_units, ResponseSla(timedelta(hours=4)), Roster.of({"emea": ["alex@kariz.example"]})
        ),
        leads_activities.router(leads_units),
        leads_tasks.router(leads_units),
        leads_roster.router(leads_units),
        leads_imports.router(leads_units, SalesTeam.of(["alex@kariz.example"])),
    ):
        leads.include_router(router)
    deals_units = InMemoryUnitsOfWork(deals)
    deals_routes = APIRouter()
    deals_routes.include_router(
        deals_http.router(
            deals_units, InMemoryDealReads(deals), pipeline=DEFAULT_PIPELINE, default_currency="EUR"
        )
    )
    deals_routes.include_router(deals_pipelines.router(deals_units))
    deals_routes.include_router(
        deals_opening.router(
            deals_units,
            Roster.of({"emea": ["alex@kariz.example"]}),
            pipeline=DEFAULT_PIPELINE,
            default_currency="EUR",
        )
    )
    return {
        "leads": leads,
        "qualification": qualification_http.router(qualification_units),
        "qualification: engagements": qualification_engagements.router(qualification_units),
        "deals": deals_routes,
        "deals-quotes": deals_quotes_routers(deals_units),
        "notifications": notifications_http.router(InMemoryNotificationsReads(notifications)),
        "notifications: content": notifications_content.router(
            InMemoryUnitsOfWork(
                InMemoryNotificationsUnitOfWork(clock, links=UnsubscribeLinks("f" * 40, "http://kariz.test"))
            )
        ),
        "notifications: subscriptions": notifications_subscriptions.router(
            InMemoryUnitsOfWork(InMemoryNotificationsUnitOfWork(clock)), allow_http=False
        ),
        "reports": reports_http.router(
            InMemoryUnitsOfWork(InMemoryReportsUnitOfWork(clock)), clock, ReportsSettings()
        ),
    }


def every_route(issuer: LocalIssuer) -> FastAPI:
    app = FastAPI(title="Kariz, every service's routes")
    shared_http.install(app, "fuzz")
    accepting(app, issuer, teams={"emea": ["alex@kariz.example"]})
    for router in routers().values():
        app.include_router(router)
    return app


# Schemathesis reads the schema when the module is collected, before any fixture: this module signs its
# requests with an issuer of its own (the same LocalIssuer the session's fixture is), serving for the
# rest of the test process.
ISSUER = LocalIssuer().start()
schema = schemathesis.openapi.from_asgi("/openapi.json", every_route(ISSUER))
HEADERS = bearer(ISSUER.token("fuzz@kariz.test", ["admin"], ttl_s=24 * 3600))


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_route_answers_5xx(case: Any) -> None:
    case.call_and_validate(headers=HEADERS, checks=[not_a_server_error])
