"""The rules: which deliveries an event causes, and whether it opens a hand-over."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

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
from kariz_notifications.domain.rendering import Template
from kariz_shared.contracts.events import DealLost, DealWon, Event, LeadQualified, StageChanged


def delivery_key(event_id: str, channel: Channel, recipient: str) -> str:
    """One per (event, channel, recipient): a redelivered event maps to the same deliveries."""
    return f"{event_id}:{channel.value}:{recipient}"


@dataclass(frozen=True)
class Plan:
    deliveries: list[Delivery] = field(default_factory=list)
    handover: Handover | None = None


Recipients = Callable[[Any, Audience], Sequence[str]]

#: The e-mails each event causes, in order: a template and whom it goes to.
EMAILS: dict[type[Event], list[tuple[Template[Any], Recipients]]] = {
    LeadQualified: [(rendering.LEAD_QUALIFIED, lambda e, audience: [e.owner])],
    # Moving forward is the normal course of a deal; only a setback needs the owner's attention.
    StageChanged: [
        (rendering.DEAL_MOVED_BACK, lambda e, audience: [e.owner] if e.direction == "back" else [])
    ],
    # Hand-over first: it carries everything the won notice does, plus what onboarding must do.
    DealWon: [
        (rendering.HANDOVER, lambda e, audience: audience.handover),
        (rendering.DEAL_WON, lambda e, audience: [*audience.team, e.owner]),
    ],
    DealLost: [(rendering.DEAL_LOST, lambda e, audience: [e.owner])],
}


def emails_for(event: Event, audience: Audience) -> list[Email]:
    """The e-mails an event causes, at most one per address (the first rule naming an address wins)."""
    seen: set[str] = set()
    emails: list[Email] = []
    for template, recipients in EMAILS.get(type(event), []):
        for to in recipients(event, audience):
            if to.lower() not in seen:
                seen.add(to.lower())
                emails.append(rendering.render(template, event, to))
    return emails


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
