"""The leads service's reminders and alerts as default rules: a follow-up due to its assignee, an overdue
response to the owner and their manager, a queued lead to its team's managers, a reassigned lead to its
new owner; recipients and time zones from the roster; once per (event, recipient); "*" subscribers."""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from kariz_notifications.adapters.in_memory import InMemoryDeliveryQueue, InMemoryNotificationsUnitOfWork
from kariz_notifications.domain.model import Audience, Channel, Email, EventContext, SendResult, Subscriber
from kariz_notifications.domain.rendering import Reader, zone
from kariz_notifications.domain.rules import DEFAULT_RULES, Plan, plan
from kariz_notifications.domain.schedule import RetryPolicy
from kariz_notifications.entrypoints import kafka
from kariz_notifications.service_layer import handlers
from kariz_notifications.service_layer.commands import Deliver
from kariz_notifications.settings import WebhookSubscriber
from kariz_shared.contracts.events import EVENTS, FollowUpDue, RepProfile
from kariz_shared.contracts.identity import LiveRoster
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock

from .fakes import CountingMetrics, FakeSender

CTX = EventContext(event_id="evt-1", correlation_id="corr-1")
TEAM = ("sales-team@kariz.test",)
AUDIT = Subscriber("audit", "https://audit.example/in", frozenset({"*"}))
SECRET = "a-webhook-secret-of-at-least-32-bytes"


def roster(*profiles: RepProfile) -> LiveRoster:
    reps = LiveRoster()
    for profile in profiles:
        reps.put(profile)
    return reps


def rep(email: str, **fields: Any) -> RepProfile:
    return RepProfile(email=email, updated_at=datetime(2025, 1, 1, tzinfo=UTC), **fields)


def emails(p: Plan) -> dict[str, Email]:
    found: dict[str, Email] = {}
    for d in p.deliveries:
        if d.channel is Channel.EMAIL:
            assert isinstance(d.message, Email)
            found[d.recipient] = d.message
    return found


def test_every_default_rule_has_a_consumed_trigger() -> None:
    # Every public event is consumed (a "*" subscriber and a runtime rule may want any); the default
    # rules e-mail about some of them.
    triggers = {rule.trigger for rule in DEFAULT_RULES}
    assert triggers < set(kafka.subscriptions())
    assert len({rule.name for rule in DEFAULT_RULES}) == len(DEFAULT_RULES)


def test_a_follow_up_due_reminds_its_assignee_in_their_time_zone(sample) -> None:  # type: ignore[no-untyped-def]
    reps = roster(rep("rep@kariz.test", team="emea", time_zone="Asia/Tehran"))
    p = plan(sample.follow_up_due(lead_id="L-9", deal_id="D-3"), CTX, Audience(team=TEAM), reps)

    [(to, mail)] = emails(p).items()
    assert to == "rep@kariz.test" and p.deliveries[0].key == "evt-1:email:rep@kariz.test"
    assert mail.subject == "Follow-up due: Call Ada about the pilot (lead L-9)"
    assert "Task:      call back: Call Ada about the pilot" in mail.body
    assert "Lead:      L-9" in mail.body and "Deal:      D-3" in mail.body
    # 09:30 UTC is 13:00 in Tehran (UTC+03:30, no daylight saving since 2022).
    assert "Due at:    2025-03-14 13:00 Asia/Tehran (UTC+03:30)" in mail.body
    assert p.notes == ()


def test_times_are_in_utc_for_a_recipient_the_roster_does_not_know(sample) -> None:  # type: ignore[no-untyped-def]
    mail = emails(plan(sample.follow_up_due(), CTX, Audience()))["rep@kariz.test"]
    assert "Due at:    2025-03-14 09:30 UTC" in mail.body
    assert "Deal" not in mail.body  # a follow-up on the lead alone


def test_an_unknown_time_zone_in_a_profile_falls_back_to_utc() -> None:
    assert zone("Mars/Olympus_Mons") is UTC and zone(None) is UTC and zone("UTC") is UTC
    at = datetime(2025, 7, 1, 12, 0, tzinfo=UTC)
    assert Reader("a@x.io", zone("Europe/Berlin")).time(at) == "2025-07-01 14:00 Europe/Berlin (UTC+02:00)"


def test_an_overdue_response_alerts_the_owner_and_their_manager(sample) -> None:  # type: ignore[no-untyped-def]
    reps = roster(
        rep("rep@kariz.test", team="emea", manager="Kim@Kariz.test", time_zone="Europe/Berlin"),
        rep("kim@kariz.test", team="emea", time_zone="Asia/Tehran"),
    )
    p = plan(sample.response_overdue(lead_id="L-4"), CTX, Audience(team=TEAM), reps)

    mails = emails(p)
    assert list(mails) == ["rep@kariz.test", "kim@kariz.test"]
    for mail in mails.values():
        assert mail.subject == "Response overdue: lead L-4 (rep@kariz.test)"
        assert "Owner:     rep@kariz.test" in mail.body and "Source:    web_form" in mail.body
    # Each in their own time zone.
    assert "Due at:    2025-03-14 10:30 Europe/Berlin (UTC+01:00)" in mails["rep@kariz.test"].body
    assert "Due at:    2025-03-14 13:00 Asia/Tehran (UTC+03:30)" in mails["kim@kariz.test"].body
    assert p.notes == ()


def test_an_overdue_response_without_a_known_manager_alerts_the_owner_alone_and_says_so(sample) -> None:  # type: ignore[no-untyped-def]
    reps = roster(rep("rep@kariz.test", team="emea"))
    p = plan(sample.response_overdue(), CTX, Audience(team=TEAM), reps)
    assert list(emails(p)) == ["rep@kariz.test"]
    assert p.notes == ("no manager known for rep@kariz.test in the roster: no manager of theirs is told",)


def test_an_overdue_response_of_a_queued_lead_goes_to_its_teams_managers(sample) -> None:  # type: ignore[no-untyped-def]
    reps = roster(rep("ria@kariz.test", team="emea", manager="kim@kariz.test"))
    p = plan(sample.response_overdue(owner="queue:emea"), CTX, Audience(team=TEAM), reps)
    assert list(emails(p)) == ["kim@kariz.test"]


def test_a_queued_lead_alerts_the_managers_the_teams_reps_name(sample) -> None:  # type: ignore[no-untyped-def]
    reps = roster(
        rep(
            "ria@kariz.test",
            team="emea",
            manager="kim@kariz.test",
            away_until=datetime(2030, 1, 1, tzinfo=UTC),
        ),
        rep("sam@kariz.test", team="emea", manager="kim@kariz.test"),
        rep("noa@kariz.test", team="emea", manager="lee@kariz.test"),
        # Gone from the team: whom they named is not the team's manager any more.
        rep("old@kariz.test", team="emea", manager="former@kariz.test", active=False),
        rep("amy@kariz.test", team="apac", manager="max@kariz.test"),
    )
    p = plan(sample.lead_queued(lead_id="L-5", team="emea"), CTX, Audience(team=TEAM), reps)

    mails = emails(p)
    assert list(mails) == ["kim@kariz.test", "lee@kariz.test"]
    mail = mails["kim@kariz.test"]
    assert mail.subject == "Lead waiting in the emea queue: L-5"
    assert "nobody was available (every rep is away or at capacity)" in mail.body
    assert "Rule:      enterprise-emea" in mail.body
    assert "Queued at: 2025-03-14 09:30 UTC" in mail.body


def test_a_queued_lead_of_a_team_whose_manager_nobody_names_goes_to_the_sales_team(sample) -> None:  # type: ignore[no-untyped-def]
    reps = roster(rep("ria@kariz.test", team="emea"))
    p = plan(sample.lead_queued(team="emea"), CTX, Audience(team=TEAM), reps)
    assert list(emails(p)) == list(TEAM)
    assert p.notes == (
        "no manager of team emea known in the roster: the sales team addresses are told instead",
    )


def test_a_reassigned_lead_tells_its_new_owner_only(sample) -> None:  # type: ignore[no-untyped-def]
    reps = roster(rep("new@kariz.test", manager="kim@kariz.test"))
    p = plan(sample.lead_reassigned(lead_id="L-2", actor="kim@kariz.test"), CTX, Audience(team=TEAM), reps)
    [(to, mail)] = emails(p).items()
    assert to == "new@kariz.test"
    assert mail.subject == "You have a new lead: L-2"
    assert "Lead L-2 is yours now, from rep@kariz.test." in mail.body
    assert "By:        kim@kariz.test" in mail.body


def test_subscribers_to_everything_and_to_a_new_event_get_its_webhook(sample) -> None:  # type: ignore[no-untyped-def]
    follow_ups = WebhookSubscriber(
        name="tasks", url="https://tasks.example/in", secret=SECRET, events=["FollowUpDue"]
    ).as_subscriber()
    audience = Audience(subscribers=(AUDIT, follow_ups))
    due = plan(sample.follow_up_due(), CTX, audience)
    queued = plan(sample.lead_queued(), CTX, audience)

    assert [d.recipient for d in due.deliveries if d.channel is Channel.WEBHOOK] == ["audit", "tasks"]
    assert [d.recipient for d in queued.deliveries if d.channel is Channel.WEBHOOK] == ["audit"]
    [hook] = [d.message for d in due.deliveries if d.recipient == "audit"]
    body = json.loads(hook.body)  # type: ignore[union-attr]
    assert (body["type"], body["subject"], body["time"]) == (
        "kariz.follow-up-due.v1",
        "L-1",
        "2025-03-14T09:30:00Z",
    )


def test_a_subscriber_may_name_every_public_event_but_the_roster_and_notifications_own() -> None:
    # The roster is state every service follows, TaskRequested, NotificationDue, DigestDue and
    # SubscriptionDebounceDue (its own timers) what notifications itself publishes: naming one is refused.
    own_ones = {"RepProfile", "TaskRequested", "NotificationDue", "DigestDue", "SubscriptionDebounceDue"}
    for own in own_ones:
        with pytest.raises(ValueError, match="unknown events"):
            WebhookSubscriber(name="crm", url="https://crm.example/in", secret=SECRET, events=[own])
    consumed = {cls.__name__ for cls in kafka.subscriptions()} - own_ones
    for name in consumed:
        WebhookSubscriber(name="crm", url="https://crm.example/in", secret=SECRET, events=[name])
    assert consumed == set(EVENTS) - own_ones


async def test_a_redelivered_reminder_records_nothing_new_and_a_missing_manager_is_logged(  # type: ignore[no-untyped-def]
    sample, caplog: pytest.LogCaptureFixture
) -> None:
    reps = roster(rep("rep@kariz.test", team="emea"))
    uow = InMemoryNotificationsUnitOfWork(FakeClock(), Audience(team=TEAM, subscribers=(AUDIT,)), reps)
    units = InMemoryUnitsOfWork(uow)
    woken: list[Any] = []
    overdue = sample.response_overdue(lead_id="L-7")
    handle = kafka.subscriptions(woken.append)[type(overdue)]

    uow.causation_id, uow.correlation_id = "evt-7", "corr-7"
    with caplog.at_level(logging.WARNING, logger="kariz_notifications.service_layer.handlers"):
        await units.handle(handle, overdue)
    assert list(uow.deliveries.stored) == ["evt-7:email:rep@kariz.test", "evt-7:webhook:audit"]
    [warning] = caplog.records
    assert warning.getMessage().startswith("no manager known for rep@kariz.test")
    assert warning.event_id == "evt-7"  # type: ignore[attr-defined]

    # The sender takes what the commit handed it; then the same event is redelivered: the deliveries of
    # the first time (one per event and recipient) stay as they are, and the sender finds nothing new.
    queue = InMemoryDeliveryQueue(uow)
    lease = FakeClock().now()
    assert len(await queue.claim_new(woken[0], lease, "lane")) == 2
    first = {key: stored.record for key, stored in uow.deliveries.stored.items()}
    await units.handle(handle, overdue)
    assert {key: stored.record for key, stored in uow.deliveries.stored.items()} == first
    assert await queue.claim_new(woken[1], lease, "lane") == []

    # The roster names the manager now: the next overdue event reaches them too.
    reps.put(rep("rep@kariz.test", team="emea", manager="kim@kariz.test"))
    uow.causation_id, uow.correlation_id = "evt-8", "corr-8"
    await units.handle(handle, overdue)
    assert [k for k in uow.deliveries.stored if k.startswith("evt-8")] == [
        "evt-8:email:rep@kariz.test",
        "evt-8:email:kim@kariz.test",
        "evt-8:webhook:audit",
    ]


async def test_each_delivery_carries_its_rule_and_the_metrics_count_by_rule(sample) -> None:  # type: ignore[no-untyped-def]
    won = plan(
        sample.deal_won(), CTX, Audience(team=TEAM, handover=("onboarding@kariz.test",), subscribers=(AUDIT,))
    )
    assert [(d.recipient, d.rule) for d in won.deliveries] == [
        ("onboarding@kariz.test", "handover"),
        ("sales-team@kariz.test", "deal-won"),
        ("rep@kariz.test", "deal-won"),
        ("audit", "subscription"),
    ]

    uow = InMemoryNotificationsUnitOfWork(FakeClock(), Audience(subscribers=(AUDIT,)))
    uow.causation_id, uow.correlation_id = "evt-1", "corr-1"
    await InMemoryUnitsOfWork(uow).handle(kafka.subscriptions()[FollowUpDue], sample.follow_up_due())
    queue, now = InMemoryDeliveryQueue(uow), uow.clock.now()
    claimed = await queue.claim(now, now, "lane", limit=10)
    metrics = CountingMetrics()
    senders = {
        Channel.EMAIL: FakeSender(),
        Channel.WEBHOOK: FakeSender(SendResult(ok=False, error="HTTP 500")),
    }
    await handlers.deliver(
        Deliver(tuple(claimed), "lane", now),
        queue=queue,
        senders=senders,
        policy=RetryPolicy(max_attempts=1, backoff_s=1.0),
        metrics=metrics,
    )
    assert +metrics.by_rule == Counter(
        {
            ("sent", Channel.EMAIL, "follow-up-due"): 1,
            ("failed", Channel.WEBHOOK, "subscription"): 1,
            ("gave_up", Channel.WEBHOOK, "subscription"): 1,
        }
    )
