"""Outages of the broker and the database, on a broker and database of each test's own.

A service starts while a dependency is down, says it is not ready, and recovers by itself. HTTP writes
during a database outage answer 503 and leave nothing behind. Publishing pauses while the broker is
away and resumes without loss. Several replicas share one outbox: one publishes at a time, per-key
order holds, and a stopped leader hands over.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from kariz_deals.bootstrap import build as build_deals
from kariz_deals.settings import DealsSettings
from kariz_devkit.embedded import EmbeddedBackends
from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import EMBEDDED_CONSUMER_TUNING, eventually, publish, reading, running, unique
from kariz_leads.bootstrap import build as build_leads
from kariz_leads.settings import LeadsSettings
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import (
    BantAnswers,
    Company,
    Contact,
    LeadCaptured,
    LeadQualified,
    LeadSource,
    ScoreLine,
    StageChanged,
)
from kariz_shared.messaging.broker import ensure_topics
from kariz_shared.messaging.outbox import RELAY_LEASE
from kariz_shared.persistence.store import OUTBOX, connect
from kariz_shared.runtime.settings import ServiceSettings

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def settings_on(
    backends: EmbeddedBackends, issuer: LocalIssuer, cls: type[ServiceSettings], **overrides: Any
) -> Any:
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": backends.kafka_bootstrap,
        "mongodb_uri": backends.mongodb_uri,
        "kafka_enable_idempotence": False,
        "kafka_create_topics": True,
        "kafka_group_prefix": unique("faults"),
        "mongodb_database": unique("faults"),
        # Fail fast while a dependency is away, so the test sees the 503 and the recovery quickly.
        "mongodb_timeout_ms": 1500,
        "mongodb_transaction_timeout_s": 3,
        "outbox_poll_interval_s": 0.2,
        "outbox_lease_s": 3,
        "startup_retry_max_s": 1,
        **EMBEDDED_CONSUMER_TUNING,
        **{"auth_issuer": issuer.url, "auth_audience": issuer.audience},
        **overrides,
    }
    return cls(**values)


def lead_body(email: str) -> dict[str, Any]:
    return {
        "contact": {"first_name": "Grace", "last_name": "Hopper", "email": email},
        "company": {"name": "Globex", "industry": "software", "size": 450, "country": "DE"},
        "source": "referral",
        "consent": True,
    }


async def ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def test_starts_while_the_database_is_down_and_recovers(
    own_backends: EmbeddedBackends, issuer: LocalIssuer, admin_token: str
) -> None:
    own_backends.take_down("database")
    settings = settings_on(own_backends, issuer, LeadsSettings)
    async with running(build_leads(settings), wait=False, token=admin_token) as http:
        assert (await http.get("/healthz")).status_code == 200  # alive: do not restart it
        answer = await http.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"] == {
            "database": False,
            "broker": True,
            "started": False,
            "roster": False,
        }
        refused = await http.post("/leads", json=lead_body(f"{unique('early')}@globex.example"))
        assert refused.status_code == 503
        assert refused.json()["error"] == "starting"
        assert "waiting for the database" in refused.json()["message"]

        own_backends.bring_up("database")
        await eventually(lambda: ready(http), timeout=60)
        email = f"{unique('late')}@globex.example"
        async with reading(own_backends.kafka_bootstrap, LeadCaptured.topic()) as reader:
            created = await http.post("/leads", json=lead_body(email))
            assert created.status_code == 201, created.text
            lead_id = created.json()["id"]
            await reader.wait_for(lambda r: r.key == lead_id)


async def test_starts_while_the_broker_is_down_and_recovers(
    own_backends: EmbeddedBackends, issuer: LocalIssuer, admin_token: str
) -> None:
    own_backends.take_down("broker")
    settings = settings_on(own_backends, issuer, LeadsSettings)
    async with running(build_leads(settings), wait=False, token=admin_token) as http:
        answer = await http.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"]["broker"] is False
        # The database answers, so start-up gets as far as the broker and says so.
        await eventually(lambda: _refused_waiting_for(http, "broker"), timeout=30)

        # The broker comes back empty (memory storage); the service creates its topics (dev setting).
        own_backends.bring_up("broker")
        await eventually(lambda: ready(http), timeout=60)
        async with reading(own_backends.kafka_bootstrap, LeadCaptured.topic()) as reader:
            created = await http.post("/leads", json=lead_body(f"{unique('b')}@globex.example"))
            assert created.status_code == 201, created.text
            await reader.wait_for(lambda r: r.key == created.json()["id"])


async def test_writes_during_a_database_outage_answer_503_and_leave_nothing(
    own_backends: EmbeddedBackends,
    issuer: LocalIssuer,
    admin_token: str,
) -> None:
    settings = settings_on(own_backends, issuer, LeadsSettings)
    email = f"{unique('outage')}@globex.example"
    async with reading(own_backends.kafka_bootstrap, LeadCaptured.topic()) as reader:
        async with running(build_leads(settings), token=admin_token) as http:
            # One capture first, its event out: the collections a capture writes exist before the kill.
            # SecantusDB creates a collection's storage table lazily, on its first write, and a SIGKILL in
            # the middle of that leaves a table it refuses to open at restart ("cannot be used until all
            # column groups are created"; seen once in a fresh-clone run). Killing it mid-creation tests
            # the embedded database, not Kariz.
            warm = await http.post("/leads", json=lead_body(f"{unique('warm')}@globex.example"))
            assert warm.status_code == 201, warm.text
            await reader.wait_for(lambda r: r.key == warm.json()["id"])
            own_backends.take_down("database", kill=True)
            refused = await http.post("/leads", json=lead_body(email))
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "unavailable"
            assert "nothing was changed" in refused.json()["message"]
            assert refused.headers["Retry-After"]
            assert (await http.get("/readyz")).json()["checks"]["database"] is False

            own_backends.bring_up("database")
            await eventually(lambda: ready(http), timeout=60)
            found = (await http.get("/leads", params={"source": "referral"})).json()
            assert [lead for lead in found["items"] if lead["contact"]["email"] == email] == []

            created = await http.post("/leads", json=lead_body(email))
            assert created.status_code == 201, created.text
            lead_id = created.json()["id"]
            await reader.wait_for(lambda r: r.key == lead_id)
            await asyncio.sleep(1)  # room for a wrongly repeated publish to show up
        assert len(reader.of(LeadCaptured.topic(), lead_id)) == 1


async def test_publishing_pauses_while_the_broker_is_away_and_resumes_without_loss(
    own_backends: EmbeddedBackends,
    issuer: LocalIssuer,
    admin_token: str,
) -> None:
    settings = settings_on(own_backends, issuer, LeadsSettings)
    client = connect(settings)
    outbox = client[settings.database_name][OUTBOX]
    try:
        async with running(build_leads(settings), token=admin_token) as http:
            own_backends.take_down("broker", kill=True)
            ids = []
            for n in range(20):
                created = await http.post("/leads", json=lead_body(f"{unique(f'p{n}')}@globex.example"))
                assert created.status_code == 201, created.text  # capture needs only the database
                ids.append(created.json()["id"])
            assert await outbox.count_documents({"published_at": None}) == 20
            assert (await http.get("/readyz")).json()["checks"]["broker"] is False

            own_backends.bring_up("broker")
            # A real broker comes back with its topics; the embedded one keeps them in memory. Made again
            # at once, as the platform's would be there: a record the producer retries into a topic the
            # embedded broker lost is taken and gone (seen once the roster's readiness delayed this test).
            await ensure_topics(own_backends.kafka_bootstrap, partitions=settings.kafka_topic_partitions)
            await eventually(lambda: ready(http), timeout=60)
            async with reading(own_backends.kafka_bootstrap, LeadCaptured.topic()) as reader:
                await reader.wait_for(lambda r: r.key in ids, count=20, timeout=90)
                assert sorted({r.key for r in reader.records if r.key in ids}) == sorted(ids)
            await eventually(lambda: _nothing_pending(outbox))
    finally:
        await client.close()


def qualified(lead_id: str) -> LeadQualified:
    return LeadQualified(
        lead_id=lead_id,
        owner="rep@kariz.test",
        contact=Contact(first_name="Ada", last_name="Lovelace", email=f"{lead_id}@analytical.example"),
        company=Company(name="Analytical Engines", domain="analytical.example", country="GB"),
        source=LeadSource.TRADE_SHOW,
        score=72,
        threshold=60,
        breakdown=[ScoreLine(rule="industry", matched="software", points=20)],
        answers=BantAnswers(
            budget="confirmed",
            budget_amount=Decimal("10000"),
            authority="decision_maker",
            need="confirmed",
            timeline="within_3_months",
        ),
        qualified_at=datetime.now(UTC),
    )


async def test_replicas_share_the_outbox_one_publisher_at_a_time_order_kept(
    own_backends: EmbeddedBackends,
    issuer: LocalIssuer,
    admin_token: str,
) -> None:
    """Two deals replicas on one database; a deal is moved through its stages by requests alternating
    between them. The StageChanged events come out once each, in the deal's order; when the leading
    replica stops, the other takes the lease over and publishes what follows."""
    database = unique("faults_deals")
    group = unique("faults")
    first = build_deals(
        settings_on(own_backends, issuer, DealsSettings, mongodb_database=database, kafka_group_prefix=group)
    )
    second = build_deals(
        settings_on(own_backends, issuer, DealsSettings, mongodb_database=database, kafka_group_prefix=group)
    )
    lead_id = str(uuid.uuid4())
    envelope = Envelope(
        event=qualified(lead_id), source="/kariz/qualification", correlation_id=f"c-{lead_id}"
    )
    stages = ["discovery", "demo", "proposal", "negotiation", "contract", "proposal", "negotiation", "won"]
    client = connect(first.settings)
    leases = client[database][RELAY_LEASE]
    async with reading(own_backends.kafka_bootstrap, StageChanged.topic()) as reader:
        async with running(first, token=admin_token) as a, running(second, token=admin_token) as b:
            await publish(own_backends.kafka_bootstrap, envelope)
            deal = await eventually(lambda: _first_deal(a, lead_id), timeout=60)
            for n, stage in enumerate(stages[:4]):
                body: dict[str, Any] = {"stage": stage}
                if stage == "proposal":
                    body["amount"] = "48000"
                moved = await (a if n % 2 == 0 else b).post(f"/deals/{deal}/stage", json=body)
                assert moved.status_code == 200, moved.text
            await reader.wait_for(lambda r: r.key == deal, count=4)
            lease = await leases.find_one({"_id": "relay"})
            leader, follower = (
                (first, second) if lease["owner"] == first.settings.instance_id else (second, first)
            )
            assert [leader.relay.leading, follower.relay.leading] == [True, False]
            await leader.stop()  # hands the lease over
            survivor = a if follower is first else b
            order = ["qualification", *stages[:5], "won"]  # the default pipeline's open stages, then won
            for before, stage in list(itertools.pairwise(stages))[3:]:
                body = {"stage": stage}
                if order.index(stage) < order.index(before):  # contract -> proposal: a move back says why
                    body["reason"] = "the customer asked for a revised proposal"
                moved = await survivor.post(f"/deals/{deal}/stage", json=body)
                assert moved.status_code == 200, moved.text
            await reader.wait_for(lambda r: r.key == deal, count=len(stages), timeout=60)
            await eventually(lambda: follower.relay.leading)
            await asyncio.sleep(1)  # room for a wrongly repeated publish to show up
    await client.close()
    changes = [r for r in reader.of(StageChanged.topic(), deal)]
    assert len({r.headers["ce_id"] for r in changes}) == len(changes) == len(stages)
    assert [r.body["to_stage"] for r in changes] == stages


async def _refused_waiting_for(http: httpx.AsyncClient, dependency: str) -> bool:
    answer = await http.post("/leads", json=lead_body("someone@globex.example"))
    return answer.status_code == 503 and f"waiting for the {dependency}" in answer.json()["message"]


async def _nothing_pending(outbox: Any) -> bool:
    return await outbox.count_documents({"published_at": None}) == 0


async def _first_deal(http: httpx.AsyncClient, lead_id: str) -> str | None:
    items = (await http.get("/deals", params={"lead_id": lead_id})).json()["items"]
    return items[0]["id"] if items else None
