"""The weekly forecast snapshots on the in-memory unit of work: the schedule in the organisation's time
zone, the timer armed once and again at each firing, a snapshot taken once per due event, and what
changed since: moved in and out of the period, category moves, amount changes, won and lost."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kariz_reports.adapters.in_memory import InMemoryReportsUnitOfWork
from kariz_reports.domain.periods import Year, planned
from kariz_reports.domain.snapshots import SnapshotSchedule, Weekday, timer_key
from kariz_reports.entrypoints import kafka
from kariz_reports.service_layer import snapshots
from kariz_reports.service_layer.snapshots import ChangesQuery
from kariz_reports.settings import ReportsSettings
from kariz_shared.contracts.errors import NotFound
from kariz_shared.contracts.events import Event, ForecastSnapshotDue
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock

ALEX, SAM = "alex@kariz.test", "sam@kariz.test"
START = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)  # a Tuesday
MONDAY = datetime(2026, 3, 16, tzinfo=UTC)
Q2 = planned("2026-Q2", START.date(), Year())
MAY, JUNE, JULY = date(2026, 5, 15), date(2026, 6, 30), date(2026, 7, 1)
WEEKLY = SnapshotSchedule(Weekday.MONDAY, time(0, 0), UTC, "UTC")


class Teams:
    def team_of(self, email: str) -> str | None:
        return {ALEX: "emea", SAM: "emea"}.get(email)


Units = InMemoryUnitsOfWork[InMemoryReportsUnitOfWork]


def units() -> Units:
    return InMemoryUnitsOfWork(InMemoryReportsUnitOfWork(FakeClock(START), teams=Teams()))


async def fold(u: Units, events: list[Event]) -> None:
    table = kafka.subscriptions()
    for event in events:
        await u.handle(table[type(event)], event)


def stand(event: Any, category: str, probability: str, close: date | None) -> Any:
    update = {
        "forecast_category": category,
        "probability": Decimal(probability),
        "expected_close_date": close,
    }
    return event.model_copy(update=update)


async def fire(u: Units, at: datetime) -> list[ForecastSnapshotDue]:
    """Move the clock to ``at``, fire what is due as the timer worker would, and consume it back."""
    assert isinstance(u.clock, FakeClock)
    u.clock.set(at)
    due = [e for e in await u.fire_due_timers() if isinstance(e, ForecastSnapshotDue)]
    for event in due:
        await u.handle(kafka.on_snapshot_due(WEEKLY), event)
    return due


async def the_changes(
    u: Units, by: str = "all", scope: str = "*", since: str | None = None
) -> dict[str, Any]:
    return await u.read(lambda uow: snapshots.changes(uow, ChangesQuery(Q2, by, scope, since)))  # type: ignore[no-any-return]


def test_the_schedule_is_the_weekday_and_time_on_the_organisations_wall_clock() -> None:
    berlin = SnapshotSchedule(Weekday.MONDAY, time(0, 0), ZoneInfo("Europe/Berlin"), "Europe/Berlin")
    # Monday 00:00 in Berlin is Sunday 23:00 UTC in winter, 22:00 in summer (clocks changed 2026-03-29).
    assert berlin.next_after(START) == datetime(2026, 3, 15, 23, tzinfo=UTC)
    assert berlin.next_after(datetime(2026, 3, 23, 0, tzinfo=UTC)) == datetime(2026, 3, 29, 22, tzinfo=UTC)
    # Strictly after: at the due time itself, the next week's.
    assert WEEKLY.next_after(MONDAY) == MONDAY + timedelta(days=7)
    friday = SnapshotSchedule(Weekday.FRIDAY, time(17, 30), UTC, "UTC")
    assert friday.next_after(START) == datetime(2026, 3, 13, 17, 30, tzinfo=UTC)
    assert WEEKLY.is_due_time(MONDAY) and not WEEKLY.is_due_time(MONDAY + timedelta(hours=1))
    assert not friday.is_due_time(MONDAY)


def test_the_settings_name_the_weekday_and_time() -> None:
    settings = ReportsSettings(
        forecast_snapshot_weekday="friday", forecast_snapshot_time="17:30", report_time_zone="Asia/Tehran"
    )
    schedule = settings.snapshot_schedule
    assert (schedule.weekday, schedule.at, schedule.zone_name) == (
        Weekday.FRIDAY,
        time(17, 30),
        "Asia/Tehran",
    )
    assert ReportsSettings().snapshot_schedule.weekday is Weekday.MONDAY
    with pytest.raises(ValueError, match="forecast_snapshot_weekday"):
        ReportsSettings(forecast_snapshot_weekday="someday")


async def test_the_timer_is_armed_once_for_the_next_due_time_and_again_when_a_schedule_changes() -> None:
    u = units()
    await u.run(lambda uow: snapshots.arm_snapshots(uow, WEEKLY))
    armed = u.uow.timers.armed[timer_key("weekly")]
    assert armed.due_at == MONDAY
    assert armed.event == ForecastSnapshotDue(
        snapshot_id="weekly:2026-03-16T00:00:00+00:00", schedule="weekly", time_zone="UTC", due_at=MONDAY
    )
    # Started again (another replica, a restart): the armed timer stays, even once it is overdue.
    u.clock.set(MONDAY + timedelta(hours=2))  # type: ignore[attr-defined]
    await u.run(lambda uow: snapshots.arm_snapshots(uow, WEEKLY))
    assert u.uow.timers.armed[timer_key("weekly")].version == armed.version
    # Another weekday configured: armed again at its next due time.
    friday = SnapshotSchedule(Weekday.FRIDAY, time(17, 30), UTC, "UTC")
    await u.run(lambda uow: snapshots.arm_snapshots(uow, friday))
    assert u.uow.timers.armed[timer_key("weekly")].due_at == datetime(2026, 3, 20, 17, 30, tzinfo=UTC)


async def test_a_snapshot_keeps_every_open_forecast_deal_once_and_arms_the_next_week(events: Any) -> None:
    u = units()
    await fold(
        u,
        [
            stand(events.opened("D-1", "L-1", amount=Decimal("50000")), "commit", "0.75", MAY),
            stand(events.opened("D-2", "L-2", owner=SAM, amount=Decimal("20000")), "best_case", "0.4", JULY),
            # No close date, a category counting nowhere, a closed deal: not in a forecast, not kept.
            stand(events.opened("D-3", "L-3", amount=Decimal("9000")), "pipeline", "0.1", None),
            stand(events.opened("D-4", "L-4", amount=Decimal("9000")), "omitted", "0", MAY),
            stand(events.opened("D-5", "L-5", amount=Decimal("9000")), "commit", "0.9", MAY),
            events.lost("D-5", "L-5"),
        ],
    )
    await u.run(lambda uow: snapshots.arm_snapshots(uow, WEEKLY))
    assert await fire(u, MONDAY - timedelta(seconds=1)) == []  # not due yet: nothing fires
    [due] = await fire(u, MONDAY + timedelta(seconds=5))
    [(taken, lines)] = u.uow.snapshots.stored.values()
    assert (taken.id, taken.due_at, taken.taken_at, taken.deals) == (
        due.snapshot_id,
        MONDAY,
        MONDAY + timedelta(seconds=5),
        2,
    )
    assert sorted((x.deal_id, x.rep, x.team, x.close, x.category, x.amount, x.weighted) for x in lines) == [
        ("D-1", ALEX, "emea", MAY, "commit", Decimal("50000"), Decimal("37500.00")),
        ("D-2", SAM, "emea", JULY, "best_case", Decimal("20000"), Decimal("8000.00")),
    ]
    assert u.uow.timers.armed[timer_key("weekly")].due_at == MONDAY + timedelta(days=7)
    # The due event again (a redelivery past the inbox): still one snapshot, the same lines.
    await u.handle(kafka.on_snapshot_due(WEEKLY), due)
    assert list(u.uow.snapshots.stored) == [due.snapshot_id]
    assert u.uow.snapshots.stored[due.snapshot_id][1] == lines
    assert u.uow.timers.armed[timer_key("weekly")].due_at == MONDAY + timedelta(days=7)
    # A week on, the next one.
    [second] = await fire(u, MONDAY + timedelta(days=7))
    assert [s.id for s in await u.read(lambda uow: uow.snapshots.listing(5))] == [
        second.snapshot_id,
        due.snapshot_id,
    ]


def the_week(events: Any) -> tuple[list[Event], list[Event]]:
    """Six deals at the snapshot and what the week did to them, and a seventh opened during it."""
    before = [
        stand(events.opened("A", "L-A", amount=Decimal("50000")), "commit", "0.75", MAY),
        stand(events.opened("B", "L-B", amount=Decimal("20000")), "best_case", "0.40", JUNE),
        stand(events.opened("C", "L-C", amount=Decimal("10000")), "pipeline", "0.10", JUNE),
        stand(events.opened("D", "L-D", amount=Decimal("15000")), "pipeline", "0.10", JULY),
        stand(events.opened("E", "L-E", amount=Decimal("12000")), "commit", "0.80", MAY),
        stand(events.opened("F", "L-F", amount=Decimal("30000")), "commit", "0.90", MAY),
    ]
    day = MONDAY + timedelta(days=2)

    def move(deal: str, category: str, probability: str, close: date | None, amount: str) -> Event:
        changed = events.moved(deal, "demo", "proposal", 1, lead_id=f"L-{deal}", amount=Decimal(amount))
        return stand(changed.model_copy(update={"changed_at": day}), category, probability, close)  # type: ignore[no-any-return]

    after = [
        move("A", "commit", "0.75", MAY, "60000"),  # amount up
        move("B", "commit", "0.75", JUNE, "20000"),  # best_case -> commit
        move("C", "pipeline", "0.10", JULY, "10000"),  # slips to Q3: out
        move("D", "pipeline", "0.10", JUNE, "15000"),  # pulled into Q2: in
        events.lost("E", "L-E", lost_at=day, amount=Decimal("12000")),
        events.won("F", "L-F", won_at=day, amount=Decimal("32000")),
        stand(events.opened("G", "L-G", amount=Decimal("5000"), opened_at=day), "pipeline", "0.10", MAY),
    ]
    return before, after


async def test_the_changes_since_the_snapshot_moved_in_out_category_amount_won_lost(events: Any) -> None:
    u = units()
    before, after = the_week(events)
    await fold(u, before)
    await u.run(lambda uow: snapshots.arm_snapshots(uow, WEEKLY))
    [due] = await fire(u, MONDAY)
    # Nothing happened since: nothing changed.
    quiet = await the_changes(u)
    assert quiet["deals"] == [] and quiet["since"]["id"] == due.snapshot_id
    assert quiet["all"]["categories"]["commit"]["change"] == {
        "count": 0,
        "amount": 0.0,
        "weighted_amount": 0.0,
    }

    await fold(u, after)
    answer = await the_changes(u)
    assert {d["deal_id"]: d["changes"] for d in answer["deals"]} == {
        "A": ["amount"],
        "B": ["category"],
        "C": ["moved_out"],
        "D": ["moved_in"],
        "E": ["lost"],
        "F": ["won"],
        "G": ["moved_in"],
    }
    whole = answer["all"]
    assert whole["moved_in"] == {"count": 2, "amount": 20000.0}  # D and G
    assert whole["moved_out"] == {"count": 1, "amount": 10000.0}  # C, as it was
    assert whole["won"] == {"count": 1, "amount": 32000.0}  # F, at the amount it was won at
    assert whole["lost"] == {"count": 1, "amount": 12000.0}
    assert whole["category_moves"] == {"best_case->commit": {"count": 1, "amount": 20000.0}}
    assert whole["amount_changes"] == {"count": 1, "amount": 10000.0}
    categories = whole["categories"]
    assert categories["commit"]["then"] == {"count": 3, "amount": 92000.0, "weighted_amount": 74100.0}
    assert categories["commit"]["now"] == {"count": 2, "amount": 80000.0, "weighted_amount": 60000.0}
    assert categories["commit"]["change"] == {"count": -1, "amount": -12000.0, "weighted_amount": -14100.0}
    assert categories["best_case"]["change"] == {"count": -1, "amount": -20000.0, "weighted_amount": -8000.0}
    assert categories["pipeline"]["then"]["count"] == 1 and categories["pipeline"]["now"]["count"] == 2
    c = next(d for d in answer["deals"] if d["deal_id"] == "C")
    assert c["then"] == {
        "close": "2026-06-30",
        "category": "pipeline",
        "amount": 10000.0,
        "weighted_amount": 1000.0,
    }
    assert c["now"] is None and c["closed"] is None
    f = next(d for d in answer["deals"] if d["deal_id"] == "F")
    assert f["closed"] == {
        "outcome": "won",
        "at": (MONDAY + timedelta(days=2)).isoformat(),
        "amount": 32000.0,
    }
    # Q3's view of the same week: C moved in, D moved out.
    q3 = planned("2026-Q3", START.date(), Year())
    later = await u.read(lambda uow: snapshots.changes(uow, ChangesQuery(q3, "all", "*")))
    assert {d["deal_id"]: d["changes"] for d in later["deals"]} == {"C": ["moved_in"], "D": ["moved_out"]}


async def test_a_deal_handed_to_another_rep_left_one_and_reached_the_other_and_a_rep_sees_their_own(
    events: Any,
) -> None:
    u = units()
    await fold(u, [stand(events.opened("H", "L-H", amount=Decimal("40000")), "commit", "0.8", MAY)])
    await u.run(lambda uow: snapshots.arm_snapshots(uow, WEEKLY))
    await fire(u, MONDAY)
    handed = events.moved("H", "demo", "proposal", 1, lead_id="L-H", owner=SAM, amount=Decimal("40000"))
    await fold(
        u, [stand(handed.model_copy(update={"changed_at": MONDAY + timedelta(days=1)}), "commit", "0.8", MAY)]
    )
    by_rep = await the_changes(u, "rep")
    assert [(i["rep"], i["moved_out"]["count"], i["moved_in"]["count"]) for i in by_rep["items"]] == [
        (ALEX, 1, 0),
        (SAM, 0, 1),
    ]
    # The team's and everyone's: the deal stayed, nothing changed.
    assert (await the_changes(u, scope="team:emea"))["deals"] == []
    alex = await the_changes(u, scope=f"rep:{ALEX}")
    assert [(d["deal_id"], d["changes"]) for d in alex["deals"]] == [("H", ["moved_out"])]
    sam = await the_changes(u, scope=f"rep:{SAM}")
    assert [(d["deal_id"], d["changes"]) for d in sam["deals"]] == [("H", ["moved_in"])]


async def test_since_names_an_older_snapshot_and_none_taken_or_an_unknown_one_is_not_found(
    events: Any,
) -> None:
    u = units()
    with pytest.raises(NotFound, match="since: no forecast snapshot has been taken yet"):
        await the_changes(u)
    await fold(u, [stand(events.opened("A", "L-A", amount=Decimal("50000")), "commit", "0.75", MAY)])
    await u.run(lambda uow: snapshots.arm_snapshots(uow, WEEKLY))
    [first] = await fire(u, MONDAY)
    moved = events.moved("A", "demo", "proposal", 1, lead_id="L-A", amount=Decimal("55000"))
    await fold(
        u, [stand(moved.model_copy(update={"changed_at": MONDAY + timedelta(days=1)}), "commit", "0.75", MAY)]
    )
    await fire(u, MONDAY + timedelta(days=7))
    # Since the newest: nothing; since the first: the amount change.
    assert (await the_changes(u))["deals"] == []
    older = await the_changes(u, since=first.snapshot_id)
    assert [d["changes"] for d in older["deals"]] == [["amount"]]
    with pytest.raises(NotFound, match="since: no forecast snapshot 'weekly:1999'"):
        await the_changes(u, since="weekly:1999")
