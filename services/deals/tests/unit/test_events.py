"""The events a deal raises: DealOpened when opened, StageChanged on every move, then DealWon or DealLost
when the move closed it; a refused move raises nothing."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from kariz_deals.domain import DEFAULT_PIPELINE, AccountRef, Deal
from kariz_deals.domain.deal import DealChanges
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import DealLost, DealOpened, DealUpdated, DealWon, StageChanged

T0 = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)


def new_deal(amount: Decimal | None = None) -> Deal:
    deal = Deal.open(
        deal_id="D-9",
        lead_id="L-9",
        account=AccountRef("A-9", "Initech", "initech.example"),
        owner="rep@kariz.test",
        amount=amount,
        currency="EUR",
        correlation_id="corr-9",
        at=T0,
        pipeline=DEFAULT_PIPELINE,
    )
    return deal


def test_opening_raises_deal_opened() -> None:
    [event] = new_deal(Decimal("300")).pull_events()
    assert event == DealOpened(
        deal_id="D-9",
        lead_id="L-9",
        account_id="A-9",
        account_name="Initech",
        owner="rep@kariz.test",
        pipeline="default",
        stage="qualification",
        amount=Decimal("300"),
        currency="EUR",
        opened_at=T0,
        probability=Decimal("0.10"),
        forecast_category="pipeline",
    )
    assert event.key() == "D-9"


def test_pulling_empties_what_was_raised() -> None:
    deal = new_deal()
    assert len(deal.pull_events()) == 1
    assert deal.pull_events() == []


def test_a_plain_move_raises_only_stage_changed() -> None:
    deal = new_deal()
    deal.pull_events()
    deal.advance_to("demo", T0 + timedelta(minutes=90), note="demo booked")
    [event] = deal.pull_events()
    assert isinstance(event, StageChanged)
    assert (event.from_stage, event.to_stage, event.direction) == ("qualification", "demo", "forward")
    assert (event.lead_id, event.owner, event.pipeline, event.currency) == (
        "L-9",
        "rep@kariz.test",
        "default",
        "EUR",
    )
    assert event.seconds_in_from_stage == 5400.0
    assert event.note == "demo booked" and event.amount is None
    assert event.changed_at == T0 + timedelta(minutes=90)
    assert event.key() == "D-9"


def test_every_event_of_a_move_or_edit_says_what_the_forecast_reads_after_it() -> None:
    deal = new_deal(Decimal("5000"))
    deal.pull_events()
    deal.advance_to("demo", T0 + timedelta(hours=1))
    [moved] = deal.pull_events()
    assert isinstance(moved, StageChanged)
    assert (moved.probability, moved.forecast_category, moved.expected_close_date) == (
        Decimal("0.40"),
        "best_case",
        None,
    )
    deal.update(DealChanges(expected_close_date=date(2025, 6, 30)), T0 + timedelta(hours=2))
    [edited] = deal.pull_events()
    assert isinstance(edited, DealUpdated)
    assert (edited.probability, edited.forecast_category, edited.expected_close_date) == (
        Decimal("0.40"),
        "best_case",
        date(2025, 6, 30),
    )
    deal.advance_to("negotiation", T0 + timedelta(hours=3))
    [committed] = deal.pull_events()
    assert isinstance(committed, StageChanged)
    assert (committed.forecast_category, committed.expected_close_date) == ("commit", date(2025, 6, 30))


def test_a_move_back_says_back() -> None:
    deal = new_deal(Decimal("10"))
    deal.advance_to("proposal", T0 + timedelta(hours=1))
    deal.advance_to("demo", T0 + timedelta(hours=2), reason="another demo for finance")
    *_, back = deal.pull_events()
    assert isinstance(back, StageChanged)
    assert (back.from_stage, back.to_stage, back.direction) == ("proposal", "demo", "back")
    assert back.reason == "another demo for finance"


def test_a_win_raises_stage_changed_then_deal_won() -> None:
    deal = new_deal()
    deal.advance_to("contract", T0 + timedelta(days=1), amount=Decimal("12000"))
    deal.pull_events()
    deal.win(T0 + timedelta(days=3))
    changed, won = deal.pull_events()
    assert isinstance(changed, StageChanged) and isinstance(won, DealWon)
    assert (changed.from_stage, changed.to_stage) == ("contract", "won")
    assert changed.seconds_in_from_stage == 2 * 86400
    assert won.amount == Decimal("12000")
    assert won.cycle_seconds == 3 * 86400
    assert (won.account_id, won.account_name, won.won_at) == ("A-9", "Initech", T0 + timedelta(days=3))
    assert (won.lead_id, won.owner, won.currency) == ("L-9", "rep@kariz.test", "EUR")


def test_a_loss_raises_stage_changed_then_deal_lost_with_the_stage_it_was_lost_at() -> None:
    deal = new_deal(Decimal("50"))
    deal.advance_to("negotiation", T0 + timedelta(hours=1))
    deal.pull_events()
    deal.lose(T0 + timedelta(hours=3), reason="price")
    changed, lost = deal.pull_events()
    assert isinstance(changed, StageChanged) and isinstance(lost, DealLost)
    assert changed.to_stage == "lost" and changed.direction == "forward"
    assert (lost.reason, lost.lost_at_stage, lost.cycle_seconds) == ("price", "negotiation", 3 * 3600.0)
    assert lost.amount == Decimal("50")
    assert (lost.account_id, lost.lost_at) == ("A-9", T0 + timedelta(hours=3))


def test_a_refused_move_raises_nothing() -> None:
    deal = new_deal()
    deal.pull_events()
    with pytest.raises(RuleViolation):
        deal.advance_to("proposal", T0 + timedelta(hours=1))
    assert deal.pull_events() == []
