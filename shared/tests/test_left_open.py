"""A unit that runs out of time or is cancelled leaves nothing open on the real database.

Without ending it, the server keeps such a transaction and its uncommitted writes for its lifetime
limit (60 s): a retry writing the same unique key meets a write conflict at every attempt for that
minute (the stall of issue H)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pymongo import ASCENDING
from pymongo.errors import PyMongoError

from kariz_shared.persistence.store import Store, Transaction
from kariz_shared.runtime.metrics import units_retried
from kariz_shared.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(settings_for: Callable[..., Any]) -> AsyncIterator[Store]:
    store = Store(settings_for(ServiceSettings, service_name="probe"))
    await store.db.addresses.create_index([("email", ASCENDING)], unique=True)
    try:
        yield store
    finally:
        await store.client.drop_database(store.db.name)
        await store.close()


async def claim(tx: Transaction, email: str) -> None:
    await tx.db.addresses.insert_one({"email": email}, session=tx.session)


async def a_retry_succeeds_at_once(store: Store, email: str) -> None:
    """Another unit writes the same key: from another client (another replica, or a unit of this one
    that the driver's pool gives another session), so it does not reuse the session of the one that
    failed (a new transaction on that session would end the old one on the server by itself)."""

    async def again(tx: Transaction) -> None:
        await claim(tx, email)

    other = Store(store.settings)
    try:
        before = units_retried.labels("probe")._value.get()
        await other.transaction(again, timeout_s=3)
        # At the first attempt: a claim left open would conflict at every attempt until the time ran out.
        assert units_retried.labels("probe")._value.get() == before
    finally:
        await other.close()
    assert await store.db.addresses.count_documents({"email": email}) == 1


async def test_a_unit_out_of_time_is_ended_on_the_server(store: Store) -> None:
    async def slow(tx: Transaction) -> None:
        await claim(tx, "late@kariz.test")
        await asyncio.sleep(0.5)  # past the unit's time limit, with the claim written and uncommitted
        await claim(tx, "other@kariz.test")

    with pytest.raises(PyMongoError) as raised:
        await store.transaction(slow, timeout_s=0.2)
    assert raised.value.timeout
    await a_retry_succeeds_at_once(store, "late@kariz.test")


async def test_a_cancelled_unit_is_ended_on_the_server(store: Store) -> None:
    # PyMongo 4.20 aborts a cancelled transaction itself (measured: this passes without Store's own
    # ending too); kept so that a driver that stops doing so is caught.
    written = asyncio.Event()

    async def waits(tx: Transaction) -> None:
        await claim(tx, "gone@kariz.test")
        written.set()
        await asyncio.Event().wait()  # until cancelled, as a request whose client hung up

    task = asyncio.create_task(store.transaction(waits, timeout_s=30))
    await written.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await a_retry_succeeds_at_once(store, "gone@kariz.test")
