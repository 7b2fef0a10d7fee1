"""The synthetic population: the same seed draws the same leads, and the mix looks like a sales team's."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from kariz_loadgen.population import FORWARD, SOURCES, Population


def test_the_same_seed_draws_the_same_leads() -> None:
    first = [lead.body for lead in Population(3).leads(50)]
    again = [lead.body for lead in Population(3).leads(50)]
    other = [lead.body for lead in Population(4).leads(50)]
    assert first == again
    assert first != other


def test_the_mix_covers_every_source_country_and_both_outcomes() -> None:
    leads = Population(11).leads(2000)
    sources = Counter(lead.source for lead in leads)
    assert set(sources) == set(SOURCES)
    assert len({lead.body["company"]["country"] for lead in leads}) >= 8
    outcomes = Counter(lead.outcome for lead in leads)
    assert 0.3 < outcomes["won"] / len(leads) < 0.5  # about 40 % of deals are won
    touches = [lead for lead in leads if lead.body.get("campaign") == "second-touch"]
    assert 0 < len(touches) < 0.06 * len(leads)
    assert len({lead.email for lead in leads}) == len(leads) - len(touches)


@pytest.mark.parametrize("brisk", [False, True])
def test_every_journey_is_a_valid_walk_to_won_or_lost(brisk: bool) -> None:
    for lead in Population(5, brisk=brisk).leads(500):
        stages = [move.stage for move in lead.journey]
        assert stages[-1] in ("won", "lost")
        assert "won" not in stages[:-1] and "lost" not in stages[:-1]
        if not brisk:
            assert stages[0] == "discovery"
        # Each move changes the stage, and the amount comes with the first move from proposal on.
        assert all(a != b for a, b in itertools.pairwise(stages))
        late = [m for m in lead.journey if m.stage in FORWARD[FORWARD.index("proposal") :]]
        if late:
            assert late[0].amount is not None
            assert all(m.amount is None for m in lead.journey if m is not late[0])
        if stages[-1] == "won":
            assert [s for s in stages if s in FORWARD][-1] == "contract"
        else:
            assert lead.journey[-1].reason


def test_run_campaigns_name_the_run_and_source_and_change_nothing_else() -> None:
    plain = Population(3, run_tag="ab12cd34").leads(60)
    tagged = Population(3, run_tag="ab12cd34", run_campaigns=True).leads(60)
    for a, b in zip(plain, tagged, strict=True):
        if a.body.get("campaign") == "second-touch":
            assert b.body == a.body  # a repeat touch keeps its own campaign
        else:
            assert b.body["campaign"] == f"demo-ab12cd34-{a.source}"
            assert {**b.body, "campaign": a.body["campaign"]} == a.body
        assert (a.call, a.journey) == (b.call, b.journey)
    # Without a run tag there is no run to name.
    assert Population(3, run_campaigns=True).leads(5)[0].body == Population(3).leads(5)[0].body
