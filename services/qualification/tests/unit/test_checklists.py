"""The checklist use case and routes on the in-memory unit of work: PUT /leads/{id}/checklist/{methodology}
records answers with who and when, GET /leads/{id}/qualification shows the checklist, its completeness
and what is missing; bad input is a 422 naming the field; a rep answers their own leads, a manager
their team's, an API key none."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeAlias

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_qualification.adapters.in_memory import InMemoryQualificationUnitOfWork
from kariz_qualification.domain.methodologies import Given
from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet
from kariz_qualification.entrypoints.http import router
from kariz_qualification.service_layer import handlers, views
from kariz_qualification.service_layer.commands import RecordChecklist
from kariz_shared.contracts.errors import Conflict, NotFound, RuleViolation
from kariz_shared.contracts.events import Company, Contact, LeadCaptured, LeadQualified, LeadSource
from kariz_shared.contracts.identity import Caller, KeyGrant, Owners
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.runtime.logging import correlation_id

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REP = "rep@kariz.test"
TEAMS = {"emea": [REP]}
Units: TypeAlias = InMemoryUnitsOfWork[InMemoryQualificationUnitOfWork]

#: MEDDIC from 1000 employees; BANT for everyone else.
RULES = RuleSet.model_validate(
    {
        **DEFAULT_RULES.model_dump(mode="json"),
        "segments": [{"name": "enterprise", "methodology": "meddic", "min_size": 1000}],
    }
)
REQUIRED = {
    "metrics": "quotes out in 1 day instead of 3",
    "economic_buyer": {"name": "Grace Hopper", "title": "CFO"},
    "identify_pain": "confirmed",
    "champion": {"name": "Lin"},
}


def captured(lead_id: str, size: int = 5000, owner: str = REP) -> LeadCaptured:
    """software 20 + size (1000+: 25) + DE 10 + VP 15 + referral 15."""
    return LeadCaptured(
        lead_id=lead_id,
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@example.com", title="VP Sales"),
        company=Company(name=f"Acme {lead_id}", industry="software", size=size, country="DE"),
        source=LeadSource.REFERRAL,
        owner=owner,
        assigned_by="round_robin",
        captured_at=T0,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryQualificationUnitOfWork(clock, rules=RULES))


@pytest.fixture(autouse=True)
def story() -> Iterator[None]:
    token = correlation_id.set("corr-from-leads")
    yield
    correlation_id.reset(token)


class OneKey:
    """The service's API keys, as a unit test needs them: one key that may capture leads."""

    async def caller(self, secret: str) -> Caller | None:
        if secret != "k-secret":
            return None
        return Caller.with_key(KeyGrant(key_id="k1", name="web form"), frozenset())


@pytest_asyncio.fixture
async def api(units: Units, issuer: LocalIssuer, admin_token: str) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    shared_http.install(app, "qualification")
    accepting(app, issuer, teams=TEAMS)
    app.state.api_keys = OneKey()
    app.include_router(router(units))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://qualification", headers=bearer(admin_token)
    ) as client:
        yield client


# --- the use case ---------------------------------------------------------------------------------


async def test_a_meddic_lead_waits_in_nurture_for_its_required_answers_then_qualifies(
    units: Units, clock: FakeClock
) -> None:
    await units.handle(handlers.capture_lead, captured("L-1"))
    lead = await views.qualification_of(units, "L-1")
    assert (lead.methodology, lead.status, lead.score) == ("meddic", "nurture", 85)
    assert units.published == [], "a fit of 85 alone does not qualify a MEDDIC lead"

    clock.advance(timedelta(days=1))
    first = {
        "economic_buyer": Given("person", value="Grace Hopper", title="CFO"),
        "budget": Given("amount", amount=Decimal("120000"), currency="GBP"),
    }
    lead = await handlers.record_checklist(units, RecordChecklist("L-1", "meddic", first, by=REP))
    assert (lead.status, lead.score, units.published) == ("nurture", 100, [])

    clock.advance(timedelta(days=1))
    rest = {
        "metrics": Given("text", value="quotes in a day"),
        "identify_pain": Given("choice", value="confirmed"),
        "champion": Given("person", value="Lin"),
    }
    lead = await handlers.record_checklist(units, RecordChecklist("L-1", "meddic", rest, by="mia@kariz.test"))

    assert (lead.status, lead.score) == ("qualified", 135)
    assert [s.trigger for s in lead.scorings] == ["captured", "checklist", "checklist"]
    [event] = units.published
    assert isinstance(event, LeadQualified)
    assert (event.budget_amount, event.budget_currency, event.actor) == (
        Decimal("120000"),
        "GBP",
        "mia@kariz.test",
    )
    assert event.checklist is not None
    assert {a.item: (a.answered_by, a.answered_at) for a in event.checklist.answers}["economic_buyer"] == (
        REP,
        T0 + timedelta(days=1),
    )
    assert units.uow.metrics.scores == [("captured", 85), ("checklist", 100), ("checklist", 135)]
    assert units.uow.metrics.decisions == ["qualified"]
    stored = await views.qualification_of(units, "L-1")
    assert stored.checklist == lead.checklist


async def test_a_refused_checklist_changes_nothing(units: Units) -> None:
    await units.handle(handlers.capture_lead, captured("L-1"))
    before = await views.qualification_of(units, "L-1")
    pain = {"identify_pain": Given("choice", value="confirmed")}
    with pytest.raises(RuleViolation, match="qualified with meddic"):
        await handlers.record_checklist(units, RecordChecklist("L-1", "bant", pain, by=REP))
    with pytest.raises(NotFound):
        hidden = Owners(frozenset({"lee@kariz.test"}))
        await handlers.record_checklist(units, RecordChecklist("L-1", "meddic", pain, hidden, by=REP))
    assert await views.qualification_of(units, "L-1") == before

    no_pain = {"identify_pain": Given("choice", value="none")}
    lead = await handlers.record_checklist(units, RecordChecklist("L-1", "meddic", no_pain, by=REP))
    assert lead.decision is not None and (lead.status, lead.decision.reason) == ("disqualified", "no pain")
    with pytest.raises(Conflict, match="decision is final"):
        await handlers.record_checklist(units, RecordChecklist("L-1", "meddic", pain, by=REP))


# --- the routes -----------------------------------------------------------------------------------


async def capture(units: Units, lead_id: str, **fields: Any) -> None:
    await units.handle(handlers.capture_lead, captured(lead_id, **fields))


async def test_the_qualification_view_shows_the_checklist_its_completeness_and_what_is_missing(
    api: httpx.AsyncClient, units: Units
) -> None:
    await capture(units, "L-1")
    response = await api.put(
        "/leads/L-1/checklist/meddic",
        json={
            "answers": {
                "economic_buyer": {"name": "Grace Hopper", "title": "CFO"},
                "identify_pain": "unknown",
            }
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == (await api.get("/leads/L-1/qualification")).json()
    view = response.json()
    assert (view["status"], view["methodology"], view["score"], view["answers"]) == (
        "nurture",
        "meddic",
        100,
        None,
    )
    checklist = view["checklist"]
    assert checklist["completeness"] == {
        "answered": 1,
        "items": 7,
        "required": 4,
        "required_answered": 1,
        "missing": ["metrics", "identify_pain", "champion"],
    }
    assert (checklist["score"], checklist["hard_no"]) == (15, None)
    items = {row["item"]: row for row in checklist["items"]}
    assert list(items) == [
        "metrics",
        "economic_buyer",
        "decision_criteria",
        "decision_process",
        "identify_pain",
        "champion",
        "budget",
    ]
    buyer = items["economic_buyer"]
    assert (buyer["kind"], buyer["required"], buyer["points"]) == ("person", True, 15)
    assert buyer["answer"] | {"answered_at": None} == {
        "item": "economic_buyer",
        "kind": "person",
        "value": "Grace Hopper",
        "amount": None,
        "currency": None,
        "title": "CFO",
        "answered_by": "admin@kariz.test",
        "answered_at": None,
    }
    assert items["identify_pain"]["choices"] == ["confirmed", "possible", "none", "unknown"]
    assert items["identify_pain"]["answer"]["value"] == "unknown"
    assert (items["budget"]["required"], items["budget"]["answer"]) == (False, None)
    assert view["breakdown"][-1] == {"rule": "meddic.economic_buyer", "matched": "answered", "points": 15}

    done = await api.put(
        "/leads/L-1/checklist/meddic", json={"answers": {**REQUIRED, "budget": {"amount": "5e4"}}}
    )
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["decision"]["by"]) == ("qualified", "admin@kariz.test")
    [event] = units.published
    assert isinstance(event, LeadQualified)
    assert (event.budget_amount, event.budget_currency) == (Decimal("50000"), None)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/leads/L-1/checklist/spin", {"answers": {"need": "confirmed"}}, "methodology"),
        ("/leads/L-1/checklist/meddic", {"answers": {"champoin": {"name": "Lin"}}}, "answers.champoin"),
        ("/leads/L-1/checklist/meddic", {"answers": {"champion": "Lin"}}, "answers.champion"),
        ("/leads/L-1/checklist/meddic", {"answers": {"identify_pain": "maybe"}}, "answers.identify_pain"),
        ("/leads/L-1/checklist/meddic", {"answers": {"budget": {"amount": "-1"}}}, "answers.budget.amount"),
        (
            "/leads/L-1/checklist/meddic",
            {"answers": {"budget": {"amount": "1", "currency": "euro"}}},
            "answers.budget.currency",
        ),
        ("/leads/L-1/checklist/meddpicc", {"answers": {"paper_process": True}}, "answers.paper_process"),
        ("/leads/L-1/checklist/meddic", {"answers": {}}, "answers"),
        ("/leads/L-1/checklist/meddic", {"answer": {"metrics": "x"}}, "answer"),
    ],
)
async def test_bad_input_is_a_422_naming_the_field(
    api: httpx.AsyncClient, units: Units, path: str, body: dict[str, Any], field: str
) -> None:
    await capture(units, "L-1")
    response = await api.put(path, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request"
    assert field in [f["field"] for f in response.json()["fields"]], response.json()
    lead = await views.qualification_of(units, "L-1")
    assert (lead.checklist, len(lead.scorings)) == ({}, 1), "nothing recorded"


async def test_the_lead_s_methodology_only_and_bant_through_the_checklist_too(
    api: httpx.AsyncClient, units: Units
) -> None:
    await capture(units, "L-1")  # meddic
    other = await api.put("/leads/L-1/checklist/bant", json={"answers": {"need": "confirmed"}})
    assert other.status_code == 422 and other.json()["error"] == "rule_violation"
    assert "qualified with meddic" in other.json()["message"]
    bant = await api.put(
        "/leads/L-1/bant",
        json={"budget": "confirmed", "authority": "none", "need": "confirmed", "timeline": "later"},
    )
    assert bant.status_code == 422

    # BANT, nurture: software 20 + 1-9 0 + DE 10 + VP 15 + referral 15 = 60.
    await capture(units, "L-2", size=5)
    answered = await api.put("/leads/L-2/checklist/bant", json={"answers": {"timeline": "within_6_months"}})
    assert answered.status_code == 200, answered.text
    view = answered.json()
    assert view["answers"] == {
        "budget": "unknown",
        "budget_amount": None,
        "authority": "unknown",
        "decision_maker": None,
        "need": "unknown",
        "pain": None,
        "timeline": "within_6_months",
        "notes": None,
    }, "the v1 BANT answers, unknown where not answered"
    assert view["checklist"]["completeness"]["required"] == 0, "BANT requires nothing: fit alone may qualify"


async def test_a_rep_answers_their_own_leads_a_manager_the_team_s_an_api_key_none(
    api: httpx.AsyncClient, units: Units, issuer: LocalIssuer
) -> None:
    await capture(units, "L-1")  # REP's
    await capture(units, "L-2", owner="lee@kariz.test")  # not in team emea
    rep = bearer(issuer.token(REP, ["rep"]))
    manager = bearer(issuer.token("mia@kariz.test", ["manager"], team="emea"))
    pain = {"answers": {"identify_pain": "possible"}}

    assert (await api.put("/leads/L-1/checklist/meddic", json=pain, headers=rep)).status_code == 200
    assert (await api.put("/leads/L-2/checklist/meddic", json=pain, headers=rep)).status_code == 404
    assert (await api.get("/leads/L-2/qualification", headers=rep)).status_code == 404
    answered = await api.put(
        "/leads/L-1/checklist/meddic", json={"answers": {"metrics": "x"}}, headers=manager
    )
    assert answered.status_code == 200
    by = {row["item"]: row["answer"] for row in answered.json()["checklist"]["items"] if row["answer"]}
    assert (by["identify_pain"]["answered_by"], by["metrics"]["answered_by"]) == (REP, "mia@kariz.test")
    assert (await api.put("/leads/L-2/checklist/meddic", json=pain, headers=manager)).status_code == 404

    key = {"Authorization": "", "X-Api-Key": "k-secret"}
    for response in (
        await api.put("/leads/L-1/checklist/meddic", json=pain, headers=key),
        await api.get("/leads/L-1/qualification", headers=key),
    ):
        assert response.status_code == 403, response.text
    assert (
        await api.put("/leads/L-1/checklist/meddic", json=pain, headers={"Authorization": ""})
    ).status_code == 401
    assert (await views.qualification_of(units, "L-2")).checklist == {}
