"""The forecast routes over the in-memory store: quotas and calls by role, the forecast in JSON and CSV,
bad input named."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_reports.adapters.in_memory import InMemoryReportsUnitOfWork
from kariz_reports.entrypoints import forecast_http, kafka
from kariz_reports.service_layer import snapshots
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


async def test_what_changed_since_the_snapshot_in_json_and_csv_each_seeing_their_own(
    events, issuer: LocalIssuer
) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock(events.now)  # Tuesday 2026-03-10: the snapshot falls due Monday 2026-03-16
    units = InMemoryUnitsOfWork(InMemoryReportsUnitOfWork(clock, teams=Teams()))
    table = kafka.subscriptions()
    schedule = ReportsSettings().snapshot_schedule

    def standing(event, category: str, close: date):  # type: ignore[no-untyped-def]
        update = {"probability": Decimal("0.5"), "forecast_category": category, "expected_close_date": close}
        return event.model_copy(update=update)

    for event in (
        standing(events.opened("D-1", "L-1", amount=Decimal("40000")), "best_case", date(2026, 3, 31)),
        standing(
            events.opened("D-2", "L-2", owner="kim@kariz.test", amount=Decimal("9000")),
            "pipeline",
            date(2026, 3, 20),
        ),
    ):
        await units.handle(table[type(event)], event)
    app = FastAPI()
    runtime_http.install(app, "reports")
    accepting(app, issuer, teams=TEAMS)
    app.include_router(forecast_http.router(units, units, clock, ReportsSettings()))
    maria = as_(issuer, "maria@kariz.test", "manager", "emea")
    alex = as_(issuer, "alex@kariz.test", "rep")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kariz.test") as api:
        none_yet = await api.get("/forecast/changes", headers=maria)
        assert none_yet.status_code == 404 and "since" in none_yet.text
        await units.run(lambda uow: snapshots.arm_snapshots(uow, schedule))
        clock.set(datetime(2026, 3, 16, tzinfo=UTC))
        [due] = await units.fire_due_timers()
        await units.handle(kafka.on_snapshot_due(schedule), due)
        committed = events.moved("D-1", "demo", "negotiation", 7, lead_id="L-1", amount=Decimal("40000"))
        later = standing(committed, "commit", date(2026, 3, 31))
        await units.handle(table[type(later)], later)

        listed = (await api.get("/forecast/snapshots", headers=alex)).json()
        assert [s["id"] for s in listed] == [due.snapshot_id]
        answer = await api.get("/forecast/changes?period=this_quarter&by=rep", headers=maria)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        # Maria manages emea: Alex's deal, not Kim's.
        assert [(d["deal_id"], d["changes"]) for d in body["deals"]] == [("D-1", ["category"])]
        assert body["items"][0]["rep"] == "alex@kariz.test"
        assert body["all"]["category_moves"] == {"best_case->commit": {"count": 1, "amount": 40000.0}}
        csv_text = (await api.get("/forecast/changes?by=rep", headers={**maria, "Accept": "text/csv"})).text
        header, whole, alex_row = csv_text.splitlines()
        assert header.startswith("report,period,from,to,rep,categories.pipeline.then.count")
        assert "category_moves.best_case->commit.count" in header
        assert whole.startswith("forecast-changes,2026-Q1,2026-01-01,2026-03-31,all,")
        assert alex_row.split(",")[4] == "alex@kariz.test"
        kim = as_(issuer, "kim@kariz.test", "rep")
        hers = (await api.get("/forecast/changes", headers=kim)).json()
        assert hers["deals"] == [] and hers["all"]["categories"]["pipeline"]["then"]["count"] == 1
        assert hers["all"]["categories"]["best_case"]["then"]["count"] == 0  # Alex's is not hers
        bad_since = await api.get("/forecast/changes?since=weekly:nope", headers=maria)
        assert bad_since.status_code == 404 and "since" in bad_since.text
        for query, field in (
            ("period=someday", "period"),
            ("by=colour", "by"),
            ("since=" + "x" * 201, "since"),
        ):
            bad = await api.get(f"/forecast/changes?{query}", headers=maria)
            assert bad.status_code == 422 and field in bad.text, (query, bad.text)
        assert (await api.get("/forecast/snapshots?limit=0", headers=maria)).status_code == 422
        assert (await api.get("/forecast/changes")).status_code == 401
