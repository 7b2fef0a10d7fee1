"""The benchmark's traffic: hot leads (a trade-show list of senior buyers at large software companies in
core markets), each of which qualifies on its score at capture, so every lead rides the whole path
capture -> ``LeadQualified`` -> deal opened. Sent as imports (``POST /leads/import``) as fast as Kariz
takes them, or one by one (``POST /leads``) at a fixed rate."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from kariz_loadgen.population import Population

HOT_FIT = {"industry": "software", "countries": ("DE", "US", "GB"), "titles": ("CEO", "CTO")}


def hot_leads(count: int, *, seed: int, run_tag: str) -> list[dict[str, Any]]:
    """``count`` capture bodies with Faker's names, companies and sources, made a fit for the default
    rules: software (20) + 1,000 or more employees (25) + a core market (10) + C-level (20) = 75 >= 70."""
    rng = random.Random(seed)
    bodies = []
    for lead in Population(seed, run_tag=run_tag).leads(count, repeat_share=0.0):
        body = lead.body
        body["contact"]["title"] = rng.choice(HOT_FIT["titles"])
        body["company"] |= {
            "industry": HOT_FIT["industry"],
            "size": rng.randint(1000, 20000),
            "country": rng.choice(HOT_FIT["countries"]),
        }
        bodies.append(body)
    return bodies


@dataclass
class Sent:
    """When each lead was handed to Kariz (benchmark clock), by lead id."""

    at: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0

    @property
    def ids(self) -> set[str]:
        return set(self.at)


def chunks(bodies: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(bodies), size):
        yield bodies[start : start + size]


async def _post(http: httpx.AsyncClient, url: str, json: Any, sent: Sent) -> httpx.Response:
    """POST, riding out a moment of overload (503 while busy, a dropped connection). One Idempotency-Key
    for the request and its retries: a retry of one that was done after all (its answer lost) stores
    nothing twice (a retried import used to touch its 500 leads while qualification wrote them: the
    write-conflict storm that stalled the stack, README "Performance")."""
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    for attempt in range(20):
        sent.requests += 1
        try:
            response = await http.post(url, json=json, headers=headers)
        except httpx.TransportError:
            response = None
        # 500: the embedded database now and then fails a transaction inside (nothing was stored).
        if response is not None and response.status_code not in (500, 502, 503, 504):
            response.raise_for_status()
            return response
        sent.retries += 1
        await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
    raise RuntimeError(f"{url} kept failing")


async def import_all(
    http: httpx.AsyncClient, leads_url: str, bodies: list[dict[str, Any]], *, chunk: int, in_flight: int
) -> Sent:
    """Imports of ``chunk`` leads, ``in_flight`` at a time, as fast as Kariz answers."""
    sent = Sent()
    gate = asyncio.Semaphore(in_flight)

    async def one(batch: list[dict[str, Any]]) -> None:
        async with gate:
            started = time.monotonic()
            answer = await _post(http, f"{leads_url}/leads/import", {"leads": batch}, sent)
            for item in answer.json()["leads"]:
                sent.at[item["id"]] = started

    await asyncio.gather(*(one(batch) for batch in chunks(bodies, chunk)))
    return sent


async def capture_at_rate(
    http: httpx.AsyncClient, leads_url: str, bodies: list[dict[str, Any]], *, per_second: float
) -> Sent:
    """One ``POST /leads`` per lead at a fixed offered load (open loop: a slow answer does not slow the
    next request, as web forms do not wait for each other). A lead's time is when it was due."""
    sent = Sent()
    start = time.monotonic()

    async def one(n: int, body: dict[str, Any]) -> None:
        due = start + n / per_second
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        answer = await _post(http, f"{leads_url}/leads", body, sent)
        sent.at[answer.json()["id"]] = due

    await asyncio.gather(*(one(n, body) for n, body in enumerate(bodies)))
    return sent


async def capture_all(
    http: httpx.AsyncClient, leads_url: str, bodies: list[dict[str, Any]], *, concurrency: int
) -> Sent:
    """One ``POST /leads`` per lead, ``concurrency`` at a time, as fast as Kariz answers."""
    sent = Sent()
    gate = asyncio.Semaphore(concurrency)

    async def one(body: dict[str, Any]) -> None:
        async with gate:
            started = time.monotonic()
            answer = await _post(http, f"{leads_url}/leads", body, sent)
            sent.at[answer.json()["id"]] = started

    await asyncio.gather(*(one(body) for body in bodies))
    return sent
