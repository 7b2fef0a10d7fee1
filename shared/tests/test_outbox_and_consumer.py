"""The shared spine against the real broker and database: outbox relay, handle-once, dead letters."""

from __future__ import annotations

import asyncio

import pytest
from pymongo import AsyncMongoClient

from kariz_devkit.testing import publish, publish_raw, reading, running, unique
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.errors import RejectedEvent
from kariz_shared.contracts.events import LeadCaptured, LeadDisqualified, ScoreLine, dead_letter_topic
from kariz_shared.persistence.store import Transaction
from kariz_shared.runtime.settings import ServiceSettings
from kariz_shared.service import Service

from .test_envelope import captured

pytestmark = pytest.mark.integration


def make_service(settings: ServiceSettings) -> Service:
    service = Service(settings, title="probe", description="test service", publishes=[LeadDisqualified])

    async def on_captured(event: LeadCaptured, tx: Transaction) -> None:
        if event.campaign == "reject":
            raise RejectedEvent("campaign says reject")
        await tx.db.seen.insert_one({"lead_id": event.lead_id}, session=tx.session)
        tx.emit(
            LeadDisqualified(
                lead_id=event.lead_id,
                owner=event.owner,
                reason="probe",
                score=0,
                breakdown=[ScoreLine(rule="r", matched="m", points=0)],
                disqualified_at=event.captured_at,
            )
        )

    service.subscribe(LeadCaptured, on_captured, group_id=unique("probe"))
    return service


async def test_consumed_once_emitted_through_outbox_and_poison_dead_lettered(
    settings_for, backends, admin_token
) -> None:  # type: ignore[no-untyped-def]
    settings = settings_for(ServiceSettings, service_name="probe")
    service = make_service(settings)
    lead = unique("L")
    env = Envelope(event=captured(lead), source="/kariz/leads", correlation_id=f"corr-{lead}")
    bad = unique("L")
    rejected = Envelope(
        event=captured(bad).model_copy(update={"campaign": "reject"}),
        source="/kariz/leads",
        correlation_id="c",
    )
    # A LeadCaptured that claims to come from deals: only leads writes that topic.
    forged_lead = unique("L")
    forged = Envelope(event=captured(forged_lead), source="/kariz/deals", correlation_id="c-forged")
    out = LeadDisqualified.topic()
    async with reading(backends.kafka_bootstrap, out, dead_letter_topic(LeadCaptured.topic())) as reader:
        async with running(service, token=admin_token) as http:
            await publish_raw(backends.kafka_bootstrap, LeadCaptured.topic(), lead.encode(), b"{not json", {})
            await publish(backends.kafka_bootstrap, env)
            await publish(backends.kafka_bootstrap, env)  # redelivery of the same event id
            await publish(backends.kafka_bootstrap, rejected)
            await publish(backends.kafka_bootstrap, forged)
            [rec] = await reader.wait_for(lambda r: r.topic == out and r.key == lead)
            dlq = await reader.wait_for(
                lambda r: r.topic.endswith(".dlq") and r.key in (lead, bad, forged_lead), count=3
            )
            assert service.roster_reader is not None
            await asyncio.wait_for(service.roster_reader.caught_up.wait(), 30)
            assert (await http.get("/readyz")).json()["checks"] == {
                "database": True,
                "broker": True,
                "started": True,
                "roster": True,
            }
            metrics = (await http.get("/metrics")).text
            assert 'kariz_events_consumed_total{outcome="duplicate"' in metrics or "duplicate" in metrics
        assert rec.headers["ce_correlationid"] == f"corr-{lead}"
        assert rec.headers["ce_causationid"] == env.id
        assert rec.headers["ce_type"] == "kariz.lead-disqualified.v1"
        errors = {r.key: r.headers["dlq_error"] for r in dlq}
        reasons = {r.key: r.headers["dlq_reason"] for r in dlq}
        assert "missing CloudEvents headers" in errors[lead]  # headers are read before the value
        assert reasons[lead] == "invalid_envelope"
        assert "campaign says reject" in errors[bad]
        assert reasons[bad] == "rejected"
        assert reasons[forged_lead] == "invalid_envelope"
        assert "written by /kariz/leads only" in errors[forged_lead]
        assert all(r.headers["dlq_original_topic"] == LeadCaptured.topic() for r in dlq)
        assert len(reader.of(out, lead)) == 1

    db = AsyncMongoClient(backends.mongodb_uri)[settings.database_name]
    assert await db.seen.count_documents({"lead_id": lead}) == 1
    assert await db.outbox.count_documents({"published_at": None}) == 0
