"""Transaction.after_commit against the real database: actions run once after the commit, never for
work that aborted, and only for the attempt that committed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from kariz_shared.contracts.errors import Conflict
from kariz_shared.persistence.store import Store, Transaction
from kariz_shared.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(settings_for: Callable[..., Any]) -> AsyncIterator[Store]:
    store = Store(settings_for(ServiceSettings, service_name="probe"))
    try:
        yield store
    finally:
        await store.client.drop_database(store.db.name)
        await store.close()


async def test_actions_run_once_after_the_commit_and_never_for_aborted_work(store: Store) -> None:
    seen: list[object] = []

    async def visible_outside() -> None:
        seen.append(await store.db.probe.find_one({"_id": "committed"}))

    pending: list[Any] = []

    async def work(tx: Transaction) -> str:
        await tx.db.probe.insert_one({"_id": "committed"}, session=tx.session)
        tx.after_commit(lambda: pending.append(visible_outside()))
        return "done"

    assert await store.transaction(work) == "done"
    assert len(pending) == 1
    await pending.pop()
    assert seen == [{"_id": "committed"}]  # the action ran when the write was visible to everyone

    async def refused(tx: Transaction) -> None:
        await tx.db.probe.insert_one({"_id": "refused"}, session=tx.session)
        tx.after_commit(lambda: pending.append("refused"))
        raise Conflict("no")

    with pytest.raises(Conflict):
        await store.transaction(refused)
    assert pending == [] and await store.db.probe.find_one({"_id": "refused"}) is None

    attempts: list[int] = []

    async def conflicted_once(tx: Transaction) -> None:
        attempts.append(1)
        tx.after_commit(lambda: pending.append(len(attempts)))
        if len(attempts) == 1:
            error = OperationFailure("write conflict", code=112)
            error._add_error_label("TransientTransactionError")
            raise error

    await store.transaction(conflicted_once)
    assert len(attempts) == 2
    assert pending == [2]  # the aborted first attempt's action was dropped
