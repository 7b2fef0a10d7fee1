"""Duplicate candidates on the real database: by phone in E.164, the same name at the same company, the
same domain and a similar name; read along their indexes, and only among the leads the caller sees."""

from __future__ import annotations

import random
from typing import Any

import pytest

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import bearer, unique
from kariz_leads.adapters.mongo.documents import candidate_queries, lead_from_document
from kariz_shared.contracts.identity import EVERYONE, Owners

from .conftest import Leads

pytestmark = pytest.mark.integration


async def capture(leads: Leads, body: dict[str, Any]) -> dict[str, Any]:
    response = await leads.http.post("/leads", json=body)
    assert response.status_code == 201, response.text
    lead: dict[str, Any] = response.json()
    return lead


async def test_candidates_by_phone_name_at_company_and_domain_with_reasons_best_first(
    leads: Leads, lead_body: Any, issuer: LocalIssuer
) -> None:
    domain = f"{unique('globex')}.example".replace("_", "-")
    company = unique("Globex").replace("_", " ")
    digits = f"{random.randrange(10**6, 10**7)}"  # a number no other test has

    def body(first: str, last: str, email: str, **changes: Any) -> dict[str, Any]:
        return lead_body(
            email,
            contact={"first_name": first, "last_name": last, "phone": changes.pop("phone", None)},
            company={"country": "DE", "name": changes.pop("company", company), **changes},
        )

    ada = await capture(leads, body("Ada", "Lovelace", f"ada@{domain}", phone=f"+49 30 {digits}"))
    same_phone = await capture(
        leads,
        body("Charles", "Babbage", f"{unique('cb')}@engines.example", phone=f"030 {digits}", company="X"),
    )
    same_name = await capture(
        leads, body("ADA", "lovelace", f"{unique('ada')}@gmail.com", company=f"{company} GmbH")
    )
    similar = await capture(leads, body("Lovelace", "Ada", f"a.lovelace@{domain}", company="Other"))
    stranger = await capture(leads, body("Grace", "Hopper", f"grace@{domain}", company="Other"))

    response = await leads.http.get(f"/leads/{ada['id']}/duplicates")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["lead_id"] == ada["id"]
    found = {c["id"]: c for c in answer["items"]}
    assert set(found) == {same_phone["id"], same_name["id"], similar["id"]}, answer
    assert stranger["id"] not in found and ada["id"] not in found

    def reasons(lead: dict[str, Any]) -> dict[str, int]:
        return {r["reason"]: r["score"] for r in found[lead["id"]]["reasons"]}

    assert reasons(same_phone) == {"same_phone": 80}
    assert reasons(same_name) == {"same_name_same_company": 85}
    assert reasons(similar) == {"same_domain_similar_name": 90}
    assert [c["id"] for c in answer["items"]] == [similar["id"], same_name["id"], same_phone["id"]]
    assert [c["score"] for c in answer["items"]] == [90, 85, 80]
    stored = await leads.db.leads.find_one({"_id": same_phone["id"]})
    assert stored is not None and stored["phone_e164"] == f"+4930{digits}"

    limited = await leads.http.get(f"/leads/{ada['id']}/duplicates", params={"limit": 1})
    assert [c["id"] for c in limited.json()["items"]] == [similar["id"]]
    for bad in (0, 51, "many"):
        refused = await leads.http.get(f"/leads/{ada['id']}/duplicates", params={"limit": bad})
        assert refused.status_code == 422 and refused.json()["fields"][0]["field"] == "limit"
    assert (await leads.http.get("/leads/no-such-lead/duplicates")).status_code == 404

    # The DE territory alternates between jonas and lena: each rep sees only their own candidates, and
    # the other's lead does not exist for them.
    owners = {lead["id"]: lead["owner"] for lead in (ada, same_phone, same_name, similar, stranger)}
    owner = owners[ada["id"]]
    other = next(o for o in ("jonas@kariz.example", "lena@kariz.example") if o != owner)
    rep = bearer(issuer.token(owner, ["rep"], team="dach"))
    mine = await leads.http.get(f"/leads/{ada['id']}/duplicates", headers=rep)
    assert mine.status_code == 200
    assert {c["id"] for c in mine.json()["items"]} == {i for i in found if owners[i] == owner}
    manager = bearer(issuer.token("greta@kariz.example", ["manager"], team="dach"))
    assert {
        c["id"]
        for c in (await leads.http.get(f"/leads/{ada['id']}/duplicates", headers=manager)).json()["items"]
    } == set(found)
    theirs = bearer(issuer.token(other, ["rep"], team="dach"))
    out_of_reach = await leads.http.get(f"/leads/{ada['id']}/duplicates", headers=theirs)
    assert out_of_reach.status_code == 404
    assert out_of_reach.json()["message"] == f"no lead with id {ada['id']!r}"


async def test_each_candidate_read_is_served_by_its_index(leads: Leads, lead_body: Any) -> None:
    lead = await capture(
        leads,
        lead_body(
            f"ada@{unique('initech')}.example".replace("_", "-"),
            contact={"phone": "+44 20 7946 0958"},
            company={"country": "GB", "name": "Initech"},
        ),
    )
    doc = await leads.db.leads.find_one({"_id": lead["id"]})
    assert doc is not None
    for seen in (EVERYONE, Owners(frozenset({lead["owner"]}))):
        reads = candidate_queries(lead_from_document(doc), seen)
        assert [index for _, index, _ in reads] == [
            "phone_newest_first",
            "name_at_company_newest_first",
            "domain_newest_first",
        ]
        for query, index, count in reads:
            explained = (
                await leads.db.leads.find(query)
                .sort([("created_at", -1), ("_id", -1)])
                .hint(index)
                .limit(count)
                .explain()
            )
            plan = str(explained["queryPlanner"]["winningPlan"])
            assert "COLLSCAN" not in plan and f"'indexName': '{index}'" in plan, plan
            assert explained["executionStats"]["nReturned"] == await leads.db.leads.count_documents(query)
