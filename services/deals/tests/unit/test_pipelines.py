"""Pipelines an admin defines, on the in-memory unit of work: routing of new deals, exit criteria (what
is missing, stage by stage), moving back, deal edits and DealUpdated, a new version's stage mapping,
stall timers (DealStalled once, re-armed by a move or an activity) and the first contact after a win."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TypeAlias

import pytest

from kariz_deals.adapters.in_memory import InMemoryDealReads, InMemoryDealsUnitOfWork
from kariz_deals.domain import (
    DEFAULT_PIPELINE,
    Deal,
    DealChanges,
    DealCriteria,
    DealProfile,
    DealType,
    ExitCriteria,
    ForecastCategory,
    Pipeline,
    Requirement,
    RoutingRule,
    Segment,
    Stage,
    StageMapping,
    defined_pipeline,
    route,
)
from kariz_deals.entrypoints import kafka
from kariz_deals.service_layer import handlers, pipelines
from kariz_deals.service_layer.commands import MoveDeal
from kariz_deals.service_layer.pipelines import EditDeal
from kariz_shared.contracts.errors import Conflict, RuleViolation
from kariz_shared.contracts.events import (
    ActivityChannel,
    ActivityDirection,
    ActivityLogged,
    ActivityOutcome,
    Company,
    Contact,
    DealStalled,
    DealUpdated,
    LeadQualified,
    LeadSource,
    ScoreLine,
    StageChanged,
)
from kariz_shared.contracts.identity import Actor
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.runtime.logging import correlation_id

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
Units: TypeAlias = InMemoryUnitsOfWork[InMemoryDealsUnitOfWork]
SUBSCRIPTIONS = kafka.subscriptions(pipeline=DEFAULT_PIPELINE, currency="EUR")
ADMIN = Actor("admin@kariz.test")
REP = Actor("rep@kariz.test")


def stage(
    name: str,
    probability: str,
    *,
    required: tuple[Requirement, ...] = (),
    rot_days: int | None = None,
    checklist: tuple[str, ...] = (),
) -> Stage:
    return Stage(
        name,
        0,
        Decimal(probability),
        ForecastCategory.PIPELINE,
        False,
        ExitCriteria(required, checklist),
        rot_days,
    )


def enterprise(*, rot_days: int = 14, activity_rearms: bool = True) -> Pipeline:
    return defined_pipeline(
        "enterprise",
        [
            stage(
                "qualification",
                "0.1",
                required=(Requirement.AMOUNT, Requirement.EXPECTED_CLOSE_DATE),
                rot_days=rot_days,
            ),
            stage("discovery", "0.2", required=(Requirement.DECISION_MAKER,), checklist=("security review",)),
            stage("proposal", "0.6", rot_days=30),
            stage("contract", "0.9", required=(Requirement.SIGNED_CONTRACT,)),
        ],
        activity_rearms=activity_rearms,
        routing=(RoutingRule(segments=frozenset({Segment.ENTERPRISE})),),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryDealsUnitOfWork(clock))


@pytest.fixture(autouse=True)
def consumed_event_story() -> Iterator[None]:
    token = correlation_id.set("corr-lead")
    yield
    correlation_id.reset(token)


async def qualify(
    units: Units, lead_id: str = "L-1", *, size: int | None = 5000, domain: str = "big.example"
) -> Deal:
    event = LeadQualified(
        lead_id=lead_id,
        owner="rep@kariz.test",
        contact=Contact(first_name="Ada", last_name="Lovelace", email=f"ada@{domain}"),
        company=Company(name=f"Company {domain}", domain=domain, size=size, country="DE"),
        source=LeadSource.REFERRAL,
        score=70,
        threshold=60,
        breakdown=[ScoreLine(rule="source", matched="referral", points=10)],
        qualified_at=T0,
    )
    await units.handle(SUBSCRIPTIONS[LeadQualified], event)
    return next(d for d in units.uow.deals.by_id.values() if d.lead_id == lead_id)


async def activity(units: Units, lead_id: str, at: datetime, deal_id: str | None = None) -> None:
    event = ActivityLogged(
        activity_id=f"A-{at.isoformat()}",
        lead_id=lead_id,
        deal_id=deal_id,
        owner="rep@kariz.test",
        channel=ActivityChannel.CALL,
        direction=ActivityDirection.OUTBOUND,
        outcome=ActivityOutcome.REACHED,
        reaching=True,
        occurred_at=at,
        logged_at=at,
    )
    await units.handle(SUBSCRIPTIONS[ActivityLogged], event)


async def move(units: Units, deal_id: str, to: str, **kwargs: object) -> Deal:
    return await handlers.move_deal(units, MoveDeal(deal_id, to, by=REP, **kwargs))  # type: ignore[arg-type]


async def edit(units: Units, deal_id: str, **changes: object) -> Deal:
    return await pipelines.edit_deal(units, EditDeal(deal_id, DealChanges(**changes), by=REP))  # type: ignore[arg-type]


# --- definitions and routing ------------------------------------------------------------------------


def test_a_definition_is_closed_by_won_and_lost_and_refuses_what_would_break_a_pipeline() -> None:
    pipeline = enterprise()
    assert pipeline.stage_names == ["qualification", "discovery", "proposal", "contract", "won", "lost"]
    assert [s.order for s in pipeline.stages] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(RuleViolation, match="stages: 'won' closes every pipeline"):
        defined_pipeline("x", [stage("won", "1")])
    with pytest.raises(RuleViolation, match="named twice: demo"):
        defined_pipeline("x", [stage("demo", "0.1"), stage("demo", "0.2")])
    with pytest.raises(RuleViolation, match="routing: the default pipeline"):
        defined_pipeline("default", [stage("a", "0.1")], routing=(RoutingRule(),))


def test_the_most_specific_matching_rule_routes_a_new_deal() -> None:
    broad = defined_pipeline(
        "broad", [stage("a", "0.1")], routing=(RoutingRule(countries=frozenset({"DE"})),)
    )
    narrow = defined_pipeline(
        "narrow",
        [stage("a", "0.1")],
        routing=(RoutingRule(countries=frozenset({"DE"}), deal_types=frozenset({DealType.RFP})),),
    )
    rfp_de = DealProfile(deal_type=DealType.RFP, country="DE")
    assert route([broad, narrow], rfp_de) is narrow
    assert route([broad, narrow], DealProfile(country="DE")) is broad
    assert route([broad, narrow], DealProfile(country="FR")) is None
    assert Segment.of_size(99) is Segment.SMB and Segment.of_size(1000) is Segment.ENTERPRISE


async def test_a_qualified_lead_enters_the_pipeline_its_company_routes_to_else_the_default(
    units: Units,
) -> None:
    await pipelines.define_pipeline(units, enterprise(), ADMIN.who)
    big = await qualify(units, "L-big", size=5000, domain="big.example")
    small = await qualify(units, "L-small", size=20, domain="small.example")
    assert (big.pipeline.name, big.stage) == ("enterprise", "qualification")
    assert small.pipeline.name == "default"
    with pytest.raises(Conflict, match="a pipeline 'enterprise' exists"):
        await pipelines.define_pipeline(units, enterprise(), ADMIN.who)


# --- exit criteria and moving back ------------------------------------------------------------------


async def test_a_jump_lists_what_each_stage_it_leaves_is_missing_and_changes_nothing(units: Units) -> None:
    await pipelines.define_pipeline(units, enterprise(), ADMIN.who)
    deal = await qualify(units)
    with pytest.raises(RuleViolation) as refused:
        await move(units, deal.id, "proposal")
    assert str(refused.value).endswith(
        "missing qualification: amount, expected_close_date; "
        "discovery: decision_maker, checklist:security review"
    )
    assert (await units.uow.deals.get(deal.id)) == deal and units.of_type(StageChanged) == []

    # The move's own amount counts; what is still missing is named alone.
    await edit(units, deal.id, expected_close_date=date(2026, 6, 30), decision_maker="Grace Hopper, CFO")
    with pytest.raises(RuleViolation, match=r"missing discovery: checklist:security review$"):
        await move(units, deal.id, "proposal", amount=Decimal("90000"))
    await edit(units, deal.id, checklist=frozenset({"security review"}))
    moved = await move(units, deal.id, "proposal", amount=Decimal("90000"))
    assert moved.stage == "proposal"
    # Won leaves the contract stage too: its signed contract is missing.
    with pytest.raises(RuleViolation, match="contract: signed_contract"):
        await move(units, deal.id, "won")
    # Losing needs no criteria, only a reason.
    lost = await move(units, deal.id, "lost", reason="budget: frozen", competitor="Acme")
    assert (lost.lost_reason, lost.competitor) == ("budget: frozen", "Acme")


async def test_moving_back_needs_a_reason_and_no_criteria(units: Units) -> None:
    deal = await qualify(units, size=10)
    await move(units, deal.id, "proposal", amount=Decimal("100"))
    with pytest.raises(RuleViolation, match="reason: moving a deal back"):
        await move(units, deal.id, "demo")
    back = await move(units, deal.id, "demo", reason="finance wants another demo")
    assert back.stage == "demo"
    assert units.of_type(StageChanged)[-1].reason == "finance wants another demo"
    won = await move(units, deal.id, "won", reason="best integration")
    assert won.win_reason == "best integration"


# --- edits ------------------------------------------------------------------------------------------


async def test_an_edit_publishes_deal_updated_with_old_and_new_for_the_followed_fields(units: Units) -> None:
    deal = await qualify(units, size=10)
    await edit(units, deal.id, amount=Decimal("5000"), next_step="send the pricing", product_line="analytics")
    await edit(units, deal.id, decision_maker="Grace")  # not followed: no event
    await edit(units, deal.id, deal_type=DealType.UPSELL, next_step=None, cleared=frozenset({"next_step"}))
    first, second = units.of_type(DealUpdated)
    assert [(c.field, c.old, c.new) for c in first.changes] == [
        ("amount", None, "5000"),
        ("next_step", None, "send the pricing"),
    ]
    assert first.actor == REP.who and first.key() == deal.id
    assert [(c.field, c.old, c.new) for c in second.changes] == [
        ("next_step", "send the pricing", None),
        ("deal_type", "new_business", "upsell"),
    ]
    stored = await units.uow.deals.get(deal.id)
    assert stored is not None and (stored.product_line, stored.decision_maker) == ("analytics", "Grace")
    with pytest.raises(RuleViolation, match="amount: a deal's amount must be greater than 0"):
        await edit(units, deal.id, amount=Decimal("-1"))


# --- a new version of a pipeline --------------------------------------------------------------------


async def test_a_removed_stage_with_open_deals_needs_a_mapping_and_its_deals_move_with_a_reason(
    units: Units, clock: FakeClock
) -> None:
    await pipelines.define_pipeline(units, enterprise(), ADMIN.who)
    deal = await qualify(units)
    await edit(units, deal.id, amount=Decimal("1"), expected_close_date=date(2026, 6, 1))
    await move(units, deal.id, "discovery")
    without_discovery = defined_pipeline(
        "enterprise", [stage("qualification", "0.1"), stage("proposal", "0.6", rot_days=5)]
    )
    with pytest.raises(RuleViolation, match="say where they go: discovery"):
        await pipelines.replace_pipeline(units, without_discovery, StageMapping(), ADMIN, None)
    with pytest.raises(Conflict, match="you edited version 3"):
        await pipelines.replace_pipeline(
            units, without_discovery, StageMapping({"discovery": "proposal"}), ADMIN, 3
        )

    clock.advance(timedelta(hours=1))
    replaced = await pipelines.replace_pipeline(
        units, without_discovery, StageMapping({"discovery": "proposal"}), ADMIN, 1
    )
    assert (replaced.version.number, replaced.following, replaced.moved) == (2, 1, 1)
    followed = await units.uow.deals.get(deal.id)
    assert followed is not None and followed.stage == "proposal" and followed.pipeline == without_discovery
    changed = units.of_type(StageChanged)[-1]
    assert (changed.from_stage, changed.to_stage, changed.reason) == (
        "discovery",
        "proposal",
        "pipeline changed",
    )
    # The new stage's rot limit is the deal's now.
    assert followed.rots_at == clock.now() + timedelta(days=5)
    versions, total = await pipelines.pipeline_versions(units, "enterprise", limit=10, offset=0)
    assert [v.number for v in versions] == [2, 1] and total == 2 and versions[0].actor == ADMIN.who


# --- stalled deals ----------------------------------------------------------------------------------


async def test_a_deal_stalls_once_past_the_rot_limit_and_a_move_or_an_activity_rearms_it(
    units: Units, clock: FakeClock
) -> None:
    await pipelines.define_pipeline(units, enterprise(rot_days=14), ADMIN.who)
    deal = await qualify(units)
    reads = InMemoryDealReads(units.uow)
    assert deal.rots_at == T0 + timedelta(days=14)

    clock.advance(timedelta(days=13))
    assert await units.fire_due_timers() == []
    await activity(units, deal.lead_id, clock.now())  # the clock starts again: due at day 27
    clock.advance(timedelta(days=2))
    assert await units.fire_due_timers() == []
    clock.advance(timedelta(days=12))
    [stalled] = await units.fire_due_timers()
    assert isinstance(stalled, DealStalled)
    assert (stalled.deal_id, stalled.stage, stalled.owner, stalled.rot_days) == (
        deal.id,
        "qualification",
        REP.who,
        14,
    )
    assert stalled.days_in_stage == 27.0
    assert await units.fire_due_timers() == []  # once
    page, total = await reads.deals(DealCriteria(stalled_at=clock.now()), limit=10, offset=0)
    assert [d.id for d in page] == [deal.id] and total == 1
    assert await reads.stalled_by_stage(clock.now()) == {("enterprise", "qualification"): 1}

    # An activity re-arms the stalled deal: it is no longer stalled and fires again a rot limit later.
    await activity(units, deal.lead_id, clock.now(), deal_id=deal.id)
    assert await reads.stalled_by_stage(clock.now()) == {}
    clock.advance(timedelta(days=14))
    assert [type(e) for e in await units.fire_due_timers()] == [DealStalled]

    # A move into a stage without a rot limit disarms it.
    await edit(units, deal.id, amount=Decimal("1"), expected_close_date=date(2026, 6, 1))
    moved = await move(units, deal.id, "discovery")
    assert moved.rots_at is None and await units.uow.timers.get(moved.stall_timer_key()) is None


async def test_an_activity_rearms_only_where_the_pipeline_says_so(units: Units, clock: FakeClock) -> None:
    await pipelines.define_pipeline(units, enterprise(rot_days=3, activity_rearms=False), ADMIN.who)
    deal = await qualify(units)
    clock.advance(timedelta(days=2))
    await activity(units, deal.lead_id, clock.now())
    clock.advance(timedelta(days=1))
    assert [e.deal_id for e in await units.fire_due_timers() if isinstance(e, DealStalled)] == [deal.id]


async def test_an_edit_arms_the_stall_timer_again_with_the_new_owner_and_amount(
    units: Units, clock: FakeClock
) -> None:
    await pipelines.define_pipeline(units, enterprise(rot_days=3), ADMIN.who)
    deal = await qualify(units)
    await edit(units, deal.id, owner="kim@kariz.test", amount=Decimal("700"))
    clock.advance(timedelta(days=3))
    [stalled] = [e for e in await units.fire_due_timers() if isinstance(e, DealStalled)]
    assert (stalled.owner, stalled.amount, stalled.stalled_at) == (
        "kim@kariz.test",
        Decimal("700"),
        T0 + timedelta(days=3),
    )


async def test_the_first_contact_after_a_win_is_recorded_once(units: Units, clock: FakeClock) -> None:
    deal = await qualify(units, size=10)
    clock.advance(timedelta(days=1))
    await move(units, deal.id, "won", amount=Decimal("900"))
    await activity(units, deal.lead_id, clock.now() - timedelta(hours=1))  # before the win: not it
    await activity(units, deal.lead_id, clock.now() + timedelta(hours=5))
    await activity(units, deal.lead_id, clock.now() + timedelta(hours=9))
    won = await units.uow.deals.get(deal.id)
    assert won is not None and won.first_contact_after_win_at == clock.now() + timedelta(hours=5)
    assert won.seconds_from_win_to_first_contact == 5 * 3600


async def test_a_backdated_activity_never_brings_the_stall_closer(units: Units, clock: FakeClock) -> None:
    await pipelines.define_pipeline(units, enterprise(rot_days=14), ADMIN.who)
    deal = await qualify(units)
    clock.advance(timedelta(days=5))
    await activity(units, deal.lead_id, clock.now())
    await activity(units, deal.lead_id, T0 + timedelta(days=1))  # logged late, happened before
    stored = await units.uow.deals.get(deal.id)
    assert stored is not None and stored.rots_at == T0 + timedelta(days=19)
    timer = await units.uow.timers.get(stored.stall_timer_key())
    assert timer is not None and timer.due_at == T0 + timedelta(days=19)


async def test_a_deal_with_every_new_field_is_the_same_after_its_document(
    units: Units, clock: FakeClock
) -> None:
    """The MongoDB mapping (no database needed: the documents are plain dicts) keeps what this issue added."""
    from kariz_deals.adapters.mongo.documents import deal_from_document, deal_to_document
    from kariz_deals.domain.rfp import RfpDetails

    await pipelines.define_pipeline(units, enterprise(), ADMIN.who)
    deal = await qualify(units)
    await edit(
        units,
        deal.id,
        amount=Decimal("10"),
        expected_close_date=date(2026, 6, 30),
        next_step="call",
        deal_type=DealType.RENEWAL,
        product_line="analytics",
        decision_maker="Grace",
        competitor="Acme",
        checklist=frozenset({"security review"}),
    )
    stored = await units.uow.deals.get(deal.id)
    assert stored is not None
    stored.rfp = RfpDetails.issued("City", T0 + timedelta(days=3), ("SSO",), T0)
    stored.linked_deal_ids = ("D-1",)
    stored.first_contact_after_win_at = T0
    doc = deal_to_document(stored)
    assert doc["pipeline_definition"]["routing"] == [
        {"deal_types": [], "segments": ["enterprise"], "product_lines": [], "countries": []}
    ]
    assert deal_from_document(doc) == stored
    # A deal in the built-in pipeline names it only, as before.
    assert "pipeline_definition" not in deal_to_document(
        await qualify(units, "L-small", size=5, domain="s.example")
    )
