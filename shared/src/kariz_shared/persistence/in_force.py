"""A process's copy of a small document every event or request reads (a rule set, the registered
subscriptions), so the hot path costs no read of it.

It is read again at most once per ``refresh`` of the service's clock; a change committed in this process
is seen at once (:meth:`InForce.took_effect`, or :meth:`InForce.invalidate` when only a fresh read can
say what is in force), another replica's within ``refresh``. A read that started before a change of this
process and ended after it is dropped, so it never undoes what the process knows is newer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

T = TypeVar("T")


class InForce(Generic[T]):
    def __init__(self, refresh: timedelta, *, number: Callable[[T], int] | None = None) -> None:
        self.refresh = refresh
        #: A versioned document's number: a read never replaces the copy with an older version.
        self.number = number
        self.value: T | None = None
        self.read_at: datetime | None = None
        #: Bumped by every change of this process; a read that saw another generation is dropped.
        self.generation = 0

    def fresh(self, now: datetime) -> bool:
        return self.read_at is not None and self.read_at <= now < self.read_at + self.refresh

    async def get(self, now: datetime, load: Callable[[], Awaitable[T]]) -> T:
        if self.value is not None and self.fresh(now):
            return self.value
        generation = self.generation
        value = await load()
        if self.value is not None:
            if generation != self.generation:
                return self.value  # changed here while it was read: the change is newer than the read
            if self.number is not None and self.number(value) < self.number(self.value):
                self.read_at = now
                return self.value  # an older version than the one this process put in force
        self.value, self.read_at = value, now
        return value

    def took_effect(self, value: T, now: datetime) -> None:
        """A change committed in this process: ``value`` is in force from now on."""
        self.generation += 1
        self.value, self.read_at = value, now

    def invalidate(self) -> None:
        """A change committed in this process that only a fresh read can state: the next get reads."""
        self.generation += 1
        self.value, self.read_at = None, None
