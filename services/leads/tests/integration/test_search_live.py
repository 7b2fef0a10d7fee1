"""Finding leads on the real database: the new filters, text search with accents, keyset paging through
a few hundred leads while new ones arrive, refused values, and that an index serves each filter's
query (SecantusDB's ``explain``: the winning plan's IXSCAN and the index it names)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import bearer, unique
from kariz_leads.adapters.mongo.documents import LEADS, LOOKUP_VERSION, hint_for, index_for, selector, utc
from kariz_leads.adapters.mongo.indexes import backfill_lookup_keys
from kariz_leads.domain import LeadFilter, LeadStatus
from kariz_leads.domain.regions import Region
from kariz_shared.contracts.events import LeadSource
from kariz_shared.contracts.identity import Owners
from kariz_shared.contracts.paging import Cursor
from kariz_shared.persistence.store import _both

from .conftest import Leads

pytestmark = pytest.mark.integration

NEWEST_FIRST = [("created_at", -1), ("_id", -1)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def find(leads: Leads, headers: dict[str, str] | None = None, **params: Any) -> dict[str, Any]:
    response = await leads.http.get("/leads", params=params, headers=headers or {})
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def ids(page: dict[str, Any]) -> list[str]:
    return [lead["id"] for lead in page["items"]]


async def capture(leads: Leads, body: dict[str, Any]) -> dict[str, Any]:
    response = await leads.http.post("/leads", json=body)
    assert response.status_code == 201, response.text
    lead: dict[str, Any] = response.json()
    return lead


async def test_campaign_size_region_status_and_text_with_accents(leads: Leads, lead_body: Any) -> None:
    industry = unique("search")
    campaign = unique("spring")

    def body(first: str, last: str, company: str, **firm: Any) -> dict[str, Any]:
        return lead_body(
            contact={"first_name": first, "last_name": last},
            company={"industry": industry, "name": company, **firm},
            campaign=firm.pop("campaign", None),
        )

    jose = await capture(leads, body("José", "García", "García & Hijos", size=12, country="ES"))
    juergen = await capture(leads, body("Jürgen", "Müller", "Müller Söhne GmbH", size=400, country="DE"))
    grace = await capture(leads, body("Grace", "Hopper", "Globex", size=5000, country="US"))
    nameless = await capture(
        leads, lead_body(company={"industry": industry, "name": "Initech"}, campaign=campaign)
    )

    async def found(**params: Any) -> list[str]:
        return ids(await find(leads, industry=industry, **params))

    everything = [nameless["id"], grace["id"], juergen["id"], jose["id"]]
    assert await found() == everything
    assert await found(campaign=campaign) == [nameless["id"]]
    # Both ends included (the lead without a name of its own has lead_body's size, 40).
    assert await found(size_min=12, size_max=400) == [nameless["id"], juergen["id"], jose["id"]]
    assert await found(size_min=13) == [nameless["id"], grace["id"], juergen["id"]]
    assert await found(size_max=12) == [jose["id"]]
    assert await found(region="EMEA") == [juergen["id"], jose["id"]]
    assert await found(region="NA") == [grace["id"]]
    assert await found(region="EMEA", country="us") == []
    assert await found(status="new") == everything
    assert await found(status="qualified") == []
    # Text: word beginnings of the names, the company and the e-mail's local part, case and accents aside.
    assert await found(q="jose") == [jose["id"]]
    assert await found(q="GARCÍA") == [jose["id"]]
    assert await found(q="garc hij") == [jose["id"]]
    assert await found(q="muller") == [juergen["id"]]
    assert await found(q="SÖHNE") == [juergen["id"]]
    assert await found(q="soh mul") == [juergen["id"]]
    assert await found(q="jose muller") == []
    assert await found(q="arcia") == []
    local = nameless["contact"]["email"].split("@")[0]
    assert await found(q=local[:8]) == [nameless["id"]]
    assert await found(q="lovelace") == [nameless["id"]]  # the others have names of their own
    assert await found(q="ada") == everything  # every address here is ada_<hex>@: its local part's words
    assert await found(q="hopper", region="NA", size_min=1000) == [grace["id"]]
    assert await found(q="hopper", region="EMEA") == []


async def test_a_rep_searches_only_their_own_leads(leads: Leads, lead_body: Any, issuer: LocalIssuer) -> None:
    industry = unique("rep-search")
    captured = [
        await capture(
            leads,
            lead_body(contact={"last_name": "Ångström"}, company={"industry": industry, "country": "DE"}),
        )
        for _ in range(4)
    ]
    mine = {lead["id"] for lead in captured if lead["owner"] == "jonas@kariz.example"}
    assert len(mine) == 2  # the DE territory alternates between jonas and lena
    jonas = bearer(issuer.token("jonas@kariz.example", ["rep"], team="dach"))
    page = await find(leads, jonas, industry=industry, q="angstrom")
    assert set(ids(page)) == mine and page["total"] == 2
    by_cursor = await find(leads, jonas, industry=industry, q="angs", limit=1)
    following = await find(
        leads, jonas, industry=industry, q="angs", limit=1, cursor=by_cursor["next_cursor"]
    )
    assert {*ids(by_cursor), *ids(following)} == mine and following["next_cursor"] is None


async def test_paging_by_cursor_reads_every_lead_once_in_order_while_new_ones_arrive(
    leads: Leads, lead_body: Any
) -> None:
    industry = unique("paging")
    # Three imports of 100: each import's leads share one capture time, so the id orders them within it.
    for _ in range(3):
        batch = {"leads": [lead_body(company={"industry": industry}) for _ in range(100)]}
        answer = await leads.http.post("/leads/import", json=batch)
        assert answer.status_code == 200, answer.text
    first = await find(leads, industry=industry, limit=200)
    second = await find(leads, industry=industry, limit=200, offset=200)
    by_offset = ids(first) + ids(second)
    assert len(by_offset) == len(set(by_offset)) == 300 and first["total"] == 300

    seen: list[str] = []
    arrived: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"industry": industry, "limit": 37}
        if cursor:
            params["cursor"] = cursor
        page = await find(leads, **params)
        pages += 1
        assert page["total"] is None if cursor else page["total"] == 300 + len(arrived)
        seen += ids(page)
        # A lead captured at the head meanwhile is not on the pages after the cursor.
        arrived.append((await capture(leads, lead_body(company={"industry": industry})))["id"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == by_offset
    assert pages == 9  # 8 full pages of 37 and the rest
    assert ids(await find(leads, industry=industry, limit=len(arrived)))[::-1] == arrived

    # The whole collection, newest first, by cursor: this test's leads come once each, in their order.
    everyone: list[str] = []
    cursor = None
    while True:
        page = await find(leads, limit=200, **({"cursor": cursor} if cursor else {}))
        everyone += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(everyone) == len(set(everyone))
    assert [i for i in everyone if i in set(by_offset)] == by_offset


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"cursor": "not-a-cursor!"}, "cursor", "not a cursor"),
        ({"cursor": "A" * 201}, "cursor", ""),
        ({"cursor": Cursor.after(T0, "x").encode(), "offset": 5}, "offset", "cursor"),
        ({"size_min": 100, "size_max": 10}, "size_min", "above size_max"),
        ({"size_min": 0}, "size_min", ""),
        ({"size_max": 10**9}, "size_max", ""),
        ({"region": "MARS"}, "region", ""),
        ({"q": "a b c d e f"}, "q", "at most 5 words"),
        ({"q": "&&&"}, "q", "no word"),
        ({"q": "x" * 201}, "q", ""),
        ({"status": "won"}, "status", ""),
    ],
)
async def test_bad_search_values_are_refused_naming_them(
    leads: Leads, params: dict[str, Any], field: str, words: str
) -> None:
    response = await leads.http.get("/leads", params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    named = [f["field"] for f in body.get("fields") or []] or [body["message"]]
    assert any(n.startswith(field) for n in named), body
    assert words in body["message"]


async def test_leads_stored_before_the_lookup_keys_get_them_at_start_up(leads: Leads, lead_body: Any) -> None:
    lead = await capture(
        leads, lead_body(contact={"first_name": "Émile", "phone": "030 1234567"}, company={"country": "DE"})
    )
    note = await leads.http.post(
        f"/leads/{lead['id']}/activities", json={"channel": "note", "outcome": "reached"}
    )
    assert note.status_code == 201, note.text
    keys = ("search", "phone_e164", "name_key", "company_key", "lookup_version", "last_activity_at")
    await leads.db[LEADS].update_one({"_id": lead["id"]}, {"$unset": dict.fromkeys(keys, "")})
    assert await backfill_lookup_keys(leads.service.store) >= 1
    doc = await leads.db[LEADS].find_one({"_id": lead["id"]})
    assert doc is not None
    assert doc["phone_e164"] == "+49301234567" and "emile" in doc["search"]
    assert doc["lookup_version"] == LOOKUP_VERSION == 3
    assert doc["open_follow_ups"] == 0
    # When it was last worked comes from its activities.
    assert utc(doc["last_activity_at"]) == datetime.fromisoformat(note.json()["activity"]["occurred_at"])
    assert await backfill_lookup_keys(leads.service.store) == 0  # once: then none match


async def test_leads_with_and_without_an_open_follow_up(leads: Leads, lead_body: Any) -> None:
    industry = unique("follow-ups")
    first, second, third = [await capture(leads, lead_body(company={"industry": industry})) for _ in range(3)]
    due = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()
    opened = []
    for lead in (first, second, second):
        answer = await leads.http.post(
            f"/leads/{lead['id']}/follow-ups", json={"kind": "call_back", "title": "Call back", "due_at": due}
        )
        assert answer.status_code == 201, answer.text
        opened.append(answer.json())

    async def found(value: str) -> list[str]:
        return ids(await find(leads, industry=industry, has_open_follow_up=value))

    assert await found("true") == [second["id"], first["id"]]
    assert await found("false") == [third["id"]]
    counts = {
        d["_id"]: d.get("open_follow_ups")
        async for d in leads.db[LEADS].find({"_id": {"$in": [first["id"], second["id"], third["id"]]}})
    }
    assert counts == {first["id"]: 1, second["id"]: 2, third["id"]: None}
    # Completing or cancelling one counts it off, in the same transaction.
    assert (await leads.http.post(f"/tasks/{opened[0]['id']}/complete", json={})).status_code == 200
    assert (await leads.http.post(f"/tasks/{opened[1]['id']}/cancel")).status_code == 200
    assert await found("true") == [second["id"]]
    assert await found("false") == [third["id"], first["id"]]
    refused = await leads.http.get("/leads", params={"has_open_follow_up": "perhaps"})
    assert refused.status_code == 422 and refused.json()["fields"][0]["field"] == "has_open_follow_up"


async def test_leads_by_their_latest_activity(leads: Leads, lead_body: Any) -> None:
    industry = unique("worked")
    worked, idle = [await capture(leads, lead_body(company={"industry": industry})) for _ in range(2)]
    logged = await leads.http.post(
        f"/leads/{worked['id']}/activities", json={"channel": "note", "outcome": "reached"}
    )
    assert logged.status_code == 201, logged.text
    at = datetime.fromisoformat(logged.json()["activity"]["occurred_at"])
    # Both bounds include the activity's own instant; a lead with none matches neither.
    assert ids(await find(leads, industry=industry, last_activity_after=at.isoformat())) == [worked["id"]]
    assert ids(await find(leads, industry=industry, last_activity_before=at.isoformat())) == [worked["id"]]
    before = (at - timedelta(seconds=1)).isoformat()
    assert ids(await find(leads, industry=industry, last_activity_before=before)) == []
    assert idle["id"] not in ids(await find(leads, last_activity_before=datetime.now(UTC).isoformat()))
    refused = await leads.http.get(
        "/leads", params={"last_activity_after": at.isoformat(), "last_activity_before": before}
    )
    assert refused.status_code == 422 and "last_activity_after" in refused.text


# --- the indexes behind each filter ---------------------------------------------------------------

EXPECTED_INDEXES = {
    "newest_first": [("created_at", -1), ("_id", -1)],
    **{
        f"{name}_newest_first": [(key, 1), ("created_at", -1), ("_id", -1)]
        for name, key in (
            ("source", "source"),
            ("status", "status"),
            ("owner", "owner"),
            ("industry", "company.industry"),
            ("country", "company.country"),
            ("campaign", "campaign"),
            ("size", "company.size"),
            ("search", "search"),
            ("phone", "phone_e164"),
            ("domain", "company.domain"),
            ("follow_up", "open_follow_ups"),
            ("last_activity", "last_activity_at"),
        )
    },
    "name_at_company_newest_first": [("name_key", 1), ("company_key", 1), ("created_at", -1), ("_id", -1)],
}

REP = Owners(frozenset({"jonas@kariz.example"}))
FILTERS: list[tuple[str, LeadFilter, str]] = [
    ("nothing", LeadFilter.of(), "newest_first"),
    ("source", LeadFilter.of(source=LeadSource.EVENT), "source_newest_first"),
    ("status", LeadFilter.of(status=LeadStatus.NEW), "status_newest_first"),
    ("owner", LeadFilter.of(owner="jonas@kariz.example"), "owner_newest_first"),
    ("industry", LeadFilter.of(industry="software"), "industry_newest_first"),
    ("country", LeadFilter.of(country="DE"), "country_newest_first"),
    ("region", LeadFilter.of(region=Region.EMEA), "country_newest_first"),
    ("campaign", LeadFilter.of(campaign="spring"), "campaign_newest_first"),
    ("size", LeadFilter.of(size_min=10, size_max=500), "size_newest_first"),
    ("text", LeadFilter.of(text="ada love"), "search_newest_first"),
    ("open follow-up", LeadFilter.of(has_open_follow_up=True), "follow_up_newest_first"),
    (
        "no open follow-up",
        LeadFilter.of(has_open_follow_up=False, source=LeadSource.EVENT),
        "source_newest_first",
    ),
    ("no open follow-up alone", LeadFilter.of(has_open_follow_up=False), "follow_up_newest_first"),
    ("created", LeadFilter.of(created_from=T0, created_to=T0 + timedelta(days=400)), "newest_first"),
    (
        "last activity",
        LeadFilter.of(last_activity_after=T0, last_activity_before=T0 + timedelta(days=30)),
        "last_activity_newest_first",
    ),
    ("a rep's leads", LeadFilter(seen=REP), "owner_newest_first"),
    ("a rep's by country", LeadFilter(country="DE", seen=REP), "country_newest_first"),
    (
        "a rep's by text",
        replace(LeadFilter.of(text="ada", region=Region.EMEA, size_min=5), seen=REP),
        "search_newest_first",
    ),
]


#: The filters whose index the planner finds by itself (every field of the query in its key).
PLANNED = {
    "nothing",
    "source",
    "status",
    "owner",
    "industry",
    "country",
    "region",
    "campaign",
    "size",
    "open follow-up",
    "no open follow-up alone",
    "created",
    "last activity",
    "a rep's leads",
}
PLANNED_AFTER = {"nothing", "source", "status", "owner", "industry", "country", "campaign", "created"}


def plan_of(explained: dict[str, Any]) -> tuple[str, list[str]]:
    """The winning plan's stages, and the indexes it scans."""
    text = json.dumps(explained["queryPlanner"]["winningPlan"], default=str)
    stages: list[str] = []
    indexes: list[str] = []

    def walk(stage: dict[str, Any]) -> None:
        stages.append(stage["stage"])
        if "indexName" in stage:
            indexes.append(stage["indexName"])
        for child in [stage.get("inputStage"), *stage.get("inputStages", [])]:
            if child:
                walk(child)

    walk(explained["queryPlanner"]["winningPlan"])
    assert "COLLSCAN" not in text, text
    return ",".join(stages), indexes


async def test_every_filter_index_is_declared(leads: Leads) -> None:
    declared = {ix["name"]: list(ix["key"].items()) async for ix in await leads.db[LEADS].list_indexes()}
    for name, key in EXPECTED_INDEXES.items():
        assert declared.get(name) == key, (name, declared.get(name))


@pytest.mark.parametrize(("what", "criteria", "index"), FILTERS, ids=[f[0] for f in FILTERS])
async def test_an_index_serves_each_filter_and_its_cursor_pages(
    leads: Leads, what: str, criteria: LeadFilter, index: str
) -> None:
    assert index_for(criteria) == index
    query = selector(criteria)
    after = Cursor.after(T0 + timedelta(days=300), "m")
    reads = [
        query,  # the first page (and offset pages)
        _both(query, {"created_at": after.at, "_id": {"$lt": after.id}}),  # a cursor's own instant
        _both(query, {"created_at": {"$lt": after.at}}),  # older than the cursor
    ]
    first, following = hint_for(criteria), hint_for(criteria, after=True)
    # Named only where SecantusDB's planner would scan the collection (a field outside the index, text,
    # a range or $in before the cursor's bounds); otherwise the planner's own choice is checked.
    assert (first is None) == (what in PLANNED), (what, first)
    assert (following is None) == (what in PLANNED_AFTER), (what, following)
    for read, hint in zip(reads, (first, following, following), strict=True):
        found = leads.db[LEADS].find(read).sort(NEWEST_FIRST).limit(51)
        explained = await (found.hint(hint) if hint else found).explain()
        stages, scanned = plan_of(explained)
        assert scanned == [index], (what, stages, scanned)
        assert "IXSCAN" in stages
        # What the plan finds is what the query matches: the hinted index is read right (SecantusDB's
        # executionStats count what the scan found, before the limit).
        matched = await leads.db[LEADS].count_documents(read)
        assert explained["executionStats"]["nReturned"] == matched, (what, explained["executionStats"])
