"""Which events reach whom, and what the messages say."""

from __future__ import annotations

import json
from decimal import Decimal

from kariz_notifications.domain.model import (
    Audience,
    Channel,
    Email,
    EventContext,
    HandoverStatus,
    Subscriber,
    WebhookPost,
)
from kariz_notifications.domain.rules import delivery_key, plan

CTX = EventContext(event_id="evt-1", correlation_id="corr-1")
TEAM = ("sales-team@kariz.test",)
ONBOARDING = ("onboarding@kariz.test", "support@kariz.test")


def audience(*subscribers: Subscriber) -> Audience:
    return Audience(team=TEAM, handover=ONBOARDING, subscribers=subscribers)


def emails(p) -> dict[str, Email]:  # type: ignore[no-untyped-def]
    return {d.recipient: d.message for d in p.deliveries if d.channel is Channel.EMAIL}


def test_delivery_key_names_event_channel_and_recipient() -> None:
    assert delivery_key("evt-1", Channel.EMAIL, "a@x.io") == "evt-1:email:a@x.io"
    assert delivery_key("evt-1", Channel.WEBHOOK, "finance") == "evt-1:webhook:finance"


def test_lead_qualified_emails_the_owner_with_score_and_reasons(sample) -> None:  # type: ignore[no-untyped-def]
    p = plan(sample.lead_qualified(owner="rep@kariz.test"), CTX, audience())
    [d] = p.deliveries
    assert (d.key, d.channel, d.recipient) == ("evt-1:email:rep@kariz.test", Channel.EMAIL, "rep@kariz.test")
    assert (d.event_type, d.event_id, d.subject, d.correlation_id) == (
        "LeadQualified",
        "evt-1",
        "L-1",
        "corr-1",
    )
    assert isinstance(d.message, Email)
    assert d.message.to == "rep@kariz.test"
    assert d.message.subject == "Lead qualified: Ada Lovelace at Analytical, score 72"
    assert "industry: software (+30)" in d.message.body
    assert "Score:     72 (threshold 60)" in d.message.body
    assert "budget: confirmed (50000)" in d.message.body
    assert p.handover is None


def test_stage_changed_forward_notifies_nobody_by_email(sample) -> None:  # type: ignore[no-untyped-def]
    assert plan(sample.stage_changed(direction="forward"), CTX, audience()).deliveries == []


def test_stage_changed_back_emails_the_owner(sample) -> None:  # type: ignore[no-untyped-def]
    p = plan(sample.stage_changed(deal_id="D-9", direction="back"), CTX, audience())
    [d] = p.deliveries
    assert d.recipient == "rep@kariz.test" and d.subject == "D-9"
    assert isinstance(d.message, Email)
    assert d.message.subject == "Deal moved back: D-9 from proposal to discovery"
    assert "Time in proposal: 3 d 2 h" in d.message.body
    assert "budget frozen until Q3" in d.message.body


def test_deal_won_emails_team_owner_and_hands_over_to_onboarding(sample) -> None:  # type: ignore[no-untyped-def]
    p = plan(sample.deal_won(deal_id="D-7", owner="rep@kariz.test"), CTX, audience())
    mails = emails(p)
    assert set(mails) == {
        "sales-team@kariz.test",
        "rep@kariz.test",
        "onboarding@kariz.test",
        "support@kariz.test",
    }
    assert mails["sales-team@kariz.test"].subject == "Deal won: Globex, 48,000.00 EUR"
    assert mails["rep@kariz.test"].subject == "Deal won: Globex, 48,000.00 EUR"
    handover = mails["onboarding@kariz.test"]
    assert handover.subject == "Hand-over: Globex, 48,000.00 EUR, owner rep@kariz.test"
    assert "Account:   Globex (A-1)" in handover.body and "Deal:      D-7" in handover.body
    assert p.handover is not None
    assert (p.handover.deal_id, p.handover.account_name, p.handover.owner) == (
        "D-7",
        "Globex",
        "rep@kariz.test",
    )
    assert (p.handover.amount, p.handover.status) == (Decimal("48000"), HandoverStatus.OPEN)


def test_an_address_named_by_two_rules_gets_one_email(sample) -> None:  # type: ignore[no-untyped-def]
    both = Audience(team=("Rep@Kariz.test", "lead@kariz.test"), handover=("lead@kariz.test",))
    p = plan(sample.deal_won(owner="rep@kariz.test"), CTX, both)
    mails = emails(p)
    assert set(mails) == {"Rep@Kariz.test", "lead@kariz.test"}
    # The hand-over says everything the won notice says, and what to do next.
    assert mails["lead@kariz.test"].subject.startswith("Hand-over:")
    assert len({d.key for d in p.deliveries}) == len(p.deliveries)


def test_deal_lost_emails_the_owner_with_the_reason(sample) -> None:  # type: ignore[no-untyped-def]
    p = plan(sample.deal_lost(), CTX, audience())
    [d] = p.deliveries
    assert isinstance(d.message, Email)
    assert d.message.subject == "Deal lost: Initech (chose a competitor)"
    assert "Reason:    chose a competitor" in d.message.body
    assert "12,500.50 EUR" in d.message.body
    assert p.handover is None


def test_subscribers_get_the_events_they_subscribed_to(sample) -> None:  # type: ignore[no-untyped-def]
    finance = Subscriber("finance", "https://finance.example/hooks", frozenset({"DealWon"}))
    audit = Subscriber("audit", "https://audit.example/in", frozenset({"*"}))
    crm = Subscriber("crm", "https://crm.example/in", frozenset({"DealLost", "StageChanged"}))
    subs = audience(finance, audit, crm)

    def hooked(event) -> set[str]:  # type: ignore[no-untyped-def]
        return {d.recipient for d in plan(event, CTX, subs).deliveries if d.channel is Channel.WEBHOOK}

    assert hooked(sample.deal_won()) == {"finance", "audit"}
    assert hooked(sample.deal_lost()) == {"audit", "crm"}
    assert hooked(sample.lead_qualified()) == {"audit"}
    # A forward move e-mails nobody, but a subscriber to the event still receives it.
    forward = plan(sample.stage_changed(direction="forward"), CTX, subs).deliveries
    assert {(d.channel, d.recipient) for d in forward} == {
        (Channel.WEBHOOK, "audit"),
        (Channel.WEBHOOK, "crm"),
    }


def test_webhook_body_carries_the_event_and_its_envelope_facts(sample) -> None:  # type: ignore[no-untyped-def]
    finance = Subscriber("finance", "https://finance.example/hooks", frozenset({"DealWon"}))
    won = sample.deal_won(deal_id="D-3")
    [hook] = [d for d in plan(won, CTX, audience(finance)).deliveries if d.channel is Channel.WEBHOOK]
    assert hook.key == "evt-1:webhook:finance"
    assert isinstance(hook.message, WebhookPost)
    assert (hook.message.url, hook.message.subscriber) == ("https://finance.example/hooks", "finance")
    body = json.loads(hook.message.body)
    assert body == {
        "id": "evt-1",
        "type": "kariz.deal-won.v1",
        "time": "2025-03-14T09:30:00Z",
        "subject": "D-3",
        "correlation_id": "corr-1",
        "data": json.loads(won.model_dump_json()),
    }
    assert body["data"]["amount"] == "48000"


def test_the_same_event_always_plans_the_same_deliveries(sample) -> None:  # type: ignore[no-untyped-def]
    subs = audience(Subscriber("audit", "https://audit.example/in", frozenset({"*"})))
    first = plan(sample.deal_won(), CTX, subs)
    again = plan(sample.deal_won(), CTX, subs)
    assert [d.key for d in first.deliveries] == [d.key for d in again.deliveries]
    assert first.deliveries == again.deliveries


def test_subject_lines_stay_on_one_line(sample) -> None:  # type: ignore[no-untyped-def]
    lost = sample.deal_lost(account_name="Evil\r\nBcc: victim@example.com", reason="no\nbudget")
    [d] = plan(lost, CTX, audience()).deliveries
    assert isinstance(d.message, Email)
    assert "\n" not in d.message.subject and "\r" not in d.message.subject
    assert d.message.subject == "Deal lost: Evil Bcc: victim@example.com (no budget)"
