"""The roster and the assignment rules on the running service: PUT /reps stored and published on the
broker keyed by e-mail, a capture a rule matches going to the team's rep and, with nobody available, to
its queue (LeadQueued), and the roster's reads along their indexes. The rules rule only this test's own
campaign, and are emptied again after it: the suite shares one service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kariz_devkit.testing import Backends, reading, unique
from kariz_leads.adapters.mongo.documents import LEADS
from kariz_leads.adapters.mongo.roster import OWNER_STATUS, REPS, TEAM_EMAIL, open_leads_query
from kariz_shared.contracts.events import LeadCaptured, LeadQueued, RepProfile

from .conftest import Leads
from .test_search_live import plan_of

pytestmark = pytest.mark.integration


async def test_a_put_rep_is_stored_and_published_keyed_by_email(leads: Leads, backends: Backends) -> None:
    email, team = f"{unique('ana')}@kariz.example", unique("team")
    body = {"name": "Ana Vogel", "team": team, "manager": "kim@kariz.example", "time_zone": "Europe/Berlin"}
    async with reading(backends.kafka_bootstrap, RepProfile.topic()) as reader:
        created = await leads.http.put(f"/reps/{email}", json=body)
        assert created.status_code == 201, created.text
        left = await leads.http.put(f"/reps/{email}", json={**body, "active": False})
        assert left.status_code == 200, left.text
        records = await reader.wait_for(lambda r: r.key == email, count=2)
    assert [(r.body["team"], r.body["active"], r.body["time_zone"]) for r in records] == [
        (team, True, "Europe/Berlin"),
        (team, False, "Europe/Berlin"),
    ]
    assert records[0].body["actor"] == created.json()["actor"]
    stored = await leads.db[REPS].find_one({"_id": email})
    assert stored is not None and stored["active"] is False and stored["manager"] == "kim@kariz.example"


async def test_a_rule_gives_its_team_the_lead_or_its_queue(
    leads: Leads, lead_body: Any, backends: Backends
) -> None:
    team, campaign = unique("team"), unique("campaign")
    ana, bea = f"{unique('ana')}@kariz.example", f"{unique('bea')}@kariz.example"
    assert (await leads.http.put(f"/reps/{ana}", json={"team": team, "capacity": 1})).status_code == 201
    away = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert (await leads.http.put(f"/reps/{bea}", json={"team": team, "away_until": away})).status_code == 201
    in_force = await leads.http.get("/assignment-rules")
    rule = {"name": "fair", "team": team, "campaigns": [campaign]}
    put = await leads.http.put(
        "/assignment-rules", json={"rules": [rule]}, headers={"If-Match": in_force.headers["ETag"]}
    )
    assert put.status_code == 200, put.text
    try:
        async with reading(backends.kafka_bootstrap, LeadCaptured.topic(), LeadQueued.topic()) as reader:
            # Ana takes the first (Bea is away); she is then at capacity: the second waits in the queue.
            first = await leads.http.post("/leads", json=lead_body(campaign=campaign))
            second = await leads.http.post("/leads", json=lead_body(campaign=campaign))
            assert first.status_code == second.status_code == 201, (first.text, second.text)
            ids = {first.json()["id"], second.json()["id"]}
            records = await reader.wait_for(lambda r: r.key in ids, count=3)
    finally:
        emptied = await leads.http.put("/assignment-rules", json={"rules": []})
        assert emptied.status_code == 200, emptied.text
    assert (first.json()["owner"], first.json()["assigned_by"]) == (ana, "rule")
    assert (second.json()["owner"], second.json()["assigned_by"]) == (f"queue:{team}", "queue")
    queued = [r.body for r in records if r.topic == LeadQueued.topic()]
    assert [(q["lead_id"], q["team"], q["rule"]) for q in queued] == [(second.json()["id"], team, "fair")]
    assert queued[0]["reason"] == "every available rep of the team is at capacity"
    assert await leads.db.assignment_turns.find_one({"_id": f"team:{team}"}) is not None


async def test_the_rosters_reads_go_along_their_indexes(leads: Leads) -> None:
    counted = leads.db[LEADS].find(
        open_leads_query(["jonas@kariz.example"]), projection={"owner": 1, "_id": 0}
    )
    _, scanned = plan_of(await counted.hint(OWNER_STATUS).explain())
    assert scanned == [OWNER_STATUS]
    _, scanned = plan_of(await leads.db[REPS].find({"team": {"$in": ["dach"]}}).hint(TEAM_EMAIL).explain())
    assert scanned == [TEAM_EMAIL]
