"""Assignment of new leads on the running service: round robin over the reps, territory teams, and
the turn counters kept in the database."""

from __future__ import annotations

from typing import Any

import pytest

from kariz_devkit.testing import Backends, reading
from kariz_shared.contracts.events import LeadCaptured

pytestmark = pytest.mark.integration


async def capture_owners(leads: Any, lead_body: Any, countries: list[str | None]) -> list[dict[str, Any]]:
    captured = []
    for country in countries:
        response = await leads.http.post("/leads", json=lead_body(company={"country": country}))
        assert response.status_code == 201, response.text
        captured.append(response.json())
    return captured


async def test_round_robin_takes_the_reps_in_turn(leads: Any, lead_body: Any) -> None:
    reps = leads.settings.reps
    turns = await leads.db.assignment_turns.find_one({"_id": "round_robin"})
    taken = turns["taken"] if turns else 0
    captured = await capture_owners(leads, lead_body, [None, "FR", None, "US"])
    # France and the US have no team of their own, so they take a turn in the general rotation.
    assert [lead["owner"] for lead in captured] == [reps[(taken + i) % len(reps)] for i in range(4)]
    assert {lead["assigned_by"] for lead in captured} == {"round_robin"}
    assert (await leads.db.assignment_turns.find_one({"_id": "round_robin"}))["taken"] == taken + 4


async def test_a_territory_team_gets_its_countrys_leads_in_turn(
    leads: Any, lead_body: Any, backends: Backends
) -> None:
    team = leads.settings.territories["DE"]
    turns = await leads.db.assignment_turns.find_one({"_id": "territory:DE"})
    taken = turns["taken"] if turns else 0
    general = await leads.db.assignment_turns.find_one({"_id": "round_robin"})
    async with reading(backends.kafka_bootstrap, LeadCaptured.topic()) as reader:
        captured = await capture_owners(leads, lead_body, ["de", "DE", "DE"])
        records = await reader.wait_for(lambda r: r.key in {lead["id"] for lead in captured}, count=3)
    assert [lead["owner"] for lead in captured] == [team[(taken + i) % len(team)] for i in range(3)]
    assert {lead["assigned_by"] for lead in captured} == {"territory"}
    assert {(r.body["owner"], r.body["assigned_by"]) for r in records} == {(o, "territory") for o in team}
    # The general rotation did not move.
    assert await leads.db.assignment_turns.find_one({"_id": "round_robin"}) == general
