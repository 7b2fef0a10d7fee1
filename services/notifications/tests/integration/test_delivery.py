"""Notifications against the real broker and database, a real SMTP server and a real webhook receiver:
events in, e-mails and signed webhooks out, every attempt logged, nothing sent twice.

One service runs for the whole module: starting one joins a consumer group per consumed topic, which takes
seconds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from kariz_devkit.testing import Backends, eventually, publish, running, unique
from kariz_notifications.bootstrap import build
from kariz_notifications.settings import NotificationsSettings
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import DealWon, Event, FollowUpDue, RepProfile
from kariz_shared.contracts.webhooks import verify
from kariz_shared.service import Service
from kariz_shared.system import source_of

pytestmark = pytest.mark.integration

SECRETS = {
    "finance": "finance-secret-at-least-32-bytes-long",
    "audit": "audit-secret-at-least-32-bytes-long!!",
    "flaky": "flaky-secret-at-least-32-bytes-long!!",
}
MAX_ATTEMPTS = 3


@dataclass
class Notifications:
    http: httpx.AsyncClient
    settings: NotificationsSettings
    db: AsyncDatabase[dict[str, Any]]
    team: str
    onboarding: str
    service: Service

    async def log(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.http.get("/notifications", params={"limit": 200, **params})
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def settled(self, count: int, **params: Any) -> list[dict[str, Any]] | None:
        """The log for ``params`` once it holds ``count`` deliveries, none of them still in progress."""
        items = await self.log(**params)
        done = len(items) == count and all(i["status"] in ("sent", "failed") for i in items)
        return items if done else None


@pytest.fixture(scope="module")
async def notifications(
    settings_for: Callable[..., Any], backends: Backends, inbox: Any, receiver: Any, admin_token: str
) -> AsyncIterator[Notifications]:
    team, onboarding = f"{unique('team')}@kariz.test", f"{unique('onboarding')}@kariz.test"
    hook = receiver.url
    settings: NotificationsSettings = settings_for(
        NotificationsSettings,
        service_name="notifications",
        smtp_port=inbox.port,
        team_emails=[team],
        handover_emails=[onboarding],
        webhook_subscribers=[
            {"name": "finance", "url": hook("/ok"), "secret": SECRETS["finance"], "events": ["DealWon"]},
            {"name": "audit", "url": hook("/ok"), "secret": SECRETS["audit"], "events": ["*"]},
            {"name": "flaky", "url": hook("/flaky"), "secret": SECRETS["flaky"], "events": ["DealLost"]},
        ],
        delivery_max_attempts=MAX_ATTEMPTS,
        delivery_backoff_s=0.05,
        # Long on purpose: a commit wakes the worker, and it sleeps only until the next retry is due.
        delivery_poll_interval_s=2.0,
    )
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(backends.mongodb_uri, tz_aware=True)
    try:
        service = build(settings)
        async with running(service, token=admin_token) as http:
            yield Notifications(http, settings, client[settings.database_name], team, onboarding, service)
    finally:
        await client.close()


def envelope(event: Event, source: str = "/kariz/deals") -> Envelope[Event]:
    return Envelope(event=event, source=source, correlation_id=unique("corr"))


def duplicates(settings: NotificationsSettings, event_cls: type[Event]) -> float:
    labels = {"service": settings.service_name, "topic": event_cls.topic(), "outcome": "duplicate"}
    return REGISTRY.get_sample_value("kariz_events_consumed_total", labels) or 0.0


async def test_deal_won_reaches_team_owner_onboarding_and_subscribers_once(  # type: ignore[no-untyped-def]
    notifications: Notifications, backends: Backends, inbox, receiver, sample
) -> None:
    svc = notifications
    deal, owner = unique("D"), f"{unique('rep')}@kariz.test"
    env = envelope(sample.deal_won(deal_id=deal, owner=owner, account_name="Globex", amount=Decimal("48000")))
    await publish(backends.kafka_bootstrap, env)

    items = await eventually(lambda: svc.settled(5, subject=deal), timeout=30)
    mails = inbox.about(env.id)
    hooks = receiver.about(env.id)

    # E-mails: the team and the owner hear of the win, onboarding gets the hand-over.
    by_to = {str(m["To"]): m for m in mails}
    assert len(mails) == 3 and set(by_to) == {svc.team, owner, svc.onboarding}
    assert by_to[svc.team]["Subject"] == "Deal won: Globex, 48,000.00 EUR"
    assert by_to[owner]["Subject"] == "Deal won: Globex, 48,000.00 EUR"
    assert by_to[svc.onboarding]["Subject"] == f"Hand-over: Globex, 48,000.00 EUR, owner {owner}"
    assert f"Deal:      {deal}" in by_to[svc.onboarding].get_content()
    for to, mail in by_to.items():
        assert mail["X-Kariz-Delivery-Id"] == f"{env.id}:email:{to}"
        assert mail["X-Kariz-Event-Type"] == "kariz.deal-won.v1"
        assert mail["From"] == "kariz@kariz.example"
    assert len({m["Message-ID"] for m in mails}) == 3

    # Webhooks: the subscribers to DealWon and to everything, each signed with its own secret.
    by_delivery = {h.headers["x-kariz-delivery-id"]: h for h in hooks}
    assert len(hooks) == 2
    assert set(by_delivery) == {f"{env.id}:webhook:finance", f"{env.id}:webhook:audit"}
    for name in ("finance", "audit"):
        hook = by_delivery[f"{env.id}:webhook:{name}"]
        assert hook.path == "/ok"
        assert verify(SECRETS[name], hook.body, hook.headers), f"{name}'s signature must verify"
        assert not verify(SECRETS["flaky"], hook.body, hook.headers)
        assert hook.headers["x-kariz-event-id"] == env.id
        assert hook.headers["x-kariz-event-type"] == "kariz.deal-won.v1"
        assert hook.headers["content-type"] == "application/json"
        body = json.loads(hook.body)
        assert (body["id"], body["type"], body["subject"]) == (env.id, "kariz.deal-won.v1", deal)
        assert body["correlation_id"] == env.correlation_id
        assert body["data"]["deal_id"] == deal and Decimal(body["data"]["amount"]) == Decimal("48000")

    # The log: five deliveries, each sent at the first attempt.
    assert {(i["channel"], i["recipient"]) for i in items} == {
        ("email", svc.team),
        ("email", owner),
        ("email", svc.onboarding),
        ("webhook", "finance"),
        ("webhook", "audit"),
    }
    for item in items:
        assert item["status"] == "sent" and item["sent_at"] is not None
        assert [a["outcome"] for a in item["attempts"]] == ["sent"]
        assert (item["event_type"], item["event_id"], item["subject"]) == ("DealWon", env.id, deal)
        assert item["id"] == f"{env.id}:{item['channel']}:{item['recipient']}"
    assert [a["status_code"] for i in items if i["channel"] == "webhook" for a in i["attempts"]] == [200, 200]

    detail = (await svc.http.get(f"/notifications/{env.id}:email:{svc.onboarding}")).json()
    assert detail["email"]["to"] == svc.onboarding and detail["webhook"] is None
    assert detail["correlation_id"] == env.correlation_id
    assert f"Deal:      {deal}" in detail["email"]["body"]
    hook_detail = (await svc.http.get(f"/notifications/{env.id}:webhook:finance")).json()
    assert json.loads(hook_detail["webhook"]["body"])["id"] == env.id
    assert "secret" not in json.dumps(hook_detail).lower()

    # Filters and paging.
    assert {i["recipient"] for i in await svc.log(subject=deal, channel="webhook")} == {"finance", "audit"}
    assert [i["recipient"] for i in await svc.log(recipient=owner)] == [owner]
    assert len(await svc.log(event_type="DealWon", status="sent", subject=deal)) == 5
    assert await svc.log(event_type="DealLost", subject=deal) == []
    page = (await svc.http.get("/notifications", params={"subject": deal, "limit": 2, "offset": 1})).json()
    assert (len(page["items"]), page["total"], page["limit"], page["offset"]) == (2, 5, 2, 1)

    # The hand-over is on record.
    [handover] = [h for h in (await svc.http.get("/handovers")).json()["items"] if h["deal_id"] == deal]
    assert handover["account"] == {"id": "A-1", "name": "Globex"}
    assert (handover["owner"], handover["status"]) == (owner, "open")
    assert Decimal(handover["amount"]) == Decimal("48000")

    # The same event again (a redelivery): no new e-mail, webhook, delivery or hand-over.
    seen = duplicates(svc.settings, DealWon)
    await publish(backends.kafka_bootstrap, env)
    await eventually(lambda: duplicates(svc.settings, DealWon) > seen, timeout=30)
    await asyncio.sleep(0.5)
    assert len(inbox.about(env.id)) == 3
    assert len(receiver.about(env.id)) == 2
    assert len(await svc.log(subject=deal)) == 5
    assert await svc.db.deliveries.count_documents({"event_id": env.id}) == 5
    assert await svc.db.handovers.count_documents({"deal_id": deal}) == 1
    assert (
        await svc.db.deliveries.count_documents({"event_id": env.id, "lease_token": {"$exists": True}}) == 0
    )

    metrics = (await svc.http.get("/metrics")).text
    assert 'kariz_notifications_sent_total{channel="email",rule="deal-won"}' in metrics
    assert 'kariz_notifications_delivery_seconds_count{channel="webhook"}' in metrics


async def test_failing_webhook_is_retried_until_delivered(  # type: ignore[no-untyped-def]
    notifications: Notifications, backends: Backends, inbox, receiver, sample
) -> None:
    svc = notifications
    deal, owner = unique("D"), f"{unique('rep')}@kariz.test"
    env = envelope(sample.deal_lost(deal_id=deal, owner=owner, reason="no budget this year"))
    await publish(backends.kafka_bootstrap, env)
    # The owner's e-mail, and the subscribers to DealLost or to everything.
    items = await eventually(lambda: svc.settled(3, subject=deal), timeout=30)
    by_recipient = {i["recipient"]: i for i in items}

    flaky = by_recipient["flaky"]
    assert flaky["status"] == "sent"
    assert [(a["outcome"], a["status_code"]) for a in flaky["attempts"]] == [
        ("failed", 500),
        ("failed", 500),
        ("sent", 200),
    ]
    assert all(a["error"].startswith("HTTP 500") for a in flaky["attempts"][:2])
    assert "error" not in flaky["attempts"][2] or flaky["attempts"][2]["error"] is None
    times = [datetime.fromisoformat(a["at"]) for a in flaky["attempts"]]
    # Backoff 0.05 s, then 0.1 s, counted from the end of each failed attempt.
    assert times[1] - times[0] >= timedelta(seconds=0.05)
    assert times[2] - times[1] >= timedelta(seconds=0.1)

    # Three requests, the same body and delivery id each time: the subscriber can dedupe on it.
    requests = receiver.about(env.id, "/flaky")
    assert len(requests) == 3
    assert {r.headers["x-kariz-delivery-id"] for r in requests} == {f"{env.id}:webhook:flaky"}
    assert len({r.body for r in requests}) == 1
    assert all(verify(SECRETS["flaky"], r.body, r.headers) for r in requests)

    # Nobody else waited for the flaky subscriber.
    assert (by_recipient[owner]["status"], len(by_recipient[owner]["attempts"])) == ("sent", 1)
    assert (by_recipient["audit"]["status"], len(by_recipient["audit"]["attempts"])) == ("sent", 1)
    [message] = inbox.about(env.id)
    assert message["Subject"] == "Deal lost: Initech (no budget this year)"

    metrics = (await svc.http.get("/metrics")).text
    assert 'kariz_notifications_failed_total{channel="webhook",rule="subscription"}' in metrics


async def test_stage_changes_and_qualified_leads(  # type: ignore[no-untyped-def]
    notifications: Notifications, backends: Backends, inbox, receiver, sample
) -> None:
    svc = notifications
    deal, lead, owner = unique("D"), unique("L"), f"{unique('rep')}@kariz.test"
    forward = envelope(sample.stage_changed(deal_id=deal, owner=owner, direction="forward"))
    back = envelope(sample.stage_changed(deal_id=deal, owner=owner, direction="back"))
    qualified = envelope(sample.lead_qualified(lead_id=lead, owner=owner, score=81), "/kariz/qualification")
    for env in (forward, back, qualified):
        await publish(backends.kafka_bootstrap, env)

    # Only the audit subscriber ("*") hears of the forward move; the move back also e-mails the owner.
    items = await eventually(lambda: svc.settled(3, subject=deal), timeout=30)
    assert sorted((i["event_id"], i["channel"], i["recipient"], i["status"]) for i in items) == sorted(
        [
            (forward.id, "webhook", "audit", "sent"),
            (back.id, "webhook", "audit", "sent"),
            (back.id, "email", owner, "sent"),
        ]
    )
    # Newest first: the move back was handled after the forward move.
    assert [i["event_id"] for i in items][-1] == forward.id
    assert inbox.about(forward.id) == []
    [moved] = inbox.about(back.id)
    assert moved["To"] == owner
    assert moved["Subject"] == f"Deal moved back: {deal} from proposal to discovery"
    assert "budget frozen until Q3" in moved.get_content()

    leads = await eventually(lambda: svc.settled(2, subject=lead), timeout=30)
    assert {(i["channel"], i["recipient"], i["event_type"]) for i in leads} == {
        ("email", owner, "LeadQualified"),
        ("webhook", "audit", "LeadQualified"),
    }
    [lead_mail] = inbox.about(qualified.id)
    assert lead_mail["Subject"] == "Lead qualified: Ada Lovelace at Analytical, score 81"
    [hook] = receiver.about(qualified.id)
    assert json.loads(hook.body)["type"] == "kariz.lead-qualified.v1"


async def test_a_delivery_whose_sender_died_is_taken_over(  # type: ignore[no-untyped-def]
    notifications: Notifications, inbox
) -> None:
    """A "sending" delivery whose lease ran out (its sender crashed) is sent again; one leased is not."""
    svc = notifications
    now = datetime.now(UTC)
    event_id = unique("evt")

    def stuck(recipient: str, lease_until: datetime) -> dict[str, Any]:
        return {
            "_id": f"{event_id}:email:{recipient}",
            "channel": "email",
            "recipient": recipient,
            "event_type": "DealLost",
            "event_id": event_id,
            "subject": "D-x",
            "correlation_id": "c",
            "message": {"to": recipient, "subject": "Deal lost: X (y)", "body": "body\n"},
            "status": "sending",
            "next_attempt_at": now - timedelta(minutes=1),
            "created_at": now,
            "sent_at": None,
            "attempts": [],
            "lease_until": lease_until,
            "lease_token": "crashed",
            "claims": 1,
        }

    crashed, busy = f"{unique('a')}@kariz.test", f"{unique('b')}@kariz.test"
    resumed_before = REGISTRY.get_sample_value("kariz_notifications_resumed_total", {"channel": "email"}) or 0
    await svc.db.deliveries.insert_many(
        [stuck(crashed, now - timedelta(seconds=1)), stuck(busy, now + timedelta(minutes=5))]
    )

    async def sent() -> dict[str, Any] | None:
        item: dict[str, Any] = (await svc.http.get(f"/notifications/{event_id}:email:{crashed}")).json()
        return item if item["status"] == "sent" else None

    item = await eventually(sent, timeout=15)
    assert [a["outcome"] for a in item["attempts"]] == ["sent"]
    # Two claims, one attempt: the log shows it was resent after a crash (the recipient may have it twice).
    assert item["claims"] == 2
    resumed = REGISTRY.get_sample_value("kariz_notifications_resumed_total", {"channel": "email"})
    assert resumed == resumed_before + 1
    [mail] = inbox.about(event_id)
    assert mail["To"] == crashed
    still = (await svc.http.get(f"/notifications/{event_id}:email:{busy}")).json()
    assert still["status"] == "sending" and still["attempts"] == []


async def test_reminders_reach_the_assignee_and_the_owners_manager_from_the_roster_once(  # type: ignore[no-untyped-def]
    notifications: Notifications, backends: Backends, inbox, receiver, sample
) -> None:
    svc, bootstrap = notifications, backends.kafka_bootstrap
    team = unique("team")
    assignee, owner, manager = (f"{unique(who)}@kariz.test" for who in ("ria", "sam", "kim"))
    # The roster as the leads service publishes it (kariz.reps.v1): time zones, and who manages whom.
    for rep in (
        RepProfile(email=assignee, team=team, time_zone="Asia/Tehran", updated_at=datetime.now(UTC)),
        RepProfile(
            email=owner, team=team, manager=manager, time_zone="Europe/Berlin", updated_at=datetime.now(UTC)
        ),
    ):
        await publish(
            bootstrap, Envelope(event=rep, source=source_of(RepProfile), correlation_id=unique("corr"))
        )
    roster = svc.service.roster
    await eventually(lambda: roster.profile(assignee) is not None and roster.manager_of(owner) == manager)

    def from_leads(event: Event) -> Envelope[Event]:
        return Envelope(event=event, source=source_of(type(event)), correlation_id=unique("corr"))

    def sent(rule: str) -> float:
        labels = {"channel": "email", "rule": rule}
        return REGISTRY.get_sample_value("kariz_notifications_sent_total", labels) or 0.0

    reminded, alerted = sent("follow-up-due"), sent("response-overdue")
    due_lead, overdue_lead = unique("L"), unique("L")
    due = from_leads(sample.follow_up_due(lead_id=due_lead, assignee=assignee))
    overdue = from_leads(sample.response_overdue(lead_id=overdue_lead, owner=owner))
    for env in (due, overdue):
        await publish(bootstrap, env)

    # The follow-up: its assignee's reminder, in their time zone, and the "*" subscriber's webhook.
    items = await eventually(lambda: svc.settled(2, subject=due_lead), timeout=30)
    assert {(i["channel"], i["recipient"], i["rule"], i["status"]) for i in items} == {
        ("email", assignee, "follow-up-due", "sent"),
        ("webhook", "audit", "subscription", "sent"),
    }
    [reminder] = inbox.about(due.id)
    assert reminder["To"] == assignee
    assert reminder["Subject"] == f"Follow-up due: Call Ada about the pilot (lead {due_lead})"
    assert "Due at:    2025-03-14 13:00 Asia/Tehran (UTC+03:30)" in reminder.get_content()
    [hook] = receiver.about(due.id)
    assert json.loads(hook.body)["type"] == "kariz.follow-up-due.v1"

    # The overdue response: the owner and the manager their profile names, each in their time zone.
    items = await eventually(lambda: svc.settled(3, subject=overdue_lead), timeout=30)
    assert {(i["channel"], i["recipient"]) for i in items} == {
        ("email", owner),
        ("email", manager),
        ("webhook", "audit"),
    }
    alerts = {str(m["To"]): m for m in inbox.about(overdue.id)}
    assert set(alerts) == {owner, manager}
    assert "10:30 Europe/Berlin" in alerts[owner].get_content()
    assert "Due at:    2025-03-14 09:30 UTC" in alerts[manager].get_content()  # no profile of their own
    assert (sent("follow-up-due"), sent("response-overdue")) == (reminded + 1, alerted + 2)

    # The reminder redelivered: the consumer knows the event, so nothing is recorded or sent again.
    seen = duplicates(svc.settings, FollowUpDue)
    await publish(bootstrap, due)
    await eventually(lambda: duplicates(svc.settings, FollowUpDue) > seen, timeout=30)
    assert await svc.db.deliveries.count_documents({"event_id": due.id}) == 2
    assert len(inbox.about(due.id)) == 1 and len(receiver.about(due.id)) == 1


async def test_a_rule_created_over_http_mails_the_managers_locale_on_a_matching_event_only(  # type: ignore[no-untyped-def]
    notifications: Notifications, backends: Backends, inbox, sample
) -> None:
    svc, bootstrap = notifications, backends.kafka_bootstrap
    owner, manager = f"{unique('rep')}@kariz.test", f"{unique('boss')}@kariz.test"
    pipeline = unique("enterprise").replace("_", "-")
    for rep in (
        RepProfile(email=owner, manager=manager, updated_at=datetime.now(UTC)),
        RepProfile(email=manager, locale="fa-IR", time_zone="Asia/Tehran", updated_at=datetime.now(UTC)),
    ):
        await publish(
            bootstrap, Envelope(event=rep, source=source_of(RepProfile), correlation_id=unique("c"))
        )
    roster = svc.service.roster
    await eventually(lambda: roster.manager_of(owner) == manager and roster.profile(manager) is not None)

    rule = {
        "id": unique("demo").replace("_", "-").lower(),
        "trigger": "StageChanged",
        "conditions": [
            {"field": "pipeline", "op": "equals", "value": pipeline},
            {"field": "amount", "op": ">=", "value": 50000},
        ],
        "actions": [
            {
                "kind": "email",
                "recipients": [{"role": "owner_manager"}],
                "templates": {
                    "en": {"subject": "Demo of {{ deal_id }}", "text": "{{ owner }} is at the demo."},
                    "fa": {
                        "subject": "نمایش {{ deal_id }}",
                        "text": "{{ owner }} در {{ changed_at | when }}",
                        "html": "<p>{{ amount | money(currency) }}</p>",
                    },
                },
            }
        ],
    }
    created = await svc.http.post("/rules", json=rule)
    assert created.status_code == 201, created.text

    small, big = unique("D"), unique("D")
    for deal, amount in ((small, 49_999), (big, 50_000)):
        event = sample.stage_changed(
            deal_id=deal, owner=owner, direction="forward", pipeline=pipeline, amount=amount
        )
        await publish(bootstrap, envelope(event))
    # Each also goes to the "*" subscriber: the rule adds the manager's e-mail to the big one only.
    items = await eventually(lambda: svc.settled(2, subject=big), timeout=30)
    assert {(i["channel"], i["recipient"], i["rule"]) for i in items} == {
        ("email", manager, rule["id"]),
        ("webhook", "audit", "subscription"),
    }
    [mail] = [m for m in inbox.messages if m["To"] == manager]
    assert mail["Subject"] == f"نمایش {big}"
    assert mail.get_body(("plain",)).get_content().startswith(f"{owner} در ")  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert 'dir="rtl"' in html and "۵۰,۰۰۰.۰۰ EUR" in html  # noqa: RUF001
    assert await eventually(lambda: svc.settled(1, subject=small), timeout=30)
