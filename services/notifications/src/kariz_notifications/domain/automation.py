"""Automation rules that sales ops configure at runtime (issue G): on a trigger (an event type, by name,
so rules can name events added after this module), when every condition on the event's fields holds,
each action runs: an e-mail to roles or addresses, a webhook to a subscriber, a task for a role.

The rules are kept as one rule set in numbered versions (:mod:`kariz_shared.contracts.versions`):
version 0 is :func:`default_rule_set`, today's rules as data, so nothing anyone got before is lost;
every change is the next version, with its actor and time, never changed afterwards. A rule is checked
whole when it is saved (:func:`check_rule`): its trigger is a public event, its fields are the event's,
its templates render against a sample of the event; so a rule in force cannot fail for a typo.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from kariz_notifications.domain.content import CONTENT_ID, ContentChoice
from kariz_notifications.domain.persian import PERSIAN_DEFAULTS
from kariz_notifications.domain.samples import sample_of
from kariz_notifications.domain.templates import EmailTexts, TemplateError, check_texts
from kariz_shared import system
from kariz_shared.contracts.errors import Conflict, NotFound, RuleViolation
from kariz_shared.contracts.events import (
    EVENTS,
    DigestDue,
    NotificationDue,
    SubscriptionDebounceDue,
    TaskKind,
)
from kariz_shared.contracts.versions import next_version

#: Who made version 0: nobody did, the service seeded it.
SEEDED_BY = "system:seed"
#: A rule set's size and a rule's parts at most (each event walks the rules of its trigger).
MAX_RULES = 200
MAX_CONDITIONS = 20
MAX_ACTIONS = 10
RULE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
ADDRESS = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
WHAT = "the notification rules"
#: Its own timers: how a deferred action comes back, a digest window and a subscription's debounce window
#: end; never a rule's trigger.
OWN_TIMERS = frozenset(
    {NotificationDue.event_name(), DigestDue.event_name(), SubscriptionDebounceDue.event_name()}
)
#: The events a rule may name: those the service consumes (every public event but the roster and
#: TaskRequested), its own timers aside. Its own ContactUnsubscribed is one: a CRM wants to hear of it.
_SERVICE = system.service("notifications")
TRIGGERS = frozenset(e.event_name() for e in _SERVICE.consumes) - OWN_TIMERS
#: How long after a win the default satisfaction check goes.
SATISFACTION_DELAY = timedelta(days=3)
#: How long an action may wait after its trigger at most.
MAX_DELAY = timedelta(days=365)


class Operator(StrEnum):
    EQUALS = "equals"
    IN = "in"
    AT_LEAST = ">="
    AT_MOST = "<="
    EXISTS = "exists"


_MISSING = object()


def value_at(data: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` (``company.industry``) of an event's fields; ``_MISSING`` when a
    part is absent or None on the way."""
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping) or value.get(part) is None:
            return _MISSING
        value = value[part]
    return value


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _same(actual: Any, expected: Any) -> bool:
    """Equal as numbers when both are numbers (``50000`` and an amount of ``50000.00``), else as text
    (an enum's value, a stage's name)."""
    a, e = _number(actual), _number(expected)
    if a is not None and e is not None:
        return a == e
    if isinstance(actual, bool) or isinstance(expected, bool):
        return actual is expected
    return str(getattr(actual, "value", actual)) == str(expected)


def _order(actual: Any, bound: Any) -> int | None:
    """-1, 0 or 1 as ``actual`` is below, at or above ``bound``; None when they cannot be compared."""
    a, b = _number(actual), _number(bound)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    if isinstance(actual, datetime) and isinstance(bound, str):
        try:
            when = datetime.fromisoformat(bound)
        except ValueError:
            return None
        if when.tzinfo is None:
            return None
        return (actual > when) - (actual < when)
    return None


@dataclass(frozen=True)
class Condition:
    """One test of an event's field: ``amount >= 50000``, ``stage in [demo, proposal]``."""

    field: str
    op: Operator
    value: Any = None

    def holds(self, data: Mapping[str, Any]) -> bool:
        actual = value_at(data, self.field)
        if self.op is Operator.EXISTS:
            return (actual is not _MISSING) is (self.value is not False)
        if actual is _MISSING:
            return False
        if self.op is Operator.EQUALS:
            return _same(actual, self.value)
        if self.op is Operator.IN:
            return any(_same(actual, v) for v in self.value)
        order = _order(actual, self.value)
        if order is None:
            return False
        return order >= 0 if self.op is Operator.AT_LEAST else order <= 0


class RecipientRole(StrEnum):
    """Whom an action names. ``owner``, ``owner_manager`` and ``team`` read the person (or the team)
    from the event's field the recipient names (``owner`` unless it says ``assignee``, ``to_owner``...)."""

    OWNER = "owner"
    OWNER_MANAGER = "owner_manager"
    #: The managers of a team, as the roster names them (the event's ``team`` field by default).
    TEAM = "team"
    #: The sales team's addresses of the settings.
    SALES_TEAM = "sales_team"
    #: Onboarding's addresses of the settings (the hand-over).
    ONBOARDING = "onboarding"
    ADDRESSES = "addresses"


#: The event field a role reads the person or team from, unless the recipient names another.
DEFAULT_FIELD = {
    RecipientRole.OWNER: "owner",
    RecipientRole.OWNER_MANAGER: "owner",
    RecipientRole.TEAM: "team",
}


@dataclass(frozen=True)
class Recipients:
    role: RecipientRole
    field: str | None = None
    addresses: tuple[str, ...] = ()

    @property
    def source(self) -> str | None:
        """The event's field this role reads, if it reads one."""
        return self.field or DEFAULT_FIELD.get(self.role)


@dataclass(frozen=True)
class QuietHours:
    """Hours of the recipient's day (in their time zone) an e-mail waits out: ``22:00``-``07:00`` runs
    over midnight. An e-mail due inside them goes at their end."""

    start: time
    end: time

    def end_of(self, at: datetime, zone: tzinfo) -> datetime | None:
        """When the quiet hours that ``at`` falls in end (None: ``at`` is outside them)."""
        local = at.astimezone(zone)
        now = local.time().replace(tzinfo=None)
        overnight = self.start > self.end
        inside = (now >= self.start or now < self.end) if overnight else (self.start <= now < self.end)
        if not inside:
            return None
        end_day = local.date() + timedelta(days=1) if overnight and now >= self.start else local.date()
        # Wall-clock end in the recipient's zone (a DST change that night moves it with their clock).
        return datetime.combine(end_day, self.end, tzinfo=zone)


class ActionKind(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"
    TASK = "task"
    CHAT = "chat"
    CONTENT = "content"


class CustomerMessage(StrEnum):
    """What a content action's e-mail to the customer says (shipped templates, English and Persian)."""

    #: A piece of the content library.
    CONTENT = "content"
    #: After a win: how is onboarding going? (no library piece).
    SATISFACTION = "satisfaction"


@dataclass(frozen=True)
class EmailAction:
    """An e-mail to each address the recipients name, from ``templates`` by locale (``en``, ``fa``): the
    reader's locale, else English. ``builtin``: one of today's e-mails (a default rule's) stands for
    English, and for any locale the templates lack."""

    recipients: tuple[Recipients, ...]
    templates: Mapping[str, EmailTexts] = field(default_factory=dict)
    builtin: str | None = None
    kind: ActionKind = ActionKind.EMAIL
    #: How long after the trigger it goes (a durable timer: NotificationDue).
    delay: timedelta = timedelta(0)
    quiet_hours: QuietHours | None = None
    #: Alerts of this action to one person within this window go as one e-mail at its end.
    digest: timedelta = timedelta(0)


@dataclass(frozen=True)
class WebhookAction:
    """The event's signed webhook body to one of the settings' subscribers, by name."""

    subscriber: str
    kind: ActionKind = ActionKind.WEBHOOK
    delay: timedelta = timedelta(0)


@dataclass(frozen=True)
class TaskAction:
    """A follow-up for the person the recipient names, due ``due_in`` after the event is handled: a
    ``TaskRequested`` the leads service makes a follow-up of."""

    assignee: Recipients
    title: str
    task: TaskKind = TaskKind.OTHER
    due_in: timedelta = timedelta(days=1)
    kind: ActionKind = ActionKind.TASK
    delay: timedelta = timedelta(0)


@dataclass(frozen=True)
class ChatAction:
    """A message to a chat channel of the settings (Slack or Teams), by name; ``title`` and ``text``
    are templates like an e-mail's (English: a channel has no one reader's locale)."""

    destination: str
    title: str
    text: str
    kind: ActionKind = ActionKind.CHAT
    delay: timedelta = timedelta(0)


@dataclass(frozen=True)
class ContentAction:
    """An e-mail to the event's customer contact (its lead's, a deal's lead's): a library piece chosen by
    ``choice``, or a satisfaction check; only with consent recorded, always with an unsubscribe link."""

    choice: ContentChoice = field(default_factory=ContentChoice)
    message: CustomerMessage = CustomerMessage.CONTENT
    kind: ActionKind = ActionKind.CONTENT
    delay: timedelta = timedelta(0)


Action = EmailAction | WebhookAction | TaskAction | ChatAction | ContentAction


@dataclass(frozen=True)
class AutomationRule:
    id: str
    trigger: str
    actions: tuple[Action, ...]
    conditions: tuple[Condition, ...] = ()
    enabled: bool = True
    description: str = ""

    def matches(self, event_type: str, data: Mapping[str, Any]) -> bool:
        return event_type == self.trigger and all(c.holds(data) for c in self.conditions)


@dataclass(frozen=True)
class RuleSetVersion:
    number: int
    rules: tuple[AutomationRule, ...]
    took_effect_at: datetime
    actor: str

    @classmethod
    def seeded(cls, at: datetime) -> RuleSetVersion:
        return cls(number=0, rules=default_rule_set(), took_effect_at=at, actor=SEEDED_BY)

    def rule(self, rule_id: str) -> AutomationRule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise NotFound(f"no rule {rule_id!r} in version {self.number} of {WHAT}")

    def _next(
        self, rules: tuple[AutomationRule, ...], at: datetime, actor: str, edited: int | None
    ) -> RuleSetVersion:
        if len(rules) > MAX_RULES:
            raise RuleViolation(f"rules: at most {MAX_RULES}")
        return RuleSetVersion(next_version(WHAT, self.number, edited), rules, at, actor)

    def adding(self, rule: AutomationRule, at: datetime, actor: str, edited: int | None) -> RuleSetVersion:
        """The next version with ``rule`` after the others (409 when its id is taken)."""
        if any(r.id == rule.id for r in self.rules):
            raise Conflict(f"id: a rule {rule.id!r} exists already; replace it with PUT /rules/{rule.id}")
        return self._next((*self.rules, rule), at, actor, edited)

    def replacing(self, rule: AutomationRule, at: datetime, actor: str, edited: int | None) -> RuleSetVersion:
        """The next version with ``rule`` in the place of the rule of its id (404 when none)."""
        self.rule(rule.id)
        return self._next(tuple(rule if r.id == rule.id else r for r in self.rules), at, actor, edited)


def _fields_of(trigger: str) -> Mapping[str, Any]:
    return sample_of(EVENTS[trigger])


def check_conditions(
    name: str, conditions: Sequence[Condition], samples: Mapping[str, Mapping[str, Any]], *, each: bool = True
) -> None:
    """A 422 naming the first of ``conditions`` (the request's field ``name``) that cannot be tested on
    the events of ``samples`` (event type to a sample's fields): a field ``each`` of them (or, with
    ``each`` False, none of them) has, or a value its operator cannot take."""
    if len(conditions) > MAX_CONDITIONS:
        raise RuleViolation(f"{name}: at most {MAX_CONDITIONS}")
    for n, condition in enumerate(conditions):
        where = f"{name}[{n}]"
        lacking = sorted(t for t, sample in samples.items() if value_at(sample, condition.field) is _MISSING)
        if lacking and each:
            raise RuleViolation(f"{where}.field: {', '.join(lacking)} has no field {condition.field!r}")
        if lacking and len(lacking) == len(samples):
            raise RuleViolation(f"{where}.field: no event has a field {condition.field!r}")
        if condition.op is Operator.IN and not isinstance(condition.value, list | tuple):
            raise RuleViolation(f"{where}.value: 'in' needs a list of values")
        if condition.op in (Operator.AT_LEAST, Operator.AT_MOST) and (
            _number(condition.value) is None and not isinstance(condition.value, str)
        ):
            raise RuleViolation(f"{where}.value: {condition.op.value} needs a number or an ISO time")
        if condition.op is Operator.EXISTS and condition.value not in (None, True, False):
            raise RuleViolation(f"{where}.value: 'exists' takes true, false or nothing")


def check_rule(rule: AutomationRule, subscribers: Sequence[str], chats: Sequence[str] = ()) -> AutomationRule:
    """``rule`` if it can run as it says; else a 422 naming the part that cannot."""
    if not RULE_ID.match(rule.id):
        raise RuleViolation(
            "id: lower-case letters, digits and dashes, 1..64, starting with a letter or digit"
        )
    if rule.id == "versions":
        raise RuleViolation("id: 'versions' is the path of the rule set's versions (GET /rules/versions)")
    if rule.trigger not in TRIGGERS:
        raise RuleViolation(
            f"trigger: {rule.trigger!r} is no event a rule can name; choose from {sorted(TRIGGERS)}"
        )
    sample = _fields_of(rule.trigger)
    check_conditions("conditions", rule.conditions, {rule.trigger: sample})
    if not rule.actions:
        raise RuleViolation("actions: a rule needs at least one action")
    if len(rule.actions) > MAX_ACTIONS:
        raise RuleViolation(f"actions: at most {MAX_ACTIONS}")
    for n, action in enumerate(rule.actions):
        _check_action(f"actions[{n}]", action, rule.trigger, sample, subscribers, chats)
    return rule


def _check_recipients(where: str, r: Recipients, trigger: str, sample: Mapping[str, Any]) -> None:
    if r.role is RecipientRole.ADDRESSES:
        if not r.addresses:
            raise RuleViolation(f"{where}.addresses: name at least one address")
        bad = [a for a in r.addresses if not ADDRESS.match(a)]
        if bad:
            raise RuleViolation(f"{where}.addresses: not e-mail addresses: {', '.join(bad)}")
    source = r.source
    if source is not None and value_at(sample, source) is _MISSING:
        raise RuleViolation(f"{where}.field: {trigger} has no field {source!r} naming the {r.role.value}")


def _check_action(
    where: str,
    action: Action,
    trigger: str,
    sample: Mapping[str, Any],
    subscribers: Sequence[str],
    chats: Sequence[str],
) -> None:
    if not timedelta(0) <= action.delay <= MAX_DELAY:
        raise RuleViolation(f"{where}.delay_minutes: between 0 and {MAX_DELAY.days} days")
    if isinstance(action, EmailAction):
        if not action.recipients:
            raise RuleViolation(f"{where}.recipients: name at least one")
        for n, r in enumerate(action.recipients):
            _check_recipients(f"{where}.recipients[{n}]", r, trigger, sample)
        if not timedelta(0) <= action.digest <= timedelta(days=1):
            raise RuleViolation(f"{where}.digest_minutes: between 0 and one day")
        if action.quiet_hours is not None and action.quiet_hours.start == action.quiet_hours.end:
            raise RuleViolation(f"{where}.quiet_hours: the start and the end are the same time")
        if action.builtin is None and "en" not in action.templates:
            raise RuleViolation(f"{where}.templates: an English (en) template is needed, the fallback")
        for locale, texts in action.templates.items():
            try:
                check_texts(texts, sample, locale)
            except TemplateError as exc:
                raise RuleViolation(f"{where}.templates.{locale}.{exc.part}: {exc}") from exc
    elif isinstance(action, ChatAction):
        if action.destination not in chats:
            raise RuleViolation(
                f"{where}.destination: no chat {action.destination!r}; known: {sorted(chats)}"
            )
        try:
            check_texts(EmailTexts(action.title, action.text), sample, "en")
        except TemplateError as exc:
            part = "title" if exc.part == "subject" else exc.part
            raise RuleViolation(f"{where}.{part}: {exc}") from exc
    elif isinstance(action, ContentAction):
        if value_at(sample, "lead_id") is _MISSING:
            raise RuleViolation(f"{where}: {trigger} names no lead, and content goes to a lead's contact")
        choice = action.choice
        if choice.content_id is not None and not CONTENT_ID.match(choice.content_id):
            raise RuleViolation(f"{where}.content_id: not a content id")
        for name, path in (("stage_field", choice.stage_field), ("tags_field", choice.tags_field)):
            if path is not None and value_at(sample, path) is _MISSING:
                raise RuleViolation(f"{where}.{name}: {trigger} has no field {path!r}")
        if action.message is CustomerMessage.SATISFACTION and choice != ContentChoice():
            raise RuleViolation(f"{where}.message: a satisfaction check sends no library content")
    elif isinstance(action, WebhookAction):
        if action.subscriber not in subscribers:
            raise RuleViolation(
                f"{where}.subscriber: no subscriber {action.subscriber!r}; known: {sorted(subscribers)}"
            )
    else:
        if action.assignee.role not in (RecipientRole.OWNER, RecipientRole.OWNER_MANAGER):
            raise RuleViolation(f"{where}.assignee.role: a task goes to an owner or an owner's manager")
        _check_recipients(f"{where}.assignee", action.assignee, trigger, sample)
        if value_at(sample, "lead_id") is _MISSING:
            raise RuleViolation(f"{where}: {trigger} names no lead, and a task is a follow-up on a lead")
        if not action.title.strip() or len(action.title) > 200:
            raise RuleViolation(f"{where}.title: 1..200 characters")
        if not timedelta(0) <= action.due_in <= timedelta(days=365):
            raise RuleViolation(f"{where}.due_in: between 0 and 365 days")


def _builtin(
    rule_id: str, trigger: str, *recipients: Recipients, conditions: tuple[Condition, ...] = ()
) -> AutomationRule:
    return AutomationRule(
        id=rule_id,
        trigger=trigger,
        conditions=conditions,
        # English is the built-in e-mail; a Persian reader gets its Persian version.
        actions=(
            EmailAction(recipients=recipients, builtin=rule_id, templates={"fa": PERSIAN_DEFAULTS[rule_id]}),
        ),
    )


def default_rule_set() -> tuple[AutomationRule, ...]:
    """Today's rules (``rules.DEFAULT_RULES``) as data, in their order: version 0."""
    owner = Recipients(RecipientRole.OWNER)
    return (
        _builtin("lead-qualified", "LeadQualified", owner),
        # Moving forward is the normal course of a deal; only a setback needs the owner's attention.
        _builtin(
            "deal-moved-back",
            "StageChanged",
            owner,
            conditions=(Condition("direction", Operator.EQUALS, "back"),),
        ),
        # Hand-over first: it carries everything the won notice does, plus what onboarding must do.
        _builtin("handover", "DealWon", Recipients(RecipientRole.ONBOARDING)),
        _builtin("deal-won", "DealWon", Recipients(RecipientRole.SALES_TEAM), owner),
        # After the sale: a few days on, the customer is asked how onboarding goes (with consent).
        AutomationRule(
            id="satisfaction-check",
            trigger="DealWon",
            actions=(ContentAction(message=CustomerMessage.SATISFACTION, delay=SATISFACTION_DELAY),),
            description="Three days after a win, ask the customer's contact how onboarding goes",
        ),
        _builtin("deal-lost", "DealLost", owner),
        _builtin("deal-stalled", "DealStalled", owner, Recipients(RecipientRole.OWNER_MANAGER)),
        # The owner's manager approves (the roster names them, as it did for deals' event).
        _builtin(
            "quote-approval-requested", "QuoteApprovalRequested", Recipients(RecipientRole.OWNER_MANAGER)
        ),
        _builtin("quote-expired", "QuoteExpired", owner),
        _builtin("rfp-response-due", "RfpResponseDue", owner),
        _builtin("follow-up-due", "FollowUpDue", Recipients(RecipientRole.OWNER, field="assignee")),
        _builtin("response-overdue", "LeadResponseOverdue", owner, Recipients(RecipientRole.OWNER_MANAGER)),
        _builtin("lead-queued", "LeadQueued", Recipients(RecipientRole.TEAM)),
        _builtin("lead-reassigned", "LeadReassigned", Recipients(RecipientRole.OWNER, field="to_owner")),
        # A nurture track's content step (qualification's timer, issue D): the library's piece with the
        # step's tags to the lead's contact (with consent); its task steps are the leads service's.
        AutomationRule(
            id="nurture-content",
            trigger="NurtureStepDue",
            conditions=(Condition("kind", Operator.EQUALS, "content"),),
            actions=(ContentAction(choice=ContentChoice(tags_field="content_tags")),),
            description="A nurture track's content step: the library's piece with the step's tags",
        ),
    )


def with_enabled(rule: AutomationRule, enabled: bool) -> AutomationRule:
    return dataclasses.replace(rule, enabled=enabled)
