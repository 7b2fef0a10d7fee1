"""Deal moves: forward, back, jumps, the same stage, closed deals, amounts, reasons, unknown stages;
time in stage and cycle time."""

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from kariz_deals.domain import DEFAULT_PIPELINE, AccountRef, Deal, Direction, StageVisit
from kariz_shared.contracts.errors import Conflict, RuleViolation

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def new_deal(amount: Decimal | None = None) -> Deal:
    return Deal.open(
        deal_id="D-1",
        lead_id="L-1",
        account=AccountRef("A-1", "Analytical", "analytical.example"),
        owner="rep@kariz.test",
        amount=amount,
        currency="EUR",
        correlation_id="corr-1",
        at=T0,
        pipeline=DEFAULT_PIPELINE,
    )


def test_a_new_deal_is_in_qualification_with_one_visit() -> None:
    deal = new_deal(Decimal("5000"))
    assert deal.stage == "qualification"
    assert deal.history == [StageVisit("qualification", T0)]
    assert deal.probability == Decimal("0.10")
    assert deal.forecast_category == "pipeline"
    assert deal.weighted_amount == Decimal("500.00")
    assert not deal.is_closed


def test_opening_with_a_non_positive_amount_is_refused() -> None:
    with pytest.raises(RuleViolation, match="greater than 0"):
        new_deal(Decimal("0"))


def test_forward_move_closes_the_visit_and_opens_the_next() -> None:
    deal = new_deal()
    move = deal.advance_to("discovery", hours(2), note="call booked")
    assert (move.from_stage, move.to_stage, move.direction) == (
        "qualification",
        "discovery",
        Direction.FORWARD,
    )
    assert move.seconds_in_from_stage == 7200.0
    assert move.note == "call booked"
    assert move.cycle_seconds is None and move.reason is None
    assert deal.stage == "discovery"
    assert deal.history == [
        StageVisit("qualification", T0, hours(2)),
        StageVisit("discovery", hours(2), None, "call booked"),
    ]


def test_back_move_is_allowed_and_says_back() -> None:
    deal = new_deal(Decimal("100"))
    deal.advance_to("proposal", hours(1))
    move = deal.advance_to("demo", hours(4), reason="finance wants another demo")
    assert move.direction is Direction.BACK
    assert move.seconds_in_from_stage == 3 * 3600
    assert [v.stage for v in deal.history] == ["qualification", "proposal", "demo"]
    assert deal.amount == Decimal("100")  # going back keeps the price


def test_jump_forward_is_allowed_when_the_target_criteria_are_met() -> None:
    deal = new_deal()
    move = deal.advance_to("contract", hours(1), amount=Decimal("42000.50"))
    assert move.direction is Direction.FORWARD
    assert deal.stage == "contract"
    assert deal.amount == Decimal("42000.50")
    assert move.amount == Decimal("42000.50")
    assert deal.weighted_amount == Decimal("37800.45")


@pytest.mark.parametrize("stage", ["proposal", "negotiation", "contract", "won"])
def test_late_stages_need_an_amount(stage: str) -> None:
    deal = new_deal()
    before = copy.deepcopy(deal)
    with pytest.raises(RuleViolation, match="a proposal needs an amount"):
        deal.advance_to(stage, hours(1))
    assert deal == before


def test_an_amount_already_on_the_deal_is_enough() -> None:
    deal = new_deal(Decimal("900"))
    move = deal.advance_to("proposal", hours(1))
    assert move.amount == Decimal("900")


def test_a_new_amount_replaces_the_old_one() -> None:
    deal = new_deal(Decimal("900"))
    deal.advance_to("proposal", hours(1), amount=Decimal("1200"))
    assert deal.amount == Decimal("1200")


def test_a_non_positive_amount_is_refused_on_a_move() -> None:
    deal = new_deal()
    with pytest.raises(RuleViolation, match="greater than 0"):
        deal.advance_to("demo", hours(1), amount=Decimal("-5"))
    assert deal.stage == "qualification"


def test_moving_to_the_current_stage_is_a_conflict() -> None:
    deal = new_deal()
    with pytest.raises(Conflict, match="already in stage 'qualification'"):
        deal.advance_to("qualification", hours(1))
    assert len(deal.history) == 1


def test_unknown_stage_is_a_rule_violation_listing_valid_stages() -> None:
    deal = new_deal()
    with pytest.raises(RuleViolation, match="valid stages are: qualification, discovery"):
        deal.advance_to("closing", hours(1))
    assert deal.stage == "qualification"


def test_win_closes_the_deal_with_cycle_time() -> None:
    deal = new_deal(Decimal("10000"))
    deal.advance_to("negotiation", hours(24))
    move = deal.win(hours(30), note="signed")
    assert move.won and not move.lost
    assert move.to_stage == "won" and move.direction is Direction.FORWARD
    assert move.seconds_in_from_stage == 6 * 3600
    assert move.cycle_seconds == 30 * 3600
    assert deal.closed_at == hours(30)
    assert deal.is_closed
    assert deal.probability == Decimal("1.0") and deal.forecast_category == "closed"
    assert deal.history[-1] == StageVisit("won", hours(30), None, "signed")


def test_lose_needs_a_reason_and_records_where_it_was_lost() -> None:
    deal = new_deal()
    deal.advance_to("demo", hours(1))
    for blank in (None, "", "   "):
        with pytest.raises(RuleViolation, match="a lost deal needs a reason"):
            deal.advance_to("lost", hours(2), reason=blank)
    assert deal.stage == "demo"
    move = deal.lose(hours(5), reason="  chose a competitor ")
    assert move.lost and move.reason == "chose a competitor"
    assert move.from_stage == "demo"
    assert move.cycle_seconds == 5 * 3600
    assert deal.lost_reason == "chose a competitor"
    assert deal.closed_at == hours(5)
    assert deal.weighted_amount is None and deal.forecast_category == "omitted"


def test_lost_needs_no_amount() -> None:
    deal = new_deal()
    move = deal.lose(hours(1), reason="no budget")
    assert move.amount is None


@pytest.mark.parametrize("closing", ["won", "lost"])
@pytest.mark.parametrize("target", ["demo", "won", "lost", "qualification"])
def test_a_closed_deal_cannot_move(closing: str, target: str) -> None:
    deal = new_deal(Decimal("10"))
    deal.advance_to(closing, hours(1), reason="gone quiet")
    before = copy.deepcopy(deal)
    with pytest.raises(Conflict, match="closed"):
        deal.advance_to(target, hours(2), reason="again")
    assert deal == before


def test_time_in_stage_and_cycle_never_negative() -> None:
    deal = new_deal()
    # A clock a little behind the one that opened the deal.
    move = deal.advance_to("discovery", T0 - timedelta(seconds=3))
    assert move.seconds_in_from_stage == 0.0
    assert deal.cycle_seconds(T0 - timedelta(seconds=3)) == 0.0
    assert deal.seconds_in_stage(hours(1)) > 3599


def test_time_in_stage_counts_from_the_last_entry_after_going_back() -> None:
    deal = new_deal(Decimal("1"))
    deal.advance_to("demo", hours(1))
    deal.advance_to("proposal", hours(2))
    deal.advance_to("demo", hours(3), reason="another demo")
    move = deal.advance_to("proposal", hours(7))
    assert move.seconds_in_from_stage == 4 * 3600
    assert [v.stage for v in deal.history] == ["qualification", "demo", "proposal", "demo", "proposal"]
    assert all(v.left_at is not None for v in deal.history[:-1])
