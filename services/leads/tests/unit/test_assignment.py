"""Assignment of new leads: round robin over all reps, or within a country's territory team."""

from __future__ import annotations

import pytest

from kariz_leads.domain import AssignedBy, Assignment, SalesTeam

REPS = ("alex@kariz.example", "sam@kariz.example", "kim@kariz.example")


def test_round_robin_goes_through_the_reps_in_order_and_starts_again() -> None:
    rotation = SalesTeam(reps=REPS).rotation_for(None)
    owners = [rotation.pick(turn).owner for turn in range(7)]
    assert owners == [*REPS, *REPS, REPS[0]]
    assert {rotation.pick(t).assigned_by for t in range(3)} == {AssignedBy.ROUND_ROBIN}


def test_a_country_with_a_team_rotates_within_that_team() -> None:
    team = SalesTeam.of(REPS, {"de": ["Jonas@kariz.example", "lena@kariz.example"]})
    rotation = team.rotation_for("DE")
    assert rotation.key == "territory:DE"
    assert [rotation.pick(t) for t in range(3)] == [
        Assignment("jonas@kariz.example", AssignedBy.TERRITORY),
        Assignment("lena@kariz.example", AssignedBy.TERRITORY),
        Assignment("jonas@kariz.example", AssignedBy.TERRITORY),
    ]


@pytest.mark.parametrize("country", ["FR", None])
def test_a_country_without_a_team_falls_back_to_round_robin(country: str | None) -> None:
    team = SalesTeam.of(REPS, {"DE": ["jonas@kariz.example"]})
    rotation = team.rotation_for(country)
    assert rotation.key == "round_robin"
    assert rotation.pick(1) == Assignment("sam@kariz.example", AssignedBy.ROUND_ROBIN)


def test_each_territory_keeps_its_own_turns() -> None:
    team = SalesTeam.of(REPS, {"DE": ["jonas@kariz.example"], "AT": ["eva@kariz.example"]})
    keys = {team.rotation_for(c).key for c in ("DE", "AT", "FR", None)}
    assert keys == {"territory:DE", "territory:AT", "round_robin"}


def test_a_team_needs_reps() -> None:
    with pytest.raises(ValueError, match="at least one rep"):
        SalesTeam(reps=())
    with pytest.raises(ValueError, match="'DE' has no reps"):
        SalesTeam(reps=REPS, territories={"DE": ()})


def test_a_turn_counts_from_zero() -> None:
    with pytest.raises(ValueError, match="counts from 0"):
        SalesTeam(reps=REPS).rotation_for(None).pick(-1)
