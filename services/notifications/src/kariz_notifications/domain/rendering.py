"""The words: what each event says in an e-mail, and the JSON a webhook subscriber receives.

Every e-mail has one shape, so each kind is a :class:`Template` (its subject, its first sentence, its
facts, any sections after them) and :func:`render` lays them all out the same way, for one
:class:`Reader`: a fact that is a time is shown in the reader's time zone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kariz_notifications.domain.model import Email, EventContext
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
    QuoteApprovalRequested,
    QuoteExpired,
    RfpResponseDue,
    StageChanged,
)

E = TypeVar("E", bound=Event)

#: "Label: value"; a value of None leaves the line out, a time is shown in the reader's time zone.
Fact = tuple[str, str | datetime | None]
#: Labels and their colon are padded to this width, so the values start in one column.
LABEL_WIDTH = 10


def one_line(text: str) -> str:
    """Header-safe text: a line break in a company name must not end a mail header."""
    return " ".join(text.split())


def money(amount: Decimal | None, currency: str) -> str:
    if amount is None:
        return "no amount yet"
    return f"{amount:,.2f} {currency}"


def duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"


def timestamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def zone(name: str | None) -> tzinfo:
    """The IANA time zone ``name`` (a rep's profile), UTC when none or unknown here: a bad profile must
    not stop their reminder."""
    if not name or name in ("UTC", "Etc/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


@dataclass(frozen=True)
class Reader:
    """Whom an e-mail is rendered for: their address and the time zone its times are shown in."""

    address: str
    zone: tzinfo = UTC

    def time(self, at: datetime) -> str:
        """``2025-03-14 09:30 UTC``, or ``2025-03-14 13:00 Asia/Tehran (UTC+03:30)`` for a reader there."""
        local = at.astimezone(self.zone)
        shown = f"{local:%Y-%m-%d %H:%M}"
        if self.zone is UTC:
            return f"{shown} UTC"
        offset = local.strftime("%z")
        return f"{shown} {self.zone} (UTC{offset[:3]}:{offset[3:]})"


def occurred_at(event: Event) -> datetime:
    """When the fact happened, as the event itself states it."""
    if isinstance(event, FollowUpDue):
        return event.due_at
    if isinstance(event, LeadResponseOverdue):
        return event.due_at
    if isinstance(event, LeadQueued):
        return event.queued_at
    if isinstance(event, LeadReassigned):
        return event.reassigned_at
    if isinstance(event, LeadQualified):
        return event.qualified_at
    if isinstance(event, StageChanged):
        return event.changed_at
    if isinstance(event, DealWon):
        return event.won_at
    if isinstance(event, DealLost):
        return event.lost_at
    # Any other event a runtime rule names: its first time field (``opened_at``, ``captured_at``...).
    for value in event.model_dump().values():
        if isinstance(value, datetime):
            return value
    raise TypeError(f"{type(event).__name__} states no time")


def _no_sections(event: Event) -> list[list[str]]:
    return []


@dataclass(frozen=True)
class Template(Generic[E]):
    """One kind of e-mail about events of type ``E``."""

    subject: Callable[[E], str]
    headline: Callable[[E], str]
    facts: Callable[[E], list[Fact]]
    #: Blocks of lines after the facts, each after a blank line; an empty block is left out.
    sections: Callable[[E], list[list[str]]] = _no_sections


def render(template: Template[E], event: E, reader: Reader) -> Email:
    """The e-mail ``template`` makes of ``event`` for ``reader``."""
    lines = [template.headline(event), ""]
    lines += [
        f"{label + ':':<{LABEL_WIDTH}} {reader.time(value) if isinstance(value, datetime) else value}"
        for label, value in template.facts(event)
        if value is not None
    ]
    for section in template.sections(event):
        if section:
            lines += ["", *section]
    return Email(to=reader.address, subject=one_line(template.subject(event)), body="\n".join(lines) + "\n")


def _name(event: LeadQualified) -> str:
    return f"{event.contact.first_name} {event.contact.last_name}"


def _why(event: LeadQualified) -> list[str]:
    return ["Why:", *(f"  {line.rule}: {line.matched} ({line.points:+d})" for line in event.breakdown)]


def _bant(event: LeadQualified) -> list[str]:
    a = event.answers
    if a is None:
        return []
    return [
        "BANT:",
        f"  budget: {a.budget}" + (f" ({a.budget_amount})" if a.budget_amount is not None else ""),
        f"  authority: {a.authority}" + (f" ({a.decision_maker})" if a.decision_maker else ""),
        f"  need: {a.need}" + (f" ({a.pain})" if a.pain else ""),
        f"  timeline: {a.timeline}",
    ]


LEAD_QUALIFIED: Template[LeadQualified] = Template(
    subject=lambda e: f"Lead qualified: {_name(e)} at {e.company.name}, score {e.score}",
    headline=lambda e: (
        f"{_name(e)} at {e.company.name} reached the qualification threshold and is yours to work."
    ),
    facts=lambda e: [
        ("Lead", e.lead_id),
        ("Contact", _name(e) + (f", {e.contact.title}" if e.contact.title else "")),
        ("E-mail", e.contact.email),
        ("Phone", e.contact.phone or None),
        ("Company", e.company.name + (f" ({e.company.industry})" if e.company.industry else "")),
        ("Source", e.source.value),
        ("Score", f"{e.score} (threshold {e.threshold})"),
    ],
    sections=lambda e: [_why(e), _bant(e)],
)

DEAL_MOVED_BACK: Template[StageChanged] = Template(
    subject=lambda e: f"Deal moved back: {e.deal_id} from {e.from_stage} to {e.to_stage}",
    headline=lambda e: f"Deal {e.deal_id} moved back from {e.from_stage} to {e.to_stage}.",
    facts=lambda e: [
        ("Pipeline", e.pipeline),
        ("Amount", money(e.amount, e.currency)),
        (f"Time in {e.from_stage}", duration(e.seconds_in_from_stage)),
        ("Lead", e.lead_id),
    ],
    sections=lambda e: [[f"Note: {e.note}"] if e.note else []],
)

DEAL_WON: Template[DealWon] = Template(
    subject=lambda e: f"Deal won: {e.account_name}, {money(e.amount, e.currency)}",
    headline=lambda e: f"{e.account_name} signed: deal {e.deal_id} is closed won.",
    facts=lambda e: [
        ("Account", f"{e.account_name} ({e.account_id})"),
        ("Amount", money(e.amount, e.currency)),
        ("Owner", e.owner),
        ("Cycle", duration(e.cycle_seconds)),
        ("Won at", e.won_at),
    ],
)

HANDOVER: Template[DealWon] = Template(
    subject=lambda e: f"Hand-over: {e.account_name}, {money(e.amount, e.currency)}, owner {e.owner}",
    headline=lambda e: f"{e.account_name} is a new customer. Please start onboarding and set up support.",
    facts=lambda e: [
        ("Account", f"{e.account_name} ({e.account_id})"),
        ("Amount", money(e.amount, e.currency)),
        ("Owner", f"{e.owner} (the sales rep who knows the account)"),
        ("Deal", e.deal_id),
        ("Won at", e.won_at),
    ],
)

DEAL_LOST: Template[DealLost] = Template(
    subject=lambda e: f"Deal lost: {e.account_name} ({e.reason})",
    headline=lambda e: f"Deal {e.deal_id} with {e.account_name} is closed lost at {e.lost_at_stage}.",
    facts=lambda e: [
        ("Reason", e.reason),
        ("Account", f"{e.account_name} ({e.account_id})"),
        ("Amount", money(e.amount, e.currency)),
        ("Cycle", duration(e.cycle_seconds)),
    ],
)


DEAL_STALLED: Template[DealStalled] = Template(
    subject=lambda e: f"Deal stalled: {e.deal_id} in {e.stage} for {e.days_in_stage:.0f} days",
    headline=lambda e: (
        f"Deal {e.deal_id} has sat in {e.stage} ({e.pipeline}) for {e.days_in_stage:.0f} days, past its "
        f"{e.rot_days}-day limit: move it on, or log what is happening with the customer."
    ),
    facts=lambda e: [
        ("Deal", e.deal_id),
        ("Owner", e.owner),
        ("Stage", f"{e.stage} ({e.pipeline})"),
        ("Amount", money(e.amount, e.currency)),
        ("In stage", e.entered_stage_at),
    ],
)


def _task(kind: str) -> str:
    return kind.replace("_", " ")


QUOTE_APPROVAL_REQUESTED: Template[QuoteApprovalRequested] = Template(
    subject=lambda e: (
        f"Quote to approve: {e.deal_id} v{e.quote_number}, {e.max_discount_pct}% discount "
        f"(limit {e.discount_limit_pct}%)"
    ),
    headline=lambda e: (
        f"{e.owner}'s quote {e.quote_number} on deal {e.deal_id} gives {e.max_discount_pct}% off, over "
        f"the {e.discount_limit_pct}% limit: it cannot be sent until you approve it."
    ),
    facts=lambda e: [
        ("Deal", e.deal_id),
        ("Quote", f"{e.quote_id} (version {e.quote_number})"),
        ("Owner", e.owner),
        ("Total", money(e.total, e.currency)),
        ("Discount", f"{e.max_discount_pct}% (limit {e.discount_limit_pct}%)"),
        ("Asked at", e.requested_at),
    ],
)

QUOTE_EXPIRED: Template[QuoteExpired] = Template(
    subject=lambda e: f"Quote expired: {e.deal_id} v{e.quote_number}",
    headline=lambda e: (
        f"Quote {e.quote_number} on deal {e.deal_id} reached its validity date without an answer: "
        "ask the customer, or send a new version."
    ),
    facts=lambda e: [
        ("Deal", e.deal_id),
        ("Quote", f"{e.quote_id} (version {e.quote_number})"),
        ("Valid until", e.valid_until),
    ],
)

RFP_RESPONSE_DUE: Template[RfpResponseDue] = Template(
    subject=lambda e: (
        f"RFP response overdue: {e.account_name} ({e.issuer})"
        if e.kind == "overdue"
        else f"RFP response due soon: {e.account_name} ({e.issuer})"
    ),
    headline=lambda e: (
        f"The response to {e.issuer}'s RFP on deal {e.deal_id} was due and is not marked sent."
        if e.kind == "overdue"
        else f"The response to {e.issuer}'s RFP on deal {e.deal_id} is due soon."
    ),
    facts=lambda e: [
        ("Deal", e.deal_id),
        ("Account", f"{e.account_name} ({e.account_id})"),
        ("Issuer", e.issuer),
        ("Due at", e.response_due_at),
        ("Decision", e.decision or "no go/no-go yet"),
    ],
)

FOLLOW_UP_DUE: Template[FollowUpDue] = Template(
    subject=lambda e: f"Follow-up due: {e.title} (lead {e.lead_id})",
    headline=lambda e: f"Your follow-up on lead {e.lead_id} is due: {e.title}.",
    facts=lambda e: [
        ("Task", f"{_task(e.kind.value)}: {e.title}"),
        ("Lead", e.lead_id),
        ("Deal", e.deal_id),
        ("Due at", e.due_at),
    ],
)

RESPONSE_OVERDUE: Template[LeadResponseOverdue] = Template(
    subject=lambda e: f"Response overdue: lead {e.lead_id} ({e.owner})",
    headline=lambda e: (
        f"Lead {e.lead_id} is still new: {e.owner} has not acted on it within its response time."
    ),
    facts=lambda e: [
        ("Lead", e.lead_id),
        ("Owner", e.owner),
        ("Source", e.source.value),
        ("Captured", e.captured_at),
        ("Due at", e.due_at),
    ],
)

LEAD_QUEUED: Template[LeadQueued] = Template(
    subject=lambda e: f"Lead waiting in the {e.team} queue: {e.lead_id}",
    headline=lambda e: (
        f"Lead {e.lead_id} is waiting in team {e.team}'s queue: nobody was available ({e.reason}). "
        "Please assign it to a rep."
    ),
    facts=lambda e: [
        ("Lead", e.lead_id),
        ("Team", e.team),
        ("Rule", e.rule),
        ("Queued at", e.queued_at),
    ],
)

LEAD_REASSIGNED: Template[LeadReassigned] = Template(
    subject=lambda e: f"You have a new lead: {e.lead_id}",
    headline=lambda e: f"Lead {e.lead_id} is yours now, from {e.from_owner}.",
    facts=lambda e: [
        ("Lead", e.lead_id),
        ("From", e.from_owner),
        ("Reason", e.reason),
        ("By", e.actor),
        ("At", e.reassigned_at),
    ],
)


def webhook_body(event: Event, context: EventContext) -> str:
    """The JSON a subscriber receives: CloudEvents-like attributes around the event as published."""
    return json.dumps(
        {
            "id": context.event_id,
            "type": event.ce_type(),
            "time": timestamp(occurred_at(event)),
            "subject": event.key(),
            "correlation_id": context.correlation_id,
            "data": json.loads(event.model_dump_json()),
        },
        separators=(",", ":"),
    )
