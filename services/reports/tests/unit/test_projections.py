"""The projections on the in-memory unit of work: each event's figures, a duplicate and a reordering
changing nothing, dimensions learnt late reaching the figures already counted."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest

from kariz_reports.adapters.in_memory import InMemoryReportsUnitOfWork
from kariz_reports.domain.periods import Year, between
from kariz_reports.entrypoints import kafka
from kariz_reports.service_layer import views
from kariz_shared.contracts.events import Event, LeadsMerged
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork

MARCH = between(date(2026, 3, 1), date(2026, 3, 31))


class Teams:
    def team_of(self, email: str) -> str | None:
        return {"alex@kariz.test": "emea", "sam@kariz.test": "emea", "kim@kariz.test": "apac"}.get(email)


def units() -> InMemoryUnitsOfWork[InMemoryReportsUnitOfWork]:
    return InMemoryUnitsOfWork(InMemoryReportsUnitOfWork(teams=Teams()))


async def fold(all_events: list[Event], into: InMemoryUnitsOfWork[InMemoryReportsUnitOfWork] | None = None):  # type: ignore[no-untyped-def]
    u = into or units()
    table = kafka.subscriptions()
    for event in all_events:
        await u.handle(table[type(event)], event)
    return u


async def answer(
    u: InMemoryUnitsOfWork[InMemoryReportsUnitOfWork], report: str, by: str = "all", scope: str = "*"
) -> dict[str, Any]:
    query = views.ReportQuery(report, by, MARCH, Year(), scope)
    return await u.read(lambda uow: views.report(uow, query))


def story(events: Any) -> list[Event]:  # type: ignore[no-untyped-def]
    """Two leads to a won and a lost deal, one disqualified, activities and a breach."""
    return [
        events.captured("L-1"),
        events.activity("L-1", "A-0", reaching=False),
        events.activity("L-1", "A-1"),
        events.overdue("L-1"),
        events.qualified("L-1"),
        events.opened("D-1", "L-1"),
        events.moved("D-1", "qualification", "discovery", 2),
        events.moved("D-1", "discovery", "proposal", 3),
        events.won("D-1", "L-1", cycle_days=10),
        events.captured("L-2", owner="sam@kariz.test", source="web_form", campaign=None),
        events.disqualified("L-2", owner="sam@kariz.test"),
        events.captured("L-3", owner="kim@kariz.test", company={"name": "Initech", "size": 5000}),
        events.qualified("L-3", owner="kim@kariz.test", company={"name": "Initech", "size": 5000}),
        events.opened("D-2", "L-3", owner="kim@kariz.test"),
        events.moved("D-2", "qualification", "proposal", 1, lead_id="L-3", owner="kim@kariz.test"),
        events.lost("D-2", "L-3", owner="kim@kariz.test", cycle_days=4),
    ]


async def test_the_funnel_counts_each_step_once(events) -> None:  # type: ignore[no-untyped-def]
    u = await fold(story(events))
    whole = (await answer(u, "funnel"))["all"]
    assert {k: whole[k] for k in ("captured", "contacted", "qualified", "deal_opened", "won")} == {
        "captured": 3,
        "contacted": 1,
        "qualified": 2,
        "deal_opened": 2,
        "won": 1,
    }
    assert whole["qualified_to_deal_opened"] == 1.0 and whole["captured_to_won"] == round(1 / 3, 4)


async def test_a_deal_counts_under_its_leads_source_though_its_events_name_none(events) -> None:  # type: ignore[no-untyped-def]
    u = await fold(story(events))
    items = {i["source"]: i for i in (await answer(u, "win-rate", by="source"))["items"]}
    assert (items["referral"]["won"], items["referral"]["lost"]) == (1, 1)
    funnel = {i["source"]: i for i in (await answer(u, "funnel", by="source"))["items"]}
    assert (funnel["web_form"]["captured"], funnel["web_form"]["qualified"]) == (1, 0)
    sizes = {i["company_size"]: i["won"] for i in (await answer(u, "win-rate", by="company_size"))["items"]}
    assert sizes == {"51-200": 1, "1001+": 0}


async def test_teams_reps_and_their_scopes(events) -> None:  # type: ignore[no-untyped-def]
    u = await fold(story(events))
    by_team = {i["team"]: i["captured"] for i in (await answer(u, "funnel", by="team"))["items"]}
    assert by_team == {"emea": 2, "apac": 1}
    emea = (await answer(u, "funnel", scope="team:emea"))["all"]
    assert (emea["captured"], emea["won"]) == (2, 1)
    mine = (await answer(u, "funnel", scope="rep:sam@kariz.test"))["all"]
    assert (mine["captured"], mine["qualified"], mine["won"]) == (1, 0, 0)


async def test_cycle_outcomes_stages_and_activity(events) -> None:  # type: ignore[no-untyped-def]
    u = await fold(story(events))
    cycle = (await answer(u, "cycle"))["all"]
    assert cycle["won"] == {"closed": 1, "average_days": 10.0, "median_days": 10.0}
    assert cycle["all"] == {"closed": 2, "average_days": 7.0, "median_days": 7.0}
    outcomes = (await answer(u, "outcomes"))["all"]
    assert outcomes["loss_reasons"] == [{"name": "chose a competitor", "count": 1}]
    assert outcomes["competitor_losses"] == 1
    assert outcomes["lost_at_stage"] == [{"name": "proposal", "count": 1}]
    assert outcomes["disqualification_reasons"] == [{"name": "no budget", "count": 1}]
    stages = {s["stage"]: s for s in (await answer(u, "stages"))["all"]["stages"]}
    assert (stages["qualification"]["reached"], stages["qualification"]["went_on"]) == (2, 2)
    assert (stages["proposal"]["reached"], stages["proposal"]["lost_here"]) == (2, 1)
    assert stages["discovery"]["median_days_in_stage"] == 3.0
    assert stages["qualification"]["p90_days_in_stage"] == 2.0
    done = (await answer(u, "activity", by="rep"))["items"]
    alex = next(i for i in done if i["rep"] == "alex@kariz.test")
    assert (alex["activities"], alex["contacted"], alex["sla_breaches"]) == (2, 1, 1)
    assert alex["by_outcome"] == [{"name": "no_answer", "count": 1}, {"name": "reached", "count": 1}]
    assert alex["first_contact_median_hours"] == 1.0


async def test_velocity_counts_the_deals_open_at_the_periods_end(events) -> None:  # type: ignore[no-untyped-def]
    u = await fold([*story(events), events.captured("L-4"), events.opened("D-4", "L-4")])
    v = (await answer(u, "velocity"))["all"]
    assert (v["open_deals"], v["win_rate"], v["average_won_amount"]) == (1, 0.5, "48000.00")
    # 1 open deal x 48,000 x 0.5 / 7 days (the average of the 10- and 4-day cycles).
    assert (v["average_cycle_days"], v["velocity_per_day"]) == (7.0, "3428.57")


async def test_a_duplicate_changes_nothing(events) -> None:  # type: ignore[no-untyped-def]
    once = await fold(story(events))
    twice = await fold(story(events) + story(events))
    assert twice.uow.figures.by_key == once.uow.figures.by_key


@pytest.mark.parametrize("seed", range(4))
async def test_any_order_gives_the_same_figures(events, seed: int) -> None:  # type: ignore[no-untyped-def]
    in_order = await fold(story(events))
    shuffled = story(events)
    # Deterministic orders: reversed, and rotations that put wins before openings and captures.
    orders = [
        shuffled[::-1],
        shuffled[5:] + shuffled[:5],
        shuffled[8:] + shuffled[:8],
        shuffled[1::2] + shuffled[::2],
    ]
    reordered = await fold(orders[seed])
    assert reordered.uow.figures.by_key == in_order.uow.figures.by_key


async def test_a_win_before_its_capture_moves_to_the_leads_source_when_the_capture_comes(events) -> None:  # type: ignore[no-untyped-def]
    u = await fold([events.opened("D-1", "L-1"), events.won("D-1", "L-1")])
    before = {i["source"] for i in (await answer(u, "win-rate", by="source"))["items"]}
    assert before == set()  # no source known yet: counted in all only
    assert (await answer(u, "win-rate"))["all"]["won"] == 1
    await fold([events.captured("L-1", source="partner")], into=u)
    after = {i["source"]: i["won"] for i in (await answer(u, "win-rate", by="source"))["items"]}
    assert after == {"partner": 1}
    assert (await answer(u, "win-rate"))["all"]["won"] == 1


async def test_a_merged_duplicate_leaves_the_funnel(events) -> None:  # type: ignore[no-untyped-def]
    u = await fold([events.captured("L-1"), events.captured("L-9")])
    merged = LeadsMerged(
        lead_id="L-1", merged_lead_id="L-9", owner=events.rep, merged_owner=events.rep, merged_at=events.now
    )
    await fold([merged, copy.deepcopy(merged)], into=u)
    assert (await answer(u, "funnel"))["all"]["captured"] == 1


async def test_each_answer_has_the_previous_period_and_the_trailing_average(events) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    # One capture in March and three in February, in the 31 days before March.
    feb = [events.captured(f"F-{i}", captured_at=events.now - timedelta(days=20 + i)) for i in range(3)]
    u = await fold([events.captured("L-1"), *feb])
    query = views.ReportQuery("funnel", "all", between(date(2026, 3, 1), date(2026, 3, 31)), Year(), "*")
    a = await u.read(lambda uow: views.report(uow, query))
    assert a["previous_period"]["from"] == "2026-01-29"  # as many days (31) just before
    assert (a["all"]["captured"], a["all"]["previous"]["captured"]) == (1, 3)
    assert a["all"]["trailing_average"]["captured"] == 0.75
    assert len(a["trailing_periods"]) == 4


def test_every_consumed_event_has_a_handler() -> None:
    # Ten the reports count, and DealUpdated, which moves a deal in the forecast.
    assert len(kafka.subscriptions()) == 11


async def test_a_loss_is_no_going_on_from_the_stage_it_was_lost_at(events) -> None:  # type: ignore[no-untyped-def]
    # Deals moves a lost deal "forward" to its lost stage: the stage it left did not convert.
    u = await fold(
        [
            events.captured("L-1"),
            events.qualified("L-1"),
            events.opened("D-1", "L-1"),
            events.moved("D-1", "qualification", "proposal", 1),
            events.moved("D-1", "proposal", "lost", 2),
            events.lost("D-1", "L-1", cycle_days=3),
        ]
    )
    stages = {s["stage"]: s for s in (await answer(u, "stages"))["all"]["stages"]}
    assert (stages["qualification"]["reached"], stages["qualification"]["went_on"]) == (1, 1)
    assert (stages["proposal"]["reached"], stages["proposal"]["went_on"]) == (1, 0)
    assert stages["proposal"]["lost_here"] == 1


def test_a_batchs_bumps_are_gathered_in_order_so_each_row_moves_once() -> None:
    from datetime import date
    from decimal import Decimal

    from kariz_reports.domain.figures import Bump, RowKey, gather

    row: RowKey = (date(2026, 3, 2), "won", "*", "all", "*")
    first = Bump(count=1, amount=Decimal(10), samples_set={("-", "deal:D-1"): 3.0})
    first.facets["price"] += 1
    # The next event of the batch takes the deal's sample back and counts another deal.
    second = Bump(count=1, amount=Decimal(5), samples_unset={("-", "deal:D-1")})
    second.facets["price"] += 1
    pending: dict[RowKey, Bump] = {}
    gather(pending, {row: first})
    gather(pending, {row: second})
    merged = pending[row]
    assert (merged.count, merged.amount, dict(merged.facets)) == (2, Decimal(15), {"price": 2})
    assert (merged.samples_set, merged.samples_unset) == ({}, {("-", "deal:D-1")})
    # Set again by a third: the latest word wins.
    gather(pending, {row: Bump(samples_set={("-", "deal:D-1"): 4.0})})
    assert (merged.samples_set, merged.samples_unset) == ({("-", "deal:D-1"): 4.0}, set())
