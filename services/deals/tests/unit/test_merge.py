"""Deals follow a merge of leads (``LeadsMerged``) on the in-memory unit of work: every deal of the merged
lead is the survivor's, a redelivery moves nothing more, and a qualification of the merged lead that comes
after the merge opens no second deal for the person."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TypeAlias

import pytest

from kariz_deals.adapters.in_memory import InMemoryDealsUnitOfWork
from kariz_deals.domain import DEFAULT_PIPELINE, Deal, DealCriteria
from kariz_deals.entrypoints import kafka
from kariz_deals.service_layer import handlers
from kariz_deals.service_layer.commands import MoveDeal
from kariz_shared.contracts.events import (
    Company,
    Contact,
    DealOpened,
    LeadQualified,
    LeadsMerged,
    LeadSource,
)
from kariz_shared.contracts.identity import EVERYONE, Actor
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.runtime.logging import correlation_id

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
Units: TypeAlias = InMemoryUnitsOfWork[InMemoryDealsUnitOfWork]
SUBSCRIPTIONS = kafka.subscriptions(pipeline=DEFAULT_PIPELINE, currency="EUR")


@pytest.fixture
def units() -> Units:
    return InMemoryUnitsOfWork(InMemoryDealsUnitOfWork(FakeClock(T0)))


@pytest.fixture(autouse=True)
def consumed_event_story() -> Iterator[None]:
    token = correlation_id.set("corr-lead")
    yield
    correlation_id.reset(token)


def qualified(lead_id: str, owner: str = "rep@kariz.test") -> LeadQualified:
    return LeadQualified(
        lead_id=lead_id,
        owner=owner,
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@analytical.example"),
        company=Company(name="Analytical Engines Ltd", domain="analytical.example"),
        source=LeadSource.TRADE_SHOW,
        score=72,
        threshold=60,
        breakdown=[],
        qualified_at=T0,
    )


def merged(survivor: str = "S", duplicate: str = "D") -> LeadsMerged:
    return LeadsMerged(
        lead_id=survivor,
        merged_lead_id=duplicate,
        owner="rep@kariz.test",
        merged_owner="sam@kariz.test",
        merged_at=T0,
        actor="maria@kariz.test",
    )


async def consume(units: Units, event: LeadQualified | LeadsMerged) -> None:
    await units.handle(SUBSCRIPTIONS[type(event)], event)


def deals_of(units: Units, lead_id: str) -> list[Deal]:
    return sorted((d for d in units.uow.deals.by_id.values() if d.lead_id == lead_id), key=lambda d: d.id)


async def test_the_merged_leads_deals_are_the_survivors_and_a_redelivery_moves_nothing_more(
    units: Units,
) -> None:
    await consume(units, qualified("S"))
    await consume(units, qualified("D", owner="sam@kariz.test"))
    [own], [theirs] = deals_of(units, "S"), deals_of(units, "D")
    published = list(units.published)

    await consume(units, merged())

    assert deals_of(units, "D") == []
    both = deals_of(units, "S")
    assert {d.id for d in both} == {own.id, theirs.id}
    moved = next(d for d in both if d.id == theirs.id)
    # Owner, stage and the qualification it came from stay; only the lead it belongs to changed.
    assert (moved.owner, moved.stage, moved.qualified_lead, moved.version) == (
        "sam@kariz.test",
        theirs.stage,
        "D",
        theirs.version + 1,
    )
    assert units.published == published, "a deal moving to the survivor is no event of its own"
    before = {d.id: d.version for d in both}
    await consume(units, merged())
    assert {d.id: d.version for d in deals_of(units, "S")} == before
    # The survivor's deals are found by its id, both of them.
    found = units.uow.deals.select(DealCriteria(lead_id="S").matches, lambda d: d.id, limit=10, offset=0)
    assert found[1] == 2


async def test_a_moved_deal_still_moves_through_its_pipeline(units: Units) -> None:
    await consume(units, qualified("D"))
    await consume(units, merged())
    [deal] = deals_of(units, "S")
    moved = await handlers.move_deal(
        units, MoveDeal(deal.id, "discovery", seen=EVERYONE, by=Actor("rep@kariz.test"))
    )
    assert (moved.lead_id, moved.stage) == ("S", "discovery")


async def test_a_qualification_of_the_merged_lead_after_the_merge_opens_no_second_deal(units: Units) -> None:
    await consume(units, qualified("S"))
    await consume(units, merged())  # the duplicate's qualification is still on its way
    await consume(units, qualified("D"))
    assert len(deals_of(units, "S")) == 1 and deals_of(units, "D") == []
    assert len(units.of_type(DealOpened)) == 1


async def test_a_qualification_of_the_merged_lead_opens_the_survivors_deal_when_it_has_none(
    units: Units,
) -> None:
    await consume(units, merged("S", "D"))
    await consume(units, merged("T", "S"))  # the survivor merged on, into T
    await consume(units, qualified("D"))
    [deal] = deals_of(units, "T")
    assert deal.qualified_lead == "D"
    [opened] = units.of_type(DealOpened)
    assert opened.lead_id == "T"
    # That qualification sent again still opens nothing more.
    await consume(units, qualified("D"))
    assert len(units.uow.deals.by_id) == 1


async def test_a_merge_heard_of_after_the_survivors_own_merge_reaches_the_last_survivor(units: Units) -> None:
    await consume(units, qualified("A"))
    await consume(units, merged("C", "B"))  # B into C first ...
    await consume(units, merged("B", "A"))  # ... then A into B, heard of later
    [deal] = deals_of(units, "C")
    assert deal.qualified_lead == "A"
