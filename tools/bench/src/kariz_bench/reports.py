"""The reports phase: how fast the reports answer over many deals while events keep arriving.

The reports service runs in-process on the phase's backends, fed the way it always is: from the public
topics. It is seeded with ``deals`` deals' stories (capture, qualification, opening, a stage move, won or
lost, spread over the year before today across reps, teams, sources and industries), and, once it has
caught up, asked the managers' questions (funnel, win rate, cycle, velocity, outcomes, stages, the
forecast) round after round while a live feed keeps publishing new deals' stories at ``live_rate`` a
second. Only the reports service runs: the rest of the sales cycle is its events, as any subscriber
sees it.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaProducer

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import running
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import (
    Company,
    Contact,
    DealLost,
    DealOpened,
    DealWon,
    Event,
    LeadCaptured,
    LeadQualified,
    LeadSource,
    StageChanged,
)
from kariz_shared.system import source_of

REPS = [f"rep{n}@kariz.bench" for n in range(20)]
INDUSTRIES = ["software", "financial_services", "manufacturing", "healthcare", "retail"]
SOURCES = [
    LeadSource.REFERRAL,
    LeadSource.WEB_FORM,
    LeadSource.PARTNER,
    LeadSource.EVENT,
    LeadSource.FREE_TRIAL,
]
STAGES = ["qualification", "discovery", "demo", "proposal", "negotiation"]
#: The questions asked each round: (path, query).
QUESTIONS: list[tuple[str, dict[str, str]]] = [
    ("/reports/funnel", {"period": "this_year", "by": "source"}),
    ("/reports/funnel", {"period": "last_quarter", "by": "rep"}),
    ("/reports/win-rate", {"period": "this_year", "by": "industry"}),
    ("/reports/cycle", {"period": "last_quarter", "by": "team"}),
    ("/reports/velocity", {"period": "this_month", "by": "rep"}),
    ("/reports/outcomes", {"period": "this_year"}),
    ("/reports/stages", {"period": "this_year"}),
    ("/forecast", {"period": "this_quarter", "by": "rep"}),
]


def story(rng: random.Random, tag: str, n: int, today: date) -> list[Event]:
    """One deal's events, from capture to its close (or still open), on a day of the past year."""
    lead, deal = f"L-{tag}-{n}", f"D-{tag}-{n}"
    owner = rng.choice(REPS)
    day = datetime.combine(today - timedelta(days=rng.randrange(365)), datetime.min.time(), UTC)
    at = day + timedelta(hours=rng.randrange(8, 18))
    company = Company(name=f"Co {n}", industry=rng.choice(INDUSTRIES), size=rng.choice([20, 120, 800, 4000]))
    contact = Contact(first_name="Pat", last_name="Bench", email=f"{lead}@bench.example")
    source = rng.choice(SOURCES)
    amount = Decimal(rng.randrange(5, 200) * 1000)
    events: list[Event] = [
        LeadCaptured(
            lead_id=lead,
            contact=contact,
            company=company,
            source=source,
            campaign=f"c{n % 12}",
            owner=owner,
            assigned_by="round_robin",
            captured_at=at,
        ),
        LeadQualified(
            lead_id=lead,
            owner=owner,
            contact=contact,
            company=company,
            source=source,
            score=80,
            threshold=70,
            breakdown=[],
            qualified_at=at + timedelta(hours=1),
        ),
        DealOpened(
            deal_id=deal,
            lead_id=lead,
            account_id=f"A-{tag}-{n}",
            account_name=company.name,
            owner=owner,
            pipeline="default",
            stage="qualification",
            amount=amount,
            opened_at=at + timedelta(hours=2),
            expected_close_date=(at + timedelta(days=rng.randrange(10, 120))).date(),
        ),
    ]
    reached = rng.randrange(1, len(STAGES))
    moved_at = at + timedelta(days=rng.randrange(1, 10))
    events.append(
        StageChanged(
            deal_id=deal,
            lead_id=lead,
            owner=owner,
            pipeline="default",
            from_stage="qualification",
            to_stage=STAGES[reached],
            direction="forward",
            seconds_in_from_stage=(moved_at - at).total_seconds(),
            changed_at=moved_at,
        )
    )
    fate = rng.random()
    closed_at = moved_at + timedelta(days=rng.randrange(1, 30))
    cycle = (closed_at - at).total_seconds()
    common: dict[str, Any] = {
        "deal_id": deal,
        "lead_id": lead,
        "account_id": f"A-{tag}-{n}",
        "account_name": company.name,
        "owner": owner,
        "cycle_seconds": cycle,
    }
    if fate < 0.3:
        events.append(DealWon(**common, amount=amount, won_at=closed_at))
    elif fate < 0.7:
        reason = rng.choice(["price too high", "no decision", "chose a competitor"])
        events.append(
            DealLost(**common, reason=reason, lost_at_stage=STAGES[reached], amount=amount, lost_at=closed_at)
        )
    return events


def stories(count: int, *, seed: int, tag: str, today: date) -> Iterator[Event]:
    rng = random.Random(seed)
    for n in range(count):
        yield from story(rng, tag, n, today)


async def publish(producer: AIOKafkaProducer, events: Iterator[Event] | list[Event]) -> int:
    sent = 0
    pending = []
    for event in events:
        envelope = Envelope(event=event, source=source_of(type(event)), correlation_id=uuid.uuid4().hex)
        pending.append(
            await producer.send(
                envelope.topic,
                envelope.value(),
                key=envelope.key.encode(),
                headers=[(k, v.encode()) for k, v in envelope.headers().items()],
            )
        )
        sent += 1
        if len(pending) >= 2000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    return sent


@dataclass
class ReportsRun:
    deals: int
    events: int
    seed_s: float
    caught_up_s: float
    live_rate: float
    live_events: int
    rounds: int
    #: Per question (``path?query``): p50, p95, max in ms.
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    all_ms: dict[str, float] = field(default_factory=dict)


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {"p50": at(0.5), "p95": at(0.95), "max": round(ordered[-1], 1), "count": float(len(ordered))}


async def run_reports(
    bootstrap: str, mongodb_uri: str, *, deals: int, seed: int, rounds: int, live_rate: float
) -> ReportsRun:
    from kariz_reports.bootstrap import build
    from kariz_reports.settings import ReportsSettings

    tag = uuid.uuid4().hex[:6]
    issuer = LocalIssuer().start()
    try:
        settings = ReportsSettings(
            kafka_bootstrap_servers=bootstrap,
            mongodb_uri=mongodb_uri,
            mongodb_database=f"bench_reports_{tag}",
            kafka_group_prefix=f"bench-{tag}",
            kafka_enable_idempotence=False,
            auth_issuer=issuer.url,
            auth_audience=issuer.audience,
        )
        service = build(settings)
        token = issuer.token("bench@kariz.test", ["admin"], ttl_s=24 * 3600)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=20)
        await producer.start()
        try:
            today = datetime.now(UTC).date()
            started = time.perf_counter()
            sent = await publish(producer, stories(deals, seed=seed, tag=tag, today=today))
            seed_s = time.perf_counter() - started
            async with running(service, token=token) as http:
                await _caught_up(http, deals)
                caught_up_s = time.perf_counter() - started
                live = asyncio.create_task(_live_feed(producer, live_rate, seed + 1, tag, today))
                samples: dict[str, list[float]] = {}
                try:
                    for _ in range(rounds):
                        for path, query in QUESTIONS:
                            t = time.perf_counter()
                            answer = await http.get(path, params=query)
                            ms = (time.perf_counter() - t) * 1000
                            answer.raise_for_status()
                            key = f"{path}?{'&'.join(f'{k}={v}' for k, v in query.items())}"
                            samples.setdefault(key, []).append(ms)
                finally:
                    live.cancel()
                    live_events = await asyncio.gather(live, return_exceptions=True)
        finally:
            await producer.stop()
    finally:
        issuer.stop()
    fed = live_events[0] if isinstance(live_events[0], int) else 0
    return ReportsRun(
        deals=deals,
        events=sent,
        seed_s=round(seed_s, 1),
        caught_up_s=round(caught_up_s, 1),
        live_rate=live_rate,
        live_events=fed,
        rounds=rounds,
        latency_ms={k: _percentiles(v) for k, v in samples.items()},
        all_ms=_percentiles([ms for v in samples.values() for ms in v]),
    )


async def _caught_up(http: Any, deals: int) -> None:
    """Until the reports count every seeded deal opened over the past year (and a bit: the year's start
    may fall inside it)."""
    while True:
        answer = await http.get("/reports/funnel", params={"period": "last_year"})
        this = await http.get("/reports/funnel", params={"period": "this_year"})
        if answer.status_code == 200 and this.status_code == 200:
            opened = answer.json()["all"]["deal_opened"] + this.json()["all"]["deal_opened"]
            if opened >= deals:
                return
        await asyncio.sleep(2)


async def _live_feed(producer: AIOKafkaProducer, rate: float, seed: int, tag: str, today: date) -> int:
    """New deals' stories at ``rate`` a second, until cancelled; how many events it sent."""
    rng = random.Random(seed)
    sent, n = 0, 0
    try:
        while True:
            started = time.perf_counter()
            sent += await publish(producer, story(rng, tag + "live", n, today))
            n += 1
            await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))
    except asyncio.CancelledError:
        return sent
