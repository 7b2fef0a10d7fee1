"""The deals use cases on the in-memory unit of work: a qualified lead opens one deal with its company's
account, deals move through the pipeline under its stage rules, close won or lost, and every committed
change publishes the deal's events (and counts in the metrics); a refused one changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeAlias

import pytest

from kariz_deals.adapters.in_memory import InMemoryDealsUnitOfWork
from kariz_deals.domain import DEFAULT_PIPELINE, Deal
from kariz_deals.entrypoints import kafka
from kariz_deals.service_layer import handlers
from kariz_deals.service_layer.commands import MoveDeal
from kariz_shared.contracts.errors import Conflict, NotFound, RejectedEvent, RuleViolation
from kariz_shared.contracts.events import (
    ActivityLogged,
    BantAnswers,
    Company,
    Contact,
    DealLost,
    DealOpened,
    DealWon,
    LeadQualified,
    LeadsMerged,
    LeadSource,
    QuoteExpired,
    ScoreLine,
    StageChanged,
)
from kariz_shared.contracts.identity import Actor
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.runtime.logging import correlation_id

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
Units: TypeAlias = InMemoryUnitsOfWork[InMemoryDealsUnitOfWork]
ON_LEAD_QUALIFIED = kafka.subscriptions(pipeline=DEFAULT_PIPELINE, currency="EUR")[LeadQualified]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryDealsUnitOfWork(clock))


@pytest.fixture(autouse=True)
def consumed_event_story() -> Iterator[None]:
    # The consumer sets the consumed event's correlation id around its handler; so do these tests.
    token = correlation_id.set("corr-lead")
    yield
    correlation_id.reset(token)


def qualified(
    lead_id: str = "L-1",
    *,
    company: str = "Analytical Engines Ltd",
    domain: str | None = "analytical.example",
    budget: Decimal | None = None,
    owner: str = "rep@kariz.test",
) -> LeadQualified:
    return LeadQualified(
        lead_id=lead_id,
        owner=owner,
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@analytical.example", title="CTO"),
        company=Company(name=company, domain=domain, industry="software", size=120, country="GB"),
        source=LeadSource.TRADE_SHOW,
        score=72,
        threshold=60,
        breakdown=[ScoreLine(rule="industry", matched="software", points=20)],
        answers=BantAnswers(
            budget="confirmed",
            budget_amount=budget,
            authority="decision_maker",
            need="confirmed",
            timeline="within_3_months",
        ),
        qualified_at=T0,
    )


async def consume(units: Units, event: LeadQualified) -> None:
    """As the consumer applies it: through the subscriptions table, in a unit of its own."""
    assert set(kafka.subscriptions(pipeline=DEFAULT_PIPELINE, currency="EUR")) == {
        LeadQualified,
        LeadsMerged,
        ActivityLogged,
        QuoteExpired,
        DealWon,
        DealLost,
    }
    await units.handle(ON_LEAD_QUALIFIED, event)


def stored(units: Units) -> list[Deal]:
    return list(units.uow.deals.by_id.values())


async def open_one(units: Units, **kwargs: Any) -> Deal:
    await consume(units, qualified(**kwargs))
    [deal] = [d for d in stored(units) if d.lead_id == kwargs.get("lead_id", "L-1")]
    return deal


REP = Actor("rep@kariz.test")


async def move(units: Units, deal_id: str, stage: str, **kwargs: Any) -> Deal:
    kwargs.setdefault("by", REP)
    return await handlers.move_deal(units, MoveDeal(deal_id=deal_id, stage=stage, **kwargs))


# --- opening --------------------------------------------------------------------------------------


async def test_a_qualified_lead_opens_a_deal_in_the_first_stage_with_its_account(
    units: Units, clock: FakeClock
) -> None:
    await consume(units, qualified(budget=Decimal("12000")))
    [deal] = stored(units)
    assert (deal.lead_id, deal.owner, deal.stage, deal.pipeline) == (
        "L-1",
        "rep@kariz.test",
        "qualification",
        DEFAULT_PIPELINE,
    )
    assert (deal.amount, deal.currency, deal.opened_at) == (Decimal("12000"), "EUR", clock.now())
    assert deal.correlation_id == "corr-lead"
    assert deal.contact["email"] == "ada@analytical.example" and deal.contact["title"] == "CTO"
    assert deal.source == "trade_show"
    [account] = units.uow.accounts.by_id.values()
    assert (account.name, account.domain, account.industry, account.size, account.country) == (
        "Analytical Engines Ltd",
        "analytical.example",
        "software",
        120,
        "GB",
    )
    assert (deal.account.id, deal.account.name, deal.account.domain) == (
        account.id,
        account.name,
        account.domain,
    )

    [opened] = units.published
    assert opened == DealOpened(
        deal_id=deal.id,
        lead_id="L-1",
        account_id=account.id,
        account_name="Analytical Engines Ltd",
        owner="rep@kariz.test",
        pipeline="default",
        stage="qualification",
        amount=Decimal("12000"),
        currency="EUR",
        opened_at=clock.now(),
        probability=Decimal("0.10"),
        forecast_category="pipeline",
    )
    assert units.uow.metrics.opened_count == 1


async def test_a_lead_qualified_twice_still_has_one_deal(units: Units) -> None:
    await consume(units, qualified(budget=Decimal("12000")))
    # Qualified again under a new event id (re-sent by hand), with another budget.
    await consume(units, qualified(budget=Decimal("99")))
    [deal] = stored(units)
    assert deal.amount == Decimal("12000")
    assert len(units.of_type(DealOpened)) == 1
    assert units.uow.metrics.opened_count == 1


@pytest.mark.parametrize("budget", [None, Decimal("0"), Decimal("-5")])
async def test_a_deal_without_a_usable_budget_opens_without_an_amount(
    units: Units, budget: Decimal | None
) -> None:
    deal = await open_one(units, budget=budget)
    assert deal.amount is None
    assert units.of_type(DealOpened)[0].amount is None


@pytest.mark.parametrize(
    ("budget_amount", "budget_currency", "bant_budget", "expected"),
    [
        # A MEDDIC lead: no BANT answers, the budget on top.
        (Decimal("250000"), "USD", None, (Decimal("250000"), "USD")),
        # The top-level budget wins over the BANT answer; without a currency, the deal currency.
        (Decimal("40000"), None, Decimal("12000"), (Decimal("40000"), "EUR")),
        # An event from before budget_amount: the BANT answer, as before.
        (None, None, Decimal("12000"), (Decimal("12000"), "EUR")),
        # No usable budget: no amount, and the currency of a missing amount is the deal currency.
        (Decimal("0"), "USD", None, (None, "EUR")),
    ],
)
async def test_a_deal_takes_the_top_level_budget_amount(
    units: Units,
    budget_amount: Decimal | None,
    budget_currency: str | None,
    bant_budget: Decimal | None,
    expected: tuple[Decimal | None, str],
) -> None:
    event = qualified(budget=bant_budget).model_copy(
        update={"budget_amount": budget_amount, "budget_currency": budget_currency}
    )
    if bant_budget is None:
        event = event.model_copy(update={"answers": None})
    await consume(units, event)
    [deal] = stored(units)
    assert (deal.amount, deal.currency) == expected
    [opened] = units.of_type(DealOpened)
    assert (opened.amount, opened.currency) == expected


async def test_an_existing_customers_lead_opens_an_upsell_linked_to_the_accounts_won_deals(
    units: Units,
) -> None:
    won = await open_one(units, lead_id="L-1")
    won.stage = "won"  # the account's first deal was won (how it got there is the moves' tests' part)
    await open_one(units, lead_id="L-2")  # an open deal of the account links nothing
    event = qualified("L-3").model_copy(update={"existing_customer": True, "account_id": "Q-ACC"})
    await consume(units, event)
    [upsell] = [d for d in stored(units) if d.lead_id == "L-3"]
    assert upsell.deal_type == "upsell" and upsell.account == won.account
    assert upsell.linked_deal_ids == (won.id,)
    # A lead qualified without the flag is new business, as before.
    assert won.deal_type == "new_business" and won.linked_deal_ids == ()


async def test_two_leads_of_one_company_domain_share_one_account(units: Units) -> None:
    first = await open_one(units, lead_id="L-1", company="Globex", domain="www.Globex.example")
    second = await open_one(units, lead_id="L-2", company="Globex Corp", domain="https://globex.example/")
    other = await open_one(units, lead_id="L-3", company="Globex", domain="globex-other.example")
    assert first.account == second.account
    assert first.account.domain == "globex.example" and first.account.name == "Globex"
    assert other.account.id != first.account.id
    assert len(units.uow.accounts.by_id) == 2


async def test_without_a_domain_leads_share_the_account_whose_name_reads_the_same(units: Units) -> None:
    first = await open_one(units, lead_id="L-1", company="Initech, Inc.", domain=None)
    second = await open_one(units, lead_id="L-2", company="INITECH", domain=None)
    third = await open_one(units, lead_id="L-3", company="Initrode", domain=None)
    assert first.account.id == second.account.id != third.account.id
    assert first.account.domain is None


async def test_a_lead_without_company_name_or_domain_is_rejected_and_opens_nothing(units: Units) -> None:
    with pytest.raises(RejectedEvent, match="name or a domain"):
        await consume(units, qualified(company="  ", domain=None))
    assert stored(units) == [] and units.uow.accounts.by_id == {}
    assert units.published == [] and units.uow.metrics.opened_count == 0


async def test_a_lead_qualified_without_a_correlation_id_is_rejected(units: Units) -> None:
    token = correlation_id.set(None)
    try:
        with pytest.raises(RejectedEvent, match="no correlation id"):
            await consume(units, qualified())
    finally:
        correlation_id.reset(token)
    assert stored(units) == []


async def test_a_second_deal_for_a_lead_is_refused_by_the_repository(units: Units) -> None:
    """What the unique index does on MongoDB when two replicas open the same lead at once."""
    deal = await open_one(units)
    twin = await open_one(units, lead_id="L-2")
    twin.id, twin.opened_for = "D-twin", deal.qualified_lead
    with pytest.raises(Conflict):
        units.uow.deals.add(twin)


# --- moving ---------------------------------------------------------------------------------------


async def test_moves_forward_and_back_with_time_in_stage_from_the_clock(
    units: Units, clock: FakeClock
) -> None:
    deal = await open_one(units)
    clock.advance(timedelta(hours=2))
    await move(units, deal.id, "discovery", note="call booked")
    clock.advance(timedelta(hours=1))
    await move(units, deal.id, "proposal", amount=Decimal("15000"))
    clock.advance(timedelta(hours=3))
    moved = await move(
        units, deal.id, "demo", note="wants another demo for finance", reason="finance was not in the demo"
    )

    assert moved.stage == "demo" and moved.amount == Decimal("15000")  # going back keeps the price
    assert [v.stage for v in moved.history] == ["qualification", "discovery", "proposal", "demo"]
    assert stored(units)[0] == moved
    changes = units.of_type(StageChanged)
    assert [(c.from_stage, c.to_stage, c.direction) for c in changes] == [
        ("qualification", "discovery", "forward"),
        ("discovery", "proposal", "forward"),
        ("proposal", "demo", "back"),
    ]
    assert [c.seconds_in_from_stage for c in changes] == [7200.0, 3600.0, 10800.0]
    assert changes[0].note == "call booked" and changes[0].amount is None
    assert changes[1].amount == Decimal("15000")
    assert changes[2].changed_at == T0 + timedelta(hours=6)
    assert all(c.deal_id == deal.id and c.lead_id == "L-1" and c.pipeline == "default" for c in changes)
    assert units.of_type(DealWon) == [] and units.of_type(DealLost) == []
    assert [(m.from_stage, m.to_stage) for m in units.uow.metrics.moves] == [
        ("qualification", "discovery"),
        ("discovery", "proposal"),
        ("proposal", "demo"),
    ]


@pytest.mark.parametrize("stage", ["proposal", "negotiation", "contract", "won"])
async def test_late_stages_need_an_amount_and_a_refused_move_changes_nothing(
    units: Units, stage: str
) -> None:
    deal = await open_one(units)
    published = list(units.published)
    with pytest.raises(RuleViolation, match="a proposal needs an amount"):
        await move(units, deal.id, stage)
    assert stored(units) == [deal]
    assert units.published == published and units.uow.metrics.moves == []


@pytest.mark.parametrize(
    ("stage", "kwargs", "error", "message"),
    [
        ("closing", {}, RuleViolation, "valid stages are: qualification, discovery, demo, proposal"),
        ("qualification", {}, Conflict, "already in stage 'qualification'"),
        ("lost", {}, RuleViolation, "a lost deal needs a reason"),
        ("lost", {"reason": "   "}, RuleViolation, "a lost deal needs a reason"),
        ("demo", {"amount": Decimal("-5")}, RuleViolation, "greater than 0"),
    ],
)
async def test_moves_the_rules_refuse(
    units: Units, stage: str, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    deal = await open_one(units)
    with pytest.raises(error, match=message):
        await move(units, deal.id, stage, **kwargs)
    assert stored(units) == [deal] and len(units.published) == 1


async def test_a_jump_ahead_is_allowed_when_its_criteria_are_met(units: Units) -> None:
    deal = await open_one(units)
    moved = await move(units, deal.id, "contract", amount=Decimal("42000.50"))
    assert moved.stage == "contract" and moved.weighted_amount == Decimal("37800.45")
    [change] = units.of_type(StageChanged)
    assert (change.from_stage, change.to_stage, change.direction) == ("qualification", "contract", "forward")


async def test_an_unknown_deal_is_not_found(units: Units) -> None:
    with pytest.raises(NotFound, match="D-nope"):
        await move(units, "D-nope", "demo")


# --- closing --------------------------------------------------------------------------------------


async def test_a_win_closes_the_deal_and_publishes_stage_changed_then_deal_won(
    units: Units, clock: FakeClock
) -> None:
    deal = await open_one(units, budget=Decimal("10000"))
    clock.advance(timedelta(days=1))
    await move(units, deal.id, "negotiation")
    clock.advance(timedelta(days=2))
    won = await move(units, deal.id, "won", note="signed")

    assert won.is_closed and won.closed_at == clock.now() and won.history[-1].note == "signed"
    assert (won.probability, won.forecast_category) == (Decimal("1.0"), "closed")
    *_, changed, event = units.published
    assert isinstance(changed, StageChanged) and isinstance(event, DealWon)
    assert (changed.from_stage, changed.to_stage, changed.seconds_in_from_stage) == (
        "negotiation",
        "won",
        2 * 86400,
    )
    assert event == DealWon(
        deal_id=deal.id,
        lead_id="L-1",
        account_id=deal.account.id,
        account_name="Analytical Engines Ltd",
        owner="rep@kariz.test",
        amount=Decimal("10000"),
        currency="EUR",
        cycle_seconds=3 * 86400,
        won_at=clock.now(),
        actor="rep@kariz.test",
    )
    assert changed.actor == "rep@kariz.test", "the events name who moved the deal"
    assert won.history[-1].by == "rep@kariz.test", "and so does the stage history"
    [last] = [m for m in units.uow.metrics.moves if m.won]
    assert last.cycle_seconds == 3 * 86400


async def test_a_loss_keeps_its_reason_and_the_stage_it_was_lost_at(units: Units, clock: FakeClock) -> None:
    deal = await open_one(units)
    await move(units, deal.id, "discovery")
    clock.advance(timedelta(hours=5))
    lost = await move(units, deal.id, "lost", reason="  chose a competitor ", note="price")

    assert lost.lost_reason == "chose a competitor" and lost.closed_at == clock.now()
    assert lost.weighted_amount is None and lost.forecast_category == "omitted"
    [event] = units.of_type(DealLost)
    assert event == DealLost(
        deal_id=deal.id,
        lead_id="L-1",
        account_id=deal.account.id,
        account_name="Analytical Engines Ltd",
        owner="rep@kariz.test",
        reason="chose a competitor",
        lost_at_stage="discovery",
        amount=None,
        currency="EUR",
        cycle_seconds=5 * 3600.0,
        lost_at=clock.now(),
        actor="rep@kariz.test",
    )
    assert isinstance(units.published[-2], StageChanged) and units.published[-2].note == "price"
    assert [m.reason for m in units.uow.metrics.moves if m.lost] == ["chose a competitor"]


@pytest.mark.parametrize(
    ("closing", "kwargs"), [("won", {"amount": Decimal("10")}), ("lost", {"reason": "gone"})]
)
@pytest.mark.parametrize("target", ["demo", "won", "lost", "qualification"])
async def test_a_closed_deal_refuses_every_move(
    units: Units, closing: str, kwargs: dict[str, Any], target: str
) -> None:
    deal = await open_one(units)
    closed = await move(units, deal.id, closing, **kwargs)
    published, moves = list(units.published), list(units.uow.metrics.moves)
    with pytest.raises(Conflict, match="closed"):
        await move(units, deal.id, target, reason="again", amount=Decimal("20"))
    assert stored(units) == [closed]
    assert units.published == published and units.uow.metrics.moves == moves


async def test_a_save_over_a_stale_version_is_a_conflict(units: Units) -> None:
    """Two requests moving one deal at once: the second to save lost the race."""
    deal = await open_one(units)
    stale = await units.uow.deals.get(deal.id)
    assert stale is not None
    await move(units, deal.id, "discovery")
    stale.advance_to("demo", T0)
    with pytest.raises(Conflict, match="changed by another request"):
        await units.uow.deals.save(stale)
