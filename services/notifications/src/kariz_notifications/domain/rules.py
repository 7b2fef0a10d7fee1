"""The rules: which deliveries an event causes, and whether it opens a hand-over.

A rule is a trigger (an event type), whom it goes to (roles resolved by :class:`Roles` against the
configured audience and the live roster) and a template. :data:`DEFAULT_RULES` is today's e-mails,
written in code: the runtime rule set's version 0 (:func:`automation.default_rule_set`) names each by
its rule's name as a built-in template, and :func:`plan` runs whichever rule set is in force.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from kariz_notifications.domain import chat, rendering, templates
from kariz_notifications.domain.automation import (
    AutomationRule,
    ChatAction,
    ContentAction,
    CustomerMessage,
    EmailAction,
    RecipientRole,
    Recipients,
    TaskAction,
    WebhookAction,
    default_rule_set,
    value_at,
)
from kariz_notifications.domain.content import SKIP_TEXT, Contact, ContentItem, SkipReason
from kariz_notifications.domain.customer_mail import customer_email
from kariz_notifications.domain.model import (
    SUBSCRIPTION,
    Audience,
    Channel,
    ChatPost,
    Delivery,
    Email,
    EventContext,
    Handover,
    Reps,
    Subscriber,
    WebhookPost,
)
from kariz_notifications.domain.rendering import Reader, Template
from kariz_notifications.domain.unsubscribe import UnsubscribeLinks
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import (
    DealLost,
    DealStalled,
    DealWon,
    Event,
    FollowUpDue,
    LeadQualified,
    LeadQueued,
    LeadReassigned,
    LeadResponseOverdue,
    NotificationDue,
    QuoteApprovalRequested,
    QuoteExpired,
    RfpResponseDue,
    StageChanged,
    TaskRequested,
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
    #: Follow-ups the rules' task actions ask the leads service for.
    tasks: list[TaskRequested] = field(default_factory=list)
    #: Actions that go later: each armed as a timer whose event (NotificationDue) fires them.
    deferrals: list[NotificationDue] = field(default_factory=list)
    #: E-mails for digests: (rule, action, window length, locale, e-mail), see ``domain.digests``.
    digests: list[tuple[str, int, timedelta, str, Email]] = field(default_factory=list)
    #: What the rules could not resolve (a manager nobody named): the handler logs each.
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CustomerReach:
    """What content actions need of storage, read before the rules run (the domain does no I/O): the
    event's lead's contact (None: none known), the library, and the links' signer (None: no secret)."""

    contact: Contact | None = None
    library: tuple[ContentItem, ...] = ()
    links: UnsubscribeLinks | None = None


@dataclass(frozen=True)
class ContentOutcome:
    """A content action's doing for one event: the e-mail to send, or why it is skipped."""

    rule: str
    recipient: str
    email: Email
    content_id: str | None = None
    skipped: SkipReason | None = None


def needs_customers(event_type: str, rule_set: Sequence[AutomationRule]) -> bool:
    """Whether a rule of ``event_type`` has a content action (only then is the contact read)."""
    return any(
        r.trigger == event_type and any(isinstance(a, ContentAction) for a in r.actions) for r in rule_set
    )


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

    def locale(self, address: str) -> str:
        """The shipped locale ``address`` reads in: their profile's, English if they have none."""
        profile = self.reps.profile(address)
        return templates.language(profile.locale if profile is not None else None)

    def named(self, recipients: Recipients, fields: Mapping[str, Any]) -> list[str]:
        """The addresses a runtime rule's recipients name for an event with these ``fields``."""
        role = recipients.role
        if role is RecipientRole.ADDRESSES:
            return list(recipients.addresses)
        if role is RecipientRole.SALES_TEAM:
            return list(self.audience.team)
        if role is RecipientRole.ONBOARDING:
            return list(self.audience.handover)
        who = value_at(fields, recipients.source or "")
        if not isinstance(who, str):
            self.notes.append(f"the event names no {recipients.source}: its {role.value} is told nothing")
            return []
        if role is RecipientRole.TEAM:
            return self.team_managers(who)
        if role is RecipientRole.OWNER:
            return self.person(who)
        return self.manager(who)

    def manager(self, who: str) -> list[str]:
        """The manager ``who``'s roster profile names (for a team's queue, the team's managers)."""
        if who.startswith(QUEUE_PREFIX):
            return self.person(who)  # a queue's "manager" is its team's managers
        manager = self.reps.manager_of(who)
        if manager is None:
            self.notes.append(f"no manager known for {who} in the roster: no manager of theirs is told")
            return []
        return [manager]


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
    # A deal past its stage's rot limit (issue E): its owner and their manager, so someone acts.
    Rule("deal-stalled", DealStalled, lambda e, roles: roles.with_manager(e.owner), rendering.DEAL_STALLED),
    # Quotes and RFPs (issue E): the approving manager; the owner, of a quote that lapsed or an RFP due.
    Rule(
        "quote-approval-requested",
        QuoteApprovalRequested,
        lambda e, roles: roles.manager(e.owner),
        rendering.QUOTE_APPROVAL_REQUESTED,
    ),
    Rule("quote-expired", QuoteExpired, lambda e, roles: [e.owner], rendering.QUOTE_EXPIRED),
    Rule("rfp-response-due", RfpResponseDue, lambda e, roles: [e.owner], rendering.RFP_RESPONSE_DUE),
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


#: Today's e-mails by their rule's name: the built-in templates of the default rule set.
BUILTIN_TEMPLATES: dict[str, Template[Any]] = {rule.name: rule.template for rule in DEFAULT_RULES}


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


def email_of(action: EmailAction, event: Event, fields: Mapping[str, Any], roles: Roles, to: str) -> Email:
    """The e-mail ``action`` sends ``to``: its template in the reader's locale, else the built-in one
    (English) if it has one, else its English template."""
    locale = roles.locale(to)
    if locale not in action.templates:
        if action.builtin is not None:
            return rendering.render(BUILTIN_TEMPLATES[action.builtin], event, roles.reader(to))
        locale = "en"
    shown = templates.render_texts(action.templates[locale], fields, locale, roles.reader(to).zone)
    return Email(to=to, subject=shown.subject, body=shown.text, html=shown.html)


@dataclass(frozen=True)
class RuleEffects:
    """What the runtime rules make of one event: e-mails and webhooks (each with its rule's id) and
    tasks; at most one e-mail per address (the first rule naming an address wins it)."""

    emails: list[tuple[str, Email]] = field(default_factory=list)
    webhooks: list[tuple[str, Subscriber]] = field(default_factory=list)
    chats: list[tuple[str, ChatPost]] = field(default_factory=list)
    tasks: list[TaskRequested] = field(default_factory=list)
    #: Actions that go later (a delay, a recipient's quiet hours): each a timer's event.
    deferrals: list[NotificationDue] = field(default_factory=list)
    #: E-mails that join their recipient's digest window: (rule, action, its window's length, locale, e-mail).
    digests: list[tuple[str, int, timedelta, str, Email]] = field(default_factory=list)
    #: Content actions' e-mails to the customer's contact, sent or skipped.
    contents: list[ContentOutcome] = field(default_factory=list)


@dataclass(frozen=True)
class Firing:
    """A deferred action come due: only action ``action`` of the rule, only to ``recipient`` if named,
    and no delay or quiet hours again."""

    action: int
    recipient: str | None = None


def deferral(
    event: Event, rule: AutomationRule, n: int, event_id: str, due_at: datetime, recipient: str | None = None
) -> NotificationDue:
    suffix = f":{recipient}" if recipient is not None else ""
    return NotificationDue(
        deferral_id=f"{event_id}:{rule.id}:{n}{suffix}",
        subject_id=event.key(),
        rule_id=rule.id,
        action=n,
        trigger=event.event_name(),
        trigger_event_id=event_id,
        event=event.model_dump(mode="json"),
        recipient=recipient,
        due_at=due_at,
    )


def task_of(
    action: TaskAction,
    rule: AutomationRule,
    n: int,
    fields: Mapping[str, Any],
    roles: Roles,
    event_id: str,
    at: datetime,
) -> TaskRequested:
    assignees = roles.named(action.assignee, fields)
    title = templates.render_texts(templates.EmailTexts(action.title, ""), fields, "en").subject
    deal_id = value_at(fields, "deal_id")
    return TaskRequested(
        # The same event and rule make the same request: a replay asks the leads service nothing new.
        request_id=f"{event_id}:{rule.id}:{n}",
        lead_id=str(fields["lead_id"]),
        deal_id=deal_id if isinstance(deal_id, str) else None,
        assignee=assignees[0] if assignees else None,
        kind=action.task,
        title=title[:200],
        due_at=at + action.due_in,
        requested_at=at,
    )


def content_of(
    action: ContentAction, rule: AutomationRule, fields: Mapping[str, Any], reach: CustomerReach
) -> ContentOutcome:
    """What ``action`` sends the event's contact: the e-mail, or, skipped, the reason in its place."""
    lead = str(fields.get("lead_id"))
    contact = reach.contact

    def skipped(reason: SkipReason, to: str, extra: str = "") -> ContentOutcome:
        text = SKIP_TEXT[reason].format(lead=lead) + extra
        return ContentOutcome(rule.id, to, Email(to=to, subject=f"skipped: {text}", body=text), None, reason)

    if contact is None:
        return skipped(SkipReason.NO_CONTACT, f"lead:{lead}")
    reason = contact.skip_reason()
    if reason is not None:
        return skipped(reason, contact.email)
    item = None
    if action.message is CustomerMessage.CONTENT:
        stage = value_at(fields, action.choice.stage_field) if action.choice.stage_field else None
        extra = value_at(fields, action.choice.tags_field) if action.choice.tags_field else ()
        item = action.choice.pick(
            reach.library,
            str(stage) if isinstance(stage, str) else None,
            [str(t) for t in extra] if isinstance(extra, list | tuple) else (),
        )
        if item is None:
            return skipped(SkipReason.NO_CONTENT, contact.email)
    if reach.links is None:
        return skipped(SkipReason.NO_UNSUBSCRIBE_LINK, contact.email)
    content_id = item.id if item is not None else None
    try:
        email = customer_email(
            action.message,
            fields,
            contact,
            item,
            reach.links.link(contact.lead_id, contact.email, content_id),
        )
    except templates.TemplateError as exc:
        return skipped(SkipReason.NOT_RENDERED, contact.email, f": {exc}")
    return ContentOutcome(rule.id, contact.email, email, content_id)


def effects_of(
    event: Event,
    rule_set: Sequence[AutomationRule],
    roles: Roles,
    *,
    event_id: str,
    at: datetime,
    include_disabled: bool = False,
    firing: Firing | None = None,
    reach: CustomerReach | None = None,
) -> RuleEffects:
    """Run every matching rule of ``rule_set`` on ``event`` (the disabled ones too for a preview), or
    the one action a deferral ``firing`` names."""
    event_type = event.event_name()
    fields = event.model_dump()
    effects = RuleEffects()
    seen: set[str] = set()
    subscribers = {s.name: s for s in roles.audience.subscribers}
    chats = {c.name: c for c in roles.audience.chats}
    for rule in rule_set:
        # A deferred action's rule must still match as it now reads: an admin who narrowed it meanwhile
        # meant it not to go.
        if not rule.matches(event_type, fields):
            continue
        if firing is None and not (rule.enabled or include_disabled):
            continue
        for n, action in enumerate(rule.actions):
            if firing is not None and n != firing.action:
                continue
            if firing is None and action.delay > timedelta(0):
                effects.deferrals.append(deferral(event, rule, n, event_id, at + action.delay))
                continue
            if isinstance(action, EmailAction):
                for recipients in action.recipients:
                    for to in roles.named(recipients, fields):
                        if same_person(to) in seen or (firing and firing.recipient not in (None, to)):
                            continue
                        seen.add(same_person(to))
                        quiet_until = (
                            action.quiet_hours.end_of(at, roles.reader(to).zone)
                            if action.quiet_hours is not None and (firing is None or firing.recipient is None)
                            else None
                        )
                        if quiet_until is not None:
                            effects.deferrals.append(deferral(event, rule, n, event_id, quiet_until, to))
                            continue
                        try:
                            email = email_of(action, event, fields, roles, to)
                            if action.digest > timedelta(0) and firing is None:
                                effects.digests.append((rule.id, n, action.digest, roles.locale(to), email))
                            else:
                                effects.emails.append((rule.id, email))
                        except templates.TemplateError as exc:
                            # Checked against the event's sample when saved; a value that is None here
                            # can still fail: the others of the rule go out, this one is noted.
                            roles.notes.append(f"rule {rule.id}: the e-mail to {to} did not render: {exc}")
            elif isinstance(action, ChatAction):
                destination = chats.get(action.destination)
                if destination is None:
                    roles.notes.append(f"rule {rule.id}: no chat {action.destination} in the settings")
                    continue
                try:
                    shown = templates.render_texts(
                        templates.EmailTexts(action.title, action.text), fields, "en"
                    )
                except templates.TemplateError as exc:
                    roles.notes.append(f"rule {rule.id}: the chat message did not render: {exc}")
                    continue
                body = chat.chat_body(destination.kind, shown.subject, shown.text)
                effects.chats.append((rule.id, ChatPost(destination.name, destination.kind, body)))
            elif isinstance(action, ContentAction):
                outcome = content_of(action, rule, fields, reach or CustomerReach())
                if same_person(outcome.recipient) in seen:
                    continue
                seen.add(same_person(outcome.recipient))
                if outcome.skipped is not None:
                    roles.notes.append(f"rule {rule.id}: content skipped: {outcome.email.body}")
                effects.contents.append(outcome)
            elif isinstance(action, WebhookAction):
                subscriber = subscribers.get(action.subscriber)
                if subscriber is None:
                    roles.notes.append(f"rule {rule.id}: no subscriber {action.subscriber} in the settings")
                else:
                    effects.webhooks.append((rule.id, subscriber))
            else:
                effects.tasks.append(task_of(action, rule, n, fields, roles, event_id, at))
    return effects


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


def plan(
    event: Event,
    context: EventContext,
    audience: Audience,
    reps: Reps | None = None,
    rule_set: Sequence[AutomationRule] | None = None,
    *,
    at: datetime | None = None,
    include_disabled: bool = False,
    subscriptions: bool = True,
    firing: Firing | None = None,
    reach: CustomerReach | None = None,
) -> Plan:
    """Everything an event causes here: what the rules in force (``rule_set``; the default rules when
        none) send and ask for, webhooks to the subscribers of its type, and perhaps a hand-over. ``reps``
        is the roster (none: nobody's manager or time zone is known); ``at``, when the event is handled
        (a task's due time counts from it); ``subscriptions`` False leaves the subscribers of its type out
    (a rule's preview shows the rule's doing only)."""
    event_type = event.event_name()

    def delivery(
        channel: Channel,
        recipient: str,
        message: Email | WebhookPost | ChatPost,
        rule: str,
        skipped: str | None = None,
        content_id: str | None = None,
        to_customer: bool = False,
    ) -> Delivery:
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
            skipped=skipped,
            content_id=content_id,
            to_customer=to_customer,
        )

    roles = Roles(audience, reps if reps is not None else LiveRoster())
    effects = effects_of(
        event,
        default_rule_set() if rule_set is None else rule_set,
        roles,
        event_id=context.event_id,
        at=at if at is not None else rendering.occurred_at(event),
        include_disabled=include_disabled,
        firing=firing,
        reach=reach,
    )
    deliveries = [delivery(Channel.EMAIL, email.to, email, rule) for rule, email in effects.emails]
    deliveries += [
        delivery(
            Channel.EMAIL,
            c.recipient,
            c.email,
            c.rule,
            c.skipped.value if c.skipped is not None else None,
            c.content_id,
            to_customer=True,
        )
        for c in effects.contents
    ]
    deliveries += [delivery(Channel.CHAT, post.destination, post, rule) for rule, post in effects.chats]
    hooks = [
        *effects.webhooks,
        *((SUBSCRIPTION, s) for s in audience.subscribers if subscriptions and s.wants(event_type)),
    ]
    if hooks:
        body = rendering.webhook_body(event, context)
        named: set[str] = set()
        for rule, s in hooks:
            # One post per subscriber and event: a rule's webhook and a subscription to the same event
            # are one delivery (the first, the rule's, counts it).
            if s.name not in named:
                named.add(s.name)
                deliveries.append(
                    delivery(
                        Channel.WEBHOOK, s.name, WebhookPost(url=s.url, subscriber=s.name, body=body), rule
                    )
                )
    return Plan(
        deliveries=deliveries,
        # A deferred action comes after the event's hand-over was opened.
        handover=handover_for(event) if firing is None else None,
        tasks=effects.tasks,
        deferrals=effects.deferrals,
        digests=effects.digests,
        notes=tuple(roles.notes),
    )


def check_builtins(rule: AutomationRule) -> AutomationRule:
    """A built-in e-mail (a default rule's, kept when an admin edits that rule) must exist and be one of
    the rule's trigger: each is written for its event's fields."""
    for n, action in enumerate(rule.actions):
        if isinstance(action, EmailAction) and action.builtin is not None:
            known = {r.name: r.trigger.event_name() for r in DEFAULT_RULES}
            if known.get(action.builtin) != rule.trigger:
                raise RuleViolation(
                    f"actions[{n}].builtin: {action.builtin!r} is no built-in e-mail of {rule.trigger}; "
                    f"those there are: {sorted(k for k, t in known.items() if t == rule.trigger)}"
                )
    return rule
