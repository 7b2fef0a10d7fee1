"""What the use cases see of notifications' storage: the unit of work a consumed event is applied in,
and the deliveries as their senders claim and record them.

The implementations are in ``adapters.mongo`` (MongoDB) and ``adapters.in_memory`` (the use-case tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from kariz_notifications.domain.automation import RuleSetVersion
from kariz_notifications.domain.content import Contact, ContentItem
from kariz_notifications.domain.model import Attempt, Audience, Delivery, DeliveryRecord, Handover, Reps
from kariz_notifications.domain.schedule import NextStep
from kariz_notifications.domain.subscriptions import DeliveryHealth, ManagedSubscription, Replay
from kariz_notifications.domain.unsubscribe import UnsubscribeLinks
from kariz_shared.persistence.in_force import InForce
from kariz_shared.persistence.unit_of_work import UnitOfWork


class Deliveries(Protocol):
    """The deliveries a unit of work records."""

    def add(self, delivery: Delivery, at: datetime) -> None:
        """Record ``delivery`` as pending, due at once, when the unit commits; one whose key is already
        recorded (in this unit or before) stays as it is, so a replayed event adds nothing."""
        ...


class Handovers(Protocol):
    async def open(self, handover: Handover, correlation_id: str, at: datetime) -> None:
        """Open the hand-over of a won deal. One per deal: a second win of it (a replay) changes nothing."""
        ...


class RuleSetVersions(Protocol):
    """The notification rules' versions (collection ``rule_set_versions``, ``_id`` = number)."""

    async def current(self) -> RuleSetVersion:
        """The newest version (version 0, the default rules, when none is stored)."""
        ...

    async def in_force(self) -> RuleSetVersion:
        """The version each consumed event is planned by: on MongoDB the process's copy
        (:class:`~kariz_shared.persistence.in_force.InForce`), at most its refresh interval old."""
        ...

    async def get(self, number: int) -> RuleSetVersion | None: ...

    async def add(self, version: RuleSetVersion) -> None:
        """Store a new version; ``DuplicateRecord`` when its number is taken (a concurrent change
        committed it first)."""
        ...

    async def page(self, *, limit: int, offset: int) -> tuple[list[RuleSetVersion], int]:
        """One page of the versions, newest first, and how many there are."""
        ...


class ManagedSubscriptions(Protocol):
    """The webhook subscriptions integrators manage (collection ``subscriptions``, ``_id`` = id)."""

    async def all(self) -> list[ManagedSubscription]: ...

    async def in_force(self) -> list[ManagedSubscription]:
        """Those each consumed event is delivered to: on MongoDB the process's copy, at most its refresh
        interval old (one registered or removed in this process counts at once)."""
        ...

    async def get(self, subscription_id: str) -> ManagedSubscription | None: ...

    async def add(self, subscription: ManagedSubscription) -> None: ...

    async def save(self, subscription: ManagedSubscription) -> None:
        """Store ``subscription`` over the one of its id (changed endpoint, events, state...)."""
        ...

    async def remove(self, subscription_id: str) -> bool:
        """True if there was one to remove."""
        ...


class SubscriptionHealth(Protocol):
    """How each managed subscription's deliveries fare (collection ``subscription_health``, ``_id`` =
    the subscription's id): kept apart from the subscriptions, so counting a delivery never invalidates
    the process's copy of them."""

    async def get(self, subscription_id: str) -> DeliveryHealth:
        """Its health (all zero when nothing was delivered to it yet)."""
        ...

    async def save(self, health: DeliveryHealth) -> None: ...


class Replays(Protocol):
    """The subscriptions' replays (collection ``subscription_replays``, ``_id`` = id)."""

    async def get(self, replay_id: str) -> Replay | None: ...

    async def latest(self, subscription_id: str) -> Replay | None:
        """The subscription's newest replay."""
        ...

    async def save(self, replay: Replay) -> None: ...

    async def claimable(self, now: datetime) -> Replay | None:
        """The oldest replay waiting, or one whose runner's claim ran out before ``now``."""
        ...


@dataclass(frozen=True)
class Copies:
    """The process's copies of what every consumed event reads: the rules in force and the registered
    subscriptions (:class:`~kariz_shared.persistence.in_force.InForce`)."""

    rules: InForce[RuleSetVersion]
    subscriptions: InForce[list[ManagedSubscription]]

    @classmethod
    def refreshed_every(cls, refresh: timedelta) -> Copies:
        return cls(InForce(refresh, number=lambda version: version.number), InForce(refresh))


class Contacts(Protocol):
    """Each lead's contact and consent (collection ``contacts``, ``_id`` = lead id)."""

    async def get(self, lead_id: str) -> Contact | None:
        """The contact of ``lead_id`` as stored (a merged lead's too: see :meth:`current`)."""
        ...

    async def current(self, lead_id: str) -> Contact | None:
        """The contact that stands for ``lead_id`` now: a merged lead's survivor's, followed through
        the merges."""
        ...

    async def save(self, contact: Contact) -> None: ...


class ContentLibrary(Protocol):
    """The content library (collection ``content``, ``_id`` = id)."""

    async def get(self, content_id: str) -> ContentItem | None: ...

    async def add(self, item: ContentItem) -> None:
        """Store a new item; ``DuplicateRecord`` when its id is taken."""
        ...

    async def save(self, item: ContentItem) -> None:
        """Store ``item`` one version on over the version it was read at (409 when another save came
        first)."""
        ...

    async def active(self) -> list[ContentItem]:
        """Every item not retired, oldest first: what content actions choose from."""
        ...

    async def page(
        self, *, tag: str | None, stage: str | None, retired: bool, limit: int, offset: int
    ) -> tuple[list[ContentItem], int]:
        """One page of the items (with ``tag``, suiting ``stage``; retired ones only when asked),
        newest first, and how many match."""
        ...


class NotificationsUnitOfWork(UnitOfWork):
    deliveries: Deliveries
    handovers: Handovers
    #: The runtime rules (``/rules``): the version in force decides what each event sends.
    rules: RuleSetVersions
    #: The subscriptions of ``/subscriptions``, each event's subscribers besides the settings' ones.
    subscriptions: ManagedSubscriptions
    #: How each one's deliveries fare: counts, last success and failure, suspensions.
    subscription_health: SubscriptionHealth
    #: Their replays of what the topics retain.
    replays: Replays
    #: Who hears about what besides the owner (team, onboarding, webhook subscribers): the rules in force.
    audience: Audience
    #: The reps as the roster knows them now: managers, teams' managers, recipients' time zones.
    reps: Reps
    #: Each lead's contact and consent; the content library.
    contacts: Contacts
    content: ContentLibrary
    #: Signs the unsubscribe links of content e-mails (None: no secret set, no content goes).
    links: UnsubscribeLinks | None
    #: The id and correlation id of the event this unit applies (None outside a consumer).
    causation_id: str | None
    correlation_id: str | None


class DeliveryQueue(Protocol):
    """The deliveries as their senders see them, outside any unit of work: a claim hands each delivery
    to one sender under a lease token until the lease runs out; a record is kept only while the sender
    still holds the lease, so a sender that lost it cannot overwrite its successor's result."""

    async def claim(
        self, now: datetime, lease_until: datetime, token: str, *, limit: int = 1
    ) -> list[DeliveryRecord]:
        """Up to ``limit`` deliveries for ``token`` alone: those whose sender's lease ran out first (under a
        steady stream of new ones they would starve), then the due ones, earliest first."""
        ...

    async def claim_new(
        self, deliveries: Sequence[Delivery], lease_until: datetime, token: str
    ) -> list[DeliveryRecord]:
        """These just-recorded deliveries, each if no sender has claimed it yet, in their order."""
        ...

    async def next_due(self) -> datetime | None:
        """When the earliest pending delivery falls due."""
        ...

    async def record(self, outcomes: Sequence[tuple[str, Attempt, NextStep]], token: str) -> set[str]:
        """Log each delivery's attempt and move it on. Returns the keys recorded: a delivery ``token`` no
        longer holds is left to its new sender."""
        ...
