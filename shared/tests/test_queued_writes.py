"""Transaction.insert_later and Transaction.once against the real database: queued documents are
written at commit and never for work that aborted; ``unless_present`` keeps what is stored and the
first of repeats; a duplicate key still fails the whole transaction; a shared read is read once; a
batch read answers the events of a batch from one find."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import DuplicateKeyError

from kariz_shared.contracts.errors import Conflict
from kariz_shared.persistence.store import Store, Transaction
from kariz_shared.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(settings_for: Callable[..., Any]) -> AsyncIterator[Store]:
    store = Store(settings_for(ServiceSettings, service_name="queued"))
    try:
        yield store
    finally:
        await store.client.drop_database(store.db.name)
        await store.close()


async def stored(store: Store, collection: str) -> list[dict[str, Any]]:
    return await store.db[collection].find().sort("_id").to_list()


async def test_queued_documents_are_written_at_commit_and_never_for_aborted_work(store: Store) -> None:
    async def work(tx: Transaction) -> int:
        tx.insert_later("probe", {"_id": 1, "n": "a"})
        tx.insert_later("probe", {"_id": 2, "n": "b"})
        # Not written yet: reads in the transaction do not see them, the queue does.
        assert await tx.db.probe.count_documents({}, session=tx.session) == 0
        return len(tx.queued("probe"))

    assert await store.transaction(work) == 2
    assert await stored(store, "probe") == [{"_id": 1, "n": "a"}, {"_id": 2, "n": "b"}]

    async def refused(tx: Transaction) -> None:
        tx.insert_later("probe", {"_id": 3})
        raise Conflict("no")

    with pytest.raises(Conflict):
        await store.transaction(refused)
    assert [d["_id"] for d in await stored(store, "probe")] == [1, 2]


async def test_a_duplicate_key_fails_the_whole_transaction(store: Store) -> None:
    await store.db.probe.insert_one({"_id": 1})

    async def work(tx: Transaction) -> None:
        await tx.db.other.insert_one({"_id": "written directly"}, session=tx.session)
        tx.insert_later("probe", {"_id": 2})
        tx.insert_later("probe", {"_id": 1})

    with pytest.raises(DuplicateKeyError):
        await store.transaction(work)
    assert [d["_id"] for d in await stored(store, "probe")] == [1]
    assert await stored(store, "other") == []


async def test_unless_present_keeps_what_is_stored_and_the_first_of_repeats(store: Store) -> None:
    await store.db.probe.insert_one({"_id": 1, "n": "stored"})

    async def work(tx: Transaction) -> None:
        for _id, n in ((1, "again"), (2, "first"), (2, "repeat"), (3, "new")):
            tx.insert_later("probe", {"_id": _id, "n": n}, unless_present=True)

    await store.transaction(work)
    assert await stored(store, "probe") == [
        {"_id": 1, "n": "stored"},
        {"_id": 2, "n": "first"},
        {"_id": 3, "n": "new"},
    ]


async def test_once_reads_a_value_once_per_transaction(store: Store) -> None:
    reads: list[int] = []

    async def load() -> str:
        reads.append(1)
        return "rules"

    async def work(tx: Transaction) -> list[str]:
        return [await tx.once("rules", load) for _ in range(3)]

    assert await store.transaction(work) == ["rules"] * 3
    assert await store.transaction(work) == ["rules"] * 3
    assert len(reads) == 2  # one read per transaction, none shared between them


class Finds(monitoring.CommandListener):
    """Counts the finds a client sends."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.count += event.command_name == "find"

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_batch_read_answers_every_event_of_the_batch_from_one_find(store: Store) -> None:
    await store.db.probe.insert_many([{"_id": f"L{n}", "status": "new"} for n in range(5)])
    finds = Finds()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        store.settings.mongodb_uri, event_listeners=[finds]
    )
    try:
        async with client.start_session() as session:
            async with await session.start_transaction():
                tx = Transaction(session, client[store.db.name], "/test", "c", None)
                # Events of the batch: four leads, one of them never stored, one named twice.
                tx.events = [SimpleNamespace(lead_id=i) for i in ("L0", "L1", "L9", "L1", "L3")]  # type: ignore[misc]

                async def lookup(lead_id: str) -> dict[str, Any] | None:
                    return await tx.find_one_for_batch(
                        "probe", "_id", lead_id, of_event=lambda e: getattr(e, "lead_id", None)
                    )

                assert (await lookup("L1") or {})["_id"] == "L1"
                assert await lookup("L9") is None
                assert (await lookup("L3") or {})["_id"] == "L3"
                assert (await lookup("L0") or {})["_id"] == "L0"
                assert finds.count == 1, "the batch's leads come from one find"
                # A document written after its read is read anew when asked again: the write shows.
                await tx.db.probe.update_one(
                    {"_id": "L1"}, {"$set": {"status": "qualified"}}, session=session
                )
                assert (await lookup("L1") or {})["status"] == "qualified"
                # A value outside the batch is read on its own.
                assert (await lookup("L4") or {})["_id"] == "L4"
                assert finds.count == 3
                await session.abort_transaction()
    finally:
        await client.close()
    with pytest.raises(ValueError, match="top-level"):
        await Transaction(None, store.db, "/t", "c", None).find_one_for_batch(  # type: ignore[arg-type]
            "probe", "contact.email", "x", of_event=lambda e: None
        )


async def test_a_write_gathered_for_the_transaction_runs_in_it_before_commit_and_never_for_aborted_work(
    store: Store,
) -> None:
    gathered: list[int] = []

    async def work(tx: Transaction) -> None:
        async def write() -> None:
            await tx.db.gathered.insert_one({"_id": "sum", "n": sum(gathered)}, session=tx.session)

        tx.before_commit(write)
        gathered.extend([1, 2, 3])  # what the rest of the work adds after registering the write

    await store.transaction(work)
    assert await stored(store, "gathered") == [{"_id": "sum", "n": 6}]

    async def refused(tx: Transaction) -> None:
        async def write() -> None:
            await tx.db.gathered.insert_one({"_id": "never"}, session=tx.session)

        tx.before_commit(write)
        raise Conflict("no")

    with pytest.raises(Conflict):
        await store.transaction(refused)
    assert [d["_id"] for d in await stored(store, "gathered")] == ["sum"]
