"""Rate limits on the real database: per caller and per client address, one-minute windows shared by
every replica (two apps on one database count together), 429 with Retry-After past the limit, and a
fresh window once the clock moves on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import APIRouter, Depends, FastAPI

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_shared.persistence.rate_limits import MongoRateLimits
from kariz_shared.persistence.store import Store
from kariz_shared.runtime import auth
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration

LIMIT = 3


@pytest_asyncio.fixture
async def store(settings_for: Callable[..., Any]) -> AsyncIterator[Store]:
    store = Store(settings_for(ServiceSettings, service_name="limits"))
    try:
        yield store
    finally:
        await store.client.drop_database(store.db.name)
        await store.close()


def replica(store: Store, clock: FakeClock, issuer: LocalIssuer) -> httpx.AsyncClient:
    app = FastAPI()
    shared_http.install(app, "limits")
    accepting(app, issuer)
    app.state.rate_limits = MongoRateLimits(store, clock, per_minute=LIMIT)
    routes = APIRouter(dependencies=[Depends(auth.authenticate)])

    @routes.post("/captures", dependencies=[Depends(auth.rate_limited)])
    async def capture() -> dict[str, bool]:
        return {"taken": True}

    app.include_router(routes)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_past_the_limit_is_429_with_retry_after_shared_by_replicas_until_the_window_ends(
    store: Store, issuer: LocalIssuer
) -> None:
    clock = FakeClock(datetime(2026, 3, 2, 9, 0, 15, tzinfo=UTC))
    await MongoRateLimits(store, clock, per_minute=LIMIT).ensure_indexes(store)
    form = bearer(issuer.token("form@kariz.test", ["rep"]))
    async with replica(store, clock, issuer) as one, replica(store, clock, issuer) as two:
        answers = [await (one if n % 2 else two).post("/captures", headers=form) for n in range(LIMIT)]
        assert [a.status_code for a in answers] == [200] * LIMIT
        refused = await one.post("/captures", headers=form)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "45"  # the window ends at 09:01:00
        assert "the limit is 3 a minute" in refused.json()["message"]
        # Another caller from the same address is held by the address's count as well.
        other = bearer(issuer.token("other@kariz.test", ["rep"]))
        assert (await two.post("/captures", headers=other)).status_code == 429
        clock.advance(timedelta(seconds=45))
        assert (await two.post("/captures", headers=form)).status_code == 200


async def test_the_first_requests_of_a_window_racing_are_all_counted(store: Store) -> None:
    clock = FakeClock(datetime(2026, 3, 2, 9, 5, 0, tzinfo=UTC))
    limits = MongoRateLimits(store, clock, per_minute=1000)
    answers = await asyncio.gather(*(limits.take("address:10.0.0.1") for _ in range(40)))
    assert answers == [None] * 40
    window = await store.db.rate_limits.find_one({"_id": {"$regex": "^address:10.0.0.1:"}})
    assert window is not None and window["n"] == 40
