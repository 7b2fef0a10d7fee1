"""Digest windows: several alerts of one rule's e-mail action to one person within N minutes become one
e-mail. The first alert opens the window and arms a timer for its end; each later one is added to that
timer's event (``DigestDue``), so what a window gathered is as durable as the timer itself; at its end
the one e-mail lists every alert, oldest first."""

from __future__ import annotations

from datetime import datetime, timedelta

from kariz_notifications.domain.model import Email
from kariz_notifications.domain.templates import persian_digits
from kariz_shared.contracts.events import DigestDue, DigestItem

#: Alerts one digest lists in full; the others are counted.
MAX_ITEMS = 100


def digest_key(rule_id: str, action: int, recipient: str) -> str:
    """The timer of a window: one per rule action and recipient at a time."""
    return f"digest:{rule_id}:{action}:{recipient}"


def gathered(
    window: DigestDue | None,
    *,
    rule_id: str,
    action: int,
    email: Email,
    locale: str,
    item: DigestItem,
    at: datetime,
    length: timedelta,
) -> DigestDue:
    """The window with ``item`` added, or a new one opening ``at`` if none is open. An alert already in
    the window (its event redelivered) is not added twice."""
    if window is None:
        return DigestDue(
            digest_id=f"{digest_key(rule_id, action, email.to)}:{at.isoformat()}",
            recipient=email.to,
            rule_id=rule_id,
            action=action,
            locale=locale,
            window_started_at=at,
            items=[item],
            due_at=at + length,
        )
    if any(i.event_id == item.event_id for i in window.items):
        return window
    if len(window.items) >= MAX_ITEMS:
        return window.model_copy(update={"more": window.more + 1})
    return window.model_copy(update={"items": [*window.items, item]})


def digest_email(window: DigestDue) -> Email:
    """The one e-mail of a window: a count in the subject, each alert's subject and text in turn."""
    count = len(window.items) + window.more
    if window.locale == "fa":
        subject = f"{persian_digits(str(count))} هشدار از قاعدهٔ {window.rule_id}"
        more = f"و {persian_digits(str(window.more))} هشدار دیگر." if window.more else ""
    else:
        subject = f"{count} alerts from rule {window.rule_id}"
        more = f"And {window.more} more." if window.more else ""
    parts = [f"{item.subject}\n\n{item.text.rstrip()}" for item in window.items]
    body = "\n\n---\n\n".join(parts) + (f"\n\n{more}" if more else "") + "\n"
    return Email(to=window.recipient, subject=subject, body=body)
