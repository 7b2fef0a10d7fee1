"""Importing a list of leads at once against the real broker and database: every new lead stored and
announced on its own, repeats as touches, turns shared fairly, and an invalid line refusing the lot."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from kariz_devkit.testing import Backends, reading, unique
from kariz_shared.contracts.events import LeadCaptured

pytestmark = pytest.mark.integration

TOPIC = LeadCaptured.topic()


async def test_an_import_stores_each_new_lead_and_publishes_its_own_lead_captured(
    leads: Any, lead_body: Any, backends: Backends
) -> None:
    known = lead_body()
    assert (await leads.http.post("/leads", json=known)).status_code == 201
    fresh = [lead_body(company={"industry": f"import-{n}"}) for n in range(6)]
    repeated = {**fresh[0], "source": "event"}
    lines = [*fresh[:3], {**known, "source": "partner"}, *fresh[3:], repeated]

    async with reading(backends.kafka_bootstrap, TOPIC) as reader:
        response = await leads.http.post("/leads/import", json={"leads": lines})
        assert response.status_code == 200, response.text
        report = response.json()
        new_ids = {item["id"] for item in report["leads"] if not item["duplicate"]}
        records = await reader.wait_for(lambda r: r.key in new_ids, count=len(new_ids))

    assert (report["imported"], report["touches"]) == (6, 2)
    assert [item["email"] for item in report["leads"]] == [line["contact"]["email"] for line in lines]
    assert [item["duplicate"] for item in report["leads"]] == [False] * 3 + [True] + [False] * 3 + [True]
    # The repeated line is a touch of the lead its first line created, in the same import.
    assert report["leads"][-1]["id"] == report["leads"][0]["id"]
    # Round robin across the import: six new leads over three reps, two each.
    assert sorted(Counter(item["owner"] for item in report["leads"] if not item["duplicate"]).values()) == [
        2,
        2,
        2,
    ]

    events = {r.key: LeadCaptured.model_validate(r.body) for r in records}
    assert events.keys() == new_ids
    # Each lead starts its own story: one correlation id per lead, none shared.
    assert len({r.headers["ce_correlationid"] for r in records}) == len(new_ids)
    stored = {doc["_id"]: doc async for doc in leads.db.leads.find({"_id": {"$in": sorted(new_ids)}})}
    assert stored.keys() == new_ids
    first = stored[report["leads"][0]["id"]]
    assert [t["source"] for t in first["touches"]] == [fresh[0]["source"], "event"]
    touched = await leads.db.leads.find_one({"contact.email": known["contact"]["email"]})
    assert touched is not None and [t["source"] for t in touched["touches"]] == ["web_form", "partner"]


async def test_an_import_with_an_invalid_line_is_refused_whole_naming_the_line(
    leads: Any, lead_body: Any
) -> None:
    marker = unique("refused")
    good = [lead_body(company={"industry": marker}) for _ in range(3)]
    bad = lead_body(contact={"email": "not-an-address"}, company={"industry": marker})
    response = await leads.http.post("/leads/import", json={"leads": [*good[:2], bad, good[2]]})
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] == "invalid_request"
    assert [f["field"] for f in error["fields"]] == ["leads.2.contact.email"]
    assert await leads.db.leads.count_documents({"company.industry": marker}) == 0

    for body in ({"leads": []}, {"leads": [good[0]] * 1001}, {}):
        response = await leads.http.post("/leads/import", json=body)
        assert response.status_code == 422, response.text
        assert response.json()["fields"][0]["field"].startswith("leads")
    assert await leads.db.leads.count_documents({"company.industry": marker}) == 0


async def test_an_import_sent_again_with_its_idempotency_key_stores_nothing_more(
    leads: Any, lead_body: Any
) -> None:
    lines = [lead_body(company={"industry": unique("again")}) for _ in range(3)]
    key = {"Idempotency-Key": unique("batch")}
    first = await leads.http.post("/leads/import", json={"leads": lines}, headers=key)
    # A client that saw no answer sends it again (its timeout, a dropped connection).
    again = await leads.http.post("/leads/import", json={"leads": lines}, headers=key)
    assert first.status_code == again.status_code == 200, again.text
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json() and first.json()["imported"] == 3
    emails = [line["contact"]["email"] for line in lines]
    stored = [doc async for doc in leads.db.leads.find({"contact.email": {"$in": emails}})]
    assert sorted(doc["touch_count"] for doc in stored) == [1, 1, 1]
    other = await leads.http.post("/leads/import", json={"leads": lines[:1]}, headers=key)
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["message"]
