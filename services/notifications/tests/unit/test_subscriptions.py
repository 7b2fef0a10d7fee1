"""``/subscriptions`` over the in-memory unit of work: an endpoint registered over HTTP receives the
events it names ("*": every public event), signed with the secret shown once; removed, it gets none."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_notifications.adapters.in_memory import InMemoryDeliveryQueue, InMemoryNotificationsUnitOfWork
from kariz_notifications.adapters.webhook import WebhookPoster
from kariz_notifications.domain.model import Channel, Delivery, SendResult
from kariz_notifications.domain.samples import sample_of
from kariz_notifications.domain.schedule import RetryPolicy
from kariz_notifications.domain.subscriptions import ReplayState, SubscriptionState
from kariz_notifications.entrypoints import kafka, subscriptions_http
from kariz_notifications.service_layer import handlers, subscriptions
from kariz_notifications.service_layer.commands import Deliver
from kariz_shared.contracts import webhooks
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import EVENTS, Event, SubscriptionDebounceDue
from kariz_shared.contracts.identity import Caller, KeyGrant, Scope
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as runtime_http
from kariz_shared.runtime.clock import FakeClock

from .fakes import CountingMetrics, FakeSender

Units = InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork]
HOOK = {"url": "https://crm.example/in", "events": ["*"]}


class IntegratorKeys:
    """The service's API keys as these tests need them: two integrators' keys with events:subscribe
    (one acting for a partner's address), and one without."""

    KEYS = {
        "k-crm": (KeyGrant("crm1", "CRM sync", on_behalf_of="ops@partner.example"), {Scope.EVENTS_SUBSCRIBE}),
        "k-erp": (KeyGrant("erp1", "ERP feed", on_behalf_of="partner:erp"), {Scope.EVENTS_SUBSCRIBE}),
        "k-form": (KeyGrant("form1", "web form"), {Scope.LEADS_CAPTURE}),
    }

    async def caller(self, secret: str) -> Caller | None:
        found = self.KEYS.get(secret)
        return Caller.with_key(found[0], frozenset(found[1])) if found else None


def key(secret: str) -> dict[str, str]:
    return {"X-Api-Key": secret, "Authorization": ""}


@pytest.fixture
def units() -> Units:
    return InMemoryUnitsOfWork(InMemoryNotificationsUnitOfWork(FakeClock()))


@pytest.fixture
async def api(units: Units, issuer: LocalIssuer, admin_token: str) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    runtime_http.install(app, "notifications")
    accepting(app, issuer)
    app.state.api_keys = IntegratorKeys()
    app.include_router(subscriptions_http.router(units, allow_http=False))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kariz.test", headers=bearer(admin_token)
    ) as client:
        yield client


async def consume(units: Units, event_type: str, event_id: str) -> list[Any]:
    event = EVENTS[event_type].model_validate(sample_of(EVENTS[event_type]))
    units.uow.causation_id, units.uow.correlation_id = event_id, "corr"
    await units.handle(kafka.subscriptions()[type(event)], event)
    stored = units.uow.deliveries.stored.values()
    return [s.record.delivery for s in stored if s.record.delivery.event_id == event_id]


async def test_a_registered_endpoint_gets_every_public_event_signed_with_its_secret(
    api: httpx.AsyncClient, units: Units
) -> None:
    created = await api.post("/subscriptions", json={"url": "https://crm.example/in", "events": ["*"]})
    assert created.status_code == 201, created.text
    body = created.json()
    secret, name = body["secret"], body["name"]
    assert len(secret) >= webhooks.SECRET_MIN_BYTES and name == f"sub-{body['id']}"
    [listed] = (await api.get("/subscriptions")).json()
    assert "secret" not in listed and listed["created_by"] == "admin@kariz.test"

    [hook] = await consume(units, "LeadCaptured", "evt-1")
    assert (hook.channel, hook.recipient, hook.rule) == (Channel.WEBHOOK, name, "subscription")

    seen: list[httpx.Request] = []
    poster = WebhookPoster(lambda n: None, 5, units.uow.subscriptions.secret)
    poster._client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200))
    )
    assert (await poster.send(hook)).ok
    await poster.aclose()
    [request] = seen
    assert webhooks.verify(secret, request.content, dict(request.headers))
    assert json.loads(request.content)["type"] == "kariz.lead-captured.v1"

    assert (await api.delete(f"/subscriptions/{body['id']}")).status_code == 204
    assert await consume(units, "DealOpened", "evt-2") == []
    assert (await api.delete(f"/subscriptions/{body['id']}")).status_code == 404


async def test_an_endpoint_gets_only_the_event_types_it_names(api: httpx.AsyncClient, units: Units) -> None:
    created = await api.post(
        "/subscriptions", json={"url": "https://crm.example/in", "events": ["DealOpened"]}
    )
    assert created.status_code == 201
    assert await consume(units, "LeadCaptured", "evt-1") == []
    assert [d.event_type for d in await consume(units, "DealOpened", "evt-2")] == ["DealOpened"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://crm.example/in", "events": ["*"]}, "url:"),
        ({"url": "crm.example", "events": ["*"]}, "url:"),
        ({"url": "https://crm.example/in", "events": ["RepProfile"]}, "events:"),
        ({"url": "https://crm.example/in", "events": ["DigestDue"]}, "events:"),
        ({"url": "https://crm.example/in", "events": []}, "invalid request: events"),
    ],
)
async def test_bad_endpoints_are_refused_naming_the_field(
    api: httpx.AsyncClient, units: Units, body: dict[str, Any], field: str
) -> None:
    response = await api.post("/subscriptions", json=body)
    assert response.status_code == 422 and response.json()["message"].startswith(field), response.json()
    assert units.uow.subscriptions.stored == {}


async def test_a_manager_may_not_manage_subscriptions(api: httpx.AsyncClient, issuer: LocalIssuer) -> None:
    manager = bearer(issuer.token("boss@kariz.test", ["manager"]))
    assert (await api.get("/subscriptions", headers=manager)).status_code == 403
    body = {"url": "https://crm.example/in", "events": ["*"]}
    assert (await api.post("/subscriptions", json=body, headers=manager)).status_code == 403


async def test_an_integrators_key_manages_its_own_subscriptions_and_sees_no_other(
    api: httpx.AsyncClient, units: Units
) -> None:
    mine = await api.post("/subscriptions", json=HOOK, headers=key("k-crm"))
    assert mine.status_code == 201, mine.text
    mine_id = mine.json()["id"]
    assert mine.json()["created_by"] == "key:crm1"
    assert units.uow.subscriptions.stored[mine_id].contact == "ops@partner.example"
    theirs = await api.post("/subscriptions", json=HOOK, headers=key("k-erp"))
    theirs_id = theirs.json()["id"]
    assert units.uow.subscriptions.stored[theirs_id].contact is None  # a partner's name, no address
    by_admin = (await api.post("/subscriptions", json=HOOK)).json()["id"]

    assert [s["id"] for s in (await api.get("/subscriptions", headers=key("k-crm"))).json()] == [mine_id]
    assert {s["id"] for s in (await api.get("/subscriptions")).json()} == {mine_id, theirs_id, by_admin}
    assert (await api.get(f"/subscriptions/{mine_id}", headers=key("k-crm"))).json()["url"] == HOOK["url"]

    # Another owner's subscription is answered as missing, for every verb.
    for other in (theirs_id, by_admin):
        assert (await api.get(f"/subscriptions/{other}", headers=key("k-crm"))).status_code == 404
        patched = await api.patch(
            f"/subscriptions/{other}", json={"events": ["DealWon"]}, headers=key("k-crm")
        )
        assert patched.status_code == 404
        assert (await api.delete(f"/subscriptions/{other}", headers=key("k-crm"))).status_code == 404
    assert units.uow.subscriptions.stored[theirs_id].events == frozenset({"*"})

    changed = await api.patch(
        f"/subscriptions/{mine_id}", json={"events": ["DealWon", "DealLost"]}, headers=key("k-crm")
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["DealLost", "DealWon"] and changed.json()["url"] == HOOK["url"]
    assert {d.recipient for d in await consume(units, "LeadCaptured", "evt-1")} == {
        f"sub-{theirs_id}",
        f"sub-{by_admin}",
    }
    # An admin changes and removes anyone's.
    assert (await api.patch(f"/subscriptions/{mine_id}", json={"url": "https://crm.example/v2"})).json()[
        "url"
    ] == "https://crm.example/v2"
    assert (await api.delete(f"/subscriptions/{mine_id}", headers=key("k-crm"))).status_code == 204
    assert (await api.delete(f"/subscriptions/{theirs_id}")).status_code == 204
    assert set(units.uow.subscriptions.stored) == {by_admin}


async def test_a_key_without_the_scope_or_a_rep_may_not_subscribe(
    api: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    rep = bearer(issuer.token("rep@kariz.test", ["rep"]))
    for headers in (key("k-form"), rep):
        assert (await api.post("/subscriptions", json=HOOK, headers=headers)).status_code == 403
        assert (await api.get("/subscriptions", headers=headers)).status_code == 403
    assert (await api.get("/subscriptions", headers=key("k-unknown"))).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://crm.example/in"}, "url:"),
        ({"events": ["RepProfile"]}, "events:"),
        ({"events": []}, "invalid request: events"),
        ({"secret": "mine"}, "invalid request: secret"),
    ],
)
async def test_a_bad_change_is_refused_naming_the_field_and_changes_nothing(
    api: httpx.AsyncClient, units: Units, body: dict[str, Any], field: str
) -> None:
    created = (await api.post("/subscriptions", json=HOOK, headers=key("k-crm"))).json()
    response = await api.patch(f"/subscriptions/{created['id']}", json=body, headers=key("k-crm"))
    assert response.status_code == 422 and response.json()["message"].startswith(field), response.json()
    assert units.uow.subscriptions.stored[created["id"]].url == HOOK["url"]


async def test_http_is_allowed_only_where_the_setting_allows_it(units: Units, issuer: LocalIssuer) -> None:
    app = FastAPI()
    runtime_http.install(app, "notifications")
    accepting(app, issuer)
    app.state.api_keys = IntegratorKeys()
    app.include_router(subscriptions_http.router(units, allow_http=True))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kariz.test"
    ) as client:
        body = {"url": "http://127.0.0.1:9000/in", "events": ["DealWon"]}
        assert (await client.post("/subscriptions", json=body, headers=key("k-crm"))).status_code == 201


# --- value filters ----------------------------------------------------------------------------------

ENTERPRISE_DEMO = [
    {"field": "to_stage", "op": "in", "value": ["demo"]},
    {"field": "pipeline", "op": "equals", "value": "enterprise"},
    {"field": "amount", "op": ">=", "value": 50000},
]


async def deliveries_of(units: Units, event: Event, event_id: str) -> list[Any]:
    """The webhook deliveries ``event`` causes (the default rules' e-mails aside)."""
    units.uow.causation_id, units.uow.correlation_id = event_id, "corr"
    await units.handle(kafka.subscriptions()[type(event)], event)
    stored = [s.record.delivery for s in units.uow.deliveries.stored.values()]
    return [d for d in stored if d.event_id == event_id and d.channel is Channel.WEBHOOK]


async def test_a_filtered_subscription_gets_only_the_events_its_filters_match(
    api: httpx.AsyncClient, units: Units, sample: Any
) -> None:
    body = {"url": "https://crm.example/in", "events": ["StageChanged"], "filters": ENTERPRISE_DEMO}
    created = await api.post("/subscriptions", json=body, headers=key("k-crm"))
    assert created.status_code == 201, created.text
    assert created.json()["filters"] == ENTERPRISE_DEMO
    name = created.json()["name"]

    demo = {"direction": "forward", "pipeline": "enterprise"}
    matching = sample.stage_changed(**demo, amount=Decimal("50000.00"))
    assert [d.recipient for d in await deliveries_of(units, matching, "evt-1")] == [name]
    for n, other in enumerate(
        [
            sample.stage_changed(**demo, amount=Decimal("49999")),
            sample.stage_changed(direction="forward", pipeline="new-business", amount=Decimal("90000")),
            sample.stage_changed(direction="back", pipeline="enterprise", amount=Decimal("90000")),
            sample.stage_changed(**demo, amount=None),
        ]
    ):
        assert [d.recipient for d in await deliveries_of(units, other, f"evt-x{n}")] == [], other

    # Filters changed: the next events are judged by the new ones.
    patched = await api.patch(
        f"/subscriptions/{created.json()['id']}",
        json={"filters": [{"field": "amount", "op": "<=", "value": 100}]},
        headers=key("k-crm"),
    )
    assert patched.status_code == 200, patched.text
    small = sample.stage_changed(direction="back", amount=Decimal("80"))
    assert [d.recipient for d in await deliveries_of(units, small, "evt-2")] == [name]


async def test_a_filter_on_every_event_passes_only_the_events_that_have_its_field_and_match(
    api: httpx.AsyncClient, units: Units, sample: Any
) -> None:
    body = {"url": "https://crm.example/in", "events": ["*"], "filters": [ENTERPRISE_DEMO[2]]}
    assert (await api.post("/subscriptions", json=body)).status_code == 201
    assert len(await deliveries_of(units, sample.deal_won(amount=Decimal("60000")), "evt-1")) == 1
    assert await deliveries_of(units, sample.deal_won(amount=Decimal("6000")), "evt-2") == []
    assert await consume(units, "LeadCaptured", "evt-3") == []  # no amount at all


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"events": ["DealWon"], "filters": [{"field": "to_stage", "op": "equals", "value": "demo"}]},
            "filters[0].field: DealWon has no field 'to_stage'",
        ),
        (
            {"events": ["DealWon", "StageChanged"], "filters": [{"field": "pipeline", "op": "exists"}]},
            "filters[0].field: DealWon has no field 'pipeline'",
        ),
        (
            {"events": ["*"], "filters": [{"field": "no_such_field", "op": "exists"}]},
            "filters[0].field: no event has a field 'no_such_field'",
        ),
        (
            {"events": ["DealWon"], "filters": [{"field": "amount", "op": "in", "value": 5}]},
            "filters[0].value: 'in' needs a list",
        ),
        (
            {"events": ["DealWon"], "filters": [{"field": "amount", "op": ">=", "value": True}]},
            "filters[0].value: >= needs a number",
        ),
        (
            {"events": ["DealWon"], "filters": [{"field": "amount", "op": "like", "value": 1}]},
            "invalid request: filters",
        ),
        (
            {"events": ["DealWon"], "filters": [{"field": "Amount!", "op": "exists"}]},
            "invalid request: filters",
        ),
    ],
)
async def test_filters_are_checked_against_the_event_types_fields_at_save_time(
    api: httpx.AsyncClient, units: Units, body: dict[str, Any], field: str
) -> None:
    response = await api.post("/subscriptions", json={"url": "https://crm.example/in", **body})
    assert response.status_code == 422 and response.json()["message"].startswith(field), response.json()
    assert units.uow.subscriptions.stored == {}


async def test_changing_the_events_checks_the_filters_kept_against_them(
    api: httpx.AsyncClient, units: Units
) -> None:
    body = {"url": "https://crm.example/in", "events": ["StageChanged"], "filters": ENTERPRISE_DEMO[:1]}
    created = (await api.post("/subscriptions", json=body)).json()
    response = await api.patch(f"/subscriptions/{created['id']}", json={"events": ["DealWon"]})
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("filters[0].field: DealWon has no field 'to_stage'")
    assert units.uow.subscriptions.stored[created["id"]].events == frozenset({"StageChanged"})


# --- pause, resume, health and suspension --------------------------------------------------------


class CountedSuspensions:
    def __init__(self) -> None:
        self.suspended_count = 0

    def suspended(self) -> None:
        self.suspended_count += 1


async def send_due(units: Units, *results: SendResult, suspensions: CountedSuspensions) -> list[Delivery]:
    """One sender's round over every due delivery (one attempt each, then given up), the webhooks
    answered with ``results`` in turn; then their count in the subscriptions' health. The e-mails the
    counting recorded."""
    queue = InMemoryDeliveryQueue(units.uow)
    now = units.uow.clock.now()
    claimed = await queue.claim(now, now + timedelta(seconds=30), "lane-1", limit=100)
    outcomes = await handlers.deliver(
        Deliver(tuple(claimed), "lane-1", now),
        queue=queue,
        senders={Channel.WEBHOOK: FakeSender(*results), Channel.EMAIL: FakeSender()},
        policy=RetryPolicy(max_attempts=1, backoff_s=1.0),
        metrics=CountingMetrics(),
    )
    return await subscriptions.count_deliveries(units, outcomes, suspend_after=3, metrics=suspensions)


FAILED = SendResult(ok=False, error="HTTP 503", status_code=503)
SENT = SendResult(ok=True, status_code=200)


async def test_a_paused_subscription_gets_no_events_until_resumed(
    api: httpx.AsyncClient, units: Units
) -> None:
    created = (await api.post("/subscriptions", json=HOOK, headers=key("k-crm"))).json()
    paused = await api.post(f"/subscriptions/{created['id']}/pause", headers=key("k-crm"))
    assert paused.status_code == 200, paused.text
    assert (paused.json()["state"], paused.json()["state_reason"]) == ("paused", "paused by key:crm1")
    assert await consume(units, "DealOpened", "evt-1") == []
    assert (await api.post(f"/subscriptions/{created['id']}/pause", headers=key("k-erp"))).status_code == 404

    resumed = await api.post(f"/subscriptions/{created['id']}/resume", headers=key("k-crm"))
    assert resumed.json()["state"] == "active"
    assert [d.recipient for d in await consume(units, "DealOpened", "evt-2")] == [created["name"]]


async def test_persistent_failure_suspends_a_subscription_and_tells_its_contact_once(
    api: httpx.AsyncClient, units: Units
) -> None:
    created = (await api.post("/subscriptions", json=HOOK, headers=key("k-crm"))).json()
    sid, suspensions = created["id"], CountedSuspensions()
    # Two failures, a success, two failures: never three in a row.
    for n, result in enumerate([FAILED, FAILED, SENT, FAILED, FAILED]):
        await consume(units, "DealOpened", f"evt-{n}")
        assert await send_due(units, result, suspensions=suspensions) == []
    shown = (await api.get(f"/subscriptions/{sid}", headers=key("k-crm"))).json()
    assert shown["state"] == "active"
    assert {k: shown["delivery"][k] for k in ("delivered", "failed", "failing_in_a_row", "last_error")} == {
        "delivered": 1,
        "failed": 4,
        "failing_in_a_row": 2,
        "last_error": "HTTP 503",
    }
    assert shown["delivery"]["last_success_at"] is not None

    await consume(units, "DealOpened", "evt-5")
    [notice] = await send_due(units, FAILED, suspensions=suspensions)
    assert (notice.channel, notice.recipient) == (Channel.EMAIL, "ops@partner.example")
    assert f"/subscriptions/{sid}/resume" in notice.message.body and "HTTP 503" in notice.message.body
    assert units.uow.deliveries.stored[notice.key].record.delivery == notice
    assert suspensions.suspended_count == 1
    shown = (await api.get(f"/subscriptions/{sid}", headers=key("k-crm"))).json()
    assert (shown["state"], shown["delivery"]["suspensions"]) == ("suspended", 1)
    assert shown["state_reason"].startswith("3 deliveries in a row failed")
    assert await consume(units, "DealOpened", "evt-6") == []  # suspended: nothing new for it

    # Resumed, it is delivered to again with a fresh allowance; a success starts the count over.
    assert (await api.post(f"/subscriptions/{sid}/resume", headers=key("k-crm"))).json()["state"] == "active"
    assert len(await consume(units, "DealOpened", "evt-7")) == 1
    assert await send_due(units, FAILED, suspensions=suspensions) == []
    assert suspensions.suspended_count == 1
    shown = (await api.get(f"/subscriptions/{sid}", headers=key("k-crm"))).json()
    assert (shown["state"], shown["delivery"]["failing_in_a_row"]) == ("active", 1)


async def test_a_suspended_subscription_without_a_contact_is_still_suspended(
    api: httpx.AsyncClient, units: Units
) -> None:
    created = (await api.post("/subscriptions", json=HOOK, headers=key("k-erp"))).json()  # a partner's name
    suspensions = CountedSuspensions()
    for n in range(3):
        await consume(units, "DealOpened", f"evt-{n}")
        assert await send_due(units, FAILED, suspensions=suspensions) == []
    assert units.uow.subscriptions.stored[created["id"]].state is SubscriptionState.SUSPENDED
    assert suspensions.suspended_count == 1


# --- secret rotation --------------------------------------------------------------------------------


def standard_webhooks_verify(whsec: str, request: httpx.Request) -> bool:
    """The Standard Webhooks check as its spec writes it, apart from Kariz's code: the key is the base64
    after ``whsec_``; ``v1,<base64 HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>`` is one
    of the space-separated entries of ``webhook-signature``."""
    key = base64.b64decode(whsec.removeprefix("whsec_"))
    content = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode()
    mac = hmac.new(key, content + request.content, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(mac).decode()}" in request.headers["webhook-signature"].split(" ")


async def posted(units: Units, delivery: Delivery) -> httpx.Request:
    seen: list[httpx.Request] = []
    poster = WebhookPoster(lambda n: None, 5, units.uow.subscriptions.secret)
    poster._client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200))
    )
    assert (await poster.send(delivery)).ok
    await poster.aclose()
    [request] = seen
    return request


async def test_a_rotated_secret_signs_beside_the_old_one_for_the_grace_period_only(
    api: httpx.AsyncClient, units: Units
) -> None:
    created = (await api.post("/subscriptions", json=HOOK, headers=key("k-crm"))).json()
    old, old_standard = created["secret"], created["standard_secret"]
    rotated = await api.post(f"/subscriptions/{created['id']}/rotate-secret", headers=key("k-crm"))
    assert rotated.status_code == 200, rotated.text
    new, new_standard = rotated.json()["secret"], rotated.json()["standard_secret"]
    assert new != old and new_standard.startswith("whsec_")
    clock = units.uow.clock
    assert isinstance(clock, FakeClock)
    assert datetime.fromisoformat(rotated.json()["previous_secret_valid_until"]) == clock.now() + timedelta(
        days=1
    )
    assert "secret" not in (await api.get(f"/subscriptions/{created['id']}", headers=key("k-crm"))).json()

    [hook] = await consume(units, "DealOpened", "evt-1")
    during = await posted(units, hook)
    for secret, standard in ((new, new_standard), (old, old_standard)):
        assert webhooks.verify(secret, during.content, dict(during.headers))
        assert webhooks.verify_standard(secret, during.content, dict(during.headers))
        assert standard_webhooks_verify(standard, during)
    new_entry, old_entry = during.headers["webhook-signature"].split(" ")  # the new secret's first
    assert new_entry.startswith("v1,") and old_entry.startswith("v1,")

    clock.advance(timedelta(days=1))
    after = await posted(units, hook)
    assert webhooks.verify(new, after.content, dict(after.headers)) and standard_webhooks_verify(
        new_standard, after
    )
    assert not webhooks.verify(old, after.content, dict(after.headers))
    assert not standard_webhooks_verify(old_standard, after)
    assert len(after.headers["webhook-signature"].split(" ")) == 1

    other = await api.post(f"/subscriptions/{created['id']}/rotate-secret", headers=key("k-erp"))
    assert other.status_code == 404


# --- debounce per subject ---------------------------------------------------------------------------


async def fire_windows(units: Units) -> list[Any]:
    """The due timers fired (by the fake clock's time), each window consumed as the service would."""
    fired = await units.fire_due_timers()
    for n, window in enumerate(fired):
        assert isinstance(window, SubscriptionDebounceDue)
        units.uow.causation_id, units.uow.correlation_id = f"timer-{n}", "corr-timer"
        await units.handle(kafka.subscriptions()[SubscriptionDebounceDue], window)
    return fired


def webhooks_to(units: Units, name: str) -> list[Delivery]:
    stored = [s.record.delivery for s in units.uow.deliveries.stored.values()]
    return [d for d in stored if d.recipient == name]


async def test_rapid_events_of_one_subject_collapse_into_the_latest_when_the_window_ends(
    api: httpx.AsyncClient, units: Units, sample: Any
) -> None:
    body = {"url": "https://crm.example/in", "events": ["StageChanged"], "debounce_seconds": 30}
    created = (await api.post("/subscriptions", json=body, headers=key("k-crm"))).json()
    assert created["debounce_seconds"] == 30
    name, clock = created["name"], units.uow.clock
    assert isinstance(clock, FakeClock)

    for n, stage in enumerate(["discovery", "demo", "proposal"]):
        if n:
            clock.advance(timedelta(seconds=10))
        await deliveries_of(units, sample.stage_changed(deal_id="D-1", to_stage=stage), f"evt-{n}")
    await deliveries_of(units, sample.stage_changed(deal_id="D-2"), "evt-other")
    assert webhooks_to(units, name) == []  # nothing yet: the windows are open

    clock.advance(timedelta(seconds=9))  # 29 s after the first event of D-1
    assert await fire_windows(units) == []
    clock.advance(timedelta(seconds=1))
    [window] = await fire_windows(units)
    assert (window.subject, window.event_id, window.collapsed) == ("D-1", "evt-2", 2)
    [latest] = webhooks_to(units, name)
    assert (latest.event_id, latest.subject, latest.key) == ("evt-2", "D-1", f"evt-2:webhook:{name}")
    assert json.loads(latest.message.body)["data"]["to_stage"] == "proposal"

    clock.advance(timedelta(seconds=30))
    [other] = await fire_windows(units)
    assert other.subject == "D-2" and len(webhooks_to(units, name)) == 2
    # A redelivered window adds nothing: the delivery is the latest event's own.
    await units.handle(kafka.subscriptions()[SubscriptionDebounceDue], window)
    assert len(webhooks_to(units, name)) == 2

    # After its window, the subject's next event opens a new one.
    await deliveries_of(units, sample.stage_changed(deal_id="D-1", to_stage="negotiation"), "evt-9")
    clock.advance(timedelta(seconds=30))
    assert [w.event_id for w in await fire_windows(units)] == ["evt-9"]


async def test_a_window_of_a_removed_or_paused_subscription_delivers_nothing(
    api: httpx.AsyncClient, units: Units, sample: Any
) -> None:
    body = {"url": "https://crm.example/in", "events": ["StageChanged"], "debounce_seconds": 5}
    created = (await api.post("/subscriptions", json=body)).json()
    await deliveries_of(units, sample.stage_changed(deal_id="D-1"), "evt-1")
    assert (await api.post(f"/subscriptions/{created['id']}/pause")).status_code == 200
    clock = units.uow.clock
    assert isinstance(clock, FakeClock)
    clock.advance(timedelta(seconds=5))
    assert len(await fire_windows(units)) == 1
    assert webhooks_to(units, created["name"]) == []


async def test_debounce_is_checked_and_can_be_changed_or_removed(
    api: httpx.AsyncClient, units: Units
) -> None:
    for bad in (0, 3601):
        response = await api.post("/subscriptions", json={**HOOK, "debounce_seconds": bad})
        assert response.status_code == 422 and response.json()["message"].startswith("debounce_seconds:")
    created = (await api.post("/subscriptions", json={**HOOK, "debounce_seconds": 10})).json()
    patched = await api.patch(f"/subscriptions/{created['id']}", json={"url": "https://crm.example/v2"})
    assert patched.json()["debounce_seconds"] == 10  # not named: kept
    cleared = await api.patch(f"/subscriptions/{created['id']}", json={"debounce_seconds": None})
    assert cleared.json()["debounce_seconds"] is None
    assert len(await consume(units, "DealOpened", "evt-1")) == 1  # at once again


# --- replay -------------------------------------------------------------------------------------------


class RetainedTopics:
    """What the topics retain, as a replay reads it: envelopes with the time each was published."""

    def __init__(self) -> None:
        self.published: list[tuple[datetime, Envelope[Any]]] = []
        self.asked: list[tuple[list[str], datetime]] = []

    def add(self, at: datetime, event: Event, event_id: str) -> Envelope[Any]:
        envelope = Envelope(
            event=event, source="/kariz/deals", correlation_id=f"corr-{event_id}", id=event_id
        )
        self.published.append((at, envelope))
        return envelope

    async def since(self, kinds: Sequence[type[Event]], since: datetime) -> AsyncIterator[Envelope[Any]]:
        self.asked.append(([k.event_name() for k in kinds], since))
        for at, envelope in self.published:
            if at >= since and type(envelope.event) in kinds:
                yield envelope


async def test_a_replay_redelivers_the_matching_retained_events_since_a_time_with_their_ids(
    api: httpx.AsyncClient, units: Units, sample: Any
) -> None:
    body = {
        "url": "https://crm.example/in",
        "events": ["StageChanged", "DealWon"],
        "filters": [{"field": "amount", "op": ">=", "value": 50000}],
    }
    created = (await api.post("/subscriptions", json=body, headers=key("k-crm"))).json()
    clock = units.uow.clock
    assert isinstance(clock, FakeClock)
    start = clock.now()
    topics = RetainedTopics()
    topics.add(start - timedelta(hours=1), sample.deal_won(amount=Decimal("90000")), "evt-before")
    topics.add(start + timedelta(minutes=1), sample.deal_won(amount=Decimal("90000")), "evt-won")
    topics.add(start + timedelta(minutes=2), sample.deal_won(amount=Decimal("900")), "evt-small")
    topics.add(
        start + timedelta(minutes=3),
        sample.stage_changed(direction="forward", amount=Decimal("60000")),
        "evt-moved",
    )
    clock.advance(timedelta(hours=1))

    asked = await api.post(
        f"/subscriptions/{created['id']}/replay", json={"since": start.isoformat()}, headers=key("k-crm")
    )
    assert asked.status_code == 202, asked.text
    assert asked.json()["state"] == "pending"
    again = await api.post(
        f"/subscriptions/{created['id']}/replay", json={"since": start.isoformat()}, headers=key("k-crm")
    )
    assert again.status_code == 409  # one at a time

    recorded: list[Delivery] = []
    done = await subscriptions.run_next_replay(units, topics, recorded.extend)
    assert done is not None and (done.state, done.read, done.matched) == (ReplayState.DONE, 3, 2)
    assert topics.asked == [(["DealWon", "StageChanged"], start)]
    assert [d.event_id for d in recorded] == ["evt-won", "evt-moved"]
    for d in recorded:  # new deliveries, the original event's id in their body and headers
        assert d.key == f"{d.event_id}:webhook:{created['name']}:replay-{done.id}"
        assert json.loads(d.message.body)["id"] == d.event_id
        assert units.uow.deliveries.stored[d.key].record.delivery == d
    assert await subscriptions.run_next_replay(units, topics, recorded.extend) is None  # nothing waits

    shown = (await api.get(f"/subscriptions/{created['id']}", headers=key("k-crm"))).json()
    assert shown["last_replay"]["state"] == "done" and shown["last_replay"]["matched"] == 2


@pytest.mark.parametrize(
    ("since", "status", "field"),
    [
        ("2999-01-01T00:00:00+00:00", 422, "since:"),
        ("2025-01-01T00:00:00", 422, "invalid request: since"),
        ("yesterday", 422, "invalid request: since"),
    ],
)
async def test_a_replay_needs_a_past_time_with_its_zone(
    api: httpx.AsyncClient, since: str, status: int, field: str
) -> None:
    created = (await api.post("/subscriptions", json=HOOK)).json()
    response = await api.post(f"/subscriptions/{created['id']}/replay", json={"since": since})
    assert response.status_code == status and response.json()["message"].startswith(field), response.json()


async def test_a_paused_subscription_or_another_owners_is_not_replayed(api: httpx.AsyncClient) -> None:
    created = (await api.post("/subscriptions", json=HOOK, headers=key("k-crm"))).json()
    since = {"since": "2025-01-01T00:00:00+00:00"}
    mine = f"/subscriptions/{created['id']}"
    assert (await api.post(f"{mine}/replay", json=since, headers=key("k-erp"))).status_code == 404
    assert (await api.post(f"{mine}/pause", headers=key("k-crm"))).status_code == 200
    assert (await api.post(f"{mine}/replay", json=since, headers=key("k-crm"))).status_code == 409
