"""The deals HTTP API on the in-memory unit of work: status codes and messages of refused requests (which
change nothing), the list's filters and pages, accounts, the pipeline summary and the stages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeAlias

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from kariz_deals.adapters.in_memory import InMemoryDealReads, InMemoryDealsUnitOfWork
from kariz_deals.domain import DEFAULT_PIPELINE, Deal
from kariz_deals.entrypoints import kafka
from kariz_deals.entrypoints import pipelines as pipeline_routes
from kariz_deals.entrypoints.http import router
from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_shared.contracts.events import Company, Contact, LeadQualified, LeadSource, ScoreLine
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.runtime.logging import correlation_id

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TEAMS = {"emea": ["rep@kariz.test", "kim@kariz.test"]}
Units: TypeAlias = InMemoryUnitsOfWork[InMemoryDealsUnitOfWork]
ON_LEAD_QUALIFIED = kafka.subscriptions(pipeline=DEFAULT_PIPELINE, currency="EUR")[LeadQualified]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryDealsUnitOfWork(clock))


@pytest_asyncio.fixture
async def api(units: Units, issuer: LocalIssuer, admin_token: str) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    shared_http.install(app, "deals")
    accepting(app, issuer, teams=TEAMS)
    app.include_router(
        router(units, InMemoryDealReads(units.uow), pipeline=DEFAULT_PIPELINE, default_currency="EUR")
    )
    app.include_router(pipeline_routes.router(units))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://deals", headers=bearer(admin_token)
    ) as client:
        yield client


async def open_deal(
    units: Units,
    lead_id: str,
    *,
    owner: str = "rep@kariz.test",
    company: str = "Analytical Engines Ltd",
    domain: str | None = "analytical.example",
) -> Deal:
    event = LeadQualified(
        lead_id=lead_id,
        owner=owner,
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@analytical.example"),
        company=Company(name=company, domain=domain),
        source=LeadSource.REFERRAL,
        score=70,
        threshold=60,
        breakdown=[ScoreLine(rule="source", matched="referral", points=10)],
        qualified_at=T0,
    )
    token = correlation_id.set(f"corr-{lead_id}")
    try:
        await units.handle(ON_LEAD_QUALIFIED, event)
    finally:
        correlation_id.reset(token)
    return next(d for d in units.uow.deals.by_id.values() if d.lead_id == lead_id)


async def test_refused_moves_answer_why_and_change_nothing(api: httpx.AsyncClient, units: Units) -> None:
    deal = await open_deal(units, "L-1")
    before, published = await units.uow.deals.get(deal.id), list(units.published)

    async def move(**body: Any) -> httpx.Response:
        return await api.post(f"/deals/{deal.id}/stage", json=body)

    unknown = await move(stage="closing")
    assert unknown.status_code == 422 and unknown.json()["error"] == "rule_violation"
    assert "valid stages are: qualification, discovery, demo, proposal" in unknown.json()["message"]
    no_amount = await move(stage="proposal")
    assert no_amount.status_code == 422 and "a proposal needs an amount" in no_amount.json()["message"]
    assert (await move(stage="won")).status_code == 422
    for reason in ({}, {"reason": "   "}):
        no_reason = await move(stage="lost", **reason)
        assert no_reason.status_code == 422 and "needs a reason" in no_reason.json()["message"]
    same = await move(stage="qualification")
    assert same.status_code == 409 and "already in stage" in same.json()["message"]
    negative = await move(stage="proposal", amount=-5)
    assert negative.status_code == 422 and negative.json()["error"] == "invalid_request"
    assert "amount" in negative.json()["message"]
    extra = await move(stage="demo", colour="red")
    assert extra.status_code == 422 and "colour" in extra.json()["message"]
    missing = await api.post("/deals/D-does-not-exist/stage", json={"stage": "demo"})
    assert missing.status_code == 404 and "D-does-not-exist" in missing.json()["message"]

    assert await units.uow.deals.get(deal.id) == before
    assert units.published == published


async def test_a_move_answers_the_deal_and_a_closed_deal_answers_409(
    api: httpx.AsyncClient, units: Units, clock: FakeClock
) -> None:
    deal = await open_deal(units, "L-1")
    clock.advance(timedelta(hours=1))
    moved = await api.post(f"/deals/{deal.id}/stage", json={"stage": "proposal", "amount": "15000.00"})
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert (body["stage"], body["amount"], body["weighted_amount"]) == ("proposal", "15000.00", "9000.00")
    assert (body["probability"], body["forecast_category"]) == (0.6, "best_case")
    assert [h["stage"] for h in body["history"]] == ["qualification", "proposal"]
    assert body["correlation_id"] == "corr-L-1" and body["account"]["domain"] == "analytical.example"

    lost = await api.post(
        f"/deals/{deal.id}/stage", json={"stage": "lost", "reason": "chose a competitor", "note": "price"}
    )
    assert lost.status_code == 200
    assert lost.json()["lost_reason"] == "chose a competitor" and lost.json()["closed_at"]
    refused = await api.post(f"/deals/{deal.id}/stage", json={"stage": "demo"})
    assert refused.status_code == 409 and "closed" in refused.json()["message"]


async def test_reads_of_what_is_not_there_answer_404(api: httpx.AsyncClient) -> None:
    assert (await api.get("/deals/D-does-not-exist")).status_code == 404
    assert (await api.get("/accounts/A-does-not-exist")).status_code == 404
    enterprise = await api.get("/pipelines/enterprise")
    assert enterprise.status_code == 404 and "no pipeline 'enterprise'" in enterprise.json()["message"]


async def test_the_list_filters_pages_newest_first_and_refuses_an_unknown_stage(
    api: httpx.AsyncClient, units: Units, clock: FakeClock
) -> None:
    opened = []
    for i in range(5):
        clock.advance(timedelta(minutes=1))
        opened.append(await open_deal(units, f"L-{i}", owner="a@kariz.test" if i % 2 else "b@kariz.test"))
    await api.post(f"/deals/{opened[3].id}/stage", json={"stage": "demo"})

    everything = (await api.get("/deals")).json()
    assert [d["lead_id"] for d in everything["items"]] == ["L-4", "L-3", "L-2", "L-1", "L-0"]
    page = (await api.get("/deals", params={"limit": 2, "offset": 2})).json()
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)
    assert [d["lead_id"] for d in page["items"]] == ["L-2", "L-1"]
    mine = (await api.get("/deals", params={"owner": "a@kariz.test", "stage": "demo"})).json()
    assert [d["lead_id"] for d in mine["items"]] == ["L-3"]
    by_lead = (await api.get("/deals", params={"lead_id": "L-0"})).json()
    assert [d["id"] for d in by_lead["items"]] == [opened[0].id]
    by_account = (await api.get("/deals", params={"account_id": opened[0].account.id})).json()
    assert by_account["total"] == 5

    bad = await api.get("/deals", params={"stage": "closing"})
    assert bad.status_code == 422 and "valid stages" in bad.json()["message"]
    for limit in (0, 201):
        assert (await api.get("/deals", params={"limit": limit})).status_code == 422


async def test_an_account_and_the_pipeline_in_numbers(api: httpx.AsyncClient, units: Units) -> None:
    a = await open_deal(units, "L-a", domain="globex.example", company="Globex")
    b = await open_deal(units, "L-b", domain="globex.example", company="Globex Corp")
    c = await open_deal(units, "L-c", domain=None, company="Initech")
    d = await open_deal(units, "L-d", domain=None, company="Hooli", owner="other@kariz.test")
    for deal, body in [
        (a, {"stage": "proposal", "amount": "3000"}),
        (b, {"stage": "won", "amount": "5000.50"}),
        (c, {"stage": "lost", "reason": "no budget"}),
        (d, {"stage": "contract", "amount": "8000"}),
    ]:
        assert (await api.post(f"/deals/{deal.id}/stage", json=body)).status_code == 200

    account = (await api.get(f"/accounts/{a.account.id}")).json()
    assert (account["id"], account["name"], account["domain"]) == (b.account.id, "Globex", "globex.example")

    summary = (await api.get("/pipeline", params={"owner": "rep@kariz.test"})).json()
    rows = {s["stage"]: (s["count"], s["value"], s["weighted_value"]) for s in summary["stages"]}
    assert rows["proposal"] == (1, "3000", "1800.00")
    assert rows["won"] == (1, "5000.50", "5000.50")
    assert rows["lost"] == (1, "0", "0.00")
    assert rows["contract"] == (0, "0", "0.00")
    assert (summary["open_count"], summary["won_count"], summary["currency"]) == (1, 1, "EUR")
    everyone = (await api.get("/pipeline")).json()
    assert (everyone["open_count"], everyone["open_weighted_value"], everyone["owner"]) == (
        2,
        "9000.00",
        None,
    )
    other_currency = (await api.get("/pipeline", params={"currency": "USD"})).json()
    assert other_currency["open_count"] == 0 and other_currency["currency"] == "USD"

    stages = (await api.get("/pipeline/stages")).json()
    default = (await api.get("/pipelines/default")).json()
    assert [s["name"] for s in default["stages"]] == [s["name"] for s in stages["stages"]]
    assert (default["version"], default["actor"]) == (0, "/kariz/deals")
    assert [s["name"] for s in stages["stages"]] == DEFAULT_PIPELINE.stage_names
    assert stages["stages"][3] == {
        "name": "proposal",
        "order": 4,
        "probability": 0.6,
        "forecast_category": "best_case",
        "needs_amount": True,
        "closed": False,
    }
    assert Decimal(everyone["won_value"]) == Decimal("5000.50")


# --- who sees what ---------------------------------------------------------------------------------


async def test_a_rep_sees_and_moves_only_their_own_deals_a_manager_the_team_an_admin_all(
    api: httpx.AsyncClient, units: Units, issuer: LocalIssuer
) -> None:
    mine = await open_deal(units, "L-mine", owner="rep@kariz.test", company="Mine Ltd", domain="mine.example")
    teammate = await open_deal(
        units, "L-kim", owner="kim@kariz.test", company="Kim Ltd", domain="kim.example"
    )
    other = await open_deal(units, "L-lee", owner="lee@kariz.test", company="Lee Ltd", domain="lee.example")
    rep = bearer(issuer.token("rep@kariz.test", ["rep"], team="emea"))
    manager = bearer(issuer.token("boss@kariz.test", ["manager"], team="emea"))

    def ids(page: httpx.Response) -> set[str]:
        assert page.status_code == 200, page.text
        return {d["id"] for d in page.json()["items"]}

    # Lists are filtered in the query: the totals count only what the caller may see.
    listed = await api.get("/deals", headers=rep)
    assert ids(listed) == {mine.id} and listed.json()["total"] == 1
    assert ids(await api.get("/deals", params={"owner": "lee@kariz.test"}, headers=rep)) == set()
    assert ids(await api.get("/deals", headers=manager)) == {mine.id, teammate.id}
    assert ids(await api.get("/deals")) == {mine.id, teammate.id, other.id}  # the fixture's admin

    # Another rep's deal does not exist for this rep: 404 on read and on move, and nothing changes.
    assert (await api.get(f"/deals/{teammate.id}", headers=rep)).status_code == 404
    published = len(units.published)
    move = await api.post(f"/deals/{teammate.id}/stage", json={"stage": "demo"}, headers=rep)
    assert move.status_code == 404 and "no deal" in move.json()["message"]
    assert len(units.published) == published
    assert (await api.get(f"/deals/{other.id}", headers=manager)).status_code == 404
    # The manager moves a teammate's deal; the rep their own.
    assert (await api.post(f"/deals/{teammate.id}/stage", json={"stage": "demo"}, headers=manager)).is_success
    assert (await api.post(f"/deals/{mine.id}/stage", json={"stage": "demo"}, headers=rep)).is_success
    # A rep's pipeline summary is their own, whatever owner they ask for.
    summary = (await api.get("/pipeline", params={"owner": "lee@kariz.test"}, headers=rep)).json()
    assert summary["owner"] == "rep@kariz.test" and summary["open_count"] == 1
    # A manager's adds up the team's deals; an admin's everyone's.
    assert (await api.get("/pipeline", headers=manager)).json()["open_count"] == 2
    assert (await api.get("/pipeline")).json()["open_count"] == 3


async def test_without_a_valid_token_nothing_answers_but_401(
    api: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    for path in ("/deals", "/pipeline", "/pipeline/stages", "/accounts/A-1", "/deals/D-1"):
        anonymous = await api.get(path, headers={"Authorization": ""})
        assert anonymous.status_code == 401, path
        expired = await api.get(path, headers=bearer(issuer.token("rep@kariz.test", ["rep"], ttl_s=-600)))
        assert expired.status_code == 401, path
    refused = await api.post("/deals/D-1/stage", json={"stage": "demo"}, headers={"Authorization": ""})
    assert refused.status_code == 401
