"""Finding leads: filters, newest first, pagination, and refused filter values."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kariz_devkit.testing import unique
from kariz_leads.adapters.mongo.repositories import newest_capture

pytestmark = pytest.mark.integration


async def test_filters_and_pages_newest_first(leads: Any, lead_body: Any) -> None:
    industry = unique("robotics")  # keeps this test's leads apart from the others in the shared database
    started = datetime.now(UTC)
    specs = [
        ("web_form", "DE"),
        ("event", "DE"),
        ("event", "FR"),
        ("partner", "GB"),
        ("event", None),
    ]
    ids = []
    for source, country in specs:
        body = lead_body(source=source, company={"industry": industry.upper(), "country": country})
        response = await leads.http.post("/leads", json=body)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
        await asyncio.sleep(0.01)  # distinct capture times, so "newest first" has one answer
    newest_first = ids[::-1]

    async def find(**params: Any) -> dict[str, Any]:
        response = await leads.http.get("/leads", params={"industry": f" {industry} ", **params})
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    everything = await find()
    assert [lead["id"] for lead in everything["items"]] == newest_first
    assert (everything["total"], everything["limit"], everything["offset"]) == (5, 50, 0)

    events = await find(source="event")
    assert [lead["id"] for lead in events["items"]] == [ids[4], ids[2], ids[1]]
    assert events["total"] == 3

    assert [lead["id"] for lead in (await find(country="de"))["items"]] == [ids[1], ids[0]]
    assert [lead["id"] for lead in (await find(source="event", country="FR"))["items"]] == [ids[2]]
    assert (await find(status="new"))["total"] == 5
    assert (await find(status="qualified"))["total"] == 0

    owner = everything["items"][0]["owner"]
    by_owner = await find(owner=owner.upper())
    assert by_owner["total"] == sum(1 for lead in everything["items"] if lead["owner"] == owner)
    assert {lead["owner"] for lead in by_owner["items"]} == {owner}

    first, second, last = [await find(limit=2, offset=o) for o in (0, 2, 4)]
    assert [lead["id"] for lead in first["items"]] == newest_first[0:2]
    assert [lead["id"] for lead in second["items"]] == newest_first[2:4]
    assert [lead["id"] for lead in last["items"]] == newest_first[4:]
    assert (last["total"], last["limit"], last["offset"]) == (5, 2, 4)

    third_created = everything["items"][2]["created_at"]
    since = await find(created_from=third_created)
    assert [lead["id"] for lead in since["items"]] == newest_first[:3]
    until = await find(created_to=third_created)
    assert [lead["id"] for lead in until["items"]] == newest_first[2:]
    window = await find(
        created_from=(started - timedelta(seconds=1)).isoformat(), created_to=datetime.now(UTC).isoformat()
    )
    assert window["total"] == 5
    assert (await find(created_to=(started - timedelta(seconds=1)).isoformat()))["total"] == 0


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"source": "fax"}, "source: Input should be"),
        ({"status": "won"}, "status: Input should be"),
        ({"created_from": "last tuesday"}, "created_from: Input should be a valid datetime"),
        ({"created_to": "2025-13-01"}, "created_to: "),
        (
            {"created_from": "2025-02-01T00:00:00Z", "created_to": "2025-01-01T00:00:00Z"},
            "is after created_to",
        ),
        ({"country": "Germania"}, "country: 'Germania' is not a country"),
        ({"limit": 0}, "limit: "),
        ({"limit": 201}, "limit: "),
        ({"offset": -1}, "offset: "),
    ],
)
async def test_invalid_filters_are_refused_with_a_message(
    leads: Any, params: dict[str, Any], words: str
) -> None:
    response = await leads.http.get("/leads", params=params)
    assert response.status_code == 422, response.text
    assert words in response.json()["message"]


async def test_the_newest_capture_is_found_from_the_last_one_known(leads: Any, lead_body: Any) -> None:
    async def capture() -> datetime:
        response = await leads.http.post("/leads", json=lead_body())
        assert response.status_code == 201, response.text
        created: datetime = (await leads.db.leads.find_one({"_id": response.json()["id"]}))["created_at"]
        return created

    first = await capture()
    known = await newest_capture(leads.db)
    assert known is not None and known >= first
    latest = await capture()
    # From the last answer on: the lead captured since is found, and with nothing newer the answer stays.
    assert await newest_capture(leads.db, since=known) == latest
    assert await newest_capture(leads.db, since=latest) == latest
    assert await newest_capture(leads.db, since=latest + timedelta(days=1)) == latest  # a full look
