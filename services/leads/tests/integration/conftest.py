"""One leads service for the whole integration suite, on the shared test backends.

Starting the service joins two consumer groups, which takes the embedded broker about ten seconds, so
the tests share one running instance (and its database) and keep apart by unique e-mail addresses,
industries and lead ids. Its reps and territories are fixed here so assignment can be checked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from kariz_devkit.testing import Backends, running, unique
from kariz_leads.bootstrap import build
from kariz_leads.settings import LeadsSettings
from kariz_shared.service import Service

REPS = ["alex@kariz.example", "sam@kariz.example", "kim@kariz.example"]
TERRITORIES = {"DE": ["jonas@kariz.example", "lena@kariz.example"]}
TEAMS = {"dach": TERRITORIES["DE"]}


@dataclass
class Leads:
    service: Service
    settings: LeadsSettings
    http: httpx.AsyncClient
    db: AsyncDatabase[dict[str, Any]]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def leads(
    backends: Backends, settings_for: Callable[..., Any], admin_token: str
) -> AsyncIterator[Leads]:
    settings = settings_for(
        LeadsSettings, service_name="leads", reps=REPS, territories=TERRITORIES, teams=TEAMS
    )
    service = build(settings)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(backends.mongodb_uri, tz_aware=True)
    async with running(service, token=admin_token) as http:
        yield Leads(service, settings, http, client[settings.database_name])
    await client.close()


def a_lead(email: str | None = None, **changes: Any) -> dict[str, Any]:
    """A valid capture request body; ``contact``/``company`` changes are merged into the defaults."""
    body: dict[str, Any] = {
        "contact": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": email or f"{unique('ada')}@acme.example",
        },
        "company": {"name": "Analytical Engines", "industry": "software", "size": 40},
        "source": "web_form",
        "consent": True,
    }
    for key, value in changes.items():
        body[key] = {**body[key], **value} if key in ("contact", "company") else value
    return body


@pytest.fixture
def lead_body() -> Any:
    """``lead_body(email, company={"country": "DE"}, source="event")``."""
    return a_lead
