"""Drive synthetic leads through a running Kariz over its HTTP APIs, as reps and web forms would.

Every call is retried while a service is unreachable, restarting or answers 503, so the driver rides
through crashes and outages. A retried write may already have been applied before the connection
broke; each step is therefore checked against the service's state rather than repeated blindly
(a capture is idempotent by e-mail; a stage move is skipped if the deal is already there).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from kariz_loadgen.population import SyntheticLead
from kariz_shared.system import SERVICES

# Where `make run` serves each service.
DEFAULT_URLS = {entry.name: f"http://127.0.0.1:{entry.port}" for entry in SERVICES}
RETRYABLE = (httpx.TransportError,)


class GaveUp(Exception):
    """A call kept failing past the deadline: the system did not recover in time."""


@dataclass
class Tally:
    """What the driver did and saw, for the funnel report and the fault tests."""

    captured: int = 0
    touches: int = 0
    recaptured: int = 0
    nurtured: int = 0
    qualified: int = 0
    disqualified: int = 0
    deals: int = 0
    won: int = 0
    lost: int = 0
    moves: int = 0
    requests: int = 0
    retries: int = 0
    by_source: Counter[str] = field(default_factory=Counter)  # every capture, touches included
    captured_by_source: Counter[str] = field(default_factory=Counter)  # new leads only
    qualified_by_source: Counter[str] = field(default_factory=Counter)
    won_by_source: Counter[str] = field(default_factory=Counter)
    loss_reasons: Counter[str] = field(default_factory=Counter)
    reached: Counter[str] = field(default_factory=Counter)
    cycle_seconds: list[float] = field(default_factory=list)
    lead_ids: dict[str, str] = field(default_factory=dict)  # e-mail -> lead id
    deal_ids: dict[str, str] = field(default_factory=dict)  # lead id -> deal id
    outcomes: dict[str, str] = field(default_factory=dict)  # deal id -> won | lost
    journeys: dict[str, list[str]] = field(default_factory=dict)  # deal id -> stages moved to, in order


class Kariz:
    """The four HTTP APIs, with retries that ride through restarts."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        urls: dict[str, str] | None = None,
        *,
        tally: Tally | None = None,
        patience_s: float = 120.0,
        poll_s: float = 0.25,
    ) -> None:
        self.http = http
        self.urls = urls or DEFAULT_URLS
        self.tally = tally or Tally()
        self.patience_s = patience_s
        self.poll_s = poll_s

    async def call(
        self, method: str, service: str, path: str, *, json: Any = None, params: Any = None
    ) -> httpx.Response:
        """One request, repeated while the service is away (connection refused or reset, 502-504)."""
        deadline = time.monotonic() + self.patience_s
        delay = 0.1
        while True:
            self.tally.requests += 1
            try:
                answer = await self.http.request(method, self.urls[service] + path, json=json, params=params)
                if answer.status_code not in (502, 503, 504):
                    return answer
                failure = f"{answer.status_code} {answer.text[:200]}"
            except RETRYABLE as exc:
                failure = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise GaveUp(f"{method} {service}{path}: still failing after {self.patience_s}s: {failure}")
            self.tally.retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def until(self, service: str, path: str, ready: Any = None) -> dict[str, Any]:
        """Poll a GET until it answers 200 (and ``ready(body)`` holds): events take a moment to flow."""
        deadline = time.monotonic() + self.patience_s
        poll = self.poll_s
        while True:
            answer = await self.call("GET", service, path)
            if answer.status_code == 200:
                body: dict[str, Any] = answer.json()
                if ready is None or ready(body):
                    return body
            elif answer.status_code != 404:
                raise GaveUp(f"GET {service}{path}: {answer.status_code} {answer.text[:300]}")
            if time.monotonic() > deadline:
                raise GaveUp(f"GET {service}{path}: not there after {self.patience_s}s")
            # Soon at first (events usually take a fraction of a second), then less often, to spare a
            # busy system the polling.
            await asyncio.sleep(poll)
            poll = min(poll * 1.5, 3.0)


def expect(answer: httpx.Response, *codes: int) -> dict[str, Any]:
    if answer.status_code not in codes:
        raise GaveUp(
            f"{answer.request.method} {answer.request.url}: {answer.status_code} {answer.text[:300]}"
        )
    body: dict[str, Any] = answer.json()
    return body


async def capture(kariz: Kariz, lead: SyntheticLead) -> tuple[str, bool]:
    """POST /leads; returns the lead id and whether it was already known (a touch)."""
    body = expect(await kariz.call("POST", "leads", "/leads", json=lead.body), 200, 201)
    return str(body["id"]), bool(body["duplicate"])


async def qualify(kariz: Kariz, lead_id: str, lead: SyntheticLead) -> str:
    """Wait for the score; a nurtured lead gets its qualification call. Returns the decision."""
    tally = kariz.tally
    view = await kariz.until("qualification", f"/leads/{lead_id}/qualification")
    if view["status"] == "nurture":
        tally.nurtured += 1
        answer = await kariz.call("PUT", "qualification", f"/leads/{lead_id}/bant", json=lead.call)
        if answer.status_code == 409:
            # The first PUT was applied before its answer was lost: the lead is decided already.
            answer = await kariz.call("GET", "qualification", f"/leads/{lead_id}/qualification")
        view = expect(answer, 200)
        if view["status"] == "nurture":
            # The call was not enough either way: the rep closes it out, as a real team would.
            answer = await kariz.call(
                "POST",
                "qualification",
                f"/leads/{lead_id}/disqualify",
                json={"reason": "not a fit after call"},
            )
            if answer.status_code == 409:
                # Applied before its answer was lost: the lead is decided already.
                answer = await kariz.call("GET", "qualification", f"/leads/{lead_id}/qualification")
            view = expect(answer, 200)
    return str(view["status"])


async def move(kariz: Kariz, deal_id: str, step: dict[str, Any]) -> None:
    answer = await kariz.call("POST", "deals", f"/deals/{deal_id}/stage", json=step)
    if answer.status_code == 409:
        # Either a retried move that was applied before its answer was lost, or a real conflict.
        deal = expect(await kariz.call("GET", "deals", f"/deals/{deal_id}"), 200)
        if deal["stage"] == step["stage"]:
            return
    expect(answer, 200)
    kariz.tally.moves += 1


async def drive(kariz: Kariz, lead: SyntheticLead, *, on_captured: Any = None) -> None:
    """One lead from capture to its decision and, if qualified, its deal to won or lost."""
    tally = kariz.tally
    started = time.monotonic()
    lead_id, duplicate = await capture(kariz, lead)
    if on_captured is not None:
        on_captured()
    tally.by_source[lead.source] += 1
    if lead.email in tally.lead_ids:
        tally.touches += 1
        return  # a touch of a known lead: that lead's own journey carries it
    if duplicate:
        # The first capture of this address went through before its answer was lost; the retry found it.
        tally.recaptured += 1
    tally.captured += 1
    tally.captured_by_source[lead.source] += 1
    tally.lead_ids[lead.email] = lead_id
    decision = await qualify(kariz, lead_id, lead)
    if decision != "qualified":
        tally.disqualified += 1
        return
    tally.qualified += 1
    tally.qualified_by_source[lead.source] += 1
    page = await kariz.until("deals", f"/deals?lead_id={lead_id}", ready=lambda body: body["items"])
    deal_id = str(page["items"][0]["id"])
    tally.deals += 1
    tally.deal_ids[lead_id] = deal_id
    tally.journeys[deal_id] = [step.stage for step in lead.journey]
    for step in lead.journey:
        await move(kariz, deal_id, step.body())
        tally.reached[step.stage] += 1
    tally.outcomes[deal_id] = lead.outcome
    if lead.outcome == "won":
        tally.won += 1
        tally.won_by_source[lead.source] += 1
    else:
        tally.lost += 1
        tally.loss_reasons[lead.journey[-1].reason or "?"] += 1
    tally.cycle_seconds.append(time.monotonic() - started)


async def drive_all(
    kariz: Kariz,
    leads: list[SyntheticLead],
    *,
    concurrency: int = 32,
    on_done: Callable[[SyntheticLead], None] | None = None,
) -> Tally:
    """Drive every lead, ``concurrency`` at a time. A touch of a known lead waits until the first
    capture of its address went through, so that one creates the lead, as in real life.
    ``on_done(lead)`` is called as each lead's journey ends (for a progress bar)."""
    gate = asyncio.Semaphore(concurrency)
    captured: dict[str, asyncio.Event] = {}
    firsts: set[int] = set()
    for lead in leads:
        if lead.email not in captured:
            captured[lead.email] = asyncio.Event()
            firsts.add(lead.number)

    async def one(lead: SyntheticLead) -> None:
        seen = captured[lead.email]
        if lead.number not in firsts:
            await seen.wait()
        async with gate:
            try:
                await drive(kariz, lead, on_captured=seen.set)
            finally:
                seen.set()
        if on_done is not None:
            on_done(lead)

    async with asyncio.TaskGroup() as group:
        for lead in leads:
            group.create_task(one(lead))
    return kariz.tally
