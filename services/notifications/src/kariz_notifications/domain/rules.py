"""The rules: which deliveries an event causes, and whether it opens a hand-over.

A rule is a trigger (an event type), whom it goes to (roles resolved by :class:`Roles` against the
configured audience and the live roster) and a template. :data:`DEFAULT_RULES` is today's set, written in
code; rules configured at runtime (issue G) start from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from kariz_notifications.domain import rendering
from kariz_notifications.domain.model import (
    SUBSCRIPTION,
    Audience,
    Channel,
    Delivery,
    Email,
    EventContext,
    Handover,
    Reps,
    WebhookPost,
)
from kariz_notifications.domain.rendering import Reader, Template
from kariz_shared.contracts.events import (
    DealLost,
    DealWon,
    Event,
    FollowUpDue,
    LeadQualified,
    LeadQueued,
    LeadReassigned,
    LeadResponseOverdue,
    StageChanged,
)
from kariz_shared.contracts.identity import LiveRoster, same_person, team_queue

E = TypeVar("E", bound=Event)

#: How an owner that is a team's queue (``queue:<team>``, a lead nobody of the team could take) begins.
QUEUE_PREFIX = team_queue("")


def delivery_key(event_id: str, channel: Channel, recipient: str) -> str:
    """One per (event, channel, recipient): a redelivered event maps to the same deliveries."""
    return f"{event_id}:{channel.value}:{recipient}"


@dataclass(frozen=True)
class Plan:
    deliveries: list[Delivery] = field(default_factory=list)
    handover: Handover | None = None
    #: What the rules could not resolve (a manager nobody named): the handler logs each.
    notes: tuple[str, ...] = ()


class Roles:
    """The roles a rule names, resolved to addresses for one event: the configured audience (team,
    onboarding) and the reps as the roster knows them now. What it cannot resolve it notes."""

    def __init__(self, audience: Audience, reps: Reps) -> None:
        self.audience = audience
        self.reps = reps
        self.notes: list[str] = []

    def person(self, owner: str) -> list[str]:
        """An owner or assignee: a rep's address, or for a team's queue the team's managers."""
        if owner.startswith(QUEUE_PREFIX):
            return self.team_managers(owner.removeprefix(QUEUE_PREFIX))
        return [owner]

    def with_manager(self, owner: str) -> list[str]:
        """The owner and the manager their roster profile names (the owner alone if it names none)."""
        if owner.startswith(QUEUE_PREFIX):
            return self.person(owner)  # a queue's "owner" is its team's managers already
        manager = self.reps.manager_of(owner)
        if manager is None:
            self.notes.append(f"no manager known for {owner} in the roster: the owner alone is told")
            return [owner]
        return [owner, manager]

    def team_managers(self, team: str) -> list[str]:
        """The managers the team's active reps' profiles name (a team has no manager field of its own:
        the roster names each rep's manager). None named: the configured sales team addresses, so that
        someone still hears of a lead waiting for a rep."""
        named = {self.reps.manager_of(rep) for rep in self.reps.members(team)}
        managers = sorted(m for m in named if m is not None)
        if not managers:
            self.notes.append(
                f"no manager of team {team} known in the roster: the sales team addresses are told instead"
            )
            return list(self.audience.team)
        return managers

    def reader(self, address: str) -> Reader:
        """Who reads the e-mail to ``address``: in their profile's time zone, UTC if they have none."""
        profile = self.reps.profile(address)
        return Reader(address, rendering.zone(profile.time_zone if profile is not None else None))


@dataclass(frozen=True)
class Rule(Generic[E]):
    """One e-mail rule: on ``trigger``, ``template`` to whom ``recipients`` names."""

    name: str
    trigger: type[E]
    recipients: Callable[[E, Roles], Sequence[str]]
    template: Template[E]


#: The e-mails each event causes, in order (the first rule naming an address wins it).
DEFAULT_RULES: tuple[Rule[Any], ...] = (
    Rule("lead-qualified", LeadQualified, lambda e, roles: [e.owner], rendering.LEAD_QUALIFIED),
    # Moving forward is the normal course of a deal; only a setback needs the owner's attention.
    Rule(
        "deal-moved-back",
        StageChanged,
        lambda e, roles: [e.owner] if e.direction == "back" else [],
        rendering.DEAL_MOVED_BACK,
    ),
    # Hand-over first: it carries everything the won notice does, plus what onboarding must do.
    Rule("handover", DealWon, lambda e, roles: roles.audience.handover, rendering.HANDOVER),
    Rule("deal-won", DealWon, lambda e, roles: [*roles.audience.team, e.owner], rendering.DEAL_WON),
    Rule("deal-lost", DealLost, lambda e, roles: [e.owner], rendering.DEAL_LOST),
    Rule("follow-up-due", FollowUpDue, lambda e, roles: roles.person(e.assignee), rendering.FOLLOW_UP_DUE),
    Rule(
        "response-overdue",
        LeadResponseOverdue,
        lambda e, roles: roles.with_manager(e.owner),
        rendering.RESPONSE_OVERDUE,
    ),
    Rule("lead-queued", LeadQueued, lambda e, roles: roles.team_managers(e.team), rendering.LEAD_QUEUED),
    Rule(
        "lead-reassigned",
        LeadReassigned,
        lambda e, roles: roles.person(e.to_owner),
        rendering.LEAD_REASSIGNED,
    ),
)


def emails_for(
    event: Event, roles: Roles, rules: Sequence[Rule[Any]] = DEFAULT_RULES
) -> list[tuple[str, Email]]:
    """The e-mails an event causes, each with its rule's name, at most one per address (the first rule
    naming an address wins)."""
    seen: set[str] = set()
    emails: list[tuple[str, Email]] = []
    for rule in rules:
        if type(event) is not rule.trigger:
            continue
        for to in rule.recipients(event, roles):
            if same_person(to) not in seen:
                seen.add(same_person(to))
                emails.append((rule.name, rendering.render(rule.template, event, roles.reader(to))))
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


def plan(event: Event, context: EventContext, audience: Audience, reps: Reps | None = None) -> Plan:
    """Everything an event causes here: e-mails, webhooks to its subscribers, and perhaps a hand-over;
    ``reps`` is the roster (none: nobody's manager or time zone is known)."""
    event_type = event.event_name()

    def delivery(channel: Channel, recipient: str, message: Email | WebhookPost, rule: str) -> Delivery:
        return Delivery(
            key=delivery_key(context.event_id, channel, recipient),
            channel=channel,
            recipient=recipient,
            event_type=event_type,
            event_id=context.event_id,
            subject=event.key(),
            correlation_id=context.correlation_id,
            message=message,
            rule=rule,
        )

    roles = Roles(audience, reps if reps is not None else LiveRoster())
    deliveries = [delivery(Channel.EMAIL, email.to, email, rule) for rule, email in emails_for(event, roles)]
    subscribers = [s for s in audience.subscribers if s.wants(event_type)]
    if subscribers:
        body = rendering.webhook_body(event, context)
        deliveries += [
            delivery(
                Channel.WEBHOOK, s.name, WebhookPost(url=s.url, subscriber=s.name, body=body), SUBSCRIPTION
            )
            for s in subscribers
        ]
    return Plan(deliveries=deliveries, handover=handover_for(event), notes=tuple(roles.notes))
