"""The unit of work: what a use case sees of its service's storage, and the timers it arms.

A service's own unit of work subclasses :class:`UnitOfWork` and adds its repositories as attributes
(``uow.leads``, ``uow.deals``). A use case asks a :class:`UnitsOfWork` to run it in one unit
(``await units.run(lambda uow: ...)``): on MongoDB that is one transaction, retried whole on a transient
conflict, with its events written to the outbox and its timers armed in the same commit; in memory
(:mod:`kariz_shared.persistence.in_memory`) it is a snapshot restored on failure, for the use-case tests.

A timer is a document in the service's own database, armed, moved or cancelled in the same transaction
as the state change that caused it; at its due time the timer worker
(:mod:`kariz_shared.messaging.timers`) writes its event to the outbox. A timer whose state no longer
holds is cancelled by the state change: the worker checks nothing but the time.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from pymongo.errors import DuplicateKeyError

from kariz_shared.contracts.aggregate import Aggregate
from kariz_shared.contracts.errors import DuplicateRecord
from kariz_shared.contracts.events import EVENTS_BY_TOPIC, Event
from kariz_shared.persistence.store import TIMERS, Store, Transaction
from kariz_shared.runtime.clock import Clock, to_millisecond
from kariz_shared.runtime.logging import correlation_id as current_correlation_id

T = TypeVar("T")
E = TypeVar("E", bound=Event)


@dataclass(frozen=True)
class Timer:
    """An armed timer: at ``due_at`` its ``event`` is emitted; then, with ``every``, it is armed again."""

    key: str
    due_at: datetime
    event: Event
    version: str
    correlation_id: str
    every: timedelta | None = None

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.key,
            "due_at": self.due_at,
            "topic": self.event.topic(),
            "event": self.event.model_dump(mode="json"),
            "version": self.version,
            "correlation_id": self.correlation_id,
            "every_s": self.every.total_seconds() if self.every else None,
            "claimed_by": None,
            "claim_until": None,
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Timer:
        return cls(
            key=doc["_id"],
            due_at=doc["due_at"],
            event=EVENTS_BY_TOPIC[doc["topic"]].model_validate(doc["event"]),
            version=doc["version"],
            correlation_id=doc["correlation_id"],
            every=timedelta(seconds=doc["every_s"]) if doc.get("every_s") else None,
        )

    @classmethod
    def armed(
        cls, key: str, due_at: datetime, event: Event, correlation_id: str | None, every: timedelta | None
    ) -> Timer:
        if every is not None and every <= timedelta(0):
            raise ValueError("a repeating timer repeats after a positive time")
        return cls(
            key=key,
            due_at=to_millisecond(due_at),
            event=event,
            # A new version on every arming: a worker that claimed the old one fires nothing.
            version=uuid.uuid4().hex,
            correlation_id=correlation_id or current_correlation_id.get() or str(uuid.uuid4()),
            every=every,
        )


class Timers(ABC):
    """A unit of work's timers. ``arm`` is the same everywhere; a backend says how a timer is kept."""

    def arm(
        self,
        key: str,
        due_at: datetime,
        event: Event,
        *,
        every: timedelta | None = None,
        first: bool = False,
        correlation_id: str | None = None,
    ) -> None:
        """Arm ``key`` to emit ``event`` at ``due_at``; arming a key that is armed replaces it. ``first``:
        nothing can be armed under ``key`` yet (a timer of an aggregate this unit creates), so it is
        written with the unit's inserts and nothing is looked up or deleted for it. ``correlation_id``:
        the story its event continues (default: the unit's)."""
        self.keep(Timer.armed(key, due_at, event, correlation_id or self.correlation_id, every), first=first)

    @property
    def correlation_id(self) -> str | None:
        """The unit's story, for a timer armed without one of its own."""
        return None

    @abstractmethod
    def keep(self, timer: Timer, *, first: bool) -> None:
        """Keep ``timer`` with the unit's other changes, in place of any timer under its key."""

    @abstractmethod
    def cancel(self, key: str) -> None:
        """Disarm ``key``; nothing if it is not armed."""

    @abstractmethod
    async def get(self, key: str) -> Timer | None:
        """The timer armed under ``key``, as this unit of work will leave it."""


class UnitOfWork:
    """The base of each service's unit of work: events, timers, the clock, after-commit actions."""

    clock: Clock
    timers: Timers

    def emit(self, event: Event, *, correlation_id: str | None = None) -> None:
        raise NotImplementedError

    def after_commit(self, action: Callable[[], None]) -> None:
        raise NotImplementedError

    def publish(self, *aggregates: Aggregate) -> None:
        """Emit what each aggregate raised, in order, with this unit's correlation id."""
        for aggregate in aggregates:
            for event in aggregate.pull_events():
                self.emit(event)


U = TypeVar("U", bound=UnitOfWork)
U_co = TypeVar("U_co", bound=UnitOfWork, covariant=True)


class UnitsOfWork(Protocol[U_co]):
    """Runs a use case in one unit of work of the service's own kind."""

    async def run(
        self,
        work: Callable[[U_co], Awaitable[T]],
        *,
        correlation_id: str | None = None,
        timeout_s: float | None = None,
    ) -> T:
        """Run ``work`` in one unit; ``timeout_s`` bounds it, retries included (default: the HTTP-friendly
        ``mongodb_transaction_timeout_s``; a background worker's larger unit may take longer)."""
        ...

    async def read(self, work: Callable[[U_co], Awaitable[T]]) -> T:
        """Run a query: the repositories' reads, outside any transaction; it may change nothing."""
        ...

    @property
    def clock(self) -> Clock: ...


#: A service's consumed events: which event goes to which ``handle(uow, event)``.
Subscriptions = Mapping[type[Event], Callable[[U, Any], Awaitable[None]]]


# --- MongoDB -------------------------------------------------------------------------------------


class MongoTimers(Timers):
    """Timers in the ``timers`` collection, written with the transaction's other changes at commit."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    @property
    def correlation_id(self) -> str | None:
        return self.tx.correlation_id

    def keep(self, timer: Timer, *, first: bool) -> None:
        if first:
            # One insert_many with the batch's other new documents; an armed key would fail the unit.
            self.tx.insert_later(TIMERS, timer.to_document())
        else:
            self.tx.replace_later(TIMERS, timer.to_document())
        if self.tx.armed_due is None or timer.due_at < self.tx.armed_due:
            self.tx.armed_due = timer.due_at

    def cancel(self, key: str) -> None:
        self.tx.delete_later(TIMERS, key)

    async def get(self, key: str) -> Timer | None:
        pending, doc = self.tx.replaced(TIMERS, key)
        if not pending:
            doc = next((d for d in self.tx.queued(TIMERS) if d["_id"] == key), None)
        if not pending and doc is None:
            doc = await self.tx.db[TIMERS].find_one({"_id": key}, session=self.tx.session)
        return Timer.from_document(doc) if doc else None


class MongoUnitOfWork(UnitOfWork):
    """A unit of work inside one MongoDB transaction; a service's subclass adds its repositories, built
    on ``self.tx`` (whose batch reads and queued writes they use)."""

    def __init__(self, tx: Transaction, clock: Clock) -> None:
        self.tx = tx
        self.clock = clock
        self.timers = MongoTimers(tx)

    def emit(self, event: Event, *, correlation_id: str | None = None) -> None:
        self.tx.emit(event, correlation_id=correlation_id)

    def after_commit(self, action: Callable[[], None]) -> None:
        self.tx.after_commit(action)


M = TypeVar("M", bound=MongoUnitOfWork)


class MongoUnitsOfWork(Generic[M]):
    """Units of work of one kind (``make(tx, clock)``) on a service's store."""

    def __init__(self, store: Store, clock: Clock, make: Callable[[Transaction, Clock], M]) -> None:
        self.store = store
        self._clock = clock
        self.make = make

    @property
    def clock(self) -> Clock:
        return self._clock

    async def run(
        self,
        work: Callable[[M], Awaitable[T]],
        *,
        correlation_id: str | None = None,
        timeout_s: float | None = None,
    ) -> T:
        try:
            return await self.store.transaction(
                lambda tx: work(self.make(tx, self._clock)),
                correlation_id=correlation_id,
                timeout_s=timeout_s,
            )
        except DuplicateKeyError as exc:
            # A unique index said no (a concurrent write got there first): the domain's word for it.
            raise DuplicateRecord(str(exc), index=_index_of(exc)) from exc

    async def read(self, work: Callable[[M], Awaitable[T]]) -> T:
        # No session: a query costs its reads and no commit. What it writes or emits is never flushed.
        return await work(
            self.make(Transaction(None, self.store.db, self.store.source, None, None), self._clock)
        )

    def handler(
        self, handle: Callable[[M, E], Awaitable[None]]
    ) -> Callable[[E, Transaction], Awaitable[None]]:
        """``handle(uow, event)`` as a consumer's handler, in the consumer's batch transaction."""

        async def in_unit_of_work(event: E, tx: Transaction) -> None:
            await handle(self.make(tx, self._clock), event)

        return in_unit_of_work


def _index_of(exc: DuplicateKeyError) -> str:
    message = str(exc)
    marker = "index: "
    if marker in message:
        return message.split(marker, 1)[1].split(" ", 1)[0]
    return ""
