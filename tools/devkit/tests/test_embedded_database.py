"""The fix Kariz runs SecantusDB with: looking for idle transactions never waits for one in use."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from secantus.transactions import TransactionRegistry, TxnState

from kariz_devkit import embedded_database


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fixed() -> Iterator[None]:
    original = TransactionRegistry._prune_locked
    embedded_database.patch()
    try:
        yield
    finally:
        TransactionRegistry._prune_locked = original


def started(registry: TransactionRegistry, session: bytes) -> object:
    txn, error = registry.for_statement(session, None, 1, start=True)
    assert error is None and txn is not None
    return txn


def in_use(txn: object) -> tuple[threading.Event, threading.Thread]:
    """Hold ``txn``'s mutex in another thread, as a running statement does, until the event is set."""
    release, holding = threading.Event(), threading.Event()

    def statement() -> None:
        with txn.mutex:  # type: ignore[attr-defined]
            holding.set()
            release.wait()

    thread = threading.Thread(target=statement, daemon=True)
    thread.start()
    assert holding.wait(5)
    return release, thread


def test_a_statement_of_another_transaction_does_not_wait_for_one_that_is_running(fixed: None) -> None:
    clock = FakeTime()
    registry = TransactionRegistry(lifetime_seconds=60, time_func=clock)
    running = started(registry, b"a")
    release, holder = in_use(running)
    clock.now += 61  # past its lifetime too: the prune must still not wait for it
    resolved: list[object] = []
    other = threading.Thread(target=lambda: resolved.append(started(registry, b"b")), daemon=True)
    other.start()
    other.join(10)  # as released, it waits here until the running statement ends (never, in this test)
    try:
        assert resolved, "B's statement waited for A's running statement"
        assert running.state is TxnState.IN_PROGRESS  # type: ignore[attr-defined]
    finally:
        release.set()
        holder.join(5)
    # Once A's statement is over and A has idled past its lifetime, it is reaped as before.
    assert registry.prune_expired() == 1
    assert running.state is TxnState.ABORTED  # type: ignore[attr-defined]


def test_an_idle_transaction_is_reaped_after_its_lifetime_and_not_before(fixed: None) -> None:
    clock = FakeTime()
    registry = TransactionRegistry(lifetime_seconds=60, time_func=clock)
    idle = started(registry, b"a")
    clock.now += 59
    assert registry.prune_expired() == 0
    assert idle.state is TxnState.IN_PROGRESS  # type: ignore[attr-defined]
    clock.now += 2
    assert registry.prune_expired() == 1
    assert idle.state is TxnState.ABORTED  # type: ignore[attr-defined]
    # Committed and aborted ones are left alone.
    assert registry.prune_expired() == 0
