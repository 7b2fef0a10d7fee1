"""The roster's and the assignment rules' routes on the in-memory unit of work, with real tokens: who may
call what, bad input answered 422 naming the field, ETag and If-Match (409 when stale), and a queued
lead handed to a rep by its team's manager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_leads.adapters.in_memory import InMemoryLeadsUnitOfWork
from kariz_leads.domain import ResponseSla, SalesTeam
from kariz_leads.entrypoints import assignment, roster
from kariz_leads.service_layer import handlers
from kariz_leads.service_layer.commands import CaptureLead
from kariz_shared.contracts.events import Company, Contact, LeadReassigned, LeadSource, RepProfile
from kariz_shared.contracts.identity import Actor, Roster
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock

Units: TypeAlias = InMemoryUnitsOfWork[InMemoryLeadsUnitOfWork]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SLA = ResponseSla(timedelta(hours=4))
TEAMS = {"dach": ["jonas@kariz.example"]}


@pytest.fixture
def units() -> Units:
    return InMemoryUnitsOfWork(InMemoryLeadsUnitOfWork(FakeClock(T0)))


@pytest_asyncio.fixture
async def api(units: Units, issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    shared_http.install(app, "leads")
    accepting(app, issuer, teams=TEAMS)
    app.include_router(roster.router(units))
    app.include_router(assignment.router(units, SLA, Roster.of(TEAMS)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://leads") as client:
        yield client


def as_(issuer: LocalIssuer, who: str, role: str, team: str | None = "dach") -> dict[str, str]:
    return bearer(issuer.token(who, [role], team=team))


def a_rep(**fields: Any) -> dict[str, Any]:
    return {"name": "Ana Vogel", "team": "dach", "time_zone": "Europe/Berlin", "weight": 2, **fields}


def fields_of(response: httpx.Response) -> list[str]:
    return [f["field"] for f in response.json().get("fields") or []]


async def test_who_may_keep_the_roster(api: httpx.AsyncClient, units: Units, issuer: LocalIssuer) -> None:
    admin = as_(issuer, "root@kariz.example", "admin", None)
    kim = as_(issuer, "kim@kariz.example", "manager")
    olga = as_(issuer, "olga@kariz.example", "manager", "apac")
    rep = as_(issuer, "jonas@kariz.example", "rep")

    created = await api.put("/reps/Ana@Kariz.example", json=a_rep(), headers=kim)
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["email"], body["actor"], body["weight"]) == ("ana@kariz.example", "kim@kariz.example", 2)
    replaced = await api.put("/reps/ana@kariz.example", json=a_rep(active=False), headers=kim)
    assert replaced.status_code == 200 and replaced.json()["active"] is False
    assert [p.active for p in units.of_type(RepProfile)] == [True, False]

    # A manager moves nobody to another team, and sees no other team's reps.
    moved = await api.put("/reps/ana@kariz.example", json=a_rep(team="apac"), headers=kim)
    assert moved.status_code == 403 and "team" in moved.json()["message"]
    assert (await api.put("/reps/ana@kariz.example", json=a_rep(), headers=olga)).status_code == 404
    assert (await api.get("/reps/ana@kariz.example", headers=olga)).status_code == 404
    assert (await api.get("/reps", headers=olga)).json()["items"] == []
    assert (
        await api.put("/reps/cy@kariz.example", json=a_rep(team="apac"), headers=admin)
    ).status_code == 201
    assert [r["email"] for r in (await api.get("/reps", headers=kim)).json()["items"]] == [
        "ana@kariz.example"
    ]
    assert (await api.get("/reps", headers=admin)).json()["total"] == 2
    for call in (api.get("/reps", headers=rep), api.put("/reps/x@kariz.example", json=a_rep(), headers=rep)):
        assert (await call).status_code == 403


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"weight": 0}, "weight"),
        ({"capacity": 0}, "capacity"),
        ({"team": ""}, "team"),
        ({"away_until": "2026-03-03T09:00:00"}, "away_until"),
        ({"shoe_size": 44}, "shoe_size"),
    ],
)
async def test_a_bad_rep_is_refused_naming_the_field(
    api: httpx.AsyncClient, issuer: LocalIssuer, change: dict[str, Any], field: str
) -> None:
    admin = as_(issuer, "root@kariz.example", "admin", None)
    refused = await api.put("/reps/ana@kariz.example", json=a_rep(**change), headers=admin)
    assert refused.status_code == 422, refused.text
    assert fields_of(refused) == [field]
    bad_address = await api.put("/reps/not-an-address", json=a_rep(), headers=admin)
    assert bad_address.status_code == 422 and "email" in bad_address.json()["message"]


DACH_RULE = {"name": "DACH", "team": "dach", "countries": ["de", "AT"]}


async def test_rules_are_versioned_with_etag_and_if_match(
    api: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    admin = as_(issuer, "root@kariz.example", "admin", None)
    kim = as_(issuer, "kim@kariz.example", "manager")
    first = await api.get("/assignment-rules", headers=kim)
    assert first.status_code == 200 and first.headers["ETag"] == '"0"' and first.json()["rules"] == []
    put = await api.put(
        "/assignment-rules", json={"rules": [DACH_RULE]}, headers={**admin, "If-Match": '"0"'}
    )
    assert put.status_code == 200, put.text
    assert put.headers["ETag"] == '"1"' and put.json()["rules"][0]["countries"] == ["AT", "DE"]
    stale = await api.put("/assignment-rules", json={"rules": []}, headers={**admin, "If-Match": '"0"'})
    assert stale.status_code == 409 and "version 1 is in force" in stale.json()["message"]
    assert (await api.put("/assignment-rules", json={"rules": []}, headers=kim)).status_code == 403
    assert (
        await api.get("/assignment-rules", headers=as_(issuer, "jonas@kariz.example", "rep"))
    ).status_code == 403
    versions = (await api.get("/assignment-rules/versions", headers=kim)).json()
    assert [(v["version"], v["actor"], v["rules"]) for v in versions["items"]] == [
        (1, "root@kariz.example", 1),
        (0, "kariz", 0),
    ]
    one = await api.get("/assignment-rules/versions/1", headers=kim)
    assert one.json()["rules"][0]["name"] == "DACH"
    assert (await api.get("/assignment-rules/versions/7", headers=kim)).status_code == 404


@pytest.mark.parametrize(
    ("rules", "field", "says"),
    [
        ([{**DACH_RULE, "sources": ["carrier_pigeon"]}], "rules.0.sources.0", "web_form"),
        ([{**DACH_RULE, "regions": ["MARS"]}], "rules.0.regions.0", "EMEA"),
        ([{**DACH_RULE, "size_min": 500, "size_max": 10}], "rules.0", "size_min"),
        ([{**DACH_RULE, "team": " "}], "rules.0", "team"),
        ([{**DACH_RULE, "countries": ["Atlantis"]}], "rules.0", "countries[0]"),
        ([DACH_RULE, {**DACH_RULE, "countries": ["FR"]}], "body", "rules[1].name"),
        ([{"name": "all", "team": "inbound"}, DACH_RULE], "body", "rules[0]"),
    ],
)
async def test_a_bad_rule_is_refused_naming_the_field(
    api: httpx.AsyncClient, issuer: LocalIssuer, rules: list[dict[str, Any]], field: str, says: str
) -> None:
    admin = as_(issuer, "root@kariz.example", "admin", None)
    refused = await api.put("/assignment-rules", json={"rules": rules}, headers=admin)
    assert refused.status_code == 422, refused.text
    assert fields_of(refused) == [field] and says in refused.json()["message"]
    assert (await api.get("/assignment-rules", headers=admin)).headers["ETag"] == '"0"'  # nothing changed


async def test_the_teams_manager_hands_a_queued_lead_to_a_rep(
    api: httpx.AsyncClient, units: Units, issuer: LocalIssuer
) -> None:
    admin = as_(issuer, "root@kariz.example", "admin", None)
    kim = as_(issuer, "kim@kariz.example", "manager")
    olga = as_(issuer, "olga@kariz.example", "manager", "apac")
    away = (T0 + timedelta(days=1)).isoformat()
    assert (
        await api.put("/reps/ana@kariz.example", json=a_rep(away_until=away), headers=kim)
    ).status_code == 201
    await api.put("/assignment-rules", json={"rules": [DACH_RULE]}, headers=admin)
    command = CaptureLead(
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@acme.example"),
        company=Company(name="Acme", country="DE"),
        source=LeadSource.WEB_FORM,
    )
    team = SalesTeam.of(["alex@kariz.example"])
    lead = (await handlers.capture_lead(units, team, SLA, command, correlation_id="c", by=Actor("x"))).lead
    assert lead.owner == "queue:dach"

    handing = {"owner": "ana@kariz.example", "reason": "Ana takes the DACH queue today"}
    assert (await api.post(f"/leads/{lead.id}/assign", json=handing, headers=olga)).status_code == 404
    handed = await api.post(f"/leads/{lead.id}/assign", json=handing, headers=kim)
    assert handed.status_code == 200, handed.text
    assert (handed.json()["owner"], handed.json()["assigned_by"]) == ("ana@kariz.example", "manual")
    [event] = units.of_type(LeadReassigned)
    assert (event.from_owner, event.to_owner) == ("queue:dach", "ana@kariz.example")
