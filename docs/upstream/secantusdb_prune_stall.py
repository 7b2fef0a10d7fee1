"""Reproduce: one long statement in a SecantusDB transaction holds every other transaction's statements.

``TransactionRegistry.for_statement`` and ``commit`` call ``_prune_locked``, which takes each open
transaction's ``mutex`` under the registry's one ``_lock``; a running statement holds its own
transaction's mutex. So while transaction A runs a slow ``insert_many``, transaction B's next statement
waits for A's statement to end, even though B touches another collection.

Run: ``.venv/bin/python docs/upstream/secantusdb_prune_stall.py`` (starts its own ``secantusd-py``,
twice: as released, then with Kariz's fix of ``kariz_devkit.embedded_database``, which the dev stack,
the bench and the tests run). Prints B's slowest short transaction alone and beside A's insert, and
A's statement time."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from kariz_devkit.embedded import EmbeddedBackends, free_port

DOCS = 20_000
Doc = dict[str, Any]


async def short_transactions(client: AsyncMongoClient[Doc], seconds: float) -> list[float]:
    """B: one-insert transactions on a collection of its own, for ``seconds``; each one's time."""
    took: list[float] = []
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        async with client.start_session() as session:
            started = time.perf_counter()
            async with await session.start_transaction():
                await client.repro.b.insert_one({"n": n}, session=session)
            took.append(time.perf_counter() - started)
        n += 1
    return took


async def short_writes(client: AsyncMongoClient[Doc], seconds: float) -> list[float]:
    """The control: the same inserts outside a transaction (no registry); each one's time."""
    took: list[float] = []
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        started = time.perf_counter()
        await client.repro.c.insert_one({"n": n})
        took.append(time.perf_counter() - started)
        n += 1
    return took


async def long_statement(client: AsyncMongoClient[Doc], collection: str) -> float:
    """A: one insert_many of DOCS documents into an indexed collection, in a transaction."""
    await client.repro[collection].create_index("email", unique=True)
    docs = [{"email": f"lead-{i}@acme.example", "name": f"Lead {i}"} for i in range(DOCS)]
    async with client.start_session() as session:
        started = time.perf_counter()
        async with await session.start_transaction():
            await client.repro[collection].insert_many(docs, session=session)
        return time.perf_counter() - started


async def main() -> None:
    for fixed in (False, True):
        print("SecantusDB with Kariz's fix of the registry" if fixed else "SecantusDB as released")
        await run(fixed=fixed)


async def run(*, fixed: bool) -> None:
    data = Path(tempfile.mkdtemp(prefix="secantus-repro-"))
    db = EmbeddedBackends(kafka_port=0, mongodb_port=free_port(), data_dir=data, fixed_registry=fixed)
    db.start_database()
    try:
        a: AsyncMongoClient[Doc] = AsyncMongoClient(db.mongodb_uri, timeoutMS=300_000)
        b: AsyncMongoClient[Doc] = AsyncMongoClient(db.mongodb_uri, timeoutMS=300_000)
        alone = await short_transactions(b, 3.0)
        print(f"B alone: {len(alone)} transactions, slowest {max(alone) * 1000:.1f} ms")
        task = asyncio.create_task(long_statement(a, "a"))
        await asyncio.sleep(0.5)  # A's insert_many is under way
        beside = await short_transactions(b, 3.0)
        a_took = await task
        print(f"A's insert_many of {DOCS} documents: {a_took:.1f} s")
        print(f"B beside A: {len(beside)} transactions, slowest {max(beside) * 1000:.1f} ms")
        # The control: the same server's CPU shared the same way, but B's writes take no transaction.
        task = asyncio.create_task(long_statement(a, "a2"))
        await asyncio.sleep(0.5)
        control = await short_writes(b, 3.0)
        a_took = await task
        print(
            f"A again: {a_took:.1f} s; beside it, B's inserts outside a transaction: {len(control)}, "
            f"slowest {max(control) * 1000:.1f} ms"
        )
        await a.close()
        await b.close()
    finally:
        db.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
