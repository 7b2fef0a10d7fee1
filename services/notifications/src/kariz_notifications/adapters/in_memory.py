"""Notifications' storage in memory, for the use-case tests: the same contract as ``adapters.mongo``
(one delivery per key, one hand-over per deal, claims under a lease token, records kept only by the
lease holder, the log newest first), no database."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kariz_notifications.domain.automation import RuleSetVersion
from kariz_notifications.domain.content import MAX_MERGE_HOPS, Contact, ContentItem
from kariz_notifications.domain.model import (
    Attempt,
    Audience,
    Delivery,
    DeliveryRecord,
    DeliveryStatus,
    Handover,
    HandoverRecord,
    HandoverStatus,
    Reps,
)
from kariz_notifications.domain.queries import DeliveryCriteria
from kariz_notifications.domain.schedule import NextStep
from kariz_notifications.domain.subscriptions import DeliveryHealth, ManagedSubscription, Replay, ReplayState
from kariz_notifications.domain.unsubscribe import UnsubscribeLinks
from kariz_notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from kariz_shared.contracts.errors import Conflict, DuplicateRecord
from kariz_shared.contracts.identity import LiveRoster
from kariz_shared.persistence.in_memory import InMemoryUnitOfWork
from kariz_shared.runtime.clock import Clock


@dataclass
class StoredDelivery:
    record: DeliveryRecord
    lease_until: datetime | None = None
    lease_token: str | None = None


class InMemoryDeliveries:
    def __init__(self) -> None:
        #: By key, in the order they were recorded.
        self.stored: dict[str, StoredDelivery] = {}

    def add(self, delivery: Delivery, at: datetime) -> None:
        if delivery.key not in self.stored:
            skipped = delivery.skipped is not None
            self.stored[delivery.key] = StoredDelivery(
                DeliveryRecord(
                    delivery=delivery,
                    status=DeliveryStatus.SKIPPED if skipped else DeliveryStatus.PENDING,
                    attempts=(),
                    created_at=at,
                    next_attempt_at=None if skipped else at,
                    sent_at=None,
                )
            )


class InMemoryContacts:
    def __init__(self) -> None:
        self.stored: dict[str, Contact] = {}

    async def get(self, lead_id: str) -> Contact | None:
        return copy.deepcopy(self.stored.get(lead_id))

    async def current(self, lead_id: str) -> Contact | None:
        found = self.stored.get(lead_id)
        for _ in range(MAX_MERGE_HOPS):
            if found is None or found.merged_into is None:
                break
            found = self.stored.get(found.merged_into)
        return copy.deepcopy(found)

    async def save(self, contact: Contact) -> None:
        self.stored[contact.lead_id] = copy.deepcopy(contact)


class InMemoryContentLibrary:
    def __init__(self) -> None:
        self.stored: dict[str, ContentItem] = {}

    async def get(self, content_id: str) -> ContentItem | None:
        return copy.deepcopy(self.stored.get(content_id))

    async def add(self, item: ContentItem) -> None:
        if item.id in self.stored:
            raise DuplicateRecord(f"content {item.id} exists")
        self.stored[item.id] = copy.deepcopy(item)

    async def save(self, item: ContentItem) -> None:
        kept = self.stored.get(item.id)
        if kept is None or kept.version != item.version:
            raise Conflict(f"content {item.id!r} was changed meanwhile; reload it and apply your edit again")
        item.version += 1
        self.stored[item.id] = copy.deepcopy(item)

    async def active(self) -> list[ContentItem]:
        found = sorted((c for c in self.stored.values() if not c.retired), key=lambda c: (c.created_at, c.id))
        return copy.deepcopy(found)

    async def page(
        self, *, tag: str | None, stage: str | None, retired: bool, limit: int, offset: int
    ) -> tuple[list[ContentItem], int]:
        found = sorted(
            (
                c
                for c in self.stored.values()
                if c.retired is retired
                and (tag is None or tag in c.draft.tags)
                and (stage is None or not c.draft.stages or stage in c.draft.stages)
            ),
            key=lambda c: (c.created_at, c.id),
            reverse=True,
        )
        return copy.deepcopy(found[offset : offset + limit]), len(found)


class InMemoryHandovers:
    def __init__(self) -> None:
        self.opened: dict[str, HandoverRecord] = {}

    async def open(self, handover: Handover, correlation_id: str, at: datetime) -> None:
        self.opened.setdefault(handover.deal_id, HandoverRecord(handover, created_at=at))


class InMemoryRuleSetVersions:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.versions: dict[int, RuleSetVersion] = {}

    async def current(self) -> RuleSetVersion:
        if not self.versions:
            return RuleSetVersion.seeded(self.clock.now())
        return self.versions[max(self.versions)]

    async def in_force(self) -> RuleSetVersion:
        return await self.current()

    async def get(self, number: int) -> RuleSetVersion | None:
        if number == 0 and 0 not in self.versions:
            return RuleSetVersion.seeded(self.clock.now())
        return self.versions.get(number)

    async def add(self, version: RuleSetVersion) -> None:
        if version.number in self.versions:
            raise DuplicateRecord(f"version {version.number} exists")
        self.versions[version.number] = version

    async def page(self, *, limit: int, offset: int) -> tuple[list[RuleSetVersion], int]:
        stored = dict(self.versions)
        stored.setdefault(0, await self.get(0))
        newest_first = [stored[n] for n in sorted(stored, reverse=True)]
        return newest_first[offset : offset + limit], len(newest_first)


class InMemoryManagedSubscriptions:
    def __init__(self, clock: Clock) -> None:
        self.stored: dict[str, ManagedSubscription] = {}
        self.clock = clock

    async def all(self) -> list[ManagedSubscription]:
        return sorted(self.stored.values(), key=lambda s: (s.created_at, s.id))

    async def in_force(self) -> list[ManagedSubscription]:
        return await self.all()

    async def get(self, subscription_id: str) -> ManagedSubscription | None:
        return self.stored.get(subscription_id)

    async def add(self, subscription: ManagedSubscription) -> None:
        self.stored[subscription.id] = subscription

    async def save(self, subscription: ManagedSubscription) -> None:
        self.stored[subscription.id] = subscription

    async def remove(self, subscription_id: str) -> bool:
        return self.stored.pop(subscription_id, None) is not None

    async def secret(self, subscription_id: str) -> list[str] | None:
        found = self.stored.get(subscription_id)
        return found.signing_secrets(self.clock.now()) if found is not None else None


class InMemorySubscriptionHealth:
    def __init__(self) -> None:
        self.stored: dict[str, DeliveryHealth] = {}

    async def get(self, subscription_id: str) -> DeliveryHealth:
        return self.stored.get(subscription_id) or DeliveryHealth(subscription_id)

    async def save(self, health: DeliveryHealth) -> None:
        self.stored[health.subscription_id] = health


class InMemoryReplays:
    def __init__(self) -> None:
        self.stored: dict[str, Replay] = {}

    async def get(self, replay_id: str) -> Replay | None:
        return self.stored.get(replay_id)

    async def latest(self, subscription_id: str) -> Replay | None:
        mine = [r for r in self.stored.values() if r.subscription_id == subscription_id]
        return max(mine, key=lambda r: (r.requested_at, r.id)) if mine else None

    async def save(self, replay: Replay) -> None:
        self.stored[replay.id] = replay

    async def claimable(self, now: datetime) -> Replay | None:
        waiting = [
            r
            for r in self.stored.values()
            if r.state is ReplayState.PENDING
            or (r.state is ReplayState.RUNNING and r.claimed_until is not None and r.claimed_until < now)
        ]
        return min(waiting, key=lambda r: (r.requested_at, r.id)) if waiting else None


class InMemoryNotificationsUnitOfWork(InMemoryUnitOfWork, NotificationsUnitOfWork):
    #: The links' signer is configuration, not state: a rolled-back unit keeps it as it is.
    not_state = InMemoryUnitOfWork.not_state | {"links"}

    def __init__(
        self,
        clock: Clock | None = None,
        audience: Audience | None = None,
        reps: Reps | None = None,
        links: UnsubscribeLinks | None = None,
    ) -> None:
        super().__init__(clock)
        self.deliveries = InMemoryDeliveries()
        self.handovers = InMemoryHandovers()
        self.rules = InMemoryRuleSetVersions(self.clock)
        self.subscriptions = InMemoryManagedSubscriptions(self.clock)
        self.subscription_health = InMemorySubscriptionHealth()
        self.replays = InMemoryReplays()
        self.contacts = InMemoryContacts()
        self.content = InMemoryContentLibrary()
        self.links = links
        self.audience = audience or Audience()
        self.reps: Reps = reps if reps is not None else LiveRoster()
        self.causation_id: str | None = None
        self.correlation_id: str | None = None


class InMemoryDeliveryQueue:
    """The senders' side of the deliveries of ``uow`` (found through it on every call: a rolled-back
    unit puts a copy of its state in place)."""

    def __init__(self, uow: InMemoryNotificationsUnitOfWork) -> None:
        self.uow = uow

    def _stored(self) -> list[StoredDelivery]:
        return list(self.uow.deliveries.stored.values())

    async def claim(
        self, now: datetime, lease_until: datetime, token: str, *, limit: int = 1
    ) -> list[DeliveryRecord]:
        orphaned = sorted(
            (
                s
                for s in self._stored()
                if s.record.status is DeliveryStatus.SENDING
                and s.lease_until is not None
                and s.lease_until <= now
            ),
            key=lambda s: s.lease_until or now,
        )
        due = sorted(
            (
                s
                for s in self._stored()
                if s.record.status is DeliveryStatus.PENDING
                and s.record.next_attempt_at is not None
                and s.record.next_attempt_at <= now
            ),
            key=lambda s: s.record.next_attempt_at or now,
        )
        return [self._take(s, token, lease_until) for s in [*orphaned, *due][:limit]]

    async def claim_new(
        self, deliveries: Sequence[Delivery], lease_until: datetime, token: str
    ) -> list[DeliveryRecord]:
        stored = self.uow.deliveries.stored
        fresh = [
            stored[d.key]
            for d in deliveries
            if d.key in stored
            and stored[d.key].record.claims == 0
            and stored[d.key].record.status is DeliveryStatus.PENDING
        ]
        return [self._take(s, token, lease_until) for s in fresh]

    @staticmethod
    def _take(stored: StoredDelivery, token: str, lease_until: datetime) -> DeliveryRecord:
        stored.record = dataclasses.replace(
            stored.record, status=DeliveryStatus.SENDING, claims=stored.record.claims + 1
        )
        stored.lease_until, stored.lease_token = lease_until, token
        return stored.record

    async def next_due(self) -> datetime | None:
        return min(
            (
                s.record.next_attempt_at
                for s in self._stored()
                if s.record.status is DeliveryStatus.PENDING and s.record.next_attempt_at is not None
            ),
            default=None,
        )

    async def record(self, outcomes: Sequence[tuple[str, Attempt, NextStep]], token: str) -> set[str]:
        recorded: set[str] = set()
        for key, attempt, step in outcomes:
            stored = self.uow.deliveries.stored.get(key)
            if stored is None or stored.lease_token != token:
                continue
            stored.record = dataclasses.replace(
                stored.record,
                status=step.status,
                attempts=(*stored.record.attempts, attempt),
                next_attempt_at=step.next_attempt_at,
                sent_at=step.sent_at,
            )
            stored.lease_until = stored.lease_token = None
            recorded.add(key)
        return recorded


class InMemoryNotificationsReads:
    def __init__(self, uow: InMemoryNotificationsUnitOfWork) -> None:
        self.uow = uow

    async def deliveries(
        self, where: DeliveryCriteria, *, limit: int, offset: int
    ) -> tuple[list[DeliveryRecord], int]:
        # Newest first; those of one moment in the reverse order they were recorded in, as in MongoDB.
        records = [s.record for s in reversed(self.uow.deliveries.stored.values()) if where.matches(s.record)]
        records.sort(key=lambda r: r.created_at, reverse=True)
        return records[offset : offset + limit], len(records)

    async def delivery(self, key: str) -> DeliveryRecord | None:
        stored = self.uow.deliveries.stored.get(key)
        return stored.record if stored is not None else None

    async def handovers(
        self, status: HandoverStatus | None, *, limit: int, offset: int
    ) -> tuple[list[HandoverRecord], int]:
        found = sorted(
            (h for h in self.uow.handovers.opened.values() if status is None or h.handover.status is status),
            key=lambda h: (h.created_at, h.handover.deal_id),
            reverse=True,
        )
        return found[offset : offset + limit], len(found)
