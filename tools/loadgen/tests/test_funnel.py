"""The funnel report on a constructed data set: every figure worked out by hand."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from kariz_loadgen.funnel import (
    DealSeen,
    LeadSeen,
    Observed,
    cross_check,
    duration,
    funnel_of,
    render,
)
from kariz_loadgen.journey import Tally

STAGES = ("qualification", "discovery", "demo", "proposal", "negotiation", "contract")
DAY = timedelta(days=1)
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def observed() -> Observed:
    leads = (
        LeadSeen("L1", "web_form", ("web_form", "event"), "qualified"),
        LeadSeen("L2", "web_form", ("web_form",), "qualified", called=True),
        LeadSeen("L3", "event", ("event",), "disqualified", reason="no budget", called=True),
        LeadSeen("L4", "partner", ("partner",), "qualified"),
        LeadSeen("L5", "partner", ("partner",), "nurture", called=True),
        LeadSeen("L6", "partner", ("partner",), "qualified"),
    )
    deals = (
        # All the way, won after 10 days.
        DealSeen("D1", "L1", (*STAGES, "won"), T0, T0 + 10 * DAY, Decimal("50000")),
        # Back from demo to discovery once, then lost at demo after 4 days.
        DealSeen(
            "D2",
            "L2",
            ("qualification", "discovery", "demo", "discovery", "demo", "lost"),
            T0,
            T0 + 4 * DAY,
            lost_reason="price too high",
        ),
        # Skipped straight to proposal, lost there after 2 days.
        DealSeen(
            "D3",
            "L4",
            ("qualification", "proposal", "lost"),
            T0 + DAY,
            T0 + 3 * DAY,
            Decimal("12000"),
            lost_reason="chose a competitor",
        ),
        # Still open at demo.
        DealSeen("D4", "L6", ("qualification", "discovery", "demo"), T0),
    )
    return Observed(STAGES, leads, deals)


def test_the_funnel_counts_leads_verdicts_and_outcomes() -> None:
    f = funnel_of(observed())
    assert (f.leads, f.captures, f.called) == (6, 7, 3)
    assert (f.qualified, f.disqualified, f.undecided) == (4, 1, 1)
    assert (f.deals, f.won, f.lost, f.open) == (4, 1, 2, 1)
    assert f.qualification_rate == pytest.approx(4 / 6)
    assert f.deal_rate == 1.0
    assert f.win_rate == pytest.approx(1 / 3)  # won / closed: the open deal does not count
    assert f.went_back == 1
    assert f.won_value == Decimal("50000")
    assert f.lost_reasons == Counter({"price too high": 1, "chose a competitor": 1})
    assert f.disqualification_reasons == Counter({"no budget": 1})
    assert f.captures_by_source == Counter({"partner": 3, "web_form": 2, "event": 2})
    assert f.stage_entries == Counter(
        {"discovery": 4, "demo": 4, "proposal": 2, "negotiation": 1, "contract": 1, "won": 1, "lost": 2}
    )


def test_by_source_rows_come_biggest_first() -> None:
    rows = {r.source: r for r in funnel_of(observed()).by_source}
    assert [r.source for r in funnel_of(observed()).by_source] == ["partner", "web_form", "event"]
    partner, web, event = rows["partner"], rows["web_form"], rows["event"]
    assert (partner.captured, partner.qualified, partner.deals, partner.won, partner.lost) == (3, 2, 2, 0, 1)
    assert partner.win_rate == 0.0
    assert (web.captured, web.qualified, web.deals, web.won, web.lost) == (2, 2, 2, 1, 1)
    assert web.win_rate == 0.5
    assert (event.captured, event.qualified, event.deals) == (1, 0, 0)
    assert event.qualification_rate == 0.0
    assert event.win_rate is None  # nothing closed: no rate rather than 0 %


def test_conversion_per_stage_counts_a_skipped_stage_as_passed() -> None:
    rows = {r.stage: r for r in funnel_of(observed()).stages}
    assert [r.stage for r in funnel_of(observed()).stages] == list(STAGES)
    figures = {s: (r.reached, r.went_on, r.lost_here, r.won) for s, r in rows.items()}
    assert figures == {
        "qualification": (4, 4, 0, 1),
        "discovery": (4, 4, 0, 1),  # D3 skipped discovery and demo but went past them
        "demo": (4, 2, 1, 1),  # D2 lost here, D4 still here
        "proposal": (2, 1, 1, 1),  # D3 lost here
        "negotiation": (1, 1, 0, 1),
        "contract": (1, 1, 0, 1),
    }
    assert rows["demo"].conversion == 0.5
    assert rows["proposal"].win_share == 0.5
    assert rows["contract"].next_stage == "won"
    assert rows["contract"].conversion == 1.0


def test_cycle_length_is_opened_to_closed_of_closed_deals() -> None:
    f = funnel_of(observed())
    assert sorted(f.cycle_s) == [2 * 86400, 4 * 86400, 10 * 86400]
    assert f.won_cycle_s == [10 * 86400]
    assert sorted(f.lost_cycle_s) == [2 * 86400, 4 * 86400]
    text = render(f)
    assert "all      average 5.3 days, median 4.0 days, of 3 closed" in text
    assert "lost     average 3.0 days, median 3.0 days, of 2 closed" in text
    assert "win rate 33% (won / closed), 1 still open" in text


def matching_tally() -> Tally:
    return Tally(
        captured=6,
        touches=1,
        nurtured=3,
        qualified=4,
        disqualified=1,
        deals=4,
        won=1,
        lost=2,
        by_source=Counter({"partner": 3, "web_form": 2, "event": 2}),
        qualified_by_source=Counter({"web_form": 2, "partner": 2}),
        won_by_source=Counter({"web_form": 1}),
        loss_reasons=Counter({"price too high": 1, "chose a competitor": 1}),
        reached=Counter(
            {"discovery": 4, "demo": 4, "proposal": 2, "negotiation": 1, "contract": 1, "won": 1, "lost": 2}
        ),
    )


def test_the_cross_check_agrees_when_the_driver_saw_the_same() -> None:
    f = funnel_of(observed())
    assert cross_check(f, matching_tally()) == []
    assert render(f, mismatches=[]).endswith("Cross-check with the driver's own count: agrees")


def test_the_cross_check_names_each_disagreement() -> None:
    tally = matching_tally()
    tally.won = 2
    tally.reached["demo"] = 3
    mismatches = cross_check(funnel_of(observed()), tally)
    assert mismatches[0] == "won: Kariz 1, driver 2"
    assert len(mismatches) == 2 and mismatches[1].startswith("stage moves: Kariz")
    assert "DISAGREES\n  won: Kariz 1, driver 2" in render(funnel_of(observed()), mismatches=mismatches)


def test_an_empty_run_reports_no_rates_rather_than_failing() -> None:
    f = funnel_of(Observed(STAGES, (), ()))
    assert (f.leads, f.deals, f.win_rate, f.qualification_rate) == (0, 0, None, None)
    assert all(r.conversion is None for r in f.stages)
    assert "win rate - (won / closed)" in render(f)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(4.24, "4.2 s"), (200, "3 min 20 s"), (5.5 * 3600, "5.5 h"), (12.25 * 86400, "12.2 days")],
)
def test_durations_read_as_a_manager_would(seconds: float, text: str) -> None:
    assert duration(seconds) == text
