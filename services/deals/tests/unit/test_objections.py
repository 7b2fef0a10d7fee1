"""Objections on deals and the answer library, on the in-memory unit of work through the HTTP API: who
may do what, refused requests that change nothing, the history, the deal's blocking count, and the
answers' usage and win rates following the deals' outcomes (their own DealWon / DealLost, consumed)."""

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
from kariz_deals.domain.objection import AnswerGiven, Objection, ObjectionAnswer, Outcome
from kariz_deals.entrypoints import kafka
from kariz_deals.entrypoints.http import router
from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import (
    Company,
    Contact,
    DealLost,
    DealWon,
    LeadQualified,
    LeadSource,
    ObjectionCategory,
    ObjectionJudgement,
    ObjectionRecorded,
    ObjectionStatus,
    ScoreLine,
)
from kariz_shared.contracts.identity import Actor
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.runtime.logging import correlation_id

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TEAMS = {"emea": ["rep@kariz.test", "kim@kariz.test"]}
Units: TypeAlias = InMemoryUnitsOfWork[InMemoryDealsUnitOfWork]
SUBSCRIPTIONS = kafka.subscriptions(pipeline=DEFAULT_PIPELINE, currency="EUR")
REP = "rep@kariz.test"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryDealsUnitOfWork(clock))


@pytest.fixture
def rep(issuer: LocalIssuer) -> dict[str, str]:
    return bearer(issuer.token(REP, ["rep"], team="emea"))


@pytest.fixture
def manager(issuer: LocalIssuer) -> dict[str, str]:
    return bearer(issuer.token("boss@kariz.test", ["manager"], team="emea"))


@pytest_asyncio.fixture
async def api(units: Units, issuer: LocalIssuer, admin_token: str) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    shared_http.install(app, "deals")
    accepting(app, issuer, teams=TEAMS)
    app.include_router(
        router(units, InMemoryDealReads(units.uow), pipeline=DEFAULT_PIPELINE, default_currency="EUR")
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://deals", headers=bearer(admin_token)
    ) as client:
        yield client


async def open_deal(units: Units, lead_id: str, *, owner: str = REP) -> Deal:
    event = LeadQualified(
        lead_id=lead_id,
        owner=owner,
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@analytical.example"),
        company=Company(name="Analytical Engines Ltd", domain="analytical.example"),
        source=LeadSource.REFERRAL,
        score=70,
        threshold=60,
        breakdown=[ScoreLine(rule="source", matched="referral", points=10)],
        qualified_at=T0,
    )
    token = correlation_id.set(f"corr-{lead_id}")
    try:
        await units.handle(SUBSCRIPTIONS[LeadQualified], event)
    finally:
        correlation_id.reset(token)
    return next(d for d in units.uow.deals.by_id.values() if d.lead_id == lead_id)


async def write_answer(api: httpx.AsyncClient, category: str, title: str, text: str) -> dict[str, Any]:
    response = await api.post("/objection-answers", json={"category": category, "title": title, "text": text})
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def record(
    api: httpx.AsyncClient, deal_id: str, *, headers: dict[str, str] | None = None, **body: Any
) -> httpx.Response:
    """POST an objection (a price one unless ``body`` says otherwise), as the admin unless ``headers``."""
    payload = {"category": "price", "words": "Too dear", **body}
    return await api.post(f"/deals/{deal_id}/objections", json=payload, headers=headers)


async def close(units: Units, deal_id: str, *, won: bool) -> None:
    """Close the deal as a rep would, then consume its DealWon / DealLost as the service does."""

    async def move(uow: InMemoryDealsUnitOfWork) -> None:
        deal = await uow.deals.get(deal_id)
        assert deal is not None
        if won:
            deal.win(uow.clock.now(), amount=Decimal("1000"))
        else:
            deal.lose(uow.clock.now(), reason="price: too dear")
        await uow.deals.save(deal)
        uow.publish(deal)

    await units.run(move)
    [closed] = [e for e in units.published if isinstance(e, DealWon | DealLost) and e.deal_id == deal_id]
    await units.handle(SUBSCRIPTIONS[type(closed)], closed)


def snapshot(units: Units) -> tuple[Any, ...]:
    uow = units.uow
    return (
        dict(uow.objections.by_id),
        dict(uow.objection_answers.by_id),
        dict(uow.deals.by_id),
        len(units.published),
    )


async def test_an_objection_is_recorded_with_its_event_metric_and_history(
    api: httpx.AsyncClient, units: Units, rep: dict[str, str], clock: FakeClock
) -> None:
    deal = await open_deal(units, "L-1")
    response = await record(
        api,
        deal.id,
        category="competitor",
        words="  We signed with Acme last year  ",
        judgement="excuse",
        headers=rep,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["category"], body["words"], body["judgement"], body["status"]) == (
        "competitor",
        "We signed with Acme last year",
        "excuse",
        "open",
    )
    assert body["recorded_by"] == REP and body["answer_id"] is None and len(body["history"]) == 1

    [event] = units.of_type(ObjectionRecorded)
    assert (event.deal_id, event.lead_id, event.owner, event.objection_id) == (
        deal.id,
        "L-1",
        REP,
        body["id"],
    )
    assert event.key() == deal.id and event.topic() == "kariz.objection-recorded.v1"
    assert (event.category, event.judgement, event.actor) == (
        ObjectionCategory.COMPETITOR,
        ObjectionJudgement.EXCUSE,
        REP,
    )
    assert units.uow.metrics.objections == [ObjectionCategory.COMPETITOR]

    clock.advance(timedelta(hours=2))
    changed = await api.patch(
        f"/deals/{deal.id}/objections/{body['id']}",
        json={"status": "answered", "answer_text": "Their contract ends in May", "note": "call went well"},
        headers=rep,
    )
    assert changed.status_code == 200, changed.text
    listed = (await api.get(f"/deals/{deal.id}/objections", headers=rep)).json()
    assert listed["total"] == 1
    [view] = listed["items"]
    assert (view["status"], view["answer_text"], view["answer_id"]) == (
        "answered",
        "Their contract ends in May",
        None,
    )
    last = view["history"][-1]
    assert last["by"] == REP and last["note"] == "call went well"
    assert datetime.fromisoformat(last["at"]) == T0 + timedelta(hours=2)
    assert last["changed"] == {"status": "answered", "answer_text": "Their contract ends in May"}
    # A change is no new recording: one event, one count.
    assert len(units.of_type(ObjectionRecorded)) == 1 and len(units.uow.metrics.objections) == 1


async def test_blocking_objections_are_counted_on_the_deal(
    api: httpx.AsyncClient, units: Units, rep: dict[str, str]
) -> None:
    deal = await open_deal(units, "L-1")
    first = (await record(api, deal.id, status="blocking")).json()
    await record(api, deal.id, status="blocking", category="authority", words="The board decides")
    await record(api, deal.id)  # open, not blocking
    assert (await api.get(f"/deals/{deal.id}")).json()["blocking_objections"] == 2

    resolved = await api.patch(
        f"/deals/{deal.id}/objections/{first['id']}", json={"status": "resolved"}, headers=rep
    )
    assert resolved.status_code == 200, resolved.text
    assert (await api.get(f"/deals/{deal.id}")).json()["blocking_objections"] == 1
    stored = await units.uow.deals.get(deal.id)
    assert stored is not None and stored.blocking_objections == 1


async def test_refused_objection_requests_name_the_field_and_change_nothing(
    api: httpx.AsyncClient, units: Units, issuer: LocalIssuer
) -> None:
    deal = await open_deal(units, "L-1")
    answer = await write_answer(api, "price", "Cost of waiting", "Every month without it costs more")
    objection = (await record(api, deal.id)).json()
    before = snapshot(units)

    cases: list[tuple[httpx.Response, int, str]] = [
        (await record(api, deal.id, category="weather"), 422, "category"),
        (await record(api, deal.id, words="   "), 422, "words"),
        (await record(api, deal.id, judgement="maybe"), 422, "judgement"),
        (await record(api, deal.id, status="answered"), 422, "answer"),
        (await record(api, deal.id, answer_id="ANS-nope"), 422, "answer_id"),
        (await record(api, deal.id, answer_id=answer["id"], answer_text="mine"), 422, "answer_id"),
        (await record(api, deal.id, colour="red"), 422, "colour"),
        (await record(api, "D-nope"), 404, "D-nope"),
        (await api.patch(f"/deals/{deal.id}/objections/{objection['id']}", json={}), 422, "status"),
        (
            await api.patch(f"/deals/{deal.id}/objections/{objection['id']}", json={"status": "open"}),
            422,
            "nothing",
        ),
        (
            await api.patch(f"/deals/{deal.id}/objections/OBJ-nope", json={"status": "resolved"}),
            404,
            "OBJ-nope",
        ),
    ]
    for response, status, named in cases:
        assert response.status_code == status, response.text
        assert named in response.text
    # Another rep's deal is not there for a rep; a caller without a role records nothing.
    kim = bearer(issuer.token("kim@kariz.test", ["rep"], team="emea"))
    assert (await record(api, deal.id, headers=kim)).status_code == 404
    assert (await api.get(f"/deals/{deal.id}/objections", headers=kim)).status_code == 404
    assert (
        await api.patch(
            f"/deals/{deal.id}/objections/{objection['id']}", json={"status": "resolved"}, headers=kim
        )
    ).status_code == 404
    nobody = bearer(issuer.token("guest@kariz.test", []))
    assert (await api.get(f"/deals/{deal.id}/objections", headers=nobody)).status_code == 403
    for method, path in [("GET", f"/deals/{deal.id}/objections"), ("GET", "/objection-answers")]:
        anonymous = api.build_request(method, path)
        del anonymous.headers["Authorization"]
        assert (await api.send(anonymous)).status_code == 401
    assert snapshot(units) == before

    # An objection of one deal is not reached through another.
    other = await open_deal(units, "L-2")
    wrong = await api.patch(f"/deals/{other.id}/objections/{objection['id']}", json={"status": "resolved"})
    assert wrong.status_code == 404

    # A closed deal takes no objections and no changes.
    await close(units, deal.id, won=False)
    before = snapshot(units)
    assert (await record(api, deal.id)).status_code == 409
    closed = await api.patch(f"/deals/{deal.id}/objections/{objection['id']}", json={"status": "resolved"})
    assert closed.status_code == 409 and "closed" in closed.json()["message"]
    assert snapshot(units) == before


async def test_the_library_is_curated_by_managers_read_by_reps_and_searchable(
    api: httpx.AsyncClient, units: Units, rep: dict[str, str], manager: dict[str, str]
) -> None:
    refused = await api.post(
        "/objection-answers", json={"category": "price", "title": "x", "text": "y"}, headers=rep
    )
    assert refused.status_code == 403 and units.uow.objection_answers.by_id == {}

    made = await api.post(
        "/objection-answers",
        json={"category": "price", "title": "Cost of waiting", "text": "Every month without it costs more"},
        headers=manager,
    )
    assert made.status_code == 201 and made.headers["ETag"] == '"0"'
    roi = await write_answer(api, "price", "Return on investment", "Pays for itself in six MONTHS")
    await write_answer(api, "timing", "Start small", "A pilot this quarter, the rest in months to come")

    async def titles(**params: Any) -> list[str]:
        page = (await api.get("/objection-answers", params=params, headers=rep)).json()
        return [a["title"] for a in page["items"]]

    assert await titles() == ["Cost of waiting", "Return on investment", "Start small"]
    assert await titles(category="price") == ["Cost of waiting", "Return on investment"]
    assert await titles(q="MONTH") == ["Cost of waiting", "Return on investment", "Start small"]
    assert await titles(q="six months") == ["Return on investment"]
    assert await titles(q="months", category="timing") == ["Start small"]
    assert await titles(q="[(*") == []  # no pattern: plain words
    assert (await api.get("/objection-answers", params={"category": "weather"})).status_code == 422

    # A revision over the version read; a stale one is refused and changes nothing.
    got = await api.get(f"/objection-answers/{roi['id']}", headers=rep)
    assert got.headers["ETag"] == '"0"'
    revised = await api.put(
        f"/objection-answers/{roi['id']}",
        json={"category": "price", "title": "ROI", "text": "Pays for itself in six months"},
        headers={**manager, "If-Match": '"0"'},
    )
    assert revised.status_code == 200, revised.text
    assert revised.headers["ETag"] == '"1"' and revised.json()["title"] == "ROI"
    stale = await api.put(
        f"/objection-answers/{roi['id']}",
        json={"category": "price", "title": "Stale", "text": "An edit of version 0"},
        headers={**manager, "If-Match": '"0"'},
    )
    assert stale.status_code == 409 and "version 1" in stale.json()["message"]
    # A view is not a request: its counts are the library's, not the curator's to write.
    assert (await api.put(f"/objection-answers/{roi['id']}", json=revised.json())).status_code == 422
    by_rep = await api.put(
        f"/objection-answers/{roi['id']}", json={"category": "price", "title": "a", "text": "b"}, headers=rep
    )
    assert by_rep.status_code == 403
    missing = await api.put(
        "/objection-answers/ANS-nope", json={"category": "price", "title": "a", "text": "b"}
    )
    assert missing.status_code == 404
    blank = await api.post("/objection-answers", json={"category": "price", "title": " ", "text": "b"})
    assert blank.status_code == 422 and "title" in blank.text
    assert (await api.get(f"/objection-answers/{roi['id']}")).json()["title"] == "ROI"


async def test_usage_and_win_rates_follow_the_outcomes_once_per_deal(
    api: httpx.AsyncClient, units: Units, rep: dict[str, str]
) -> None:
    waiting = await write_answer(api, "price", "Cost of waiting", "Every month without it costs more")
    roi = await write_answer(api, "price", "Return on investment", "Pays for itself in six months")
    won, lost, still_open = [await open_deal(units, lead) for lead in ("L-won", "L-lost", "L-open")]

    # On the won deal: "waiting" given twice (two objections), then "roi" instead on the second.
    first = (await record(api, won.id, answer_id=waiting["id"], status="answered", headers=rep)).json()
    assert first["answer_text"] == "Every month without it costs more" and first["answer_id"] == waiting["id"]
    second = (await record(api, won.id, answer_id=waiting["id"])).json()
    again = await api.patch(f"/deals/{won.id}/objections/{second['id']}", json={"answer_id": roi["id"]})
    assert again.status_code == 200, again.text
    # Giving the answer it already has is no new use.
    same = await api.patch(
        f"/deals/{won.id}/objections/{first['id']}", json={"answer_id": waiting["id"], "status": "resolved"}
    )
    assert same.status_code == 200, same.text
    await record(api, lost.id, answer_id=waiting["id"])
    await record(api, still_open.id, answer_id=roi["id"])

    async def stats(answer: dict[str, Any]) -> tuple[int, int, int, str | None]:
        view = (await api.get(f"/objection-answers/{answer['id']}", headers=rep)).json()
        return view["times_used"], view["deals_closed"], view["deals_won"], view["win_rate"]

    assert await stats(waiting) == (3, 0, 0, None)
    assert await stats(roi) == (2, 0, 0, None)

    await close(units, won.id, won=True)
    await close(units, lost.id, won=False)
    # "waiting" was given on the won deal (twice) and the lost one; "roi" on the won one (replacing
    # "waiting" on one objection, which still counts for "waiting") and an open one.
    assert await stats(waiting) == (3, 2, 1, "0.500")
    assert await stats(roi) == (2, 1, 1, "1.000")

    # A redelivered DealWon counts the deal once.
    [won_event] = [e for e in units.of_type(DealWon) if e.deal_id == won.id]
    await units.handle(SUBSCRIPTIONS[DealWon], won_event)
    assert await stats(waiting) == (3, 2, 1, "0.500")
    # A deal's outcome for an answer never given on it counts nothing there.
    listed = (await api.get("/objection-answers", params={"q": "investment"})).json()["items"]
    assert [a["deals_closed"] for a in listed] == [1]


def test_an_objection_keeps_every_library_answer_it_was_given() -> None:
    by = Actor(REP)
    objection = Objection.record(
        objection_id="OBJ-1",
        deal_id="D-1",
        lead_id="L-1",
        owner=REP,
        category=ObjectionCategory.TIMING,
        words="Not this year",
        judgement=None,
        status=ObjectionStatus.OPEN,
        answer=AnswerGiven("Start small", "ANS-1"),
        at=T0,
        by=by,
    )
    assert objection.change(at=T0, by=by, answer=AnswerGiven("Pilot", "ANS-2")) is True
    assert (
        objection.change(at=T0, by=by, answer=AnswerGiven("Pilot", "ANS-2"), status=ObjectionStatus.RESOLVED)
        is False
    )
    assert objection.change(at=T0, by=by, answer=AnswerGiven("in my words")) is False
    assert objection.library_answers_used == {"ANS-1", "ANS-2"}
    with pytest.raises(RuleViolation, match="nothing to change"):
        objection.change(at=T0, by=by, status=ObjectionStatus.RESOLVED)


def test_a_win_rate_is_won_among_closed_deals_rounded_to_a_thousandth() -> None:
    answer = ObjectionAnswer.write(
        answer_id="ANS-1",
        category=ObjectionCategory.PRICE,
        title="t",
        text="x",
        at=T0,
        by=Actor("boss@kariz.test"),
    )
    assert answer.win_rate is None
    answer.outcomes = {"D-1": Outcome.WON, "D-2": Outcome.LOST, "D-3": Outcome.WON}
    assert (answer.deals_closed, answer.deals_won, answer.win_rate) == (3, 2, Decimal("0.667"))
