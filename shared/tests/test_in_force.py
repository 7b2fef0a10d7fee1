"""The process's copy of a document every event reads: read again only after its refresh, a change of
this process counts at once and no read that raced it undoes it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from kariz_shared.persistence.in_force import InForce

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REFRESH = timedelta(seconds=5)


async def test_it_is_read_once_per_refresh_and_a_local_change_counts_at_once() -> None:
    stored = ["a"]
    reads: list[str] = []

    async def load() -> list[str]:
        reads.append(stored[-1])
        return list(stored)

    copy: InForce[list[str]] = InForce(REFRESH)
    assert await copy.get(T0, load) == ["a"]
    stored.append("b")  # another replica's change
    assert await copy.get(T0 + timedelta(seconds=4), load) == ["a"] and len(reads) == 1
    assert await copy.get(T0 + REFRESH, load) == ["a", "b"] and len(reads) == 2
    copy.took_effect(["a", "b", "c"], T0 + REFRESH)
    assert await copy.get(T0 + REFRESH, load) == ["a", "b", "c"] and len(reads) == 2
    copy.invalidate()
    assert await copy.get(T0 + REFRESH, load) == ["a", "b"] and len(reads) == 3
    # A clock set back (another process's view of time) reads again rather than trusting the copy.
    assert await copy.get(T0, load) == ["a", "b"] and len(reads) == 4


async def test_a_read_that_raced_a_local_change_is_dropped() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_load() -> str:
        started.set()
        await release.wait()
        return "read before the change"

    copy: InForce[str] = InForce(REFRESH)
    copy.took_effect("first", T0 - timedelta(minutes=1))  # stale by now
    reading = asyncio.create_task(copy.get(T0, slow_load))
    await started.wait()
    copy.took_effect("changed here", T0)
    release.set()
    assert await reading == "changed here"
    assert copy.value == "changed here"


async def test_a_versioned_copy_never_goes_back_to_an_older_version() -> None:
    async def old() -> tuple[int, str]:
        return (1, "old")

    copy: InForce[tuple[int, str]] = InForce(REFRESH, number=lambda version: version[0])
    copy.took_effect((2, "new"), T0)
    assert await copy.get(T0 + REFRESH, old) == (2, "new")
    # The older read still counts as a read: the next one waits for the refresh again.
    assert copy.read_at == T0 + REFRESH
