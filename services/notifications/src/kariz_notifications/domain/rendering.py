"""The words: what each event says in an e-mail, and the JSON a webhook subscriber receives."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from kariz_notifications.domain.model import Email, EventContext
from kariz_shared.contracts.events import DealLost, DealWon, Event, LeadQualified, StageChanged


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


def occurred_at(event: Event) -> datetime:
    """When the fact happened, as the event itself states it."""
    if isinstance(event, LeadQualified):
        return event.qualified_at
    if isinstance(event, StageChanged):
        return event.changed_at
    if isinstance(event, DealWon):
        return event.won_at
    if isinstance(event, DealLost):
        return event.lost_at
    raise TypeError(f"{type(event).__name__} does not notify anyone")


def _email(to: str, subject: str, lines: list[str]) -> Email:
    return Email(to=to, subject=one_line(subject), body="\n".join(lines) + "\n")


def lead_qualified(event: LeadQualified, to: str) -> Email:
    contact, company = event.contact, event.company
    name = f"{contact.first_name} {contact.last_name}"
    lines = [
        f"{name} at {company.name} reached the qualification threshold and is yours to work.",
        "",
        f"Lead:      {event.lead_id}",
        f"Contact:   {name}" + (f", {contact.title}" if contact.title else ""),
        f"E-mail:    {contact.email}",
    ]
    if contact.phone:
        lines.append(f"Phone:     {contact.phone}")
    lines += [
        f"Company:   {company.name}" + (f" ({company.industry})" if company.industry else ""),
        f"Source:    {event.source.value}",
        f"Score:     {event.score} (threshold {event.threshold})",
        "",
        "Why:",
        *(f"  {line.rule}: {line.matched} ({line.points:+d})" for line in event.breakdown),
    ]
    if event.answers is not None:
        a = event.answers
        lines += [
            "",
            "BANT:",
            f"  budget: {a.budget}" + (f" ({a.budget_amount})" if a.budget_amount is not None else ""),
            f"  authority: {a.authority}" + (f" ({a.decision_maker})" if a.decision_maker else ""),
            f"  need: {a.need}" + (f" ({a.pain})" if a.pain else ""),
            f"  timeline: {a.timeline}",
        ]
    return _email(to, f"Lead qualified: {name} at {company.name}, score {event.score}", lines)


def deal_moved_back(event: StageChanged, to: str) -> Email:
    lines = [
        f"Deal {event.deal_id} moved back from {event.from_stage} to {event.to_stage}.",
        "",
        f"Pipeline:  {event.pipeline}",
        f"Amount:    {money(event.amount, event.currency)}",
        f"Time in {event.from_stage}: {duration(event.seconds_in_from_stage)}",
        f"Lead:      {event.lead_id}",
    ]
    if event.note:
        lines += ["", f"Note: {event.note}"]
    return _email(to, f"Deal moved back: {event.deal_id} from {event.from_stage} to {event.to_stage}", lines)


def deal_won(event: DealWon, to: str) -> Email:
    lines = [
        f"{event.account_name} signed: deal {event.deal_id} is closed won.",
        "",
        f"Account:   {event.account_name} ({event.account_id})",
        f"Amount:    {money(event.amount, event.currency)}",
        f"Owner:     {event.owner}",
        f"Cycle:     {duration(event.cycle_seconds)}",
        f"Won at:    {timestamp(event.won_at)}",
    ]
    return _email(to, f"Deal won: {event.account_name}, {money(event.amount, event.currency)}", lines)


def handover(event: DealWon, to: str) -> Email:
    lines = [
        f"{event.account_name} is a new customer. Please start onboarding and set up support.",
        "",
        f"Account:   {event.account_name} ({event.account_id})",
        f"Amount:    {money(event.amount, event.currency)}",
        f"Owner:     {event.owner} (the sales rep who knows the account)",
        f"Deal:      {event.deal_id}",
        f"Won at:    {timestamp(event.won_at)}",
    ]
    return _email(
        to,
        f"Hand-over: {event.account_name}, {money(event.amount, event.currency)}, owner {event.owner}",
        lines,
    )


def deal_lost(event: DealLost, to: str) -> Email:
    lines = [
        f"Deal {event.deal_id} with {event.account_name} is closed lost at {event.lost_at_stage}.",
        "",
        f"Reason:    {event.reason}",
        f"Account:   {event.account_name} ({event.account_id})",
        f"Amount:    {money(event.amount, event.currency)}",
        f"Cycle:     {duration(event.cycle_seconds)}",
    ]
    return _email(to, f"Deal lost: {event.account_name} ({event.reason})", lines)


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
