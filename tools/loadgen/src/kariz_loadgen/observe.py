"""Read back from Kariz what a run left there, for the funnel report: the leads service for the leads
of the run and their captures, the qualification service for the verdicts, the deals service for the
pipeline's stages and each deal's stage history, amount and opened/closed timestamps.

A run's leads are found by what Kariz holds, not by what the driver remembers: every lead captured
since the run started whose e-mail carries the run's tag (``Population(run_tag=...)``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from kariz_loadgen.funnel import DealSeen, LeadSeen, Observed
from kariz_loadgen.journey import GaveUp, Kariz, expect

T = TypeVar("T")
PAGE = 200  # the largest page the list endpoints give


def of_run(email: str, run_tag: str) -> bool:
    """The population ends the local part of every address it draws with ``.<run_tag>``."""
    return f".{run_tag}@" in email.lower()


async def open_stages(kariz: Kariz) -> tuple[str, ...]:
    """The default pipeline's stages a deal can be in before it is won or lost, in order."""
    body = expect(await kariz.call("GET", "deals", "/pipeline/stages"), 200)
    return tuple(s["name"] for s in body["stages"] if not s["closed"])


async def leads_of_run(kariz: Kariz, run_tag: str, since: datetime) -> list[dict[str, Any]]:
    """Every lead the leads service captured since ``since`` for this run, page by page."""
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        params = {"created_from": since.isoformat(), "limit": PAGE, "offset": offset}
        page = expect(await kariz.call("GET", "leads", "/leads", params=params), 200)
        found += [lead for lead in page["items"] if of_run(lead["contact"]["email"], run_tag)]
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return found


async def lead_seen(kariz: Kariz, lead: dict[str, Any]) -> LeadSeen:
    lead_id = str(lead["id"])
    answer = await kariz.call("GET", "qualification", f"/leads/{lead_id}/qualification")
    if answer.status_code == 404:
        # The qualification service never got the lead: the report shows it as undecided.
        verdict, reason, called = "missing", None, False
    else:
        view = expect(answer, 200)
        decision = view.get("decision") or {}
        verdict, reason, called = str(view["status"]), decision.get("reason"), view["answers"] is not None
    return LeadSeen(
        lead_id=lead_id,
        source=str(lead["source"]),
        capture_sources=tuple(str(t["source"]) for t in lead["touches"]),
        verdict=verdict,
        reason=reason,
        called=called,
    )


def deal_seen(deal: dict[str, Any]) -> DealSeen:
    closed_at = deal.get("closed_at")
    amount = deal.get("amount")
    return DealSeen(
        deal_id=str(deal["id"]),
        lead_id=str(deal["lead_id"]),
        history=tuple(str(v["stage"]) for v in deal["history"]),
        opened_at=datetime.fromisoformat(deal["opened_at"]),
        closed_at=datetime.fromisoformat(closed_at) if closed_at else None,
        amount=Decimal(str(amount)) if amount is not None else None,
        lost_reason=deal.get("lost_reason"),
    )


async def deal_of(kariz: Kariz, lead_id: str) -> DealSeen | None:
    page = expect(await kariz.call("GET", "deals", "/deals", params={"lead_id": lead_id}), 200)
    return deal_seen(page["items"][0]) if page["items"] else None


async def gathered(calls: list[Callable[[], Awaitable[T]]], concurrency: int) -> list[T]:
    gate = asyncio.Semaphore(concurrency)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(c) for c in calls)))


async def observe(kariz: Kariz, run_tag: str, since: datetime, *, concurrency: int = 16) -> Observed:
    """What Kariz holds about the run started at ``since`` with ``run_tag``."""
    if not run_tag:
        raise GaveUp("a run without a tag cannot be told apart from other leads in Kariz")
    stages = await open_stages(kariz)
    # A second of slack for clocks: the tag, not the time, decides which leads belong to the run.
    raw = await leads_of_run(kariz, run_tag, since - timedelta(seconds=1))
    leads = await gathered([partial(lead_seen, kariz, lead) for lead in raw], concurrency)
    qualified = [lead.lead_id for lead in leads if lead.verdict == "qualified"]
    deals = await gathered([partial(deal_of, kariz, i) for i in qualified], concurrency)
    return Observed(
        open_stages=stages,
        leads=tuple(sorted(leads, key=lambda lead: lead.lead_id)),
        deals=tuple(sorted((d for d in deals if d is not None), key=lambda d: d.deal_id)),
    )
