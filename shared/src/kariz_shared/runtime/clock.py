"""Where every piece of Kariz code asks for the time.

A service is given one :class:`Clock` at start-up (``SystemClock``) and passes it down; tests give a
:class:`FakeClock` and move it, so no test waits through a business delay (a response SLA, a stalled
deal). Times are UTC and cut to the millisecond, which is what MongoDB stores: a time read back equals
the time written.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Protocol


def to_millisecond(at: datetime) -> datetime:
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, UTC, to the millisecond."""
        ...

    async def sleep_until(self, at: datetime, wake: asyncio.Event | None = None) -> None:
        """Return at ``at``, or earlier when ``wake`` is set (it is left set for the caller to clear)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return to_millisecond(datetime.now(UTC))

    async def sleep_until(self, at: datetime, wake: asyncio.Event | None = None) -> None:
        delay = max(0.0, (at - self.now()).total_seconds())
        if wake is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=delay)


class FakeClock:
    """A clock that moves only when a test moves it; whoever sleeps on it wakes when it passes their time."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = to_millisecond(start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
        self._moved = asyncio.Event()

    def now(self) -> datetime:
        return self._now

    def advance(self, by: timedelta) -> datetime:
        return self.set(self._now + by)

    def set(self, at: datetime) -> datetime:
        if at < self._now:
            raise ValueError("a clock does not go back")
        self._now = to_millisecond(at)
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()
        return self._now

    async def sleep_until(self, at: datetime, wake: asyncio.Event | None = None) -> None:
        while self._now < at and not (wake is not None and wake.is_set()):
            waits = [asyncio.ensure_future(self._moved.wait())]
            if wake is not None:
                waits.append(asyncio.ensure_future(wake.wait()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
