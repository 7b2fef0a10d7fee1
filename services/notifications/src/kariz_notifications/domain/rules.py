"""The rules: which deliveries an event causes, and whether it opens a hand-over."""

from __future__ import annotations

from dataclasses import dataclass, field

from kariz_notifications.domain import rendering
from kariz_notifications.domain.model import (
    Audience,
    Channel,
    Delivery,
    Email,
    EventContext,
    Handover,
    WebhookPost,
)
from kariz_shared.contracts.events import DealLost, DealWon, Event, LeadQualified, StageChanged


def delivery_key(event_id: str, channel: Channel, recipient: str) -> str:
    """One per (event, channel, recipient): a redelivered event maps to the same deliveries."""
    return f"{event_id}:{channel.value}:{recipient}"


@dataclass(frozen=True)
class Plan:
    deliveries: list[Delivery] = field(default_factory=list)
    handover: Handover | None = None


def emails_for(event: Event, audience: Audience) -> list[Email]:
    """The e-mails an event causes, at most one per address (the first rule naming an address wins)."""
    emails: list[Email] = []
    if isinstance(event, LeadQualified):
        emails = [rendering.lead_qualified(event, event.owner)]
    elif isinstance(event, StageChanged):
        # Moving forward is the normal course of a deal; only a setback needs the owner's attention.
        if event.direction == "back":
            emails = [rendering.deal_moved_back(event, event.owner)]
    elif isinstance(event, DealWon):
        # Hand-over first: it carries everything the won notice does, plus what onboarding must do.
        emails = [rendering.handover(event, to) for to in audience.handover]
        emails += [rendering.deal_won(event, to) for to in (*audience.team, event.owner)]
    elif isinstance(event, DealLost):
        emails = [rendering.deal_lost(event, event.owner)]
    seen: set[str] = set()
    unique: list[Email] = []
    for email in emails:
        if email.to.lower() not in seen:
            seen.add(email.to.lower())
            unique.append(email)
    return unique


def handover_for(event: Event) -> Handover | None:
    if not isinstance(event, DealWon):
        return None
    return Handover(
        deal_id=event.deal_id,
        lead_id=event.lead_id,
        account_id=event.account_id,
        account_name=event.account_name,
        owner=event.owner,
        amount=event.amount,
        currency=event.currency,
        won_at=event.won_at,
    )


def plan(event: Event, context: EventContext, audience: Audience) -> Plan:
    """Everything an event causes here: e-mails, webhooks to its subscribers, and perhaps a hand-over."""
    event_type = event.event_name()

    def delivery(channel: Channel, recipient: str, message: Email | WebhookPost) -> Delivery:
        return Delivery(
            key=delivery_key(context.event_id, channel, recipient),
            channel=channel,
            recipient=recipient,
            event_type=event_type,
            event_id=context.event_id,
            subject=event.key(),
            correlation_id=context.correlation_id,
            message=message,
        )

    deliveries = [delivery(Channel.EMAIL, email.to, email) for email in emails_for(event, audience)]
    subscribers = [s for s in audience.subscribers if s.wants(event_type)]
    if subscribers:
        body = rendering.webhook_body(event, context)
        deliveries += [
            delivery(Channel.WEBHOOK, s.name, WebhookPost(url=s.url, subscriber=s.name, body=body))
            for s in subscribers
        ]
    return Plan(deliveries=deliveries, handover=handover_for(event))
