"""A merge over HTTP on the real broker and database, with tokens: in one transaction the duplicate becomes
merged and its activities, follow-ups (and their timers) and history become the survivor's; LeadsMerged
reaches the broker with its actor; a later capture of the duplicate's address touches the survivor."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import bearer, reading, unique
from kariz_shared.contracts.events import LeadsMerged

from .conftest import Leads

pytestmark = pytest.mark.integration


async def test_a_merge_keeps_both_stories_on_the_survivor_and_is_published(
    leads: Leads, lead_body: Any, issuer: LocalIssuer
) -> None:
    manager = bearer(issuer.token("greta@kariz.example", ["manager"], team="dach"))
    industry = unique("merge")
    bodies = [lead_body(company={"country": "DE", "industry": industry}) for _ in range(2)]
    survivor, duplicate = [(await leads.http.post("/leads", json=body)).json() for body in bodies]
    due = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    logged = await leads.http.post(
        f"/leads/{duplicate['id']}/activities",
        json={
            "channel": "call",
            "outcome": "reached",
            "follow_up": {"kind": "call_back", "title": "Call back", "due_at": due.isoformat()},
        },
        headers=manager,
    )
    assert logged.status_code == 201, logged.text
    task_id = logged.json()["follow_up"]["id"]
    # An API key merges nothing: it is a person's decision.
    key = await leads.http.post("/api-keys", json={"name": unique("k"), "scopes": ["leads:capture"]})
    machine = {"X-Api-Key": key.json()["key"], "Authorization": ""}
    path = f"/leads/{survivor['id']}/merge"
    refused = await leads.http.post(path, json={"duplicate_id": duplicate["id"]}, headers=machine)
    assert refused.status_code == 403, refused.text

    async with reading(leads.settings.kafka_bootstrap_servers, LeadsMerged.topic()) as reader:
        done = await leads.http.post(
            path, json={"duplicate_id": duplicate["id"], "reason": "same person"}, headers=manager
        )
        assert done.status_code == 200, done.text
        [record] = await reader.wait_for(lambda r: r.key == survivor["id"])
    assert (done.json()["status"], done.json()["touch_count"], done.json()["attempt_count"]) == (
        "working",
        2,
        1,
    )
    assert record.headers["ce_actor"] == "greta@kariz.example"
    event = LeadsMerged.model_validate(record.body)
    assert (event.lead_id, event.merged_lead_id, event.owner, event.merged_owner, event.actor) == (
        survivor["id"],
        duplicate["id"],
        survivor["owner"],
        duplicate["owner"],
        "greta@kariz.example",
    )
    [outboxed] = await leads.db.outbox.find({"key": survivor["id"], "topic": LeadsMerged.topic()}).to_list()
    assert json.loads(outboxed["value"])["merged_lead_id"] == duplicate["id"]

    merged = (await leads.http.get(f"/leads/{duplicate['id']}", headers=manager)).json()
    assert (merged["status"], merged["merged_into"]) == ("merged", survivor["id"])
    # The duplicate's activity, follow-up (and its timer) and history are the survivor's now.
    acts = (await leads.http.get(f"/leads/{survivor['id']}/activities", headers=manager)).json()
    assert [a["id"] for a in acts["items"]] == [logged.json()["activity"]["id"]]
    task = (await leads.http.get(f"/tasks/{task_id}", headers=manager)).json()
    assert (task["lead_id"], task["assignee"]) == (survivor["id"], survivor["owner"])
    timer = await leads.db.timers.find_one({"_id": f"task:{task_id}:due"})
    assert timer is not None and timer["event"]["lead_id"] == survivor["id"]
    assert await leads.db.timers.find_one({"_id": f"lead:{duplicate['id']}:response"}) is None
    history = (await leads.http.get(f"/leads/{survivor['id']}/history", headers=manager)).json()
    kinds = [item["kind"] for item in history["items"]]
    assert kinds.count("captured") == 2 and "activity_logged" in kinds and "duplicate_merged" in kinds
    own = (await leads.http.get(f"/leads/{duplicate['id']}/history", headers=manager)).json()
    assert [item["kind"] for item in own["items"]] == ["merged_into"]
    stored = await leads.db.leads.find_one({"_id": survivor["id"]})
    assert stored is not None and stored["open_follow_ups"] == 1
    found = (await leads.http.get("/leads", params={"industry": industry, "status": "merged"})).json()
    assert [lead["id"] for lead in found["items"]] == [duplicate["id"]]

    # A later capture of the duplicate's address touches the survivor.
    again = await leads.http.post("/leads", json=bodies[1])
    assert again.status_code == 200, again.text
    assert (again.json()["id"], again.json()["touch_count"]) == (survivor["id"], 3)
