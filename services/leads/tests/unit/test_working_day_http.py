"""The working day's routes on the in-memory unit of work, with real tokens: who may call what (403 for
a role, 404 out of reach, 401 without a token), and bad input answered 422 naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_leads.adapters.in_memory import InMemoryLeadsUnitOfWork
from kariz_leads.domain import Lead, ResponseSla, SalesTeam
from kariz_leads.entrypoints import activities, tasks
from kariz_leads.service_layer import handlers
from kariz_leads.service_layer.commands import CaptureLead
from kariz_shared.contracts.events import Company, Contact, LeadSource
from kariz_shared.contracts.identity import Actor
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock

Units: TypeAlias = InMemoryUnitsOfWork[InMemoryLeadsUnitOfWork]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ALEX, SAM = "alex@kariz.example", "sam@kariz.example"
TEAMS = {"emea": [ALEX, SAM]}


@pytest.fixture
def units() -> Units:
    return InMemoryUnitsOfWork(InMemoryLeadsUnitOfWork(FakeClock(T0)))


@pytest_asyncio.fixture
async def api(units: Units, issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    shared_http.install(app, "leads")
    accepting(app, issuer, teams=TEAMS)
    app.include_router(activities.router(units))
    app.include_router(tasks.router(units))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://leads") as client:
        yield client


async def alexs_lead(units: Units) -> Lead:
    command = CaptureLead(
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@analytical.example"),
        company=Company(name="Analytical Engines"),
        source=LeadSource.WEB_FORM,
    )
    team, sla = SalesTeam.of([ALEX]), ResponseSla(timedelta(hours=4))
    return (await handlers.capture_lead(units, team, sla, command, correlation_id="c", by=Actor(ALEX))).lead


def as_(issuer: LocalIssuer, who: str, *roles: str) -> dict[str, str]:
    return bearer(issuer.token(who, list(roles) or ["rep"], team="emea"))


async def test_who_may_log_open_and_reassign(
    api: httpx.AsyncClient, units: Units, issuer: LocalIssuer
) -> None:
    lead = await alexs_lead(units)
    alex, sam = as_(issuer, ALEX), as_(issuer, SAM)
    manager, outsider_manager = (
        as_(issuer, "maria@kariz.example", "manager"),
        bearer(issuer.token("olga@kariz.example", ["manager"], team="apac")),
    )
    due = (T0 + timedelta(hours=2)).isoformat()
    follow_up = {"kind": "call_back", "title": "Call back", "due_at": due}

    opened = await api.post(f"/leads/{lead.id}/follow-ups", json=follow_up, headers=alex)
    assert opened.status_code == 201, opened.text
    task_id = opened.json()["id"]
    assert (await api.post(f"/leads/{lead.id}/follow-ups", json=follow_up, headers=sam)).status_code == 404
    assert (await api.get(f"/tasks/{task_id}", headers=sam)).status_code == 404
    for_sam = await api.post(
        f"/leads/{lead.id}/follow-ups", json={**follow_up, "assignee": SAM}, headers=alex
    )
    assert for_sam.status_code == 403 and "follow-ups to" in for_sam.json()["message"]

    refused = await api.post(f"/tasks/{task_id}/reassign", json={"assignee": SAM}, headers=alex)
    assert refused.status_code == 403 and "manager or admin" in refused.json()["message"]
    elsewhere = await api.post(f"/tasks/{task_id}/reassign", json={"assignee": SAM}, headers=outsider_manager)
    assert elsewhere.status_code == 404
    outside = await api.post(
        f"/tasks/{task_id}/reassign", json={"assignee": "kim@kariz.example"}, headers=manager
    )
    assert outside.status_code == 403
    moved = await api.post(f"/tasks/{task_id}/reassign", json={"assignee": SAM}, headers=manager)
    assert moved.status_code == 200 and moved.json()["assignee"] == SAM
    assert [t["id"] for t in (await api.get("/tasks", headers=sam)).json()["items"]] == [task_id]
    assert (await api.get("/tasks", headers=alex)).json()["total"] == 0
    team = (await api.get("/tasks", params={"assignee": "*"}, headers=manager)).json()
    assert [t["id"] for t in team["items"]] == [task_id]

    done = await api.post(f"/tasks/{task_id}/complete", json={}, headers=sam)
    assert done.status_code == 200 and done.json()["status"] == "done"
    assert (await api.post(f"/tasks/{task_id}/cancel", headers=sam)).status_code == 409
    assert (await api.post("/tasks/nope/cancel", headers=sam)).status_code == 404


async def test_no_token_gets_401(api: httpx.AsyncClient, units: Units) -> None:
    lead = await alexs_lead(units)
    assert (await api.get("/tasks")).status_code == 401
    assert (await api.get(f"/leads/{lead.id}/timeline")).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channel": "call", "outcome": "reached", "duration_s": 86_401}, "duration_s"),
        ({"channel": "call", "outcome": "reached", "duration_s": "5"}, "duration_s"),
        ({"channel": "fax", "outcome": "reached"}, "channel"),
        ({"channel": "call", "outcome": "reached", "note": "x" * 5001}, "note"),
        (
            {"channel": "call", "outcome": "reached", "occurred_at": "9999-12-31T23:00:00-05:00"},
            "occurred_at",
        ),
        ({"channel": "call", "outcome": "reached", "occurred_at": "2026-03-02T10:00:00Z"}, "occurred_at"),
        (
            {
                "channel": "call",
                "outcome": "done",
                "follow_up": {"kind": "demo", "title": " ", "due_at": "2026-03-03"},
            },
            "follow_up.title",
        ),
        (
            {
                "channel": "call",
                "outcome": "done",
                "follow_up": {"kind": "demo", "title": "Demo", "due_at": "2026-03-01"},
            },
            "follow_up.due_at",
        ),
        (
            {
                "channel": "call",
                "outcome": "done",
                "follow_up": {"kind": "demo", "title": "Demo", "due_at": "2026-03-03", "assignee": "nobody"},
            },
            "follow_up.assignee",
        ),
    ],
)
async def test_bad_activities_are_refused_naming_the_field(
    api: httpx.AsyncClient, units: Units, issuer: LocalIssuer, body: dict[str, object], field: str
) -> None:
    lead = await alexs_lead(units)
    answer = await api.post(f"/leads/{lead.id}/activities", json=body, headers=as_(issuer, ALEX))
    assert answer.status_code == 422, answer.text
    named = [f["field"] for f in answer.json().get("fields") or []] or [answer.json()["message"]]
    assert any(n.startswith(field) for n in named), answer.json()
    assert units.published == [e for e in units.published if type(e).__name__ == "LeadCaptured"]


async def test_bad_task_queries_are_422(api: httpx.AsyncClient, issuer: LocalIssuer) -> None:
    alex = as_(issuer, ALEX)
    for params, field in (
        ({"assignee": "not an address"}, "assignee"),
        ({"status": "late"}, "status"),
        ({"overdue": "true", "status": "done"}, "status"),
        ({"due_before": "9999-12-31T23:00:00-05:00"}, "due_before"),
    ):
        answer = await api.get("/tasks", params=params, headers=alex)
        assert answer.status_code == 422, (params, answer.text)
        assert field in answer.text
