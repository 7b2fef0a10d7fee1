"""Assignment of new leads on the running service: the turn counters kept in the database, one per
rotation, and the owner in the published event. (The rotation rule itself: tests/unit.)"""

from __future__ import annotations

from typing import Any

import pytest

from kariz_devkit.testing import Backends, reading
from kariz_shared.contracts.events import LeadCaptured

pytestmark = pytest.mark.integration


async def test_each_rotation_takes_its_turns_from_its_own_counter(
    leads: Any, lead_body: Any, backends: Backends
) -> None:
    reps, team = leads.settings.reps, leads.settings.territories["DE"]

    async def taken(key: str) -> int:
        turns = await leads.db.assignment_turns.find_one({"_id": key})
        return int(turns["taken"]) if turns else 0

    general, territory = await taken("round_robin"), await taken("territory:DE")
    async with reading(backends.kafka_bootstrap, LeadCaptured.topic()) as reader:
        captured = []
        for country in [None, "de", "FR", "DE", "US"]:
            response = await leads.http.post("/leads", json=lead_body(company={"country": country}))
            assert response.status_code == 201, response.text
            captured.append(response.json())
        records = await reader.wait_for(lambda r: r.key in {lead["id"] for lead in captured}, count=5)

    # France and the US have no team of their own, so they take a turn in the general rotation.
    assert [(lead["owner"], lead["assigned_by"]) for lead in captured] == [
        (reps[general % len(reps)], "round_robin"),
        (team[territory % len(team)], "territory"),
        (reps[(general + 1) % len(reps)], "round_robin"),
        (team[(territory + 1) % len(team)], "territory"),
        (reps[(general + 2) % len(reps)], "round_robin"),
    ]
    events = {r.key: r.body for r in records}
    assert [(events[lead["id"]]["owner"], events[lead["id"]]["assigned_by"]) for lead in captured] == [
        (lead["owner"], lead["assigned_by"]) for lead in captured
    ]
    assert (await taken("round_robin"), await taken("territory:DE")) == (general + 3, territory + 2)
