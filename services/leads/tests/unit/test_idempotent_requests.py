"""Captures and imports sent again with their Idempotency-Key: the repeat answers what the first did and
captures, touches and publishes nothing; the key is the sender's, bound to its request, kept a day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kariz_leads.adapters.in_memory import InMemoryLeadsUnitOfWork
from kariz_leads.domain import ResponseSla, SalesTeam
from kariz_leads.service_layer import handlers, views
from kariz_leads.service_layer.commands import CaptureLead, ImportLeads
from kariz_shared.contracts.errors import Conflict
from kariz_shared.contracts.events import Company, Contact, LeadCaptured, LeadSource
from kariz_shared.contracts.identity import Actor
from kariz_shared.persistence.idempotency import RETAINED, RequestKey
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock

Units = InMemoryUnitsOfWork[InMemoryLeadsUnitOfWork]
TEAM = SalesTeam.of(["alex@kariz.example", "sam@kariz.example"])
SLA = ResponseSla(timedelta(hours=4))
MANAGER = Actor("maria@kariz.example")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryLeadsUnitOfWork(clock))


def a_lead(n: int) -> CaptureLead:
    return CaptureLead(
        contact=Contact(first_name="Ada", last_name=f"Lovelace{n}", email=f"ada{n}@analytical.example"),
        company=Company(name="Analytical Engines"),
        source=LeadSource.TRADE_SHOW,
    )


async def import_(units: Units, request: RequestKey | None, *leads: CaptureLead) -> list[handlers.Captured]:
    return await handlers.import_leads(
        units, TEAM, SLA, ImportLeads(leads), correlation_id="import-1", by=MANAGER, request=request
    )


async def test_an_import_sent_again_with_its_key_answers_the_same_and_stores_nothing(units: Units) -> None:
    key = RequestKey.of(MANAGER.who, "batch-7", "the body")
    first = await import_(units, key, a_lead(1), a_lead(2))
    again = await import_(units, key, a_lead(1), a_lead(2))
    assert [(c.lead.id, c.duplicate, c.replayed) for c in again] == [(c.lead.id, False, True) for c in first]
    assert len(units.of_type(LeadCaptured)) == 2
    for captured in first:
        stored = await views.lead(units, captured.lead.id)
        assert stored.touch_count == 1  # the repeat touched nobody
    # Without a key, the same list is a second request: touches of the known addresses.
    plain = await import_(units, None, a_lead(1), a_lead(2))
    assert [(c.duplicate, c.replayed) for c in plain] == [(True, False), (True, False)]


async def test_a_repeated_capture_is_the_first_ones_answer_even_after_the_lead_changed(units: Units) -> None:
    key = RequestKey.of(MANAGER.who, "form-1", "the body")
    first = await handlers.capture_lead(
        units, TEAM, SLA, a_lead(1), correlation_id="c", by=MANAGER, request=key
    )
    touched = await handlers.capture_lead(units, TEAM, SLA, a_lead(1), correlation_id="d", by=MANAGER)
    again = await handlers.capture_lead(
        units, TEAM, SLA, a_lead(1), correlation_id="e", by=MANAGER, request=key
    )
    assert (again.lead.id, again.duplicate, again.replayed) == (first.lead.id, False, True)
    assert touched.duplicate and again.lead.touch_count == 2  # the lead as it is now


async def test_a_key_is_its_senders_and_bound_to_its_request(units: Units) -> None:
    mine = RequestKey.of(MANAGER.who, "k", "body one")
    await import_(units, mine, a_lead(1))
    with pytest.raises(Conflict, match="Idempotency-Key: this key was used for a different request"):
        await import_(units, RequestKey.of(MANAGER.who, "k", "body two"), a_lead(2))
    # Another sender's same key is another request.
    theirs = await import_(units, RequestKey.of("kim@kariz.example", "k", "body two"), a_lead(2))
    assert not theirs[0].replayed and len(units.of_type(LeadCaptured)) == 2


async def test_a_key_is_kept_a_day_then_it_is_new_again(units: Units, clock: FakeClock) -> None:
    key = RequestKey.of(MANAGER.who, "k", "body")
    await import_(units, key, a_lead(1))
    clock.advance(RETAINED - timedelta(seconds=1))
    assert (await import_(units, key, a_lead(1)))[0].replayed
    clock.advance(timedelta(seconds=2))
    late = await import_(units, key, a_lead(1))
    assert (late[0].replayed, late[0].duplicate) == (False, True)  # done again: a touch
