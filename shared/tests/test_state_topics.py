"""The roster's state topic against the real broker: a service reads kariz.reps.v1 from its beginning
without a consumer group, keeps the newest profile per rep, dead-letters a record it cannot read, and a
manager's token sees a rep's records once a profile puts the rep in the manager's team."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from fastapi import APIRouter, Depends

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import Backends, eventually, publish, publish_raw, reading, running, unique
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import RepProfile, dead_letter_topic
from kariz_shared.runtime import auth
from kariz_shared.runtime.settings import ServiceSettings
from kariz_shared.service import Service

pytestmark = pytest.mark.integration


def profile(email: str, team: str, **fields: object) -> Envelope[RepProfile]:
    event = RepProfile(email=email, team=team, updated_at=datetime.now(UTC), **fields)
    return Envelope(event=event, source="/kariz/leads", correlation_id=f"corr-{email}")


def probe(settings: ServiceSettings) -> Service:
    service = Service(settings, title="probe", description="a service that only signs callers in")
    routes = APIRouter(dependencies=[Depends(auth.authenticate)])

    @routes.get("/seen")
    async def seen(caller: auth.Authenticated) -> list[str]:
        return sorted(caller.seen.these or ())

    service.api.include_router(routes)
    return service


async def test_the_roster_follows_its_topic_and_a_managers_team_with_it(
    settings_for, backends: Backends, issuer: LocalIssuer
) -> None:  # type: ignore[no-untyped-def]
    team = unique("team")
    ria, kim = f"{unique('ria')}@kariz.example", f"{unique('kim')}@kariz.example"
    bad = f"{unique('bad')}@kariz.example"
    bootstrap = backends.kafka_bootstrap
    # Published before the service starts: it reads the topic from its beginning.
    await publish(bootstrap, profile(ria, "elsewhere"))
    service = probe(settings_for(ServiceSettings, service_name="probe"))
    reader = service.roster_reader
    assert reader is not None
    manager = issuer.token(kim, ["manager"], team=team)
    async with reading(bootstrap, dead_letter_topic(RepProfile.topic())) as dlq:
        async with running(service, token=manager) as http:
            await asyncio.wait_for(reader.caught_up.wait(), 30)
            assert service.roster.team_of(ria) == "elsewhere"
            # Their own and their team's queue (kariz_shared.contracts.identity.team_queue).
            assert (await http.get("/seen")).json() == [kim, f"queue:{team}"]

            await publish_raw(bootstrap, RepProfile.topic(), bad.encode(), b"{not json", {})
            await publish(bootstrap, profile(ria, team, manager=kim, time_zone="Asia/Tehran"))
            await eventually(lambda: service.roster.team_of(ria) == team)
            assert (await http.get("/seen")).json() == sorted([kim, ria, f"queue:{team}"])
            assert service.roster.manager_of(ria) == kim
            assert reader.latest[ria].time_zone == "Asia/Tehran"

            # Every running service's reader dead-letters it (others of this session run too): this
            # reader's own letter, once.
            [letter] = await dlq.wait_for(
                lambda r: r.key == bad and r.headers.get("dlq_consumer_group") == reader.reader
            )
            assert (await http.get("/readyz")).json()["checks"]["roster"] is True
            metrics = (await http.get("/metrics")).text
    assert letter.headers["dlq_reason"] == "invalid_envelope"  # no CloudEvents headers
    assert letter.headers["dlq_original_topic"] == RepProfile.topic()
    assert letter.headers["dlq_consumer_group"] == reader.reader
    assert letter.value == b"{not json"
    assert 'kariz_state_caught_up{service="probe",topic="kariz.reps.v1"} 1.0' in metrics
    assert (
        'kariz_state_records_total{outcome="dead_lettered",service="probe",topic="kariz.reps.v1"}' in metrics
    )
