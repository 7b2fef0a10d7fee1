"""A manager's visibility follows the roster at runtime, end to end over HTTP: a lead of a rep no
configuration names is out of a manager's reach until a RepProfile on kariz.reps.v1 puts the rep in
the manager's team (the service reads it like every service does, kariz_shared.messaging.state)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import bearer, eventually, publish, unique
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import RepProfile

from .conftest import Leads

pytestmark = pytest.mark.integration


async def test_a_manager_sees_a_reps_lead_once_the_roster_puts_the_rep_in_the_team(
    leads: Leads, lead_body: Any, issuer: LocalIssuer
) -> None:
    team = unique("team")
    # Addresses of this test's own: the roster topic is shared by every service of the session.
    ria, kim = f"{unique('ria')}@kariz.example", f"{unique('kim')}@kariz.example"
    created = await leads.http.post("/leads", json=lead_body())
    assert created.status_code == 201, created.text
    lead_id = created.json()["id"]
    moved = await leads.http.post(f"/leads/{lead_id}/assign", json={"owner": ria, "reason": "roster test"})
    assert moved.status_code == 200, moved.text
    manager = bearer(issuer.token(kim, ["manager"], team=team))
    reader = leads.service.roster_reader
    assert reader is not None
    await asyncio.wait_for(reader.caught_up.wait(), 30)
    assert (await leads.http.get(f"/leads/{lead_id}", headers=manager)).status_code == 404

    profile = RepProfile(email=ria, team=team, manager=kim, updated_at=datetime.now(UTC))
    await publish(
        leads.settings.kafka_bootstrap_servers,
        Envelope(event=profile, source="/kariz/leads", correlation_id=unique("corr")),
    )
    await eventually(lambda: leads.service.roster.team_of(ria) == team)
    seen = await leads.http.get(f"/leads/{lead_id}", headers=manager)
    assert seen.status_code == 200 and seen.json()["owner"] == ria
    page = await leads.http.get("/leads", params={"owner": ria}, headers=manager)
    assert [lead["id"] for lead in page.json()["items"]] == [lead_id]
