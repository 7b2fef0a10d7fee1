"""The HTTP API over the in-memory delivery log: what each route answers, and what it refuses."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_notifications.adapters.in_memory import (
    InMemoryDeliveryQueue,
    InMemoryNotificationsReads,
    InMemoryNotificationsUnitOfWork,
)
from kariz_notifications.domain.model import Audience, Channel, SendResult, Subscriber
from kariz_notifications.domain.schedule import RetryPolicy
from kariz_notifications.entrypoints import http, kafka
from kariz_notifications.service_layer import handlers
from kariz_notifications.service_layer.commands import Deliver
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as runtime_http
from kariz_shared.runtime.clock import FakeClock

from .fakes import CountingMetrics, FakeSender

OWNER = "rep@kariz.test"
ONBOARDING = "onboarding@kariz.test"


@pytest.fixture
async def api(sample, issuer: LocalIssuer, admin_token: str) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    uow = InMemoryNotificationsUnitOfWork(
        clock,
        Audience(
            handover=(ONBOARDING,),
            subscribers=(Subscriber("finance", "https://finance.example/h", frozenset({"DealWon"})),),
        ),
    )
    units = InMemoryUnitsOfWork(uow)
    uow.causation_id, uow.correlation_id = "evt-1", "corr-1"
    await units.handle(kafka.subscriptions()[type(sample.deal_won())], sample.deal_won(deal_id="D-1"))
    queue = InMemoryDeliveryQueue(uow)
    claimed = await queue.claim(clock.now(), clock.now() + timedelta(seconds=30), "lane", limit=10)
    await handlers.deliver(
        Deliver(tuple(claimed), "lane", clock.now()),
        queue=queue,
        senders={
            Channel.EMAIL: FakeSender(),
            Channel.WEBHOOK: FakeSender(SendResult(ok=False, error="HTTP 500", status_code=500)),
        },
        policy=RetryPolicy(max_attempts=3, backoff_s=1.0),
        metrics=CountingMetrics(),
    )
    app = FastAPI()
    runtime_http.install(app, "notifications")
    accepting(app, issuer)
    app.include_router(http.router(InMemoryNotificationsReads(uow)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kariz.test", headers=bearer(admin_token)
    ) as client:
        yield client


async def test_the_log_lists_each_delivery_with_its_attempts(api: httpx.AsyncClient) -> None:
    page = (await api.get("/notifications", params={"subject": "D-1"})).json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 50, 0)
    by_id = {item["id"]: item for item in page["items"]}
    assert set(by_id) == {f"evt-1:email:{ONBOARDING}", f"evt-1:email:{OWNER}", "evt-1:webhook:finance"}
    mail = by_id[f"evt-1:email:{OWNER}"]
    assert (mail["channel"], mail["recipient"], mail["status"], mail["claims"]) == ("email", OWNER, "sent", 1)
    assert (mail["event_type"], mail["event_id"], mail["subject"]) == ("DealWon", "evt-1", "D-1")
    assert [a["outcome"] for a in mail["attempts"]] == ["sent"] and mail["sent_at"] is not None
    hook = by_id["evt-1:webhook:finance"]
    assert hook["status"] == "pending" and hook["next_attempt_at"] is not None
    assert [(a["outcome"], a["status_code"], a["error"]) for a in hook["attempts"]] == [
        ("failed", 500, "HTTP 500")
    ]
    assert "correlation_id" not in hook  # the detail only

    failed = (await api.get("/notifications", params={"status": "pending", "channel": "webhook"})).json()
    assert [i["id"] for i in failed["items"]] == ["evt-1:webhook:finance"]
    paged = (await api.get("/notifications", params={"limit": 1, "offset": 2})).json()
    assert (len(paged["items"]), paged["total"]) == (1, 3)


async def test_one_delivery_shows_its_message(api: httpx.AsyncClient) -> None:
    mail = (await api.get(f"/notifications/evt-1:email:{ONBOARDING}")).json()
    assert mail["correlation_id"] == "corr-1" and mail["webhook"] is None
    assert mail["email"]["to"] == ONBOARDING and mail["email"]["subject"].startswith("Hand-over: Globex")
    hook = (await api.get("/notifications/evt-1:webhook:finance")).json()
    assert hook["email"] is None
    assert (hook["webhook"]["url"], hook["webhook"]["subscriber"]) == ("https://finance.example/h", "finance")
    assert json.loads(hook["webhook"]["body"])["id"] == "evt-1"


async def test_the_handovers(api: httpx.AsyncClient) -> None:
    [handover] = (await api.get("/handovers", params={"status": "open"})).json()["items"]
    assert handover["deal_id"] == "D-1" and handover["account"] == {"id": "A-1", "name": "Globex"}
    assert (handover["owner"], handover["amount"], handover["currency"]) == (OWNER, "48000", "EUR")


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/notifications", {"status": "delivered"}, "status"),
        ("/notifications", {"channel": "sms"}, "channel"),
        ("/notifications", {"event_type": "LeadCaptured"}, "event_type"),
        ("/notifications", {"limit": 0}, "limit"),
        ("/notifications", {"limit": 201}, "limit"),
        ("/notifications", {"limit": "many"}, "limit"),
        ("/notifications", {"offset": -1}, "offset"),
        ("/notifications", {"recipient": ""}, "recipient"),
        ("/handovers", {"limit": 500}, "limit"),
        ("/handovers", {"status": "closed"}, "status"),
    ],
)
async def test_invalid_query_parameters_are_refused(
    api: httpx.AsyncClient, path: str, params: dict[str, Any], field: str
) -> None:
    response = await api.get(path, params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    assert [f["field"] for f in body["fields"]] == [field]
    assert field in body["message"]


async def test_unknown_delivery_is_404(api: httpx.AsyncClient) -> None:
    missing = await api.get("/notifications/no-such-delivery")
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "message": "no notification 'no-such-delivery'"}
