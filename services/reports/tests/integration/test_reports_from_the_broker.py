"""The one real-backend test of the reports: events published on the real broker reach the projections,
the reports agree with a count made here from the events this test produced, and a rebuild from the
retained topics answers the same."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from kariz_devkit.testing import eventually, running, unique
from kariz_reports.bootstrap import build, rebuild
from kariz_reports.settings import ReportsSettings
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import Event
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.system import source_of

pytestmark = pytest.mark.integration

MARCH = {"from": "2026-03-01", "to": "2026-03-31", "by": "campaign"}
MAY = date(2026, 5, 20)


def the_story(events: Any, campaign: str, rng: random.Random) -> tuple[list[Event], dict[str, Any]]:
    """Leads of one campaign (other tests' events share the topics) and what became of them, with the
    figures a report must give, counted from the events themselves."""
    produced: list[Event] = []
    reasons: Counter[str] = Counter()
    counts = Counter[str]()
    for n in range(12):
        lead = unique("L")
        produced.append(events.captured(lead, campaign=campaign))
        counts["captured"] += 1
        if rng.random() < 0.25:
            produced.append(events.disqualified(lead))
            continue
        produced.append(events.qualified(lead))
        counts["qualified"] += 1
        deal = unique("D")
        moves = [events.opened(deal, lead), events.moved(deal, "qualification", "proposal", 1 + n % 3, lead)]
        counts["deal_opened"] += 1
        if n % 3 == 0:
            reason = rng.choice(["price too high", "no decision"])
            moves.append(events.lost(deal, lead, cycle_days=2 + n, reason=reason))
            reasons[reason] += 1
            counts["lost"] += 1
        elif n % 3 == 1:
            moves.append(events.won(deal, lead, cycle_days=3 + n))
            counts["won"] += 1
        # Told out of order (a close before its opening) and once more (a redelivery).
        produced.extend(moves[::-1] if n % 2 else moves)
        produced.append(moves[-1])
    closed = counts["won"] + counts["lost"]
    expected = {
        **{k: counts[k] for k in ("captured", "qualified", "deal_opened")},
        "won": counts["won"],
        "lost": counts["lost"],
        "win_rate": round(counts["won"] / closed, 4) if closed else None,
        "loss_reasons": sorted(
            ({"name": r, "count": c} for r, c in reasons.items()), key=lambda x: (-x["count"], x["name"])
        ),
    }
    return produced, expected


async def publish_all(bootstrap: str, produced: list[Event]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for event in produced:
            envelope = Envelope(event=event, source=source_of(type(event)), correlation_id=unique("corr"))
            await producer.send_and_wait(
                envelope.topic,
                envelope.value(),
                key=envelope.key.encode(),
                headers=[(k, v.encode()) for k, v in envelope.headers().items()],
            )
    finally:
        await producer.stop()


async def figures(client: Any, campaign: str, headers: dict[str, str] | None = None) -> dict[str, Any] | None:
    funnel = (await client.get("/reports/funnel", params=MARCH, headers=headers)).json()
    outcomes = (await client.get("/reports/outcomes", params=MARCH, headers=headers)).json()
    win = (await client.get("/reports/win-rate", params=MARCH, headers=headers)).json()
    mine = [
        {**f, **o, **w}
        for f in funnel["items"]
        for o in outcomes["items"]
        for w in win["items"]
        if f["campaign"] == o["campaign"] == w["campaign"] == campaign
    ]
    if not mine:
        return None
    keys = ("captured", "qualified", "deal_opened", "won", "lost", "win_rate", "loss_reasons")
    return {k: mine[0][k] for k in keys}


async def test_the_reports_agree_with_the_events_and_a_rebuild_gives_the_same(
    events: Any, stack_backends: Any, settings_for: Callable[..., ReportsSettings], admin_token: str
) -> None:
    campaign = unique("campaign")
    produced, expected = the_story(events, campaign, random.Random(7))
    # A broker of the module's own: on the session's, the consumers and the rebuild first read every
    # earlier test's records (thousands in a full run).
    settings = settings_for(
        ReportsSettings, service_name="reports", kafka_bootstrap_servers=stack_backends.kafka_bootstrap
    )

    # The forecast's part: a rep of this test's own with a commit and a best-case deal closing in May.
    seller = f"{unique('seller')}@kariz.test"
    commit, best_case = unique("D"), unique("D")
    forecasted = [
        events.opened(commit, unique("L"), owner=seller, amount=Decimal("50000")).model_copy(
            update={"probability": Decimal("0.75"), "forecast_category": "commit", "expected_close_date": MAY}
        ),
        events.opened(best_case, unique("L"), owner=seller, amount=Decimal("20000")).model_copy(
            update={
                "probability": Decimal("0.4"),
                "forecast_category": "best_case",
                "expected_close_date": MAY,
            }
        ),
    ]
    produced += [*forecasted, forecasted[0]]  # the first one twice: a redelivery

    service = build(settings)
    async with running(service, token=admin_token) as client:
        quota = await client.put("/quotas", json={"period": "2026-Q2", "rep": seller, "amount": 100000})
        assert quota.status_code == 200, quota.text
        await publish_all(stack_backends.kafka_bootstrap, produced)
        await eventually(lambda: _agrees(client, campaign, expected), timeout=60)
        await eventually(lambda: _forecast_agrees(client, seller), timeout=30)

        # A BI tool's key, issued on reports' own /api-keys (its store in reports' database), reads the
        # same figures as the admin, and may change nothing.
        issued = await client.post("/api-keys", json={"name": "BI dashboards", "scopes": ["reports:read"]})
        assert issued.status_code == 201, issued.text
        bi = {"X-Api-Key": issued.json()["key"], "Authorization": ""}
        assert await figures(client, campaign, bi) == expected
        quota_by_key = await client.put(
            "/quotas", json={"period": "2026-Q2", "rep": seller, "amount": 1}, headers=bi
        )
        assert quota_by_key.status_code == 403, quota_by_key.text

        rebuilder, job = rebuild(settings)
        done = await job.run()
        await rebuilder.store.close()
        assert done.generation == 2 and done.applied >= len(produced)
        assert await figures(client, campaign) == expected
        # The quota is the reports' own record, not a projection: the rebuild left it.
        assert await _forecast_agrees(client, seller)
        generations = await service.store.db["generations"].find_one({"_id": "state"})
        assert (generations["active"], generations["building"]) == (2, None)


async def _agrees(client: Any, campaign: str, expected: dict[str, Any]) -> bool:
    return await figures(client, campaign) == expected


async def _forecast_agrees(client: Any, seller: str) -> bool:
    answer = (await client.get("/forecast", params={"period": "2026-Q2", "by": "rep"})).json()
    lines = [i for i in answer["items"] if i["rep"] == seller]
    if not lines:
        return False
    line = lines[0]
    return bool(
        line["categories"]["commit"] == {"count": 1, "amount": 50000.0, "weighted_amount": 37500.0}
        and line["categories"]["best_case"] == {"count": 1, "amount": 20000.0, "weighted_amount": 8000.0}
        and (line["quota"], line["commit_gap"], line["best_case_forecast"]) == (100000.0, 50000.0, 70000.0)
    )


async def test_the_weekly_snapshot_fires_on_a_moved_clock_and_the_changes_since_answer(
    events: Any, stack_backends: Any, settings_for: Callable[..., ReportsSettings], admin_token: str
) -> None:
    settings = settings_for(
        ReportsSettings, service_name="reports", kafka_bootstrap_servers=stack_backends.kafka_bootstrap
    )
    clock = FakeClock(events.now)  # Tuesday 2026-03-10 09:30 UTC
    monday = datetime(2026, 3, 16, tzinfo=UTC)
    seller = f"{unique('seller')}@kariz.test"
    commit, best_case = unique("D"), unique("D")

    def standing(event: Any, category: str, probability: str) -> Any:
        update = {
            "probability": Decimal(probability),
            "forecast_category": category,
            "expected_close_date": MAY,
        }
        return event.model_copy(update=update)

    service = build(settings, clock)
    async with running(service, token=admin_token) as client:
        # Armed at start-up for Monday 00:00 in the organisation's time zone (UTC here).
        timer = await service.store.db["timers"].find_one({"_id": "forecast-snapshot:weekly"})
        assert timer is not None and timer["due_at"] == monday
        await publish_all(
            stack_backends.kafka_bootstrap,
            [
                standing(
                    events.opened(commit, unique("L"), owner=seller, amount=Decimal("50000")),
                    "commit",
                    "0.75",
                ),
                standing(
                    events.opened(best_case, unique("L"), owner=seller, amount=Decimal("20000")),
                    "best_case",
                    "0.4",
                ),
            ],
        )
        await eventually(lambda: _forecast_counts(client, seller, commit=1, best_case=1), timeout=30)

        clock.set(monday + timedelta(seconds=1))
        await eventually(lambda: _snapshots(client, 1), timeout=30)
        [snapshot] = (await client.get("/forecast/snapshots")).json()
        assert (snapshot["id"], snapshot["due_at"]) == (
            "weekly:2026-03-16T00:00:00+00:00",
            monday.isoformat(),
        )
        again = await service.store.db["timers"].find_one({"_id": "forecast-snapshot:weekly"})
        assert again is not None and again["due_at"] == monday + timedelta(days=7)

        # During the week: the best case is committed at a higher amount, the commit is won.
        tuesday = monday + timedelta(days=1)
        lead = unique("L")
        raised = events.moved(
            best_case, "demo", "negotiation", 1, lead_id=lead, owner=seller, amount=Decimal("25000")
        )
        await publish_all(
            stack_backends.kafka_bootstrap,
            [
                standing(raised.model_copy(update={"changed_at": tuesday}), "commit", "0.75"),
                events.won(commit, unique("L"), owner=seller, amount=Decimal("50000"), won_at=tuesday),
            ],
        )
        await eventually(lambda: _forecast_counts(client, seller, commit=1, best_case=0), timeout=30)
        answer = (await client.get("/forecast/changes", params={"period": "2026-Q2", "by": "rep"})).json()
        mine = {d["deal_id"]: d["changes"] for d in answer["deals"] if d["rep"] == seller}
        assert mine == {best_case: ["category", "amount"], commit: ["won"]}
        [line] = [i for i in answer["items"] if i["rep"] == seller]
        assert line["category_moves"] == {"best_case->commit": {"count": 1, "amount": 25000.0}}
        assert line["won"] == {"count": 1, "amount": 50000.0}
        assert line["amount_changes"] == {"count": 1, "amount": 5000.0}
        assert line["categories"]["commit"]["then"]["amount"] == 50000.0
        assert line["categories"]["commit"]["now"]["amount"] == 25000.0
        assert answer["since"]["id"] == snapshot["id"]


async def _forecast_counts(client: Any, seller: str, *, commit: int, best_case: int) -> bool:
    answer = (await client.get("/forecast", params={"period": "2026-Q2", "by": "rep"})).json()
    lines = [i for i in answer["items"] if i["rep"] == seller]
    return bool(
        lines
        and lines[0]["categories"]["commit"]["count"] == commit
        and lines[0]["categories"]["best_case"]["count"] == best_case
    )


async def _snapshots(client: Any, count: int) -> bool:
    return len((await client.get("/forecast/snapshots")).json()) == count
