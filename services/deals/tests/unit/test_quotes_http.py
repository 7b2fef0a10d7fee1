"""The catalogue, quotes and the contract over HTTP on the in-memory unit of work: who may do what, the
refusals (4xx naming the field, nothing written), a quote's approval, sending, acceptance and expiry
(the fake clock moved, the timer fired), the printable document, and the e-sign webhook's signature."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeAlias

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pydantic import SecretStr

from kariz_deals.adapters.in_memory import InMemoryDealReads, InMemoryDealsUnitOfWork
from kariz_deals.domain import DEFAULT_PIPELINE, Deal
from kariz_deals.entrypoints import catalogue, contracts, kafka, quotes
from kariz_deals.entrypoints.contracts import SIGNATURE_HEADER, e_sign_signature
from kariz_deals.entrypoints.http import router
from kariz_deals.service_layer.quotes import QuotePolicy
from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_shared.contracts.events import (
    Company,
    Contact,
    LeadQualified,
    LeadSource,
    QuoteAccepted,
    QuoteApprovalRequested,
    QuoteExpired,
    QuoteSent,
    RepProfile,
    ScoreLine,
)
from kariz_shared.contracts.identity import LiveRoster, Roster
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.runtime.logging import correlation_id

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TEAMS = {"emea": ["rep@kariz.test", "kim@kariz.test"]}
SECRET = "whsec-test"
Units: TypeAlias = InMemoryUnitsOfWork[InMemoryDealsUnitOfWork]
ON_LEAD_QUALIFIED = kafka.subscriptions(pipeline=DEFAULT_PIPELINE, currency="EUR")[LeadQualified]
ON_QUOTE_EXPIRED = kafka.subscriptions(pipeline=DEFAULT_PIPELINE, currency="EUR")[QuoteExpired]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryDealsUnitOfWork(clock))


@pytest.fixture
def tokens(issuer: LocalIssuer, admin_token: str) -> dict[str, dict[str, str]]:
    return {
        "admin": bearer(admin_token),
        "rep": bearer(issuer.token("rep@kariz.test", ["rep"], team="emea")),
        "other": bearer(issuer.token("sam@kariz.test", ["rep"], team="apac")),
        "manager": bearer(issuer.token("maria@kariz.test", ["manager"], team="emea")),
    }


@pytest_asyncio.fixture
async def api(units: Units, issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    shared_http.install(app, "deals")
    accepting(app, issuer, teams=TEAMS)
    roster = LiveRoster(Roster.of(TEAMS))
    roster.put(RepProfile(email="rep@kariz.test", team="emea", manager="maria@kariz.test", updated_at=T0))
    policy = QuotePolicy()
    app.include_router(
        router(units, InMemoryDealReads(units.uow), pipeline=DEFAULT_PIPELINE, default_currency="EUR")
    )
    app.include_router(catalogue.router(units))
    app.include_router(quotes.router(units, policy, roster))
    app.include_router(contracts.router(units))
    app.include_router(contracts.webhook_router(units, SecretStr(SECRET)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://deals") as client:
        yield client


async def open_deal(units: Units, lead_id: str = "L-1") -> Deal:
    event = LeadQualified(
        lead_id=lead_id,
        owner="rep@kariz.test",
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@analytical.example"),
        company=Company(name="Analytical <Engines> Ltd", domain="analytical.example"),
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


async def stock_catalogue(api: httpx.AsyncClient, tokens: dict[str, dict[str, str]]) -> None:
    for sku, name, price in (
        ("CRM-SEAT", "CRM seat <annual>", "480.00"),
        ("ONBOARD", "Onboarding", "2500.00"),
        ("SUPPORT", "Premium support", "1200.00"),
    ):
        answer = await api.put(
            f"/products/{sku}",
            json={"name": name, "unit": "seat", "list_prices": {"EUR": price}},
            headers=tokens["admin"],
        )
        assert answer.status_code == 200, answer.text


THREE_LINES = {
    "lines": [
        {"sku": "CRM-SEAT", "quantity": "50", "discount_pct": "25", "tax_pct": "19"},
        {"sku": "ONBOARD", "quantity": "1", "tax_pct": "19"},
        {"sku": "SUPPORT", "quantity": "1", "unit_price": "1000.00", "tax_pct": "19"},
    ],
    "terms": "Net 30 <b>days</b>",
}


async def test_the_catalogue_is_read_by_everyone_signed_in_and_written_by_an_admin(
    api: httpx.AsyncClient, units: Units, tokens: dict[str, dict[str, str]]
) -> None:
    await stock_catalogue(api, tokens)
    listed = await api.get("/products", headers=tokens["rep"])
    assert listed.status_code == 200 and listed.json()["total"] == 3
    assert listed.json()["items"][0]["list_prices"] == {"EUR": "480.00"}
    rep_write = await api.put(
        "/products/X", json={"name": "x", "unit": "u", "list_prices": {"EUR": "1"}}, headers=tokens["rep"]
    )
    assert rep_write.status_code == 403 and "admin" in rep_write.json()["message"]
    bad = await api.put(
        "/products/X", json={"name": "x", "unit": "u", "list_prices": {"JPY": "1.5"}}, headers=tokens["admin"]
    )
    assert bad.status_code == 422 and "list_prices.JPY" in bad.json()["message"]
    not_iso = await api.put(
        "/products/X", json={"name": "x", "unit": "u", "list_prices": {"XYZ": "1"}}, headers=tokens["admin"]
    )
    assert not_iso.status_code == 422 and "XYZ" in not_iso.json()["message"]
    assert "X" not in units.uow.products.by_sku

    # Each definition is a version: an edit of a version no longer in force is refused, not lost.
    seat = await api.get("/products/CRM-SEAT", headers=tokens["rep"])
    assert (seat.headers["ETag"], seat.json()["version"]) == ('"1"', 1)
    edit = {"name": "CRM seat", "unit": "seat", "list_prices": {"EUR": "500.00"}}
    first = await api.put("/products/CRM-SEAT", json=edit, headers={**tokens["admin"], "If-Match": '"1"'})
    assert first.status_code == 200 and first.headers["ETag"] == '"2"'
    stale = await api.put("/products/CRM-SEAT", json=edit, headers={**tokens["admin"], "If-Match": '"1"'})
    assert stale.status_code == 409 and "version 2" in stale.json()["message"]
    assert units.uow.products.by_sku["CRM-SEAT"].list_prices == {"EUR": Decimal("500.00")}
    assert (await api.get("/products", headers={})).status_code == 401

    book = await api.put(
        "/price-books/enterprise",
        json={"currency": "EUR", "prices": {"CRM-SEAT": "400.00"}, "segment": "enterprise"},
        headers=tokens["admin"],
    )
    assert book.status_code == 200 and book.json()["prices"] == {"CRM-SEAT": "400.00"}
    unknown = await api.put(
        "/price-books/dach", json={"currency": "EUR", "prices": {"NOPE": "1.00"}}, headers=tokens["admin"]
    )
    assert unknown.status_code == 422 and "prices.NOPE" in unknown.json()["message"]
    assert (await api.get("/price-books/enterprise", headers=tokens["rep"])).json()["segment"] == "enterprise"
    assert (await api.get("/price-books/dach", headers=tokens["rep"])).status_code == 404


async def test_a_discounted_quote_is_approved_by_the_owners_manager_sent_and_accepted(
    api: httpx.AsyncClient, units: Units, clock: FakeClock, tokens: dict[str, dict[str, str]]
) -> None:
    deal = await open_deal(units)
    await stock_catalogue(api, tokens)
    base = f"/deals/{deal.id}/quotes"
    made = await api.post(base, json=THREE_LINES, headers=tokens["rep"])
    assert made.status_code == 201, made.text
    quote = made.json()
    # 50 x 480 = 24000, 25 % off = 18000, + 2500 + 1000 (overridden) = 21500 net; 19 % tax = 4085.
    assert quote["totals"] == {
        "gross": "27500.00",
        "discount": "6000.00",
        "net": "21500.00",
        "tax": "4085.00",
        "total": "25585.00",
    }
    assert (quote["number"], quote["status"], quote["needs_approval"]) == (1, "awaiting_approval", True)
    assert [ln["price_overridden"] for ln in quote["lines"]] == [False, False, True]
    (requested,) = units.of_type(QuoteApprovalRequested)
    assert (requested.deal_id, requested.manager, requested.actor) == (
        deal.id,
        "maria@kariz.test",
        "rep@kariz.test",
    )

    early = await api.post(f"{base}/1/send", headers=tokens["rep"])
    assert early.status_code == 409 and "approves it" in early.json()["message"]
    assert (await api.post(f"{base}/1/approve", headers=tokens["rep"])).status_code == 403
    assert (await api.post(f"{base}/1/approve", headers=tokens["other"])).status_code == 403
    approved = await api.post(f"{base}/1/approve", json={"note": "strategic"}, headers=tokens["manager"])
    assert approved.status_code == 200 and approved.json()["status"] == "approved"

    clock.advance(timedelta(hours=1))
    sent = await api.post(f"{base}/1/send", headers=tokens["rep"])
    assert sent.status_code == 200 and sent.json()["status"] == "sent"
    (sent_event,) = units.of_type(QuoteSent)
    assert sent_event.total == requested.total and sent_event.valid_until == T0 + timedelta(days=30)
    timer_key = f"quote:{quote['id']}:expiry"
    assert units.uow.timers.armed[timer_key].due_at == T0 + timedelta(days=30)

    clock.advance(timedelta(days=2))
    accepted = await api.post(f"{base}/1/accept", headers=tokens["rep"])
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    (accepted_event,) = units.of_type(QuoteAccepted)
    assert str(accepted_event.total) == "25585.00"
    stored = await units.uow.deals.get(deal.id)
    assert stored is not None
    assert (str(stored.amount), stored.currency, stored.accepted_quote_id) == ("25585.00", "EUR", quote["id"])
    assert timer_key not in units.uow.timers.armed
    shown = (await api.get(f"/deals/{deal.id}", headers=tokens["rep"])).json()
    assert (shown["amount"], shown["accepted_quote_id"]) == ("25585.00", quote["id"])
    assert units.uow.metrics.quote_moves == [
        (None, "awaiting_approval"),
        ("awaiting_approval", "approved"),
        ("approved", "sent"),
        ("sent", "accepted"),
    ]
    # The next version numbers on; the deal has its accepted quote, so a second one cannot be.
    second = await api.post(
        base, json={"lines": [{"sku": "ONBOARD", "quantity": "1"}]}, headers=tokens["rep"]
    )
    assert second.json()["number"] == 2 and second.json()["status"] == "draft"
    assert (await api.post(f"{base}/2/send", headers=tokens["rep"])).status_code == 200
    again = await api.post(f"{base}/2/accept", headers=tokens["rep"])
    assert again.status_code == 409 and "accepted quote already" in again.json()["message"]
    assert (await api.get(base, headers=tokens["rep"])).json()[1]["status"] == "sent"


async def test_a_sent_quote_expires_when_the_clock_passes_its_validity(
    api: httpx.AsyncClient, units: Units, clock: FakeClock, tokens: dict[str, dict[str, str]]
) -> None:
    deal = await open_deal(units)
    await stock_catalogue(api, tokens)
    base = f"/deals/{deal.id}/quotes"
    valid_until = (T0 + timedelta(days=7)).isoformat()
    body = {"lines": [{"sku": "ONBOARD", "quantity": "2"}], "valid_until": valid_until}
    assert (await api.post(base, json=body, headers=tokens["rep"])).status_code == 201
    assert (await api.post(f"{base}/1/send", headers=tokens["rep"])).status_code == 200

    clock.advance(timedelta(days=7) - timedelta(seconds=1))
    assert await units.fire_due_timers() == []
    clock.advance(timedelta(seconds=1))
    (expired,) = await units.fire_due_timers()
    assert isinstance(expired, QuoteExpired) and expired.deal_id == deal.id and expired.quote_number == 1
    await units.handle(ON_QUOTE_EXPIRED, expired)
    await units.handle(ON_QUOTE_EXPIRED, expired)  # a redelivery changes nothing
    shown = await api.get(f"{base}/1", headers=tokens["rep"])
    assert shown.json()["status"] == "expired"
    assert [h["to_status"] for h in shown.json()["history"]] == ["draft", "sent", "expired"]
    late = await api.post(f"{base}/1/accept", headers=tokens["rep"])
    assert late.status_code == 409
    stored = await units.uow.deals.get(deal.id)
    assert stored is not None and stored.accepted_quote_id is None and stored.amount is None


async def test_refused_quotes_answer_why_and_change_nothing(
    api: httpx.AsyncClient, units: Units, tokens: dict[str, dict[str, str]]
) -> None:
    deal = await open_deal(units)
    await stock_catalogue(api, tokens)
    base = f"/deals/{deal.id}/quotes"
    published = list(units.published)

    async def post(body: dict[str, Any], who: str = "rep") -> httpx.Response:
        return await api.post(base, json=body, headers=tokens[who])

    unknown = await post({"lines": [{"sku": "NOPE", "quantity": "1"}]})
    assert unknown.status_code == 422 and "lines[0].sku" in unknown.json()["message"]
    zero = await post({"lines": [{"sku": "ONBOARD", "quantity": "0"}]})
    assert zero.status_code == 422 and "lines.0.quantity" in zero.json()["message"]
    over = await post({"lines": [{"sku": "ONBOARD", "quantity": "1", "discount_pct": "101"}]})
    assert over.status_code == 422 and "discount_pct" in over.json()["message"]
    past = await post({"lines": [{"sku": "ONBOARD", "quantity": "1"}], "valid_until": "2026-01-01T00:00:00Z"})
    assert past.status_code == 422 and "valid_until" in past.json()["message"]
    no_book = await post({"lines": [{"sku": "ONBOARD", "quantity": "1"}], "price_book": "nope"})
    assert no_book.status_code == 422 and "price_book" in no_book.json()["message"]
    no_usd = await post({"lines": [{"sku": "ONBOARD", "quantity": "1"}], "currency": "USD"})
    assert no_usd.status_code == 422 and "no price in USD" in no_usd.json()["message"]
    # Another team's rep does not see the deal: 404, as if it did not exist.
    hidden = await post({"lines": [{"sku": "ONBOARD", "quantity": "1"}]}, who="other")
    assert hidden.status_code == 404
    assert (await api.get(base, headers=tokens["other"])).status_code == 404
    assert (await api.get(f"{base}/1", headers=tokens["rep"])).status_code == 404
    assert units.uow.quotes.by_id == {} and units.published == published


async def test_the_document_shows_the_lines_and_totals_escaped(
    api: httpx.AsyncClient, units: Units, tokens: dict[str, dict[str, str]]
) -> None:
    deal = await open_deal(units)
    await stock_catalogue(api, tokens)
    await api.post(f"/deals/{deal.id}/quotes", json=THREE_LINES, headers=tokens["rep"])
    document = await api.get(f"/deals/{deal.id}/quotes/1/document", headers=tokens["manager"])
    assert document.status_code == 200 and document.headers["content-type"].startswith("text/html")
    html = document.text
    assert "CRM seat &lt;annual&gt;" in html and "<annual>" not in html
    assert "Analytical &lt;Engines&gt; Ltd" in html and "Net 30 &lt;b&gt;days&lt;/b&gt;" in html
    assert "€25,585.00" in html and "€4,085.00" in html and "Premium support" in html
    assert (await api.get(f"/deals/{deal.id}/quotes/1/document", headers=tokens["other"])).status_code == 404


async def test_the_contract_by_hand_and_from_the_signed_webhook(
    api: httpx.AsyncClient, units: Units, tokens: dict[str, dict[str, str]]
) -> None:
    deal = await open_deal(units)
    by_hand = await api.put(
        f"/deals/{deal.id}/contract", json={"request_id": "env-1", "status": "sent"}, headers=tokens["rep"]
    )
    assert by_hand.status_code == 200 and by_hand.json()["status"] == "sent"
    hidden = await api.put(
        f"/deals/{deal.id}/contract",
        json={"request_id": "env-1", "status": "signed"},
        headers=tokens["other"],
    )
    assert hidden.status_code == 404

    def callback(status: str, **extra: Any) -> bytes:
        payload = {
            "deal_id": deal.id,
            "request_id": "env-1",
            "status": status,
            "provider": "docusign",
            **extra,
        }
        return json.dumps(payload).encode()

    async def deliver(body: bytes, signature: str | None) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers[SIGNATURE_HEADER] = signature
        return await api.post("/webhooks/e-sign", content=body, headers=headers)

    signed = callback("signed")
    assert (await deliver(signed, None)).status_code == 401
    assert (await deliver(signed, e_sign_signature("another secret", signed))).status_code == 401
    # Signed over other bytes: the signature covers the body exactly as it came.
    assert (await deliver(signed, e_sign_signature(SECRET, callback("declined")))).status_code == 401
    stored = await units.uow.deals.get(deal.id)
    assert stored is not None and stored.contract_status == "sent"

    good = await deliver(signed, e_sign_signature(SECRET, signed))
    assert good.status_code == 200 and good.json()["history"][-1]["by"] == "e-sign:docusign"
    late = callback("viewed")
    assert (await deliver(late, e_sign_signature(SECRET, late).removeprefix("sha256="))).status_code == 200
    stored = await units.uow.deals.get(deal.id)
    assert stored is not None and stored.contract_status == "signed"

    invalid = callback("lost")
    answer = await deliver(invalid, e_sign_signature(SECRET, invalid))
    assert answer.status_code == 422 and "status" in answer.json()["message"]
    nowhere = json.dumps({"deal_id": "D-none", "request_id": "e", "status": "sent", "provider": "p"}).encode()
    assert (await deliver(nowhere, e_sign_signature(SECRET, nowhere))).status_code == 404


async def test_the_webhook_accepts_nothing_without_a_secret(units: Units) -> None:
    app = FastAPI()
    shared_http.install(app, "deals")
    app.include_router(contracts.webhook_router(units, SecretStr("")))
    body = b'{"deal_id": "D-1", "request_id": "e", "status": "signed", "provider": "p"}'
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://deals") as client:
        for signature in (e_sign_signature("", body), "sha256="):
            answer = await client.post(
                "/webhooks/e-sign", content=body, headers={SIGNATURE_HEADER: signature}
            )
            assert answer.status_code == 401
