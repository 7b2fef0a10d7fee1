"""Units of work in memory, for the use-case tests: the same handlers, no database.

A service's in-memory unit of work subclasses :class:`InMemoryUnitOfWork` and keeps its repositories'
documents in plain attributes. :class:`InMemoryUnitsOfWork` runs a use case on it as one unit: what the
use case changed is kept when it returns and put back as it was when it raises, its events are
"published" (``units.published``) and its after-commit actions run only then. ``fire_due_timers``
does what the timer worker does, at the fake clock's time.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from kariz_shared.contracts.errors import Conflict
from kariz_shared.contracts.events import Event
from kariz_shared.contracts.paging import Cursor
from kariz_shared.persistence.unit_of_work import Timer, Timers, UnitOfWork
from kariz_shared.runtime.clock import Clock, FakeClock

T = TypeVar("T")
E = TypeVar("E", bound=Event)


class InMemoryTimers(Timers):
    def __init__(self) -> None:
        self.armed: dict[str, Timer] = {}

    def keep(self, timer: Timer, *, first: bool) -> None:
        # ``first`` only spares MongoDB a look-up; in memory arming always replaces.
        self.armed[timer.key] = timer

    def cancel(self, key: str) -> None:
        self.armed.pop(key, None)

    async def get(self, key: str) -> Timer | None:
        return self.armed.get(key)


class InMemoryUnitOfWork(UnitOfWork):
    #: Attributes that are not state: kept as they are when a unit is rolled back.
    not_state = frozenset({"clock", "emitted", "actions"})

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.timers = InMemoryTimers()
        self.emitted: list[Event] = []
        self.actions: list[Callable[[], None]] = []

    def emit(self, event: Event, *, correlation_id: str | None = None) -> None:
        self.emitted.append(event)

    def after_commit(self, action: Callable[[], None]) -> None:
        self.actions.append(action)


U = TypeVar("U", bound=InMemoryUnitOfWork)


class InMemoryUnitsOfWork(Generic[U]):
    def __init__(self, uow: U) -> None:
        self.uow = uow
        #: Every event of every unit that completed, in order.
        self.published: list[Event] = []

    @property
    def clock(self) -> Clock:
        return self.uow.clock

    async def run(
        self,
        work: Callable[[U], Awaitable[T]],
        *,
        correlation_id: str | None = None,
        timeout_s: float | None = None,
    ) -> T:
        state = {k: v for k, v in vars(self.uow).items() if k not in self.uow.not_state}
        saved: dict[str, Any] = copy.deepcopy(state)
        self.uow.emitted, self.uow.actions = [], []
        try:
            value = await work(self.uow)
        except BaseException:
            self.uow.__dict__.update(saved)
            raise
        self.published.extend(self.uow.emitted)
        for action in self.uow.actions:
            action()
        return value

    async def read(self, work: Callable[[U], Awaitable[T]]) -> T:
        """A query: what it emits is dropped, as a read on MongoDB flushes nothing."""
        emitted = self.uow.emitted
        try:
            return await work(self.uow)
        finally:
            self.uow.emitted = emitted

    async def handle(self, handle: Callable[[U, E], Awaitable[None]], event: E) -> None:
        """Apply a consumer's handler to ``event`` in a unit of its own, as the consumer would."""
        await self.run(lambda uow: handle(uow, event))

    def of_type(self, cls: type[E]) -> list[E]:
        return [e for e in self.published if isinstance(e, cls)]

    async def fire_due_timers(self) -> list[Event]:
        """Emit the events of the timers due at the clock's time, as the timer worker would."""

        async def fire(uow: U) -> list[Event]:
            now = uow.clock.now()
            fired: list[Event] = []
            timers = uow.timers
            assert isinstance(timers, InMemoryTimers)
            for key, timer in sorted(timers.armed.items(), key=lambda kv: kv[1].due_at):
                if timer.due_at > now:
                    continue
                uow.emit(timer.event)
                fired.append(timer.event)
                if timer.every is None:
                    del timers.armed[key]
                else:
                    again = timer.due_at + timer.every
                    timers.armed[key] = Timer.armed(key, again, timer.event, None, timer.every)
            return fired

        return await self.run(fire)


class Raising(Protocol):
    """An aggregate as a repository keeps it: the events it raised are not part of it."""

    def pull_events(self) -> list[Event]: ...


class Versioned(Raising, Protocol):
    version: int


A = TypeVar("A", bound=Raising)
VA = TypeVar("VA", bound=Versioned)


def as_stored(aggregate: A) -> A:
    """A copy to keep in an in-memory repository: what a database would hold, without the events the
    aggregate raised (those go out through the unit of work, once)."""
    kept = copy.deepcopy(aggregate)
    kept.pull_events()
    return kept


class InMemoryAggregates(Generic[A]):
    """Aggregates kept by id as a database keeps documents: what goes in and what comes out are copies,
    so a change reaches the repository only through its own writes."""

    def __init__(self) -> None:
        self.by_id: dict[str, A] = {}

    async def get(self, aggregate_id: str) -> A | None:
        kept = self.by_id.get(aggregate_id)
        return None if kept is None else copy.deepcopy(kept)

    def first(self, matches: Callable[[A], bool]) -> A | None:
        """A copy of the first kept aggregate that ``matches``."""
        return next((copy.deepcopy(a) for a in self.by_id.values() if matches(a)), None)

    def select(
        self, matches: Callable[[A], bool], order: Callable[[A], Any], *, limit: int, offset: int
    ) -> tuple[list[A], int]:
        """Copies of one page of the kept aggregates that ``matches``, newest ``order`` first, and how
        many match in all."""
        selected = sorted((a for a in self.by_id.values() if matches(a)), key=order, reverse=True)
        return [copy.deepcopy(a) for a in selected[offset : offset + limit]], len(selected)

    def select_after(
        self,
        matches: Callable[[A], bool],
        position: Callable[[A], tuple[datetime, str]],
        *,
        after: Cursor | None,
        limit: int,
    ) -> tuple[list[A], bool]:
        """Keyset paging as :func:`kariz_shared.persistence.store.find_after` does it: copies of up to
        ``limit`` aggregates that ``matches`` after the cursor, ``position`` (time, id) descending, and
        whether more follow."""
        selected = sorted(
            (
                a
                for a in self.by_id.values()
                if matches(a) and (after is None or after.next_page_has(*position(a)))
            ),
            key=position,
            reverse=True,
        )
        return [copy.deepcopy(a) for a in selected[:limit]], len(selected) > limit

    def keep(self, aggregate_id: str, aggregate: A) -> None:
        self.by_id[aggregate_id] = as_stored(aggregate)


class InMemoryVersionedAggregates(InMemoryAggregates[VA]):
    """Aggregates saved over the version they were loaded at, as a versioned save on MongoDB does."""

    def keep_version(self, aggregate_id: str, aggregate: VA, *, stale: str) -> None:
        """Keep ``aggregate`` one version on; a save over a version that moved on meanwhile is refused
        with ``stale``."""
        kept = self.by_id.get(aggregate_id)
        if kept is None or kept.version != aggregate.version:
            raise Conflict(stale)
        aggregate.version += 1
        self.keep(aggregate_id, aggregate)
