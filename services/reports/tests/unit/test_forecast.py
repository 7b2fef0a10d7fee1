"""The forecast against targets on the in-memory unit of work: open deals by expected close day and
forecast category, moved by later events and never by older or repeated ones; quotas and calls with
who may set them; the periods they are for."""

from __future__ import annotations

import copy
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from kariz_reports.adapters.in_memory import InMemoryReportsUnitOfWork
from kariz_reports.domain.periods import Calendar, PeriodError, Year, planned
from kariz_reports.entrypoints import kafka
from kariz_reports.service_layer import forecast
from kariz_reports.service_layer.forecast import ForecastQuery, SetQuota, SubmitCall
from kariz_shared.contracts.errors import Forbidden, RuleViolation
from kariz_shared.contracts.events import DealFieldChange, DealUpdated, Event
from kariz_shared.contracts.identity import Caller, Role, Roster
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock

ALEX, SAM, KIM = "alex@kariz.test", "sam@kariz.test", "kim@kariz.test"
Q2 = planned("2026-Q2", date(2026, 3, 10), Year())
TEAMS = Roster.of({"emea": [ALEX, SAM], "apac": [KIM]})


class Teams:
    def team_of(self, email: str) -> str | None:
        return {ALEX: "emea", SAM: "emea", KIM: "apac"}.get(email)


def units() -> InMemoryUnitsOfWork[InMemoryReportsUnitOfWork]:
    clock = FakeClock(datetime(2026, 3, 10, 9, 30, tzinfo=UTC))
    return InMemoryUnitsOfWork(InMemoryReportsUnitOfWork(clock, teams=Teams()))


async def fold(events: list[Event], into: InMemoryUnitsOfWork[InMemoryReportsUnitOfWork] | None = None):  # type: ignore[no-untyped-def]
    u = into or units()
    table = kafka.subscriptions()
    for event in events:
        await u.handle(table[type(event)], event)
    return u


async def the_forecast(u: Any, by: str = "all", scope: str = "*", period: Any = Q2) -> dict[str, Any]:
    return await u.read(lambda uow: forecast.forecast(uow, ForecastQuery(period, by, scope)))  # type: ignore[no-any-return]


def stand(event: Any, category: str, probability: str, close: date | None) -> Any:
    return event.model_copy(
        update={
            "forecast_category": category,
            "probability": Decimal(probability),
            "expected_close_date": close,
        }
    )


def updated(
    deal_id: str, at: datetime, changes: list[DealFieldChange], owner: str = ALEX, **more: Any
) -> DealUpdated:
    return DealUpdated(
        deal_id=deal_id,
        lead_id=f"L-{deal_id}",
        owner=owner,
        pipeline="default",
        stage=more.pop("stage", "proposal"),
        changes=changes,
        amount=more.pop("amount", None),
        updated_at=at,
        **more,
    )


def quarter(events: Any) -> list[Event]:
    """Four deals of Alex's and one of Kim's: a commit, a best case and a pipeline deal closing in Q2, one
    closing in Q3, one won in Q2."""
    may, june, july = date(2026, 5, 15), date(2026, 6, 30), date(2026, 7, 1)
    return [
        stand(events.opened("D-1", "L-D-1", amount=Decimal("50000")), "pipeline", "0.10", may),
        stand(
            events.moved("D-1", "qualification", "negotiation", 5, lead_id="L-D-1", amount=Decimal("50000")),
            "commit",
            "0.75",
            may,
        ),
        stand(events.opened("D-2", "L-D-2", amount=Decimal("20000")), "best_case", "0.40", june),
        stand(events.opened("D-3", "L-D-3", amount=Decimal("10000")), "pipeline", "0.10", july),
        stand(events.opened("D-4", "L-D-4", owner=KIM, amount=Decimal("8000")), "pipeline", "0.10", june),
        # Won in Q2 (the win's day, not a close date, puts it in the period).
        stand(events.opened("D-5", "L-D-5", amount=Decimal("30000")), "commit", "0.90", may),
        events.won("D-5", "L-D-5", amount=Decimal("30000"), won_at=datetime(2026, 4, 20, 10, tzinfo=UTC)),
    ]


async def test_open_deals_count_by_category_on_their_close_day_and_wins_as_closed_won(events) -> None:  # type: ignore[no-untyped-def]
    u = await fold(quarter(events))
    whole = (await the_forecast(u))["all"]
    assert whole["categories"] == {
        "pipeline": {"count": 1, "amount": 8000.0, "weighted_amount": 800.0},
        "best_case": {"count": 1, "amount": 20000.0, "weighted_amount": 8000.0},
        "commit": {"count": 1, "amount": 50000.0, "weighted_amount": 37500.0},
        "closed_won": {"count": 1, "amount": 30000.0, "weighted_amount": 30000.0},
    }
    # D-3 closes in July: next quarter's. Roll-ups: won + commit, + best case.
    assert (whole["commit_forecast"], whole["best_case_forecast"]) == (80000.0, 100000.0)
    assert (whole["open_amount"], whole["weighted_forecast"]) == (78000.0, 76300.0)
    assert whole["quota"] is None and whole["attainment"] is None
    q3 = await the_forecast(u, period=planned("2026-Q3", date(2026, 3, 10), Year()))
    assert q3["all"]["categories"]["pipeline"] == {"count": 1, "amount": 10000.0, "weighted_amount": 1000.0}


async def test_by_rep_and_team_and_what_a_manager_and_a_rep_see(events) -> None:  # type: ignore[no-untyped-def]
    u = await fold(quarter(events))
    by_rep = await the_forecast(u, "rep")
    assert [(i["rep"], i["commit_forecast"]) for i in by_rep["items"]] == [(ALEX, 80000.0), (KIM, 0.0)]
    by_team = await the_forecast(u, "team")
    assert [(i["team"], i["open_amount"]) for i in by_team["items"]] == [("apac", 8000.0), ("emea", 70000.0)]
    # A manager of emea reads emea's figures; Kim, a rep, her own.
    emea = await the_forecast(u, "rep", scope="team:emea")
    assert [i["rep"] for i in emea["items"]] == [ALEX] and emea["all"]["open_amount"] == 70000.0
    kim = await the_forecast(u, scope=f"rep:{KIM}")
    assert kim["all"]["open_amount"] == 8000.0
    assert kim["all"]["categories"]["closed_won"]["count"] == 0


async def test_a_later_move_or_edit_moves_the_deal_and_an_older_or_repeated_event_does_not(events) -> None:  # type: ignore[no-untyped-def]
    story = quarter(events)
    u = await fold(story)
    base = datetime(2026, 3, 20, 9, tzinfo=UTC)
    # D-2 goes to negotiation (commit), then its close moves to July (out of Q2), then back to June with
    # a new amount and owner Sam; an older move told late and a repeat change nothing.
    later = [
        stand(
            events.moved(
                "D-2", "demo", "negotiation", 1, lead_id="L-D-2", changed_at=base, amount=Decimal("20000")
            ),
            "commit",
            "0.75",
            date(2026, 6, 30),
        ),
        updated(
            "D-2",
            base + timedelta(days=1),
            [DealFieldChange(field="expected_close_date", old="2026-06-30", new="2026-07-15")],
            amount=Decimal("20000"),
        ),
        updated(
            "D-2",
            base + timedelta(days=2),
            [
                DealFieldChange(field="expected_close_date", old="2026-07-15", new="2026-06-01"),
                DealFieldChange(field="amount", old="20000", new="25000"),
                DealFieldChange(field="owner", old=ALEX, new=SAM),
            ],
            owner=SAM,
            amount=Decimal("25000"),
        ),
        stand(
            events.moved(
                "D-2", "qualification", "demo", 1, lead_id="L-D-2", changed_at=base - timedelta(days=5)
            ),
            "best_case",
            "0.40",
            date(2026, 6, 30),
        ),
    ]
    await fold(later, u)
    await fold(later[-2:], u)  # redelivered
    whole = (await the_forecast(u))["all"]
    assert whole["categories"]["best_case"]["count"] == 0
    assert whole["categories"]["commit"] == {"count": 2, "amount": 75000.0, "weighted_amount": 56250.0}
    by_rep = {i["rep"]: i for i in (await the_forecast(u, "rep"))["items"]}
    assert by_rep[SAM]["categories"]["commit"]["amount"] == 25000.0
    assert by_rep[ALEX]["categories"]["commit"]["amount"] == 50000.0

    # The same events in any order end in the same forecast.
    shuffled = copy.copy(story + later)
    random.Random(4).shuffle(shuffled)
    assert (await the_forecast(await fold(shuffled)))["all"] == whole


async def test_a_cleared_close_date_a_loss_and_an_event_from_before_the_forecast(events) -> None:  # type: ignore[no-untyped-def]
    u = await fold(quarter(events))
    at = datetime(2026, 3, 25, tzinfo=UTC)
    # An edit published before the forecast read deals (no probability) still moves the close date by its
    # change list, and keeps the stage's category.
    old_format = updated(
        "D-1",
        at,
        [DealFieldChange(field="expected_close_date", old="2026-05-15", new=None)],
        amount=Decimal("50000"),
    )
    assert old_format.probability is None
    await fold([old_format], u)
    assert (await the_forecast(u))["all"]["categories"]["commit"]["count"] == 0
    await fold(
        [
            updated(
                "D-1",
                at + timedelta(days=1),
                [DealFieldChange(field="expected_close_date", old=None, new="2026-05-20")],
                amount=Decimal("50000"),
            )
        ],
        u,
    )
    assert (await the_forecast(u))["all"]["categories"]["commit"]["count"] == 1
    await fold([events.lost("D-1", "L-D-1", lost_at=at + timedelta(days=2))], u)
    assert (await the_forecast(u))["all"]["categories"]["commit"]["count"] == 0


def manager(team: str, email: str = "mia@kariz.test") -> Caller:
    return Caller.signed_in(email, frozenset({Role.MANAGER}), team, TEAMS)


def rep(email: str) -> Caller:
    return Caller.signed_in(email, frozenset({Role.REP}), None, TEAMS)


ADMIN = Caller.signed_in("root@kariz.test", frozenset({Role.ADMIN}), None, TEAMS)


def test_who_may_set_whose_quota() -> None:
    assert forecast.quota_for(ADMIN, None, None) == "organisation"
    assert forecast.quota_for(ADMIN, KIM, None) == f"rep:{KIM}"
    assert forecast.quota_for(manager("emea"), ALEX, None) == f"rep:{ALEX}"
    assert forecast.quota_for(manager("emea"), None, "emea") == "team:emea"
    with pytest.raises(Forbidden, match=r"rep: kim@kariz\.test is not in your team"):
        forecast.quota_for(manager("emea"), KIM, None)
    with pytest.raises(Forbidden, match="team: a manager sets the quotas of their own team"):
        forecast.quota_for(manager("emea"), None, "apac")
    with pytest.raises(Forbidden):
        forecast.quota_for(rep(ALEX), ALEX, None)
    with pytest.raises(RuleViolation, match="rep, team: name one of them"):
        forecast.quota_for(ADMIN, ALEX, "emea")


def test_who_calls_for_whom() -> None:
    assert forecast.call_for(rep(ALEX), None, None) == (f"rep:{ALEX}", forecast.CallKind.CALL)
    assert forecast.call_for(manager("emea"), ALEX, None) == (f"rep:{ALEX}", forecast.CallKind.ADJUSTMENT)
    assert forecast.call_for(manager("emea"), None, "emea") == ("team:emea", forecast.CallKind.ADJUSTMENT)
    assert forecast.call_for(ADMIN, None, None) == ("organisation", forecast.CallKind.ADJUSTMENT)
    with pytest.raises(Forbidden, match="a rep submits their own"):
        forecast.call_for(rep(ALEX), SAM, None)
    with pytest.raises(Forbidden, match="not in your team"):
        forecast.call_for(manager("emea"), KIM, None)
    assert not forecast.visible_plans(rep(ALEX), f"rep:{SAM}")
    assert forecast.visible_plans(manager("emea"), f"rep:{SAM}") and forecast.visible_plans(
        manager("emea"), "team:emea"
    )
    assert not forecast.visible_plans(manager("emea"), "team:apac")


async def test_quota_attainment_gap_and_the_newest_calls_with_history(events) -> None:  # type: ignore[no-untyped-def]
    u = await fold(quarter(events))
    clock = u.uow.clock
    await forecast.set_quota(u, SetQuota(Q2.label, f"rep:{ALEX}", Decimal("90000"), "EUR", "mia@kariz.test"))
    clock.advance(timedelta(hours=1))
    raised = await forecast.set_quota(
        u, SetQuota(Q2.label, f"rep:{ALEX}", Decimal("120000"), "EUR", "mia@kariz.test")
    )
    assert [h.amount for h in raised.history] == [Decimal("90000.00")]
    await forecast.set_quota(u, SetQuota(Q2.label, f"rep:{SAM}", Decimal("40000"), "EUR", "mia@kariz.test"))
    await forecast.submit_forecast_call(
        u,
        SubmitCall(
            Q2.label, f"rep:{ALEX}", forecast.CallKind.CALL, Decimal("70000"), Decimal("95000"), None, ALEX
        ),
    )
    clock.advance(timedelta(hours=1))
    await forecast.submit_forecast_call(
        u,
        SubmitCall(
            Q2.label, f"rep:{ALEX}", forecast.CallKind.CALL, Decimal("75000"), Decimal("95000"), None, ALEX
        ),
    )
    await forecast.submit_forecast_call(
        u,
        SubmitCall(
            Q2.label,
            f"rep:{ALEX}",
            forecast.CallKind.ADJUSTMENT,
            Decimal("60000"),
            Decimal("80000"),
            "D-1 slips",
            "mia@kariz.test",
        ),
    )
    items = {i["rep"]: i for i in (await the_forecast(u, "rep"))["items"]}
    alex = items[ALEX]
    assert (alex["quota"], alex["attainment"], alex["gap"], alex["commit_gap"]) == (
        120000.0,
        0.25,
        90000.0,
        40000.0,
    )
    assert alex["call"]["commit"] == 75000.0 and alex["adjusted"]["note"] == "D-1 slips"
    # Sam has a quota and no deal: a line of all gap.
    assert (items[SAM]["quota"], items[SAM]["gap"], items[SAM]["open_amount"]) == (40000.0, 40000.0, 0.0)
    assert len(await u.read(lambda uow: uow.calls.of_period(Q2.label))) == 3


async def test_a_bad_quota_or_call_is_refused_naming_the_field_and_nothing_is_kept() -> None:
    u = units()
    with pytest.raises(RuleViolation, match="amount: greater than 0"):
        await forecast.set_quota(u, SetQuota(Q2.label, "organisation", Decimal("0"), "EUR", "root"))
    with pytest.raises(RuleViolation, match="currency"):
        await forecast.set_quota(u, SetQuota(Q2.label, "organisation", Decimal("10"), "euro", "root"))
    with pytest.raises(RuleViolation, match="best_case"):
        await forecast.submit_forecast_call(
            u,
            SubmitCall(
                Q2.label, f"rep:{ALEX}", forecast.CallKind.CALL, Decimal("10"), Decimal("5"), None, ALEX
            ),
        )
    with pytest.raises(RuleViolation, match="note: an adjustment says why"):
        await forecast.submit_forecast_call(
            u,
            SubmitCall(
                Q2.label, f"rep:{ALEX}", forecast.CallKind.ADJUSTMENT, Decimal("1"), Decimal("5"), " ", "mia"
            ),
        )
    assert u.uow.quotas.stored == {} and u.uow.calls.stored == []


def test_the_periods_a_quota_or_forecast_may_name() -> None:
    today = date(2026, 3, 10)
    assert (planned("next_quarter", today, Year()).label, planned("next_month", today, Year()).label) == (
        "2026-Q2",
        "2026-04",
    )
    april = Year(fiscal_start_month=4)
    fq1 = planned("FY2026-Q1", today, april)
    assert (fq1.start, fq1.end) == (date(2026, 4, 1), date(2026, 7, 1))
    assert planned("this_quarter", today, april).label == "FY2025-Q4"
    assert (planned("FY2026", today, april).start, planned("2026-02", today, Year()).end) == (
        date(2026, 4, 1),
        date(2026, 3, 1),
    )
    persian = planned("1405-Q1", today, Year(Calendar.PERSIAN))
    assert (persian.start, persian.end) == (date(2026, 3, 21), date(2026, 6, 22))
    for bad, said in (
        ("2026-Q5", "period must be one of"),
        ("2026-13", "no month 13"),
        ("FY2026", "fiscal year starts in month 1"),
    ):
        with pytest.raises(PeriodError, match=said):
            planned(bad, today, Year())
    with pytest.raises(PeriodError, match="FY<year>"):
        planned("2026-Q1", today, april)
