"""Webhook subscriptions integrators manage over HTTP (``/subscriptions``), beside the settings' ones:
an endpoint, the event types it wants (``"*"``: every public event, present and future) and a secret
generated here and shown once. A managed subscription's deliveries are named ``sub-<id>``, so they
never collide with a subscriber of the settings."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from kariz_notifications.domain.automation import TRIGGERS
from kariz_notifications.domain.model import ALL_EVENTS, Subscriber
from kariz_shared.contracts.errors import RuleViolation

PREFIX = "sub-"
#: The event types a subscription may name.
SUBSCRIBABLE = TRIGGERS | {ALL_EVENTS}
MAX_EVENTS = 50


@dataclass(frozen=True)
class ManagedSubscription:
    id: str
    url: str
    events: frozenset[str]
    #: Signs its deliveries; shown to its creator once, then only ever read by the sender.
    secret: str
    created_by: str
    created_at: datetime

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.id}"

    def as_subscriber(self) -> Subscriber:
        return Subscriber(name=self.name, url=self.url, events=self.events)


def checked_endpoint(url: str, events: Iterable[str], *, allow_http: bool) -> tuple[str, frozenset[str]]:
    """The endpoint and event types of a new subscription, or a 422 naming the field."""
    scheme = r"https?" if allow_http else r"https"
    if not re.match(rf"^{scheme}://[^\s/]+\S*$", url) or len(url) > 2000:
        raise RuleViolation(
            "url: an https URL" + (" (http allowed here)" if allow_http else ": signed events travel in it")
        )
    wanted = frozenset(events)
    if not wanted or len(wanted) > MAX_EVENTS:
        raise RuleViolation(f'events: 1..{MAX_EVENTS} event types, or "*" for every public event')
    unknown = sorted(wanted - SUBSCRIBABLE)
    if unknown:
        raise RuleViolation(f'events: unknown {unknown}; choose from {sorted(TRIGGERS)} or "*"')
    return url, wanted
