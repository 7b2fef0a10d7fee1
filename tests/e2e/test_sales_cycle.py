"""End to end: the four services as separate processes on the real (embedded) broker and database.

A lead goes from ``POST /leads`` to ``DealWon`` over HTTP. The test reads the events from Kafka as an
outside subscriber would, checks each service's own database, receives the e-mails on an SMTP server
and the webhook (checking its signature) on a local HTTP server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request
from pymongo import AsyncMongoClient

from kariz_devkit.devstack import ServiceProcess, start_service, wait_ready
from kariz_devkit.embedded import free_port
from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import Backends, bearer, eventually, reading, unique
from kariz_devkit.testing.cluster import Inbox
from kariz_shared.contracts.events import (
    DealOpened,
    DealWon,
    LeadCaptured,
    LeadQualified,
    StageChanged,
)
from kariz_shared.contracts.webhooks import verify
from kariz_shared.system import SERVICE_NAMES as SERVICES

pytestmark = pytest.mark.e2e

SECRET = "e2e-webhook-secret-at-least-32-bytes"
# The stack runs on a broker of the module's own (``stack_backends``): on the session's, its new consumer
# groups first read every earlier test's records (over 30 s late in a full run). Alone a step takes a
# second or two; the margin is for a loaded machine.
CATCH_UP_S = 60.0
CE_HEADERS = {"ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "ce_subject", "content-type"}


@dataclass
class Hooks:
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@dataclass
class Stack:
    logs: Path
    urls: dict[str, str]
    databases: dict[str, str]
    inbox: Inbox
    hooks: Hooks
    backends: Backends
    rep: str
    #: The rep signs in with the identity provider; the delivery log is a manager's or an admin's view.
    rep_token: str
    admin_token: str


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    box = Inbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture(scope="module")
async def hooks() -> AsyncIterator[tuple[Hooks, int]]:
    store = Hooks()
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> dict[str, bool]:
        store.received.append((dict(request.headers), await request.body()))
        return {"ok": True}

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    yield store, port
    server.should_exit = True
    await task


@pytest.fixture(scope="module")
async def stack(
    stack_backends: Backends,
    inbox: Inbox,
    hooks: tuple[Hooks, int],
    tmp_path_factory: pytest.TempPathFactory,
    issuer: LocalIssuer,
    admin_token: str,
) -> AsyncIterator[Stack]:
    backends = stack_backends
    hook_store, hook_port = hooks
    rep = f"{unique('rep')}@kariz.test"
    databases = {name: unique(f"e2e_{name}") for name in SERVICES}
    logs = Path(tmp_path_factory.mktemp("logs"))
    common = {
        **backends.env(),
        "KARIZ_LOG_LEVEL": "DEBUG",
        # Consumer groups of their own: in-process services of other tests may still run in this session.
        "KARIZ_KAFKA_GROUP_PREFIX": unique("e2e"),
        "KARIZ_OUTBOX_POLL_INTERVAL_S": "0.2",
        "KARIZ_REPS": json.dumps([rep]),
        "KARIZ_SMTP_PORT": str(inbox.port),
        "KARIZ_TEAM_EMAILS": json.dumps(["team@kariz.test"]),
        "KARIZ_HANDOVER_EMAILS": json.dumps(["onboarding@kariz.test"]),
        "KARIZ_DELIVERY_BACKOFF_S": "0.2",
        "KARIZ_WEBHOOK_SUBSCRIBERS": json.dumps(
            [
                {
                    "name": "finance",
                    "url": f"http://127.0.0.1:{hook_port}/hook",
                    "secret": SECRET,
                    "events": ["DealWon"],
                }
            ]
        ),
    }
    processes: list[ServiceProcess] = []
    try:
        for name in SERVICES:
            env = {**common, "KARIZ_MONGODB_DATABASE": databases[name]}
            processes.append(start_service(name, free_port(), env, logs))
        await wait_ready(processes)
        urls = {p.name: p.url for p in processes}
        rep_token = issuer.token(rep, ["rep"])
        yield Stack(logs, urls, databases, inbox, hook_store, backends, rep, rep_token, admin_token)
    finally:
        for p in processes:
            code = await asyncio.to_thread(p.stop)
            # A graceful SIGTERM shutdown exits 0; anything else means the shutdown path is broken.
            assert code == 0, f"{p.name} exited {code} on SIGTERM; log in {logs}"


def _topics() -> list[str]:
    return [cls.topic() for cls in (LeadCaptured, LeadQualified, DealOpened, StageChanged, DealWon)]


def _assert_cloudevent(rec: Any, topic: str, key: str, correlation_id: str, source: str) -> None:
    assert rec.topic == topic
    assert rec.key == key, f"{topic} must be keyed by the aggregate id"
    assert CE_HEADERS <= rec.headers.keys()
    assert rec.headers["ce_specversion"] == "1.0"
    assert rec.headers["ce_type"] == topic
    assert rec.headers["ce_subject"] == key
    assert rec.headers["ce_source"] == source
    assert rec.headers["content-type"] == "application/json"
    assert rec.headers["ce_correlationid"] == correlation_id, f"{topic} lost the lead's correlation id"


async def test_a_lead_goes_from_capture_to_won_with_email_and_signed_webhook(stack: Stack) -> None:
    correlation_id = unique("corr")
    email = f"{unique('buyer')}@globex-e2e.example"
    lead_body = {
        "contact": {
            "first_name": " Grace ",
            "last_name": "Hopper",
            "email": email.upper(),
            "title": "VP Engineering",
        },
        "company": {"name": "Globex", "industry": "software", "size": 450, "country": "DE"},
        "source": "referral",
        "campaign": "customer-referrals-q4",
        "consent": True,
    }
    async with (
        reading(stack.backends.kafka_bootstrap, *_topics()) as reader,
        httpx.AsyncClient(timeout=15, headers=bearer(stack.rep_token)) as http,
    ):
        created = await http.post(
            f"{stack.urls['leads']}/leads", json=lead_body, headers={"X-Correlation-Id": correlation_id}
        )
        assert created.status_code == 201, created.text
        lead = created.json()
        lead_id = lead["id"]
        assert lead["contact"]["email"] == email.lower()
        assert lead["company"]["domain"] == "globex-e2e.example"
        assert lead["owner"] == stack.rep

        [captured] = await reader.wait_for(
            lambda r: r.topic == LeadCaptured.topic() and r.key == lead_id, timeout=CATCH_UP_S
        )
        _assert_cloudevent(captured, LeadCaptured.topic(), lead_id, correlation_id, "/kariz/leads")
        # Who made each change: the rep who captured the lead; the services for what they did on their own.
        assert captured.headers["ce_actor"] == stack.rep
        [qualified] = await reader.wait_for(
            lambda r: r.topic == LeadQualified.topic() and r.key == lead_id, timeout=CATCH_UP_S
        )
        _assert_cloudevent(qualified, LeadQualified.topic(), lead_id, correlation_id, "/kariz/qualification")
        assert qualified.headers["ce_actor"] == "/kariz/qualification"
        assert qualified.headers["ce_causationid"] == captured.headers["ce_id"]
        assert qualified.body["score"] >= qualified.body["threshold"]

        verdict = (await http.get(f"{stack.urls['qualification']}/leads/{lead_id}/qualification")).json()
        assert verdict["status"] == "qualified"
        assert {line["rule"] for line in verdict["breakdown"]} >= {"industry", "country", "source"}

        [opened] = await reader.wait_for(
            lambda r: r.topic == DealOpened.topic() and r.body.get("lead_id") == lead_id, timeout=CATCH_UP_S
        )
        deal_id = opened.key
        assert deal_id is not None
        _assert_cloudevent(opened, DealOpened.topic(), deal_id, correlation_id, "/kariz/deals")
        deals = (await http.get(f"{stack.urls['deals']}/deals", params={"lead_id": lead_id})).json()
        assert [d["id"] for d in deals["items"]] == [deal_id]

        # A proposal needs an amount: refused with a reason, and nothing moves.
        refused = await http.post(f"{stack.urls['deals']}/deals/{deal_id}/stage", json={"stage": "proposal"})
        assert refused.status_code == 422 and "amount" in refused.json()["message"]

        path = [
            {"stage": "discovery"},
            {"stage": "demo"},
            {"stage": "proposal", "amount": "48000"},
            {"stage": "negotiation"},
            {"stage": "contract"},
            {"stage": "won"},
        ]
        for move in path:
            moved = await http.post(f"{stack.urls['deals']}/deals/{deal_id}/stage", json=move)
            assert moved.status_code == 200, moved.text

        changes = await reader.wait_for(
            lambda r: r.topic == StageChanged.topic() and r.key == deal_id,
            count=len(path),
            timeout=CATCH_UP_S,
        )
        assert [(c.body["from_stage"], c.body["to_stage"]) for c in changes] == [
            ("qualification", "discovery"),
            ("discovery", "demo"),
            ("demo", "proposal"),
            ("proposal", "negotiation"),
            ("negotiation", "contract"),
            ("contract", "won"),
        ], "StageChanged must arrive in order for one deal"
        for change in changes:
            _assert_cloudevent(change, StageChanged.topic(), deal_id, correlation_id, "/kariz/deals")
        [won] = await reader.wait_for(
            lambda r: r.topic == DealWon.topic() and r.key == deal_id, timeout=CATCH_UP_S
        )
        _assert_cloudevent(won, DealWon.topic(), deal_id, correlation_id, "/kariz/deals")
        assert won.headers["ce_actor"] == stack.rep and opened.headers["ce_actor"] == "/kariz/deals"
        assert won.body["amount"] in ("48000", "48000.00", 48000)

        deal = (await http.get(f"{stack.urls['deals']}/deals/{deal_id}")).json()
        assert deal["stage"] == "won"
        assert [h["stage"] for h in deal["history"]] == [
            "qualification",
            "discovery",
            "demo",
            "proposal",
            "negotiation",
            "contract",
            "won",
        ]

        # The win reaches people: the team, the owner and onboarding by e-mail, finance by signed webhook.
        def mails_for_deal() -> list[EmailMessage]:
            return [
                m for m in stack.inbox.messages if "Globex" in str(m["Subject"]) or deal_id in m.as_string()
            ]

        await eventually(
            lambda: (
                {"team@kariz.test", stack.rep, "onboarding@kariz.test"}
                <= {str(m["To"]) for m in mails_for_deal()}
            ),
            timeout=CATCH_UP_S,
        )
        await eventually(
            lambda: [h for h in stack.hooks.received if json.loads(h[1])["subject"] == deal_id],
            timeout=CATCH_UP_S,
        )
        [(headers, body)] = [h for h in stack.hooks.received if json.loads(h[1])["subject"] == deal_id]
        assert verify(SECRET, body, headers), "webhook signature must verify with the subscriber's secret"
        assert headers["x-kariz-event-type"] == DealWon.ce_type()
        assert headers["x-kariz-delivery-id"]
        payload = json.loads(body)
        assert payload["data"]["deal_id"] == deal_id and payload["correlation_id"] == correlation_id

        # Each service's own database holds its part of the story.
        await _check_databases(stack, lead_id, deal_id)

        # Notifications shows what it delivered, and to whom.
        log = (
            await http.get(
                f"{stack.urls['notifications']}/notifications",
                params={"subject": deal_id},
                headers=bearer(stack.admin_token),
            )
        ).json()
        assert {(d["channel"], d["status"]) for d in log["items"]} == {("email", "sent"), ("webhook", "sent")}

    # Every service logged its part of this lead's story as JSON lines carrying the correlation id.
    for name in SERVICES:
        lines = [json.loads(line) for line in (stack.logs / f"{name}.log").read_text().splitlines()]
        assert any(line.get("correlation_id") == correlation_id for line in lines), f"{name} log lacks it"

    # Exactly one of each event for this lead and deal: nothing was published twice.
    assert len(reader.of(LeadCaptured.topic(), lead_id)) == 1
    assert len(reader.of(LeadQualified.topic(), lead_id)) == 1
    assert len(reader.of(DealWon.topic(), deal_id)) == 1


async def _check_databases(stack: Stack, lead_id: str, deal_id: str) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.backends.mongodb_uri)
    try:
        dbs = {name: client[db] for name, db in stack.databases.items()}

        async def lead_is_qualified() -> bool:
            doc = await dbs["leads"].leads.find_one({"_id": lead_id})
            return doc is not None and doc["status"] == "qualified"

        await eventually(lead_is_qualified, timeout=CATCH_UP_S)
        assert await dbs["qualification"].processed_events.count_documents({"subject": lead_id}) == 1
        deal = await dbs["deals"].deals.find_one({"_id": deal_id})
        assert deal is not None and deal["stage"] == "won"

        async def all_sent() -> bool:
            # A batch's attempts are recorded once all its sends returned: the log follows the receipt.
            sent = {"subject": deal_id, "status": "sent"}
            return await dbs["notifications"].deliveries.count_documents(sent) >= 4

        await eventually(all_sent, timeout=CATCH_UP_S)
        for name, db in dbs.items():
            assert await db.outbox.count_documents({"published_at": None}) == 0, (
                f"{name} left events unpublished"
            )
    finally:
        await client.close()
