"""The qualification HTTP API on the in-memory unit of work, with real tokens: the rule set's versions
(ETag and If-Match on /rules, the history under /rules/versions) and who may read and change them."""

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
from kariz_qualification.adapters.in_memory import InMemoryQualificationUnitOfWork
from kariz_qualification.domain.rules import DEFAULT_RULES
from kariz_qualification.entrypoints.http import router
from kariz_qualification.service_layer import handlers
from kariz_shared.contracts.events import Company, Contact, LeadCaptured, LeadSource
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.runtime.logging import correlation_id

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TEAMS = {"emea": ["rep@kariz.test"]}
Units: TypeAlias = InMemoryUnitsOfWork[InMemoryQualificationUnitOfWork]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryQualificationUnitOfWork(clock))


@pytest_asyncio.fixture
async def api(units: Units, issuer: LocalIssuer, admin_token: str) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    shared_http.install(app, "qualification")
    accepting(app, issuer, teams=TEAMS)
    app.include_router(router(units))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://qualification", headers=bearer(admin_token)
    ) as client:
        yield client


def with_country(**points: int) -> dict[str, Any]:
    return {**DEFAULT_RULES.model_dump(mode="json"), "country": points}


async def test_the_rule_set_carries_its_version_and_a_stale_edit_is_refused(
    api: httpx.AsyncClient, units: Units, clock: FakeClock
) -> None:
    read = await api.get("/rules")
    assert read.status_code == 200
    assert read.json() == DEFAULT_RULES.model_dump(mode="json"), "the body is the rule set, as before"
    assert read.headers["ETag"] == '"0"'

    clock.advance(timedelta(minutes=5))
    saved = await api.put("/rules", json=with_country(SE=10), headers={"If-Match": read.headers["ETag"]})
    assert saved.status_code == 200, saved.text
    assert saved.json()["country"] == {"SE": 10}
    assert saved.headers["ETag"] == '"1"'
    assert (await api.get("/rules")).headers["ETag"] == '"1"'

    # A second admin edited version 0 as well and saves after the first.
    stale = await api.put("/rules", json=with_country(NO=5), headers={"If-Match": '"0"'})
    assert stale.status_code == 409 and stale.json()["error"] == "conflict"
    assert "version 1 is in force" in stale.json()["message"]
    assert [v.number for v in units.uow.rules.versions] == [0, 1], "the refused edit stored nothing"
    assert (await api.get("/rules")).json()["country"] == {"SE": 10}

    # Without If-Match (today's clients), and with a weak, bare or any-version one, the PUT goes ahead.
    for if_match, number in [(None, 2), ('W/"2"', 3), ("3", 4), ("*", 5)]:
        headers = {} if if_match is None else {"If-Match": if_match}
        answer = await api.put("/rules", json=with_country(NO=number), headers=headers)
        assert (answer.status_code, answer.headers["ETag"]) == (200, f'"{number}"'), if_match

    for nonsense in ("version 5", '"five"', '"5'):
        refused = await api.put("/rules", json=with_country(NO=1), headers={"If-Match": nonsense})
        assert refused.status_code == 422 and "if-match" in refused.json()["message"], nonsense
    assert len(units.uow.rules.versions) == 6


async def test_the_versions_newest_first_in_pages_and_one_whole(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    for points in (10, 20, 30):
        clock.advance(timedelta(hours=1))
        assert (await api.put("/rules", json=with_country(SE=points))).status_code == 200

    listing = (await api.get("/rules/versions")).json()
    assert (listing["total"], listing["limit"], listing["offset"]) == (4, 50, 0)
    assert [row["version"] for row in listing["items"]] == [3, 2, 1, 0]
    newest, *_, seeded = listing["items"]
    assert newest == {
        "version": 3,
        "took_effect_at": "2026-03-02T12:00:00Z",
        "actor": "admin@kariz.test",
        "summary": {"changed": ["country"], "qualify": 70, "disqualify_below": 15},
    }
    assert (seeded["actor"], seeded["took_effect_at"], seeded["summary"]["changed"]) == (
        "kariz",
        "2026-03-02T09:00:00Z",
        None,
    )
    page = (await api.get("/rules/versions", params={"limit": 2, "offset": 1})).json()
    assert ([row["version"] for row in page["items"]], page["total"]) == ([2, 1], 4)
    for limit in (0, 201):
        assert (await api.get("/rules/versions", params={"limit": limit})).status_code == 422

    one = await api.get("/rules/versions/2")
    assert one.status_code == 200
    assert {k: v for k, v in one.json().items() if k != "rules"} == {
        "version": 2,
        "took_effect_at": "2026-03-02T11:00:00Z",
        "actor": "admin@kariz.test",
        "summary": {"changed": ["country"], "qualify": 70, "disqualify_below": 15},
    }
    assert one.json()["rules"] == with_country(SE=20)
    assert (await api.get("/rules/versions/0")).json()["rules"] == DEFAULT_RULES.model_dump(mode="json")

    absent = await api.get("/rules/versions/4")
    assert absent.status_code == 404
    assert absent.json()["message"] == "the rule set has no version 4; version 3 is in force"
    for invalid in ("-1", "two", "1000000000"):
        assert (await api.get(f"/rules/versions/{invalid}")).status_code == 422


async def test_managers_read_the_history_reps_do_not_and_only_admins_replace(
    api: httpx.AsyncClient, issuer: LocalIssuer, units: Units
) -> None:
    manager = bearer(issuer.token("mia@kariz.test", ["manager"], team="emea"))
    rep = bearer(issuer.token("rep@kariz.test", ["rep"]))

    assert (await api.get("/rules/versions", headers=manager)).status_code == 200
    assert (await api.get("/rules/versions/0", headers=manager)).status_code == 200
    for path in ("/rules/versions", "/rules/versions/0"):
        refused = await api.get(path, headers=rep)
        assert refused.status_code == 403, path
        assert "admin or manager" in refused.json()["message"]
    # Anyone signed in reads the rule set in force; only an admin replaces it.
    assert (await api.get("/rules", headers=rep)).headers["ETag"] == '"0"'
    for who in (manager, rep):
        edit = await api.put("/rules", json=with_country(SE=1), headers={**who, "If-Match": '"0"'})
        assert edit.status_code == 403 and "admin" in edit.json()["message"]
    assert (await api.get("/rules/versions", headers={"Authorization": ""})).status_code == 401
    assert len(units.uow.rules.versions) == 1


async def test_a_scoring_names_the_version_it_used(api: httpx.AsyncClient, units: Units) -> None:
    assert (await api.put("/rules", json=with_country(DE=5))).status_code == 200
    event = LeadCaptured(
        lead_id="L-1",
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@example.com", title="VP Sales"),
        company=Company(name="Acme", industry="software", size=500, country="DE"),
        source=LeadSource.REFERRAL,
        owner="rep@kariz.test",
        assigned_by="round_robin",
        captured_at=T0,
    )
    token = correlation_id.set("corr-L-1")
    try:
        await units.handle(handlers.capture_lead, event)
    finally:
        correlation_id.reset(token)

    [scoring] = (await api.get("/leads/L-1/qualification")).json()["scorings"]
    assert (scoring["rules_version"], scoring["score"]) == (1, 75)
