"""Webhook subscriptions managed over HTTP (``/subscriptions``), beside the settings' ones: an endpoint,
the event types it wants (``"*"``: every public event, present and future) and a secret generated here
and shown once. An admin manages every one; an integrator's API key with the scope ``events:subscribe``
manages its own (its owner is the key, ``key:<id>``) and sees no other. A managed subscription's
deliveries are named ``sub-<id>``, so they never collide with a subscriber of the settings."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from kariz_notifications.domain.automation import TRIGGERS, Condition, check_conditions
from kariz_notifications.domain.model import ALL_EVENTS, Channel, Delivery, Email, Subscriber
from kariz_notifications.domain.samples import sample_of
from kariz_shared.contracts.errors import NotFound, RuleViolation
from kariz_shared.contracts.events import EVENTS, SubscriptionDebounceDue
from kariz_shared.contracts.identity import Caller, Role

PREFIX = "sub-"
#: The event types a subscription may name.
SUBSCRIBABLE = TRIGGERS | {ALL_EVENTS}
MAX_EVENTS = 50
#: The longest debounce window a subscription may ask for.
MAX_DEBOUNCE_S = 3600
#: The rule the e-mail of a suspension counts under.
SUSPENDED_RULE = "subscription-suspended"


class SubscriptionState(StrEnum):
    #: Events are delivered to it.
    ACTIVE = "active"
    #: Its owner paused it: no new deliveries until resumed (those recorded before still go).
    PAUSED = "paused"
    #: Kariz stopped it after persistent failure; its owner resumes it once the endpoint works.
    SUSPENDED = "suspended"


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
    state: SubscriptionState = SubscriptionState.ACTIVE
    #: When it last changed state, and why (a suspension's last error).
    state_changed_at: datetime | None = None
    state_reason: str | None = None
    #: The secret before the last rotation: deliveries carry its signatures too until ``previous_until``.
    previous_secret: str | None = None
    previous_until: datetime | None = None
    #: Collapse one subject's events within this many seconds into the latest (None: each goes at once).
    debounce_seconds: int | None = None

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.id}"

    def as_subscriber(self) -> Subscriber:
        return Subscriber(name=self.name, url=self.url, events=self.events)

    def accepts(self, event_type: str, fields: Mapping[str, Any]) -> bool:
        """Whether an event of ``event_type`` with ``fields`` (its ``model_dump()``) goes to it."""
        return (
            self.state is SubscriptionState.ACTIVE
            and self.as_subscriber().wants(event_type)
            and all(f.holds(fields) for f in self.filters)
        )

    def moved_to(
        self, state: SubscriptionState, at: datetime, reason: str | None = None
    ) -> ManagedSubscription:
        return dataclasses.replace(self, state=state, state_changed_at=at, state_reason=reason)

    def signing_secrets(self, at: datetime) -> list[str]:
        """The secrets its deliveries are signed with at ``at``: the current one, and the previous one
        while a rotation's grace lasts."""
        previous = (
            self.previous_secret if self.previous_until is not None and at < self.previous_until else None
        )
        return [self.secret] + ([previous] if previous else [])

    def rotated(self, secret: str, at: datetime, grace: timedelta) -> ManagedSubscription:
        """With a new ``secret``; the current one stays valid for ``grace`` (one rotated before it is
        dropped at once)."""
        return dataclasses.replace(
            self, secret=secret, previous_secret=self.secret, previous_until=at + grace
        )

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


def checked_debounce(seconds: int | None) -> int | None:
    if seconds is not None and not 1 <= seconds <= MAX_DEBOUNCE_S:
        raise RuleViolation(f"debounce_seconds: 1..{MAX_DEBOUNCE_S}, or null for none")
    return seconds


def debounce_key(subscription_id: str, subject: str) -> str:
    """The timer of one subject's debounce window for a subscription."""
    return f"debounce:{subscription_id}:{subject}"


def debounced(
    armed: SubscriptionDebounceDue | None,
    subscription: ManagedSubscription,
    *,
    event_id: str,
    event_type: str,
    subject: str,
    body: str,
    at: datetime,
) -> SubscriptionDebounceDue:
    """The window with this event as its latest: the armed one (its end kept, so a steady stream of one
    subject still goes every window), or one opened now that ends ``debounce_seconds`` on."""
    if armed is not None:
        return armed.model_copy(
            update={
                "event_id": event_id,
                "event_type": event_type,
                "body": body,
                "collapsed": armed.collapsed + (armed.event_id != event_id),
            }
        )
    seconds = subscription.debounce_seconds or 0
    return SubscriptionDebounceDue(
        debounce_id=f"{subscription.id}:{subject}:{at.isoformat()}",
        subscription_id=subscription.id,
        subject=subject,
        event_id=event_id,
        event_type=event_type,
        body=body,
        window_started_at=at,
        due_at=at + timedelta(seconds=seconds),
    )


def checked_endpoint(url: str, events: Iterable[str], *, allow_http: bool) -> tuple[str, frozenset[str]]:
    """The endpoint and event types of a new subscription, or a 422 naming the field."""
    return checked_url(url, allow_http=allow_http), checked_events(events)


@dataclass(frozen=True)
class DeliveryHealth:
    """How a subscription's deliveries fare: what its ``GET /subscriptions/{id}`` shows, and what
    suspends it (``failing_in_a_row`` deliveries given up after their last attempt, none sent between)."""

    subscription_id: str
    delivered: int = 0
    #: Deliveries given up after their last attempt.
    failed: int = 0
    #: Attempts that failed (a delivery retried five times and then sent counts five here).
    failed_attempts: int = 0
    failing_in_a_row: int = 0
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    suspensions: int = 0

    def after_attempt(
        self, *, succeeded: bool, gave_up: bool, at: datetime, error: str | None
    ) -> DeliveryHealth:
        if succeeded:
            return dataclasses.replace(
                self, delivered=self.delivered + 1, failing_in_a_row=0, last_success_at=at
            )
        return dataclasses.replace(
            self,
            failed=self.failed + gave_up,
            failed_attempts=self.failed_attempts + 1,
            failing_in_a_row=self.failing_in_a_row + gave_up,
            last_failure_at=at,
            last_error=error,
        )

    def resumed(self) -> DeliveryHealth:
        """Its owner resumed it: it gets as many failures again before another suspension."""
        return dataclasses.replace(self, failing_in_a_row=0)


def suspension_notice(
    subscription: ManagedSubscription, health: DeliveryHealth, correlation_id: str
) -> Delivery | None:
    """The e-mail that tells a suspended subscription's contact (None: it has no address to tell)."""
    if subscription.contact is None:
        return None
    event_id = f"{subscription.name}-suspended-{health.suspensions}"
    body = (
        f"Kariz suspended the webhook subscription {subscription.name} ({subscription.url}): its last "
        f"{health.failing_in_a_row} deliveries failed after every retry.\n\n"
        f"Last error: {health.last_error or 'unknown'}\n\n"
        "No events are delivered to it while it is suspended. Once the endpoint answers again, resume it "
        f"with POST /subscriptions/{subscription.id}/resume.\n"
    )
    return Delivery(
        key=f"{event_id}:{Channel.EMAIL.value}:{subscription.contact}",
        channel=Channel.EMAIL,
        recipient=subscription.contact,
        event_type="SubscriptionSuspended",
        event_id=event_id,
        subject=subscription.name,
        correlation_id=correlation_id,
        message=Email(
            to=subscription.contact,
            subject=f"Kariz suspended your webhook subscription {subscription.name}",
            body=body,
        ),
        rule=SUSPENDED_RULE,
    )


class ReplayState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Replay:
    """A re-delivery of the matching events the topics retain since ``since`` to one subscription, run
    in the background: each as a new delivery carrying the original event's id."""

    id: str
    subscription_id: str
    since: datetime
    requested_by: str
    requested_at: datetime
    state: ReplayState = ReplayState.PENDING
    #: Events read from the topics, and those that matched and were recorded for delivery.
    read: int = 0
    matched: int = 0
    finished_at: datetime | None = None
    error: str | None = None
    #: While running, whose it is until when (a replica that died mid-replay leaves it to another).
    claimed_until: datetime | None = None


def replay_delivery_key(event_id: str, subscription: ManagedSubscription, replay_id: str) -> str:
    """A replayed event's delivery: its own key (the first delivery's is taken), the event's id kept."""
    return f"{event_id}:{Channel.WEBHOOK.value}:{subscription.name}:replay-{replay_id}"
