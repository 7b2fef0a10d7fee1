"""The forecast routes over the in-memory store: quotas and calls by role, the forecast in JSON and CSV,
bad input named."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_reports.adapters.in_memory import InMemoryReportsUnitOfWork
from kariz_reports.entrypoints import forecast_http, kafka
from kariz_reports.settings import ReportsSettings
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as runtime_http
from kariz_shared.runtime.clock import FakeClock

TEAMS = {"emea": ["alex@kariz.test", "sam@kariz.test"], "apac": ["kim@kariz.test"]}


class Teams:
    def team_of(self, email: str) -> str | None:
        return next((t for t, members in TEAMS.items() if email in members), None)


@pytest.fixture
async def api(events, issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    clock = FakeClock(events.now)  # 2026-03-10: this quarter is 2026-Q1
    units = InMemoryUnitsOfWork(InMemoryReportsUnitOfWork(clock, teams=Teams()))
    table = kafka.subscriptions()
    opened = events.opened("D-1", "L-1", amount=Decimal("40000")).model_copy(
        update={
            "probability": Decimal("0.6"),
            "forecast_category": "best_case",
            "expected_close_date": date(2026, 3, 31),
        }
    )
    await units.handle(table[type(opened)], opened)
    app = FastAPI()
    runtime_http.install(app, "reports")
    accepting(app, issuer, teams=TEAMS)
    app.include_router(forecast_http.router(units, units, clock, ReportsSettings()))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kariz.test"
    ) as client:
        yield client


def as_(issuer: LocalIssuer, user: str, role: str, team: str | None = None) -> dict[str, str]:
    return bearer(issuer.token(user, [role], team=team))


async def test_a_manager_sets_a_quota_a_rep_calls_and_the_forecast_shows_both(
    api: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    maria = as_(issuer, "maria@kariz.test", "manager", "emea")
    alex = as_(issuer, "alex@kariz.test", "rep")
    put = await api.put(
        "/quotas", json={"period": "this_quarter", "rep": "Alex@Kariz.test", "amount": 100000}, headers=maria
    )
    assert put.status_code == 200, put.text
    assert (put.json()["period"], put.json()["whom"]) == ("2026-Q1", "rep:alex@kariz.test")
    call = await api.post(
        "/forecast/calls", json={"period": "2026-Q1", "commit": 0, "best_case": 40000}, headers=alex
    )
    assert call.status_code == 201 and call.json()["kind"] == "call"
    answer = (await api.get("/forecast?by=rep", headers=maria)).json()
    [line] = answer["items"]
    assert (line["rep"], line["quota"], line["gap"], line["best_case_forecast"]) == (
        "alex@kariz.test",
        100000.0,
        100000.0,
        40000.0,
    )
    assert (
        line["categories"]["best_case"]["weighted_amount"] == 24000.0 and line["call"]["best_case"] == 40000.0
    )
    mine = (await api.get("/forecast", headers=alex)).json()
    assert mine["all"]["quota"] == 100000.0  # the rep's own line is theirs
    csv_text = (await api.get("/forecast?by=rep&format=csv", headers=maria)).text
    assert csv_text.splitlines()[0].startswith("report,period,from,to,rep") and "alex@kariz.test" in csv_text
    # Each sees the quotas and calls they may: Kim (apac) none of emea's.
    kim = as_(issuer, "kim@kariz.test", "rep")
    assert (await api.get("/quotas?period=2026-Q1", headers=kim)).json() == []
    assert len((await api.get("/forecast/calls?period=2026-Q1", headers=maria)).json()) == 1


async def test_refusals_say_why_and_name_the_field(api: httpx.AsyncClient, issuer: LocalIssuer) -> None:
    alex = as_(issuer, "alex@kariz.test", "rep")
    maria = as_(issuer, "maria@kariz.test", "manager", "emea")
    refused = await api.put(
        "/quotas", json={"period": "this_quarter", "rep": "alex@kariz.test", "amount": 5}, headers=alex
    )
    assert refused.status_code == 403
    other_team = await api.put(
        "/quotas", json={"period": "this_quarter", "team": "apac", "amount": 5}, headers=maria
    )
    assert other_team.status_code == 403 and "team:" in other_team.text
    for body, field in (
        ({"period": "2026-Q9", "team": "emea", "amount": 5}, "period"),
        ({"period": "this_quarter", "team": "emea", "amount": -1}, "amount"),
        ({"period": "this_quarter", "team": "emea", "amount": "lots"}, "amount"),
        ({"period": "this_quarter", "team": "emea", "amount": 5, "colour": "red"}, "colour"),
    ):
        bad = await api.put("/quotas", json=body, headers=maria)
        assert bad.status_code == 422 and field in bad.text, (body, bad.text)
    unnoted = await api.post(
        "/forecast/calls",
        json={"period": "this_quarter", "rep": "sam@kariz.test", "commit": 1, "best_case": 2},
        headers=maria,
    )
    assert unnoted.status_code == 422 and "note" in unnoted.text
    assert (await api.get("/forecast?period=someday", headers=maria)).status_code == 422
    assert (await api.get("/forecast")).status_code == 401
    assert (await api.get("/forecast/calls?period=this_quarter", headers=maria)).json() == []
