"""Webhook subscriptions managed over HTTP (``/subscriptions``), beside the settings' ones: an endpoint,
the event types it wants (``"*"``: every public event, present and future) and a secret generated here
and shown once. An admin manages every one; an integrator's API key with the scope ``events:subscribe``
manages its own (its owner is the key, ``key:<id>``) and sees no other. A managed subscription's
deliveries are named ``sub-<id>``, so they never collide with a subscriber of the settings."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kariz_notifications.domain.automation import TRIGGERS, Condition, check_conditions
from kariz_notifications.domain.model import ALL_EVENTS, Subscriber
from kariz_notifications.domain.samples import sample_of
from kariz_shared.contracts.errors import NotFound, RuleViolation
from kariz_shared.contracts.events import EVENTS
from kariz_shared.contracts.identity import Caller, Role

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
    #: Its owner: the admin's address or the integrator's key (``key:<id>``) that registered it.
    created_by: str
    created_at: datetime
    #: Whom news of it (a suspension) is e-mailed to: the admin, or whom the key acts for.
    contact: str | None = None
    #: Value filters, the rules' conditions (``amount >= 50000``): only events where all hold go.
    filters: tuple[Condition, ...] = ()

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.id}"

    def as_subscriber(self) -> Subscriber:
        return Subscriber(name=self.name, url=self.url, events=self.events)

    def accepts(self, event_type: str, fields: Mapping[str, Any]) -> bool:
        """Whether an event of ``event_type`` with ``fields`` (its ``model_dump()``) goes to it."""
        return self.as_subscriber().wants(event_type) and all(f.holds(fields) for f in self.filters)

    def visible_to(self, caller: Caller) -> bool:
        """An admin sees every subscription; anyone else (an integrator's key) its own only."""
        return caller.has(Role.ADMIN) or self.created_by == caller.actor


def seen_by(
    subscription: ManagedSubscription | None, caller: Caller, subscription_id: str
) -> ManagedSubscription:
    """``subscription`` if ``caller`` may see it; one it may not is answered as if it did not exist."""
    if subscription is None or not subscription.visible_to(caller):
        raise NotFound(f"no subscription {subscription_id!r}")
    return subscription


def checked_url(url: str, *, allow_http: bool) -> str:
    """The endpoint of a subscription, or a 422 naming the field."""
    scheme = r"https?" if allow_http else r"https"
    if not re.match(rf"^{scheme}://[^\s/]+\S*$", url) or len(url) > 2000:
        raise RuleViolation(
            "url: an https URL" + (" (http allowed here)" if allow_http else ": signed events travel in it")
        )
    return url


def checked_events(events: Iterable[str]) -> frozenset[str]:
    """The event types of a subscription, or a 422 naming the field."""
    wanted = frozenset(events)
    if not wanted or len(wanted) > MAX_EVENTS:
        raise RuleViolation(f'events: 1..{MAX_EVENTS} event types, or "*" for every public event')
    unknown = sorted(wanted - SUBSCRIBABLE)
    if unknown:
        raise RuleViolation(f'events: unknown {unknown}; choose from {sorted(TRIGGERS)} or "*"')
    return wanted


def checked_filters(filters: Iterable[Condition], events: frozenset[str]) -> tuple[Condition, ...]:
    """Value filters a subscription to ``events`` can test, or a 422 naming the filter's field: each
    filter's field must be one every named event type has ("*": one some public event has, since a
    subscription to every event gets those without it filtered out)."""
    checked = tuple(filters)
    everything = ALL_EVENTS in events
    names = sorted(TRIGGERS if everything else events)
    check_conditions("filters", checked, {n: sample_of(EVENTS[n]) for n in names}, each=not everything)
    return checked


def checked_endpoint(url: str, events: Iterable[str], *, allow_http: bool) -> tuple[str, frozenset[str]]:
    """The endpoint and event types of a new subscription, or a 422 naming the field."""
    return checked_url(url, allow_http=allow_http), checked_events(events)
