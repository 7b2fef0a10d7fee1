"""An import's unit of work gets the time limit the service gives imports; a single capture keeps its
own (a list of hundreds takes the embedded database seconds: handlers.import_leads)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import pytest_asyncio
from fastapi import FastAPI

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_leads.adapters.in_memory import InMemoryLeadsUnitOfWork
from kariz_leads.domain import ResponseSla, SalesTeam
from kariz_leads.entrypoints import http
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock

T = TypeVar("T")
MARIA = "maria@kariz.example"


class TimedUnits(InMemoryUnitsOfWork[InMemoryLeadsUnitOfWork]):
    """The in-memory units, noting the time limit each unit was given."""

    limits: list[float | None]

    async def run(
        self,
        work: Callable[[InMemoryLeadsUnitOfWork], Awaitable[T]],
        *,
        correlation_id: str | None = None,
        timeout_s: float | None = None,
    ) -> T:
        self.limits.append(timeout_s)
        return await super().run(work, correlation_id=correlation_id, timeout_s=timeout_s)


def body(n: int) -> dict[str, Any]:
    return {
        "contact": {"first_name": "Ada", "last_name": f"L{n}", "email": f"ada{n}@acme.example"},
        "company": {"name": "Analytical Engines", "industry": "software", "size": 40},
        "source": "web_form",
        "consent": True,
    }


@pytest_asyncio.fixture
async def api(issuer: LocalIssuer) -> AsyncIterator[tuple[httpx.AsyncClient, TimedUnits]]:
    units = TimedUnits(InMemoryLeadsUnitOfWork(FakeClock()))
    units.limits = []
    app = FastAPI()
    shared_http.install(app, "leads")
    accepting(app, issuer, teams={"emea": [MARIA]})
    team, sla = SalesTeam.of([MARIA]), ResponseSla(timedelta(hours=4))
    app.include_router(http.router(units, team, sla, import_timeout_s=60.0))
    headers = bearer(issuer.token(MARIA, ["manager"], team="emea"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://leads", headers=headers
    ) as client:
        yield client, units


async def test_an_import_has_the_longer_limit_and_a_single_capture_its_own(
    api: tuple[httpx.AsyncClient, TimedUnits],
) -> None:
    client, units = api
    imported = await client.post("/leads/import", json={"leads": [body(n) for n in range(3)]})
    assert imported.status_code == 200, imported.text
    assert units.limits == [60.0]
    units.limits.clear()
    captured = await client.post("/leads", json=body(9))
    assert captured.status_code == 201, captured.text
    assert units.limits == [None]  # the store's default: mongodb_transaction_timeout_s
