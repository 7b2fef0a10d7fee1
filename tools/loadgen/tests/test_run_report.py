"""The demo's report from the reports service's answers, on constructed answers: the run's campaigns
picked out, summed per source and for the run, and each disagreement with the driver named."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from io import StringIO
from typing import Any

from kariz_loadgen import observe
from kariz_loadgen.journey import Tally
from kariz_loadgen.run_report import cross_check, duration, render, run_report

RUN = "ab12cd34"


def item(source: str, run: str = RUN, **figures: Any) -> dict[str, Any]:
    return {"campaign": f"demo-{run}-{source}", **figures}


def answers() -> dict[str, dict[str, Any]]:
    """Two sources of the run and one of another run (which must not count)."""
    return {
        "funnel": {
            "items": [
                item("web_form", captured=3, contacted=2, qualified=2, deal_opened=2, won=1),
                item("partner", captured=2, contacted=1, qualified=1, deal_opened=1, won=0),
                item("web_form", run="99999999", captured=50, qualified=40, deal_opened=40, won=20),
                {"campaign": "spring-webinar", "captured": 7},
            ]
        },
        "win-rate": {
            "items": [
                item("web_form", won=1, lost=1, won_amount="48000"),
                item("partner", won=0, lost=1, won_amount="0"),
                item("web_form", run="99999999", won=20, lost=20, won_amount="1"),
            ]
        },
        "cycle": {
            "items": [
                item(
                    "web_form",
                    won={"closed": 1, "average_days": 10.0},
                    lost={"closed": 1, "average_days": 4.0},
                    all={"closed": 2, "average_days": 7.0},
                ),
                item(
                    "partner",
                    won={"closed": 0, "average_days": None},
                    lost={"closed": 1, "average_days": 1.0},
                    all={"closed": 1, "average_days": 1.0},
                ),
            ]
        },
        "outcomes": {
            "items": [
                item(
                    "web_form",
                    loss_reasons=[{"name": "price too high", "count": 1}],
                    disqualification_reasons=[{"name": "no need", "count": 1}],
                ),
                item(
                    "partner",
                    loss_reasons=[{"name": "price too high", "count": 1}],
                    disqualification_reasons=[{"name": "no budget", "count": 1}],
                ),
            ]
        },
        "stages": {
            "items": [
                item(
                    "web_form",
                    stages=[
                        {"stage": "qualification", "reached": 2, "went_on": 2, "lost_here": 0},
                        {"stage": "discovery", "reached": 2, "went_on": 1, "lost_here": 1},
                        {"stage": "demo", "reached": 1, "went_on": 1, "lost_here": 0},
                        {"stage": "won", "reached": 1, "went_on": 0, "lost_here": 0},
                    ],
                ),
                item(
                    "partner",
                    stages=[
                        {"stage": "qualification", "reached": 1, "went_on": 1, "lost_here": 0},
                        {"stage": "discovery", "reached": 1, "went_on": 0, "lost_here": 1},
                    ],
                ),
            ]
        },
    }


def matching_tally() -> Tally:
    return Tally(
        captured=5,
        qualified=3,
        disqualified=2,
        deals=3,
        won=1,
        lost=2,
        captured_by_source=Counter({"web_form": 3, "partner": 2}),
        qualified_by_source=Counter({"web_form": 2, "partner": 1}),
        won_by_source=Counter({"web_form": 1}),
        loss_reasons=Counter({"price too high": 2}),
        journeys={
            "D1": ["discovery", "demo", "won"],
            "D2": ["discovery", "lost"],
            "D3": ["discovery", "lost"],
        },
    )


def test_the_run_is_its_campaigns_summed_per_source_and_in_all() -> None:
    r = run_report(answers(), RUN)
    assert [(s.source, s.captured, s.qualified, s.deals, s.won, s.lost) for s in r.by_source] == [
        ("web_form", 3, 2, 2, 1, 1),
        ("partner", 2, 1, 1, 0, 1),
    ]
    assert (r.captured, r.contacted, r.qualified, r.disqualified, r.deals, r.won, r.lost) == (
        5,
        3,
        3,
        2,
        3,
        1,
        2,
    )
    assert r.won_amount == Decimal("48000") and r.win_rate == 1 / 3
    # In the pipeline's order, the stage deals open in first; won and lost are the outcomes' lines.
    assert [(s.stage, s.reached, s.went_on, s.lost_here) for s in r.stages] == [
        ("qualification", 3, 3, 0),
        ("discovery", 3, 1, 2),
        ("demo", 1, 1, 0),
    ]
    assert r.loss_reasons == Counter({"price too high": 2})
    assert r.disqualification_reasons == Counter({"no need": 1, "no budget": 1})
    # Averages weighted by the deals each source closed: (7 x 2 + 1 x 1) / 3 = 5 days.
    assert (r.cycle["all"].closed, r.cycle["all"].average_days) == (3, 5.0)
    assert (r.cycle["won"].closed, r.cycle["won"].average_days) == (1, 10.0)
    assert (r.cycle["lost"].closed, r.cycle["lost"].average_days) == (2, 2.5)


def test_nothing_of_the_run_yet_is_all_zero() -> None:
    empty = {name: {"items": []} for name in answers()}
    r = run_report(empty, RUN)
    assert (r.captured, r.won, r.stages, r.win_rate) == (0, 0, [], None)
    assert r.cycle["all"].closed == 0 and r.cycle["all"].average_days is None
    assert "  all      -" in render(r)


def test_the_cross_check_agrees_when_the_driver_drove_the_same() -> None:
    r = run_report(answers(), RUN)
    assert cross_check(r, matching_tally()) == []
    text = render(r, mismatches=[])
    assert "Cross-check with the driver's own count: agrees" in text
    assert "  all      average 5.0 days, of 3 closed" in text
    assert "  web_form                3         2     67%      2     1     1       50%" in text


def test_the_cross_check_names_each_disagreement() -> None:
    tally = matching_tally()
    tally.won, tally.won_by_source = 2, Counter({"web_form": 2})
    tally.journeys["D3"] = ["discovery", "demo", "lost"]
    mismatches = cross_check(run_report(answers(), RUN), tally)
    assert mismatches == [
        "won: reports 1, driver 2",
        "closed deals with a cycle: reports 3, driver 4",
        "deals that reached each stage: reports {'demo': 1, 'discovery': 3}, "
        "driver {'demo': 2, 'discovery': 3}",
        "won by source: reports {'web_form': 1}, driver {'web_form': 2}",
    ]
    assert "DISAGREES\n  won: reports 1, driver 2" in render(
        run_report(answers(), RUN), mismatches=mismatches
    )


def test_durations_read_as_a_manager_reads_them() -> None:
    assert [duration(s) for s in (4.24, 200, 5.5 * 3600, 12.3 * 86400)] == [
        "4.2 s",
        "3 min 20 s",
        "5.5 h",
        "12.3 days",
    ]


class Reports:
    """A reports service that catches up one answer at a time, then stands still at ``stop``."""

    def __init__(self, stop: int) -> None:
        self.reads, self.stop = 0, stop

    async def __call__(self, *_: Any) -> Any:
        self.reads += 1
        full = answers()
        if self.reads >= self.stop:
            return run_report(full, RUN)
        return run_report({name: {"items": []} for name in full}, RUN)


async def test_the_wait_goes_on_while_the_reports_move_and_ends_when_they_agree_or_stand_still(
    monkeypatch: Any,
) -> None:
    catching_up = Reports(stop=3)
    monkeypatch.setattr(observe, "read_run", catching_up)
    said = StringIO()
    day = date(2026, 3, 10)
    seen = await observe.caught_up(
        None,
        matching_tally(),
        RUN,
        day,
        day,
        patience_s=60,
        poll_s=0,
        say_every_s=0,
        stream=said,  # type: ignore[arg-type]
    )
    assert seen.mismatches == [] and catching_up.reads == 3
    assert (
        said.getvalue().splitlines()[0]
        == "waiting for the reports service: captured 0/5, deals 0/3, won 0/1, lost 0/2"
    )
    # Figures that never reach the driver's: given up once they stood still for the patience.
    stuck = Reports(stop=10**9)
    monkeypatch.setattr(observe, "read_run", stuck)
    gave_up = await observe.caught_up(None, matching_tally(), RUN, day, day, patience_s=0, poll_s=0)  # type: ignore[arg-type]
    assert gave_up.mismatches[0] == "leads captured: reports 0, driver 5" and stuck.reads == 2
