"""How deal moves become events: StageChanged always, then DealWon or DealLost; DealOpened on open."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from kariz_deals.domain import AccountRef, Deal
from kariz_deals.service_layer import deal_opened, events_for_move
from kariz_shared.contracts.events import DealLost, DealOpened, DealWon, StageChanged

T0 = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)


def new_deal(amount: Decimal | None = None) -> Deal:
    return Deal.open(
        deal_id="D-9",
        lead_id="L-9",
        account=AccountRef("A-9", "Initech", "initech.example"),
        owner="rep@kariz.test",
        amount=amount,
        currency="EUR",
        correlation_id="corr-9",
        at=T0,
    )


def test_opened() -> None:
    event = deal_opened(new_deal(Decimal("300")))
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
    )
    assert event.key() == "D-9"


def test_a_plain_move_emits_only_stage_changed() -> None:
    deal = new_deal()
    move = deal.advance_to("demo", T0 + timedelta(minutes=90), note="demo booked")
    [event] = events_for_move(deal, move)
    assert isinstance(event, StageChanged)
    assert (event.from_stage, event.to_stage, event.direction) == ("qualification", "demo", "forward")
    assert event.seconds_in_from_stage == 5400.0
    assert event.note == "demo booked" and event.amount is None
    assert event.changed_at == T0 + timedelta(minutes=90)
    assert event.key() == "D-9"


def test_a_win_emits_stage_changed_then_deal_won() -> None:
    deal = new_deal()
    deal.advance_to("contract", T0 + timedelta(days=1), amount=Decimal("12000"))
    move = deal.win(T0 + timedelta(days=3))
    changed, won = events_for_move(deal, move)
    assert isinstance(changed, StageChanged) and isinstance(won, DealWon)
    assert (changed.from_stage, changed.to_stage) == ("contract", "won")
    assert changed.seconds_in_from_stage == 2 * 86400
    assert won.amount == Decimal("12000")
    assert won.cycle_seconds == 3 * 86400
    assert (won.account_id, won.account_name, won.won_at) == ("A-9", "Initech", T0 + timedelta(days=3))


def test_a_loss_emits_stage_changed_then_deal_lost_with_the_stage_it_was_lost_at() -> None:
    deal = new_deal(Decimal("50"))
    deal.advance_to("negotiation", T0 + timedelta(hours=1))
    move = deal.lose(T0 + timedelta(hours=3), reason="price")
    changed, lost = events_for_move(deal, move)
    assert isinstance(changed, StageChanged) and isinstance(lost, DealLost)
    assert changed.to_stage == "lost" and changed.direction == "forward"
    assert (lost.reason, lost.lost_at_stage, lost.cycle_seconds) == ("price", "negotiation", 3 * 3600.0)
    assert lost.amount == Decimal("50")
