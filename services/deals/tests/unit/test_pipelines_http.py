"""The pipelines API and deal edits over HTTP on the in-memory unit of work: who may read and change
them, versions in the ETag and If-Match, refused bodies naming their field, and PATCH /deals/{id} by B's
rules (owner, their manager, an admin; only a manager or an admin hands a deal to another rep)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from kariz_deals.adapters.in_memory import InMemoryDealReads, InMemoryDealsUnitOfWork
from kariz_deals.domain import DEFAULT_PIPELINE
from kariz_deals.entrypoints import pipelines
from kariz_deals.entrypoints.http import router
from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_shared.contracts.events import DealUpdated
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock

from .test_http import open_deal

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TEAMS = {"emea": ["rep@kariz.test", "kim@kariz.test"]}
Units: TypeAlias = InMemoryUnitsOfWork[InMemoryDealsUnitOfWork]

ENTERPRISE: dict[str, Any] = {
    "name": "enterprise",
    "stages": [
        {
            "name": "qualification",
            "probability": "0.1",
            "forecast_category": "pipeline",
            "exit_criteria": {"required": ["amount", "expected_close_date"]},
            "rot_days": 14,
        },
        {"name": "proposal", "probability": "0.6", "forecast_category": "best_case"},
    ],
    "routing": [{"segments": ["enterprise"]}],
}


@pytest.fixture
def units() -> Units:
    return InMemoryUnitsOfWork(InMemoryDealsUnitOfWork(FakeClock(T0)))


@pytest_asyncio.fixture
async def api(units: Units, issuer: LocalIssuer, admin_token: str) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    shared_http.install(app, "deals")
    accepting(app, issuer, teams=TEAMS)
    app.include_router(
        router(units, InMemoryDealReads(units.uow), pipeline=DEFAULT_PIPELINE, default_currency="EUR")
    )
    app.include_router(pipelines.router(units))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://deals", headers=bearer(admin_token)
    ) as client:
        yield client


async def test_an_admin_defines_and_replaces_a_pipeline_everyone_signed_in_reads_it(
    api: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    rep = bearer(issuer.token("rep@kariz.test", ["rep"], team="emea"))
    assert (await api.post("/pipelines", json=ENTERPRISE, headers=rep)).status_code == 403
    created = await api.post("/pipelines", json=ENTERPRISE)
    assert created.status_code == 201, created.text
    assert created.headers["ETag"] == '"1"'
    body = created.json()
    assert [s["name"] for s in body["stages"]] == ["qualification", "proposal", "won", "lost"]
    assert body["stages"][0]["exit_criteria"] == {
        "required": ["amount", "expected_close_date"],
        "checklist": [],
    }
    assert (body["version"], body["actor"], body["routing"][0]["segments"]) == (
        1,
        "admin@kariz.test",
        ["enterprise"],
    )
    assert (await api.post("/pipelines", json=ENTERPRISE)).status_code == 409

    listed = await api.get("/pipelines", headers=rep)
    assert [p["name"] for p in listed.json()] == ["default", "enterprise"]
    read = await api.get("/pipelines/enterprise", headers=rep)
    assert read.headers["ETag"] == '"1"' and read.json() == body

    replacement = {k: v for k, v in ENTERPRISE.items() if k != "name"}
    stale = await api.put("/pipelines/enterprise", json=replacement, headers={"If-Match": '"0"'})
    assert stale.status_code == 409 and "version 1 is in force" in stale.json()["message"]
    assert (await api.put("/pipelines/enterprise", json=replacement, headers=rep)).status_code == 403
    replaced = await api.put("/pipelines/enterprise", json=replacement, headers={"If-Match": '"1"'})
    assert replaced.status_code == 200 and replaced.headers["ETag"] == '"2"'
    assert (replaced.json()["deals_following"], replaced.json()["deals_moved"]) == (0, 0)
    versions = await api.get("/pipelines/enterprise/versions")
    assert [v["version"] for v in versions.json()["items"]] == [2, 1]
    assert (await api.get("/pipelines/enterprise/versions", headers=rep)).status_code == 403
    assert (await api.put("/pipelines/nowhere", json=replacement)).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stages": []}, "stages"),
        ({"stages": [{**ENTERPRISE["stages"][1], "name": "won"}]}, "stages"),
        ({"stages": [{**ENTERPRISE["stages"][1], "probability": "1.5"}]}, "stages.0.probability"),
        ({"stages": [{**ENTERPRISE["stages"][1], "rot_days": 0}]}, "stages.0.rot_days"),
        (
            {"stages": [{**ENTERPRISE["stages"][1], "exit_criteria": {"required": ["budget"]}}]},
            "stages.0.exit_criteria",
        ),
        ({"routing": [{"countries": ["germany"]}]}, "routing.0.countries.0"),
        ({"name": "Bad Name"}, "name"),
    ],
)
async def test_a_bad_definition_answers_422_naming_the_field(
    api: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    refused = await api.post("/pipelines", json={**ENTERPRISE, **change})
    assert refused.status_code == 422, refused.text
    assert field in refused.json()["message"]
    assert [p["name"] for p in (await api.get("/pipelines")).json()] == ["default"]


async def test_a_patch_by_b_rules_and_its_deal_updated(
    api: httpx.AsyncClient, units: Units, issuer: LocalIssuer
) -> None:
    mine = await open_deal(units, "L-mine", owner="rep@kariz.test", company="Mine Ltd", domain="mine.example")
    other = await open_deal(units, "L-lee", owner="lee@kariz.test", company="Lee Ltd", domain="lee.example")
    rep = bearer(issuer.token("rep@kariz.test", ["rep"], team="emea"))
    manager = bearer(issuer.token("boss@kariz.test", ["manager"], team="emea"))

    edited = await api.patch(
        f"/deals/{mine.id}",
        json={"expected_close_date": "2026-06-30", "next_step": "pricing call", "deal_type": "upsell"},
        headers=rep,
    )
    assert edited.status_code == 200, edited.text
    view = edited.json()
    assert (view["expected_close_date"], view["next_step"], view["deal_type"]) == (
        "2026-06-30",
        "pricing call",
        "upsell",
    )
    assert view["days_in_stage"] == 0.0 and view["stalled"] is False
    [updated] = units.of_type(DealUpdated)
    assert {c.field for c in updated.changes} == {"expected_close_date", "next_step", "deal_type"}

    assert (await api.patch(f"/deals/{other.id}", json={"next_step": "x"}, headers=rep)).status_code == 404
    # A rep does not hand deals out; a manager within the team, an admin to anyone.
    assert (
        await api.patch(f"/deals/{mine.id}", json={"owner": "kim@kariz.test"}, headers=rep)
    ).status_code == 403
    outside = await api.patch(f"/deals/{mine.id}", json={"owner": "lee@kariz.test"}, headers=manager)
    assert outside.status_code == 403 and "owner" in outside.json()["message"]
    handed = await api.patch(f"/deals/{mine.id}", json={"owner": "kim@kariz.test"}, headers=manager)
    assert handed.status_code == 200 and handed.json()["owner"] == "kim@kariz.test"

    for bad, field in (
        ({}, "body"),
        ({"amount": None}, "amount"),
        ({"amount": "-3"}, "amount"),
        ({"expected_close_date": "1900-01-01"}, "expected_close_date"),
        ({"colour": "red"}, "colour"),
    ):
        refused = await api.patch(f"/deals/{mine.id}", json=bad)
        assert refused.status_code == 422 and field in refused.json()["message"], (bad, refused.text)
    assert len(units.of_type(DealUpdated)) == 2


async def test_a_rot_limit_given_to_the_default_pipeline_stalls_its_open_deals(
    api: httpx.AsyncClient, units: Units
) -> None:
    deal = await open_deal(units, "L-1")
    stages = [
        {k: v for k, v in stage.items() if k not in ("order", "closed")}
        for stage in (await api.get("/pipelines/default")).json()["stages"]
        if not stage["closed"]
    ]
    stages[0]["rot_days"] = 2
    replaced = await api.put("/pipelines/default", json={"stages": stages}, headers={"If-Match": '"0"'})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["deals_following"] == 1
    assert (await api.get("/deals", params={"stalled": "true"})).json()["total"] == 0

    clock = units.clock
    assert isinstance(clock, FakeClock)
    clock.advance(timedelta(days=2, seconds=1))
    stalled = (await api.get("/deals", params={"stalled": "true"})).json()
    assert [d["id"] for d in stalled["items"]] == [deal.id]
    assert stalled["items"][0]["stalled"] is True and stalled["items"][0]["days_in_stage"] == 2.0
    assert (await api.get(f"/deals/{deal.id}")).json()["rots_at"].startswith("2026-03-04T09:00")


async def test_the_list_filters_by_a_stage_of_an_admins_pipeline(api: httpx.AsyncClient) -> None:
    assert (await api.get("/deals", params={"stage": "shortlist"})).status_code == 422
    body = {**ENTERPRISE, "stages": [*ENTERPRISE["stages"], {**ENTERPRISE["stages"][1], "name": "shortlist"}]}
    assert (await api.post("/pipelines", json=body)).status_code == 201
    listed = await api.get("/deals", params={"stage": "shortlist"})
    assert listed.status_code == 200 and listed.json()["total"] == 0
