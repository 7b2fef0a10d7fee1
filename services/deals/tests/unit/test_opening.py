"""Deals opened by hand (POST /deals) on the in-memory unit of work: an RFP deal with its reminder and
overdue timers and its go/no-go step, an upsell linked to the account's won deals, and B's rules on whose
accounts a rep, a manager and an admin open deals for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeAlias

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from kariz_deals.adapters.in_memory import InMemoryDealReads, InMemoryDealsUnitOfWork
from kariz_deals.domain import DEFAULT_PIPELINE, Deal
from kariz_deals.entrypoints import opening, pipelines
from kariz_deals.entrypoints.http import router
from kariz_deals.service_layer import handlers
from kariz_deals.service_layer.commands import MoveDeal
from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_shared.contracts.events import DealLost, DealOpened, RfpResponseDue
from kariz_shared.contracts.identity import Actor, Roster
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock

from .test_http import T0, open_deal

TEAMS = {"emea": ["rep@kariz.test", "kim@kariz.test"]}
Units: TypeAlias = InMemoryUnitsOfWork[InMemoryDealsUnitOfWork]


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
    app.include_router(pipelines.router(units))
    app.include_router(
        opening.router(units, Roster.of(TEAMS), pipeline=DEFAULT_PIPELINE, default_currency="EUR")
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://deals", headers=bearer(admin_token)
    ) as client:
        yield client


async def won_deal(units: Units, lead_id: str, owner: str) -> Deal:
    deal = await open_deal(units, lead_id, owner=owner, company="Kim Ltd", domain="kim.example")
    command = MoveDeal(deal.id, "won", amount=Decimal("1000"), by=Actor(owner))
    return await handlers.move_deal(units, command)


async def test_an_rfp_deal_reminds_before_it_is_due_says_overdue_after_and_waits_for_a_go(
    api: httpx.AsyncClient, units: Units, clock: FakeClock, issuer: LocalIssuer
) -> None:
    existing = await open_deal(units, "L-1", owner="kim@kariz.test")
    rep = bearer(issuer.token("rep@kariz.test", ["rep"], team="emea"))
    due = T0 + timedelta(days=10)
    body: dict[str, Any] = {
        "account_id": existing.account.id,
        "deal_type": "rfp",
        "rfp": {
            "issuer": "City of Leeds",
            "response_due_at": due.isoformat(),
            "requirements": ["SSO", "SLA"],
        },
    }
    # A rep opens deals for the accounts of their team (kim's here) and owns them.
    opened = await api.post("/deals", json=body, headers=rep)
    assert opened.status_code == 201, opened.text
    deal = opened.json()
    assert (deal["deal_type"], deal["owner"], deal["lead_id"], deal["stage"]) == (
        "rfp",
        "rep@kariz.test",
        "L-1",
        "qualification",
    )
    assert deal["rfp"]["requirements"] == ["SSO", "SLA"] and deal["rfp"]["decision"] is None
    assert units.of_type(DealOpened)[-1].deal_id == deal["id"]

    # No effort before the go/no-go: a forward move is refused.
    refused = await api.post(f"/deals/{deal['id']}/stage", json={"stage": "discovery"}, headers=rep)
    assert refused.status_code == 422 and "rfp: decide go or no-go" in refused.json()["message"]
    go = await api.post(f"/deals/{deal['id']}/rfp-decision", json={"decision": "go"}, headers=rep)
    assert go.status_code == 200 and go.json()["rfp"]["decided_by"] == "rep@kariz.test"
    assert (await api.post(f"/deals/{deal['id']}/rfp-decision", json={"decision": "go"})).status_code == 409
    assert (
        await api.post(f"/deals/{deal['id']}/stage", json={"stage": "discovery"}, headers=rep)
    ).status_code == 200

    clock.advance(timedelta(days=8))  # 48 hours before
    [reminder] = await units.fire_due_timers()
    assert isinstance(reminder, RfpResponseDue) and (reminder.kind, reminder.decision) == ("reminder", "go")
    clock.advance(timedelta(days=2))
    [overdue] = await units.fire_due_timers()
    assert (
        isinstance(overdue, RfpResponseDue)
        and overdue.kind == "overdue"
        and overdue.issuer == "City of Leeds"
    )


async def test_a_no_go_closes_the_rfp_lost_and_stops_its_timers(
    api: httpx.AsyncClient, units: Units, clock: FakeClock
) -> None:
    existing = await open_deal(units, "L-1")
    due = T0 + timedelta(days=10)
    body = {
        "account_id": existing.account.id,
        "deal_type": "rfp",
        "rfp": {"issuer": "Acme", "response_due_at": due.isoformat()},
    }
    deal = (await api.post("/deals", json=body)).json()
    assert (
        await api.post(f"/deals/{deal['id']}/rfp-decision", json={"decision": "no_go"})
    ).status_code == 422
    no_go = await api.post(
        f"/deals/{deal['id']}/rfp-decision", json={"decision": "no_go", "reason": "not our market"}
    )
    assert no_go.status_code == 200 and no_go.json()["stage"] == "lost"
    assert units.of_type(DealLost)[-1].reason == "no_go: not our market"
    clock.advance(timedelta(days=11))
    assert await units.fire_due_timers() == []


async def test_an_upsell_is_linked_to_the_accounts_won_deals_and_needs_one(
    api: httpx.AsyncClient, units: Units, issuer: LocalIssuer
) -> None:
    won = await won_deal(units, "L-kim", "kim@kariz.test")
    prospect = await open_deal(
        units, "L-new", owner="lee@kariz.test", company="New Ltd", domain="new.example"
    )
    manager = bearer(issuer.token("boss@kariz.test", ["manager"], team="emea"))
    upsell = await api.post(
        "/deals",
        json={
            "account_id": won.account.id,
            "deal_type": "upsell",
            "owner": "kim@kariz.test",
            "amount": "500",
        },
        headers=manager,
    )
    assert upsell.status_code == 201, upsell.text
    assert (upsell.json()["linked_deal_ids"], upsell.json()["owner"]) == ([won.id], "kim@kariz.test")

    no_customer = await api.post("/deals", json={"account_id": prospect.account.id, "deal_type": "renewal"})
    assert no_customer.status_code == 422 and "account_id" in no_customer.json()["message"]
    # Out of the manager's team: the account is not there for them; nor can they give a deal outside it.
    assert (
        await api.post(
            "/deals", json={"account_id": prospect.account.id, "deal_type": "rfp"}, headers=manager
        )
    ).status_code == 404
    outside = await api.post(
        "/deals",
        json={"account_id": won.account.id, "deal_type": "upsell", "owner": "lee@kariz.test"},
        headers=manager,
    )
    assert outside.status_code == 403 and "owner" in outside.json()["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"deal_type": "new_business"}, "deal_type"),
        ({"deal_type": "rfp"}, "rfp"),
        ({"deal_type": "upsell", "rfp": {"issuer": "x", "response_due_at": "2030-01-01T00:00:00Z"}}, "rfp"),
        (
            {"deal_type": "rfp", "rfp": {"issuer": "x", "response_due_at": "2020-01-01T00:00:00Z"}},
            "rfp.response_due_at",
        ),
        (
            {"deal_type": "rfp", "rfp": {"issuer": "x", "response_due_at": "2030-01-01T00:00:00"}},
            "rfp.response_due_at",
        ),
        ({"deal_type": "barter"}, "deal_type"),
    ],
)
async def test_a_bad_new_deal_answers_422_naming_the_field(
    api: httpx.AsyncClient, units: Units, body: dict[str, Any], field: str
) -> None:
    existing = await open_deal(units, "L-1")
    refused = await api.post("/deals", json={"account_id": existing.account.id, **body})
    assert refused.status_code == 422 and field in refused.json()["message"], refused.text
    assert len(units.uow.deals.by_id) == 1
