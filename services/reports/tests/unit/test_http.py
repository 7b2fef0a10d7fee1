"""The report routes over the in-memory projections: who sees which figures, JSON and CSV, bad input."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_reports.adapters.in_memory import InMemoryReportsUnitOfWork
from kariz_reports.entrypoints import http, kafka
from kariz_reports.settings import ReportsSettings
from kariz_shared.contracts.identity import Caller, KeyGrant, Scope
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as runtime_http
from kariz_shared.runtime.clock import FakeClock

TEAMS = {"emea": ["alex@kariz.test", "sam@kariz.test"]}


class Teams:
    def team_of(self, email: str) -> str | None:
        return next((t for t, members in TEAMS.items() if email in members), None)


class Keys:
    """A BI tool's key with reports:read, and a web form's without it."""

    KEYS = {
        "k-bi": (KeyGrant("bi1", "BI dashboards"), {Scope.REPORTS_READ}),
        "k-form": (KeyGrant("form1", "web form"), {Scope.LEADS_CAPTURE}),
    }

    async def caller(self, secret: str) -> Caller | None:
        found = self.KEYS.get(secret)
        return Caller.with_key(found[0], frozenset(found[1])) if found else None


@pytest.fixture
async def api(events, issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    clock = FakeClock(events.now + timedelta(days=12))
    units = InMemoryUnitsOfWork(InMemoryReportsUnitOfWork(clock, teams=Teams()))
    table = kafka.subscriptions()
    for event in [
        events.captured("L-1"),
        events.opened("D-1", "L-1"),
        events.won("D-1", "L-1"),
        events.captured("L-2", owner="sam@kariz.test", source="web_form"),
        events.captured("L-3", owner="kim@kariz.test"),
        events.captured("L-4", captured_at=events.now - timedelta(days=30)),  # February
    ]:
        await units.handle(table[type(event)], event)
    app = FastAPI()
    runtime_http.install(app, "reports")
    accepting(app, issuer, teams=TEAMS)
    app.state.api_keys = Keys()
    app.include_router(http.router(units, clock, ReportsSettings(report_time_zone="Europe/Berlin")))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kariz.test"
    ) as client:
        yield client


def as_(issuer: LocalIssuer, user: str, role: str, team: str | None = None) -> dict[str, str]:
    return bearer(issuer.token(user, [role], team=team))


async def test_an_admin_sees_everyones_funnel_by_source(api: httpx.AsyncClient, issuer: LocalIssuer) -> None:
    answer = (
        await api.get(
            "/reports/funnel?by=source&period=this_month", headers=as_(issuer, "a@kariz.test", "admin")
        )
    ).json()
    assert answer["period"] == {"label": "2026-03", "from": "2026-03-01", "to": "2026-03-31", "days": 31}
    assert answer["all"]["captured"] == 3 and answer["all"]["won"] == 1
    assert answer["all"]["previous"]["captured"] == 1  # February's
    assert {i["source"]: i["captured"] for i in answer["items"]} == {"referral": 2, "web_form": 1}


async def test_a_manager_sees_their_team_and_a_rep_their_own(
    api: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    manager = (
        await api.get("/reports/funnel", headers=as_(issuer, "maria@kariz.test", "manager", "emea"))
    ).json()
    assert manager["all"]["captured"] == 2  # alex and sam, not kim
    rep = (await api.get("/reports/funnel?by=rep", headers=as_(issuer, "sam@kariz.test", "rep"))).json()
    assert rep["all"]["captured"] == 1
    assert [i["rep"] for i in rep["items"]] == ["sam@kariz.test"]


async def test_csv_by_accept_or_format(api: httpx.AsyncClient, issuer: LocalIssuer) -> None:
    admin = as_(issuer, "a@kariz.test", "admin")
    for response in (
        await api.get("/reports/win-rate?by=source", headers={**admin, "Accept": "text/csv"}),
        await api.get("/reports/win-rate?by=source&format=csv", headers=admin),
    ):
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [r["source"] for r in rows] == ["all", "referral"]  # web_form closed no deal
        assert (rows[0]["won"], rows[0]["win_rate"], rows[0]["previous.won"]) == ("1", "1.0", "0")


async def test_explicit_dates_and_the_persian_calendar(api: httpx.AsyncClient, issuer: LocalIssuer) -> None:
    admin = as_(issuer, "a@kariz.test", "admin")
    days = (await api.get("/reports/funnel?from=2026-03-10&to=2026-03-10", headers=admin)).json()
    assert (days["period"]["days"], days["all"]["captured"]) == (1, 3)
    persian = (await api.get("/reports/funnel?period=this_month&calendar=persian", headers=admin)).json()
    # The clock says 2026-03-22: Farvardin 1405 began on 2026-03-21, after every capture.
    assert (persian["period"]["label"], persian["all"]["captured"]) == ("1405-01", 0)
    assert persian["all"]["previous"]["captured"] == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("period=next_month", "period"),
        ("by=colour", "by"),
        ("from=2026-03-10", "to"),
        ("from=2026-03-10&to=2026-03-01", "before from"),
        ("period=this_month&from=2026-03-01&to=2026-03-02", "not both"),
        ("from=2026-13-01&to=2026-03-01", "from"),
        ("calendar=mayan", "calendar"),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_field(
    api: httpx.AsyncClient, issuer: LocalIssuer, query: str, field: str
) -> None:
    response = await api.get(f"/reports/cycle?{query}", headers=as_(issuer, "a@kariz.test", "admin"))
    assert response.status_code == 422, response.text
    assert field in response.text


async def test_every_report_needs_a_credential(api: httpx.AsyncClient, issuer: LocalIssuer) -> None:
    for name in http.DESCRIPTIONS:
        assert (await api.get(f"/reports/{name}")).status_code == 401
        nobody = as_(issuer, "x@kariz.test", "auditor")
        assert (await api.get(f"/reports/{name}", headers=nobody)).status_code == 403
        ok = await api.get(f"/reports/{name}?by=team", headers=as_(issuer, "a@kariz.test", "admin"))
        assert ok.status_code == 200 and ok.json()["report"] == name


async def test_the_stages_csv_has_a_column_per_stage_and_figure(
    api: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    response = await api.get("/reports/stages?format=csv", headers=as_(issuer, "a@kariz.test", "admin"))
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 1 and rows[0]["all"] == "all"
    # The deal opened in qualification and was won from there: reached, never moved on by a stage change.
    assert (rows[0]["stages.qualification.reached"], rows[0]["stages.qualification.went_on"]) == ("1", "0")


async def test_a_key_with_reports_read_reads_the_organisations_figures_and_others_may_not(
    api: httpx.AsyncClient,
) -> None:
    bi = {"X-Api-Key": "k-bi"}
    funnel = await api.get("/reports/funnel", headers=bi)
    assert funnel.status_code == 200
    assert funnel.json()["all"]["captured"] == 3  # everyone's, as an admin sees it
    assert (await api.get("/reports/win-rate?format=csv", headers=bi)).status_code == 200
    refused = await api.get("/reports/funnel", headers={"X-Api-Key": "k-form"})
    assert refused.status_code == 403
    assert "reports:read" in refused.text
