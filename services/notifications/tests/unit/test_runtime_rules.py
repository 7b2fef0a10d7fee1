"""Runtime rules (``/rules``) over the in-memory unit of work: a rule created over HTTP with conditions
decides what an event sends (e-mail in the reader's locale, webhook, task), the versions and their
ETags, the refusals at save time, and the preview that sends nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_notifications.adapters.in_memory import InMemoryNotificationsUnitOfWork
from kariz_notifications.domain.automation import Condition, ContentAction, EmailAction, Operator
from kariz_notifications.domain.model import Audience, Channel, Email, Subscriber, WebhookPost
from kariz_notifications.domain.templates import persian_digits
from kariz_notifications.entrypoints import kafka, rules_http
from kariz_shared.contracts.events import (
    DealStalled,
    QuoteApprovalRequested,
    QuoteExpired,
    RepProfile,
    RfpResponseDue,
    TaskRequested,
)
from kariz_shared.contracts.identity import LiveRoster
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as runtime_http
from kariz_shared.runtime.clock import FakeClock

OWNER = "rep@kariz.test"
MANAGER = "boss@kariz.test"

ENTERPRISE_DEMO: dict[str, Any] = {
    "id": "enterprise-demo",
    "trigger": "StageChanged",
    "conditions": [
        {"field": "to_stage", "op": "in", "value": ["demo"]},
        {"field": "pipeline", "op": "equals", "value": "enterprise"},
        {"field": "amount", "op": ">=", "value": 50000},
    ],
    "actions": [
        {
            "kind": "email",
            "recipients": [{"role": "owner_manager"}],
            "templates": {
                "en": {
                    "subject": "Demo: deal {{ deal_id }}, {{ amount | money(currency) }}",
                    "text": "Deal {{ deal_id }} of {{ owner }} reached the demo on {{ changed_at | when }}.",
                    "html": "<p>Deal <b>{{ deal_id }}</b> of {{ owner }}</p>",
                },
                "fa": {
                    "subject": "نمایش: معامله {{ deal_id }}، {{ amount | money(currency) }}",
                    "text": "معامله {{ deal_id }} در {{ changed_at | when }} به مرحلهٔ نمایش رسید.",
                },
            },
        },
        {"kind": "webhook", "subscriber": "teams"},
        {"kind": "task", "assignee": {"role": "owner"}, "title": "Prepare the demo of {{ deal_id }}"},
    ],
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 3, 14, 9, 0, tzinfo=UTC))


@pytest.fixture
def uow(clock: FakeClock) -> InMemoryNotificationsUnitOfWork:
    reps = LiveRoster()
    at = datetime(2025, 1, 1, tzinfo=UTC)
    reps.put(RepProfile(email=OWNER, manager=MANAGER, updated_at=at))
    reps.put(RepProfile(email=MANAGER, locale="fa-IR", time_zone="Asia/Tehran", updated_at=at))
    audience = Audience(subscribers=(Subscriber("teams", "https://teams.example/h", frozenset()),))
    return InMemoryNotificationsUnitOfWork(clock, audience, reps)


@pytest.fixture
def units(uow: InMemoryNotificationsUnitOfWork) -> InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork]:
    return InMemoryUnitsOfWork(uow)


@pytest.fixture
async def api(
    units: InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork], issuer: LocalIssuer, admin_token: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    runtime_http.install(app, "notifications")
    accepting(app, issuer)
    app.include_router(rules_http.router(units))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kariz.test", headers=bearer(admin_token)
    ) as client:
        yield client


async def consume(
    units: InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork], event: Any, event_id: str
) -> dict[str, Any]:
    units.uow.causation_id, units.uow.correlation_id = event_id, f"corr-{event_id}"
    await units.handle(kafka.subscriptions()[type(event)], event)
    return {
        s.record.delivery.key: s.record.delivery
        for s in units.uow.deliveries.stored.values()
        if s.record.delivery.event_id == event_id
    }


async def test_version_0_is_the_default_rules_and_nothing_of_today_is_lost(api: httpx.AsyncClient) -> None:
    response = await api.get("/rules")
    assert response.status_code == 200 and response.headers["etag"] == '"0"'
    body = response.json()
    assert body["actor"] == "system:seed"
    assert [r["id"] for r in body["rules"]] == [
        "lead-qualified",
        "deal-moved-back",
        "handover",
        "deal-won",
        "satisfaction-check",
        "deal-lost",
        "deal-stalled",
        "quote-approval-requested",
        "quote-expired",
        "rfp-response-due",
        "follow-up-due",
        "response-overdue",
        "lead-queued",
        "lead-reassigned",
        "nurture-content",
    ]
    queued = (await api.get("/rules/lead-queued")).json()
    assert queued["actions"][0]["recipients"] == [{"role": "team", "field": None, "addresses": []}]


async def test_a_stalled_deal_tells_its_owner_and_their_manager_each_in_their_language(
    api: httpx.AsyncClient, units: InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork]
) -> None:
    at = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    stalled = DealStalled(
        deal_id="D-7",
        lead_id="L-7",
        owner=OWNER,
        pipeline="enterprise",
        stage="demo",
        days_in_stage=15.2,
        rot_days=14,
        amount=Decimal("48000.00"),
        entered_stage_at=at - timedelta(days=15.2),
        stalled_at=at,
    )
    deliveries = await consume(units, stalled, "evt-stall")
    owner, manager = (
        deliveries[f"evt-stall:email:{OWNER}"].message,
        deliveries[f"evt-stall:email:{MANAGER}"].message,
    )
    assert isinstance(owner, Email) and isinstance(manager, Email)
    assert owner.subject == "Deal stalled: D-7 in demo for 15 days"
    assert "past its 14-day limit" in owner.body
    # The manager reads Persian (the roster says fa-IR): the Persian default, with Persian digits.
    assert manager.subject == "معامله متوقف: D-7 در مرحله demo"
    assert persian_digits("14") in manager.body and persian_digits("48,000.00") in manager.body


async def test_quotes_and_rfps_tell_the_approving_manager_and_the_owner_by_default(
    units: InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork],
) -> None:
    at = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
    approval = QuoteApprovalRequested(
        deal_id="D-7",
        quote_id="Q-1",
        quote_number=2,
        owner=OWNER,
        manager=MANAGER,
        currency="EUR",
        total=Decimal("36000.00"),
        max_discount_pct=Decimal("25"),
        discount_limit_pct=Decimal("15"),
        requested_at=at,
    )
    deliveries = await consume(units, approval, "evt-approve")
    # Only the approving manager: the owner asked for it.
    assert set(deliveries) == {f"evt-approve:email:{MANAGER}"}
    mail = deliveries[f"evt-approve:email:{MANAGER}"].message
    assert isinstance(mail, Email)
    # The manager reads Persian: the Persian default, with Persian digits.
    assert mail.subject.startswith("پیش‌فاکتور برای تأیید: D-7")
    assert persian_digits("25") in mail.subject and persian_digits("36,000.00") in mail.body

    expired = QuoteExpired(deal_id="D-7", quote_id="Q-1", quote_number=2, owner=OWNER, valid_until=at)
    deliveries = await consume(units, expired, "evt-expired")
    assert set(deliveries) == {f"evt-expired:email:{OWNER}"}
    mail = deliveries[f"evt-expired:email:{OWNER}"].message
    assert isinstance(mail, Email) and mail.subject == "Quote expired: D-7 v2"

    for kind, subject in (
        ("reminder", "RFP response due soon: Acme (Gov Procurement)"),
        ("overdue", "RFP response overdue: Acme (Gov Procurement)"),
    ):
        due = RfpResponseDue(
            deal_id="D-8",
            lead_id="L-8",
            owner=OWNER,
            account_id="A-1",
            account_name="Acme",
            issuer="Gov Procurement",
            response_due_at=at,
            kind=kind,
        )
        deliveries = await consume(units, due, f"evt-rfp-{kind}")
        assert set(deliveries) == {f"evt-rfp-{kind}:email:{OWNER}"}
        mail = deliveries[f"evt-rfp-{kind}:email:{OWNER}"].message
        assert isinstance(mail, Email) and mail.subject == subject


async def test_a_rule_created_over_http_fires_only_on_a_matching_event(
    api: httpx.AsyncClient, units: InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork], sample: Any
) -> None:
    created = await api.post("/rules", json=ENTERPRISE_DEMO, headers={"If-Match": '"0"'})
    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"1"' and created.json()["version"] == 1

    match = sample.stage_changed(
        deal_id="D-9", direction="forward", pipeline="enterprise", amount=50000, to_stage="demo"
    )
    deliveries = await consume(units, match, "evt-1")
    assert set(deliveries) == {f"evt-1:email:{MANAGER}", "evt-1:webhook:teams"}
    mail = deliveries[f"evt-1:email:{MANAGER}"].message
    assert isinstance(mail, Email)
    # The manager reads Persian: Persian digits, the Jalali date in Tehran's time, right to left.
    assert mail.subject == f"نمایش: معامله D-9، {persian_digits('50,000.00')} EUR"
    day, year, time = (persian_digits(n) for n in ("24", "1403", "13:00"))
    assert f"{day} اسفند {year}، {time} (Asia/Tehran)" in mail.body and mail.html is None
    assert deliveries["evt-1:webhook:teams"].rule == "enterprise-demo"
    [task] = [e for e in units.published if isinstance(e, TaskRequested)]
    assert (task.request_id, task.lead_id, task.assignee) == ("evt-1:enterprise-demo:2", "L-1", OWNER)
    assert task.title == "Prepare the demo of D-9" and task.due_at == units.uow.clock.now() + timedelta(
        days=1
    )

    small = sample.stage_changed(direction="forward", pipeline="enterprise", amount=49999, to_stage="demo")
    assert await consume(units, small, "evt-2") == {}
    other = sample.stage_changed(direction="forward", pipeline="smb", amount=90000, to_stage="demo")
    assert await consume(units, other, "evt-3") == {}
    assert len([e for e in units.published if isinstance(e, TaskRequested)]) == 1


async def test_an_english_reader_gets_the_english_text_and_html(
    api: httpx.AsyncClient, units: InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork], sample: Any
) -> None:
    rule = {
        **ENTERPRISE_DEMO,
        "actions": [{**ENTERPRISE_DEMO["actions"][0], "recipients": [{"role": "owner"}]}],
    }
    assert (await api.post("/rules", json=rule)).status_code == 201
    event = sample.stage_changed(
        deal_id="D-2", direction="forward", pipeline="enterprise", amount=60000, to_stage="demo"
    )
    mail = (await consume(units, event, "evt-1"))[f"evt-1:email:{OWNER}"].message
    assert isinstance(mail, Email)
    assert mail.subject == "Demo: deal D-2, 60,000.00 EUR"
    assert mail.body == "Deal D-2 of rep@kariz.test reached the demo on 2025-03-14 09:30 (UTC)."
    assert mail.html is not None and 'dir="ltr"' in mail.html and "<b>D-2</b>" in mail.html


async def test_a_disabled_default_rule_sends_nothing_and_the_versions_keep_who_did_it(
    api: httpx.AsyncClient, units: InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork], sample: Any
) -> None:
    lost = (await api.get("/rules/deal-lost")).json()
    change = {k: v for k, v in lost.items() if k not in ("id", "version")} | {"enabled": False}
    replaced = await api.put("/rules/deal-lost", json=change, headers={"If-Match": '"0"'})
    assert replaced.status_code == 200, replaced.text
    assert await consume(units, sample.deal_lost(), "evt-1") == {}

    stale = await api.put("/rules/deal-lost", json=change, headers={"If-Match": '"0"'})
    assert stale.status_code == 409 and "version 1" in stale.json()["message"]
    page = (await api.get("/rules/versions")).json()
    assert [(v["version"], v["actor"]) for v in page["items"]] == [
        (1, "admin@kariz.test"),
        (0, "system:seed"),
    ]
    assert (await api.get("/rules/versions/0")).json()["rules"][4]["enabled"] is True
    assert (await api.get("/rules/versions/7")).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"trigger": "DealExploded"}, "trigger"),
        ({"trigger": "NotificationDue"}, "trigger"),
        ({"id": "versions"}, "id"),
        (
            {"actions": [{"kind": "webhook", "subscriber": "teams", "delay_minutes": -1}]},
            "invalid request: actions.0.webhook.delay_minutes",
        ),
        ({"conditions": [{"field": "amount_usd", "op": ">=", "value": 1}]}, "conditions[0].field"),
        ({"conditions": [{"field": "to_stage", "op": "in", "value": "demo"}]}, "conditions[0].value"),
        (
            {
                "actions": [
                    {
                        "kind": "email",
                        "recipients": [{"role": "owner"}],
                        "templates": {"en": {"subject": "{{ stage }}", "text": ""}},
                    }
                ]
            },
            "actions[0].templates.en.subject",
        ),
        (
            {
                "actions": [
                    {
                        "kind": "email",
                        "recipients": [{"role": "owner"}],
                        "templates": {"fa": {"subject": "x", "text": ""}},
                    }
                ]
            },
            "actions[0].templates",
        ),
        ({"actions": [{"kind": "webhook", "subscriber": "nobody"}]}, "actions[0].subscriber"),
        (
            {
                "actions": [
                    {
                        "kind": "email",
                        "recipients": [{"role": "addresses", "addresses": ["x"]}],
                        "builtin": "deal-lost",
                    }
                ]
            },
            "actions[0].recipients[0].addresses",
        ),
        (
            {"actions": [{"kind": "email", "recipients": [{"role": "owner"}], "builtin": "deal-won"}]},
            "actions[0].builtin",
        ),
        (
            {"actions": [{"kind": "task", "assignee": {"role": "owner", "field": "assignee"}, "title": "x"}]},
            "actions[0].assignee.field",
        ),
    ],
)
async def test_a_rule_that_cannot_run_is_refused_at_save_time_naming_the_field(
    api: httpx.AsyncClient,
    units: InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork],
    change: dict[str, Any],
    field: str,
) -> None:
    response = await api.post("/rules", json={**ENTERPRISE_DEMO, **change})
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith(f"{field}:"), response.json()
    assert (await api.get("/rules")).headers["etag"] == '"0"'  # nothing half-written


async def test_a_taken_id_and_an_unknown_rule(api: httpx.AsyncClient) -> None:
    taken = await api.post("/rules", json={**ENTERPRISE_DEMO, "id": "deal-won"})
    assert taken.status_code == 409 and taken.json()["message"].startswith("id:")
    change = {k: v for k, v in ENTERPRISE_DEMO.items() if k != "id"}
    assert (await api.put("/rules/no-such-rule", json=change)).status_code == 404
    assert (await api.get("/rules/no-such-rule")).status_code == 404


async def test_the_preview_shows_who_would_get_what_and_records_nothing(
    api: httpx.AsyncClient, units: InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork], sample: Any
) -> None:
    assert (await api.post("/rules", json={**ENTERPRISE_DEMO, "enabled": False})).status_code == 201
    event = sample.stage_changed(direction="forward", pipeline="enterprise", amount=70000, to_stage="demo")
    shown = await api.post("/rules/enterprise-demo/preview", json={"event": event.model_dump(mode="json")})
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["matched"] is True
    assert [(d["channel"], d["recipient"]) for d in body["deliveries"]] == [
        ("email", MANAGER),
        ("webhook", "teams"),
    ]
    assert [t["assignee"] for t in body["tasks"]] == [OWNER]
    assert units.uow.deliveries.stored == {} and units.published == []

    missed = event.model_dump(mode="json") | {"amount": "10"}
    assert (await api.post("/rules/enterprise-demo/preview", json={"event": missed})).json()[
        "matched"
    ] is False
    broken = await api.post("/rules/enterprise-demo/preview", json={"event": {"deal_id": "D-1"}})
    assert broken.status_code == 422 and broken.json()["message"].startswith("event.")


async def test_only_an_admin_changes_rules_and_a_rep_reads_none(
    api: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    manager = bearer(issuer.token(MANAGER, ["manager"]))
    rep = bearer(issuer.token(OWNER, ["rep"]))
    assert (await api.get("/rules", headers=manager)).status_code == 200
    assert (await api.post("/rules", json=ENTERPRISE_DEMO, headers=manager)).status_code == 403
    assert (await api.get("/rules", headers=rep)).status_code == 403
    assert (await api.get("/rules", headers={"Authorization": ""})).status_code == 401


@pytest.mark.parametrize(
    ("condition", "fields", "holds"),
    [
        (
            Condition("company.industry", Operator.EQUALS, "software"),
            {"company": {"industry": "software"}},
            True,
        ),
        (Condition("company.industry", Operator.EXISTS), {"company": {"industry": None}}, False),
        (Condition("company.industry", Operator.EXISTS, False), {"company": {}}, True),
        (Condition("amount", Operator.AT_MOST, 100), {"amount": "100.00"}, True),
        (Condition("amount", Operator.AT_LEAST, 100), {"amount": None}, False),
        (Condition("source", Operator.IN, ["free_trial", "referral"]), {"source": "referral"}, True),
        (
            Condition("at", Operator.AT_LEAST, "2025-03-14T00:00:00+00:00"),
            {"at": datetime(2025, 3, 13, tzinfo=UTC)},
            False,
        ),
    ],
)
def test_conditions(condition: Condition, fields: dict[str, Any], holds: bool) -> None:
    assert condition.holds(fields) is holds


def test_the_default_rule_set_sends_what_the_rules_in_code_send(sample: Any) -> None:
    from kariz_notifications.domain.model import EventContext
    from kariz_notifications.domain.rules import DEFAULT_RULES, Roles, emails_for, plan

    audience = Audience(team=("team@kariz.test",), handover=("onboarding@kariz.test",))
    for event in (sample.deal_won(), sample.deal_lost(), sample.lead_qualified(), sample.stage_changed()):
        in_code = emails_for(event, Roles(audience, LiveRoster()), DEFAULT_RULES)
        as_data = plan(event, EventContext("e", "c"), audience).deliveries
        assert [(d.rule, d.message) for d in as_data if d.channel is Channel.EMAIL] == in_code


@pytest.mark.parametrize("event_type", ["LeadCaptured", "LeadDisqualified", "DealOpened", "LeadsMerged"])
async def test_a_star_subscriber_sees_every_public_event(event_type: str) -> None:
    from kariz_notifications.domain.samples import sample_of
    from kariz_shared.contracts.events import EVENTS

    audit = Subscriber("audit", "https://audit.example/h", frozenset({"*"}))
    uow = InMemoryNotificationsUnitOfWork(FakeClock(), Audience(subscribers=(audit,)))
    units = InMemoryUnitsOfWork(uow)
    event = EVENTS[event_type].model_validate(sample_of(EVENTS[event_type]))
    [hook] = (await consume(units, event, "evt-1")).values()
    assert (hook.channel, hook.recipient, hook.event_type) == (Channel.WEBHOOK, "audit", event_type)
    assert isinstance(hook.message, WebhookPost)
    assert json.loads(hook.message.body)["type"] == EVENTS[event_type].ce_type()


def test_every_default_rule_passes_the_checks_of_a_saved_rule_in_english_and_persian() -> None:
    from kariz_notifications.domain.automation import check_rule, default_rule_set
    from kariz_notifications.domain.rules import check_builtins

    for rule in default_rule_set():
        check_builtins(check_rule(rule, []))
        [action] = rule.actions
        if isinstance(action, ContentAction):
            continue  # to a customer: shipped texts of its own (tests/unit/test_content.py)
        assert (
            isinstance(action, EmailAction) and action.builtin == rule.id and set(action.templates) == {"fa"}
        )


async def test_a_persian_reader_gets_the_default_reminder_in_persian_and_an_english_one_the_built_in(
    sample: Any,
) -> None:
    reps = LiveRoster()
    at = datetime(2025, 1, 1, tzinfo=UTC)
    reps.put(RepProfile(email="sara@kariz.test", locale="fa-IR", time_zone="Asia/Tehran", updated_at=at))
    units = InMemoryUnitsOfWork(InMemoryNotificationsUnitOfWork(FakeClock(), Audience(), reps))
    due = sample.follow_up_due(lead_id="L-9", assignee="sara@kariz.test", deal_id=None)
    [persian] = (await consume(units, due, "evt-1")).values()
    assert isinstance(persian.message, Email) and persian.rule == "follow-up-due"
    assert (
        persian.message.subject.startswith("پیگیری سررسید شد: ") and "(سرنخ L-9)" in persian.message.subject
    )
    assert "معامله" not in persian.message.body  # no deal: the line is left out
    assert f"{persian_digits('1403')}، {persian_digits('13:00')} (Asia/Tehran)" in persian.message.body

    [english] = (await consume(units, sample.follow_up_due(lead_id="L-8"), "evt-2")).values()
    assert isinstance(english.message, Email) and english.message.subject.startswith("Follow-up due: ")


SATISFACTION: dict[str, Any] = {
    "id": "onboarding-check",
    "trigger": "DealWon",
    "actions": [
        {
            "kind": "email",
            "delay_minutes": 3 * 24 * 60,
            "recipients": [{"role": "owner"}],
            "templates": {"en": {"subject": "How is onboarding at {{ account_name }}?", "text": "Ask them."}},
        }
    ],
}


async def fire_timers(units: InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork]) -> list[Any]:
    """The due timers fired, and each NotificationDue consumed as the service's consumer would."""
    from kariz_shared.contracts.events import NotificationDue

    fired = await units.fire_due_timers()
    for n, due in enumerate(fired):
        assert isinstance(due, NotificationDue)
        units.uow.causation_id, units.uow.correlation_id = f"timer-{n}", "corr-timer"
        await units.handle(kafka.subscriptions()[NotificationDue], due)
    return fired


def by_rule(units: InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork], rule: str) -> list[Any]:
    return [s.record.delivery for s in units.uow.deliveries.stored.values() if s.record.delivery.rule == rule]


async def test_a_delayed_action_goes_when_the_clock_reaches_its_time_once(
    api: httpx.AsyncClient,
    units: InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork],
    clock: FakeClock,
    sample: Any,
) -> None:
    assert (await api.post("/rules", json=SATISFACTION)).status_code == 201
    await consume(units, sample.deal_won(deal_id="D-5", account_name="Globex"), "evt-1")
    assert by_rule(units, "deal-won") and by_rule(units, "onboarding-check") == []

    clock.advance(timedelta(days=3) - timedelta(minutes=1))
    assert await fire_timers(units) == []
    clock.advance(timedelta(minutes=1))
    # The default rule set's own satisfaction check to the customer falls due at the same time.
    fired = await fire_timers(units)
    assert sorted(f.rule_id for f in fired) == ["onboarding-check", "satisfaction-check"]
    [due] = [f for f in fired if f.rule_id == "onboarding-check"]
    assert (due.rule_id, due.trigger, due.subject_id) == ("onboarding-check", "DealWon", "D-5")
    [mail] = by_rule(units, "onboarding-check")
    assert (mail.key, mail.message.subject) == (
        f"evt-1:onboarding-check:0:email:{OWNER}",
        "How is onboarding at Globex?",
    )
    clock.advance(timedelta(days=30))
    assert await fire_timers(units) == []  # fired once


async def test_a_delayed_action_of_a_rule_disabled_meanwhile_sends_nothing(
    api: httpx.AsyncClient,
    units: InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork],
    clock: FakeClock,
    sample: Any,
) -> None:
    assert (await api.post("/rules", json=SATISFACTION)).status_code == 201
    await consume(units, sample.deal_won(), "evt-1")
    change = {k: v for k, v in SATISFACTION.items() if k != "id"} | {"enabled": False}
    assert (await api.put("/rules/onboarding-check", json=change)).status_code == 200
    clock.advance(timedelta(days=3))
    assert len(await fire_timers(units)) == 2  # its own, and the default satisfaction check's
    assert by_rule(units, "onboarding-check") == []


async def test_quiet_hours_defer_an_email_to_their_end_in_the_recipients_time_zone(
    api: httpx.AsyncClient,
    units: InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork],
    clock: FakeClock,
    sample: Any,
) -> None:
    rule = {
        **ENTERPRISE_DEMO,
        "actions": [
            {
                **ENTERPRISE_DEMO["actions"][0],
                "recipients": [{"role": "owner"}, {"role": "owner_manager"}],
                "quiet_hours": {"start": "22:00", "end": "07:00"},
            }
        ],
    }
    assert (await api.post("/rules", json=rule)).status_code == 201
    # 20:00 UTC: the owner (UTC) is still awake; the manager in Tehran (23:30) is in quiet hours.
    clock.set(datetime(2025, 3, 14, 20, 0, tzinfo=UTC))
    event = sample.stage_changed(direction="forward", pipeline="enterprise", amount=80000, to_stage="demo")
    await consume(units, event, "evt-1")
    assert [d.recipient for d in by_rule(units, "enterprise-demo")] == [OWNER]

    clock.set(datetime(2025, 3, 15, 3, 29, tzinfo=UTC))  # 06:59 in Tehran
    assert await fire_timers(units) == []
    clock.set(datetime(2025, 3, 15, 3, 30, tzinfo=UTC))  # 07:00 in Tehran
    [due] = await fire_timers(units)
    assert due.recipient == MANAGER
    assert sorted(d.recipient for d in by_rule(units, "enterprise-demo")) == sorted([OWNER, MANAGER])


@pytest.mark.parametrize(
    ("start", "end", "at", "ends"),
    [
        ("22:00", "07:00", datetime(2025, 3, 14, 23, 0, tzinfo=UTC), datetime(2025, 3, 15, 7, 0, tzinfo=UTC)),
        ("22:00", "07:00", datetime(2025, 3, 15, 6, 0, tzinfo=UTC), datetime(2025, 3, 15, 7, 0, tzinfo=UTC)),
        ("22:00", "07:00", datetime(2025, 3, 15, 7, 0, tzinfo=UTC), None),
        (
            "12:00",
            "13:00",
            datetime(2025, 3, 15, 12, 30, tzinfo=UTC),
            datetime(2025, 3, 15, 13, 0, tzinfo=UTC),
        ),
        ("12:00", "13:00", datetime(2025, 3, 15, 11, 59, tzinfo=UTC), None),
    ],
)
def test_the_end_of_quiet_hours(start: str, end: str, at: datetime, ends: datetime | None) -> None:
    from datetime import time

    from kariz_notifications.domain.automation import QuietHours

    assert QuietHours(time.fromisoformat(start), time.fromisoformat(end)).end_of(at, UTC) == ends


async def test_a_digest_merges_five_alerts_to_one_manager_into_one_email_at_the_window_end(
    api: httpx.AsyncClient,
    units: InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork],
    clock: FakeClock,
    sample: Any,
) -> None:
    rule = {
        "id": "deal-setbacks-digest",
        "trigger": "StageChanged",
        "conditions": [{"field": "direction", "op": "equals", "value": "back"}],
        "actions": [
            {
                "kind": "email",
                "digest_minutes": 30,
                "recipients": [{"role": "owner_manager"}],
                "templates": {
                    "en": {"subject": "Setback of {{ deal_id }}", "text": "{{ deal_id }}: {{ to_stage }}"}
                },
            }
        ],
    }
    assert (await api.post("/rules", json=rule)).status_code == 201
    for n in range(5):
        await consume(units, sample.stage_changed(deal_id=f"D-{n}", direction="back"), f"evt-{n}")
        clock.advance(timedelta(minutes=5))
    assert by_rule(units, "deal-setbacks-digest") == []
    # A redelivered alert (the consumer would drop it, a replay might not) is not listed twice.
    await consume(units, sample.stage_changed(deal_id="D-4", direction="back"), "evt-4")

    clock.advance(timedelta(minutes=4))  # 29 minutes after the first
    assert await units.fire_due_timers() == []
    clock.advance(timedelta(minutes=1))
    [window] = await units.fire_due_timers()
    units.uow.causation_id, units.uow.correlation_id = "timer-1", "corr-timer"
    await units.handle(kafka.subscriptions()[type(window)], window)
    [digest] = by_rule(units, "deal-setbacks-digest")
    assert digest.recipient == MANAGER and isinstance(digest.message, Email)
    # The manager reads Persian: the count in Persian digits; each alert as its template made it.
    assert digest.message.subject == f"{persian_digits('5')} هشدار از قاعدهٔ deal-setbacks-digest"
    assert [line for line in digest.message.body.splitlines() if line.startswith("D-")] == [
        f"D-{n}: discovery" for n in range(5)
    ]


async def test_a_chat_action_posts_in_slacks_and_in_teams_format_to_the_url_of_the_settings(
    clock: FakeClock, sample: Any, issuer: LocalIssuer, admin_token: str
) -> None:
    from kariz_notifications.adapters.chat import ChatPoster
    from kariz_notifications.domain.model import ChatDestination, ChatKind, ChatPost

    chats = (ChatDestination("sales-slack", ChatKind.SLACK), ChatDestination("sales-teams", ChatKind.TEAMS))
    units = InMemoryUnitsOfWork(InMemoryNotificationsUnitOfWork(clock, Audience(chats=chats)))
    app = FastAPI()
    runtime_http.install(app, "notifications")
    accepting(app, issuer)
    app.include_router(rules_http.router(units))
    post = {"title": "Won: {{ account_name }}", "text": "{{ amount | money(currency) }} by {{ owner }}"}
    rule = {
        "id": "won-to-chat",
        "trigger": "DealWon",
        "actions": [
            {"kind": "chat", "destination": "sales-slack", **post},
            {"kind": "chat", "destination": "sales-teams", **post},
        ],
    }
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kariz.test", headers=bearer(admin_token)
    ) as api:
        unknown = {**rule, "actions": [{"kind": "chat", "destination": "nowhere", **post}]}
        refused = await api.post("/rules", json=unknown)
        assert refused.status_code == 422 and refused.json()["message"].startswith("actions[0].destination:")
        assert (await api.post("/rules", json=rule)).status_code == 201

    deliveries = await consume(units, sample.deal_won(account_name="Globex", amount=48000), "evt-1")
    slack, teams = (deliveries[f"evt-1:chat:{name}"] for name in ("sales-slack", "sales-teams"))
    assert isinstance(slack.message, ChatPost) and isinstance(teams.message, ChatPost)

    received: dict[str, Any] = {}

    def receiver(request: httpx.Request) -> httpx.Response:
        received[str(request.url)] = json.loads(request.content)
        return httpx.Response(200)

    urls = {"sales-slack": "https://hooks.slack.example/T1/B1/x", "sales-teams": "https://teams.example/wf/1"}
    poster = ChatPoster(urls.get, timeout_s=5)
    poster._client = httpx.AsyncClient(transport=httpx.MockTransport(receiver))
    assert (await poster.send(slack)).ok and (await poster.send(teams)).ok
    await poster.aclose()

    slack_body = received[urls["sales-slack"]]
    assert slack_body["text"].startswith("Won: Globex")
    assert [b["type"] for b in slack_body["blocks"]] == ["header", "section"]
    assert slack_body["blocks"][1]["text"] == {"type": "mrkdwn", "text": "48,000.00 EUR by rep@kariz.test"}
    teams_body = received[urls["sales-teams"]]
    [attachment] = teams_body["attachments"]
    assert teams_body["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and [b["text"] for b in card["body"]] == [
        "Won: Globex",
        "48,000.00 EUR by rep@kariz.test",
    ]
    gone = ChatPoster(lambda name: None, timeout_s=5)
    assert (await gone.send(slack)).error == "chat 'sales-slack' is not configured any more"


def test_chat_webhooks_of_the_settings() -> None:
    from kariz_notifications.settings import NotificationsSettings

    teams = {"name": "sales", "kind": "teams", "url": "https://teams.example/wf"}
    settings = NotificationsSettings(chat_webhooks=[teams])
    assert settings.chat_url("sales") == "https://teams.example/wf" and settings.chat_url("other") is None
    assert [(c.name, c.kind.value) for c in settings.audience().chats] == [("sales", "teams")]
    assert "teams.example" not in repr(settings)  # the URL is a credential
    with pytest.raises(ValueError, match="must be https"):
        NotificationsSettings(chat_webhooks=[{**teams, "url": "http://teams.example/wf"}])
    with pytest.raises(ValueError, match="kind"):
        NotificationsSettings(chat_webhooks=[{**teams, "kind": "irc"}])
