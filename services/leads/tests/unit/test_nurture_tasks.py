"""A nurture track's task step (``NurtureStepDue`` of kind task, from qualification) is a follow-up for
the lead's owner, once per step; content steps are notifications' and open nothing here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kariz_leads.adapters.in_memory import InMemoryLeadsUnitOfWork
from kariz_leads.domain import Lead, ResponseSla, SalesTeam
from kariz_leads.entrypoints import kafka
from kariz_leads.service_layer import activities, handlers
from kariz_leads.service_layer.commands import CaptureLead
from kariz_shared.contracts.errors import RejectedEvent
from kariz_shared.contracts.events import (
    Company,
    Contact,
    FollowUpDue,
    LeadSource,
    NurtureStepDue,
    NurtureStepKind,
    TaskKind,
)
from kariz_shared.contracts.identity import EVERYONE, Actor
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock

Units = InMemoryUnitsOfWork[InMemoryLeadsUnitOfWork]
ALEX = "alex@kariz.example"
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryLeadsUnitOfWork(clock))


async def a_lead(units: Units) -> Lead:
    command = CaptureLead(
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@analytical.example"),
        company=Company(name="Analytical Engines"),
        source=LeadSource.WEB_FORM,
    )
    captured = await handlers.capture_lead(
        units,
        SalesTeam.of([ALEX]),
        ResponseSla(timedelta(hours=4)),
        command,
        correlation_id="story",
        by=Actor(ALEX),
    )
    return captured.lead


def step(lead_id: str, n: int = 1, **changes: object) -> NurtureStepDue:
    fields: dict[str, object] = {
        "step_id": f"{lead_id}:standard:{n}",
        "lead_id": lead_id,
        "owner": "someone-else@kariz.example",
        "track": "standard",
        "step": n,
        "kind": NurtureStepKind.TASK,
        "title": "Call to follow up the case study",
        "task_kind": TaskKind.CALL_BACK,
        "due_at": T0 + timedelta(days=7),
        **changes,
    }
    return NurtureStepDue(**fields)  # type: ignore[arg-type]


async def test_a_task_step_opens_one_follow_up_for_the_leads_owner(units: Units, clock: FakeClock) -> None:
    lead = await a_lead(units)
    await units.handle(kafka.on_nurture_step_due, step(lead.id))
    await units.handle(kafka.on_nurture_step_due, step(lead.id))  # redelivered: one follow-up
    task = await activities.follow_up(units, f"{lead.id}:standard:1", EVERYONE)
    assert (task.assignee, task.kind, task.title, task.due_at) == (
        ALEX,
        TaskKind.CALL_BACK,
        "Call to follow up the case study",
        T0 + timedelta(days=7),
    )
    assert (task.created_by, task.request_id, task.note) == (
        "/kariz/qualification",
        f"{lead.id}:standard:1",
        "Nurture track standard, step 2",
    )
    assert len(units.uow.tasks.by_id) == 1
    # It is a follow-up like any other: its timer tells the owner when it is due.
    clock.set(T0 + timedelta(days=7))
    [due] = [e for e in await units.fire_due_timers() if isinstance(e, FollowUpDue)]
    assert due.task_id == task.id

    # The same step of a later stay in nurture is another step.
    await units.handle(kafka.on_nurture_step_due, step(lead.id, step_id=f"{lead.id}:standard:1:reopened-1"))
    assert len(units.uow.tasks.by_id) == 2


async def test_a_content_step_opens_nothing_and_an_unknown_lead_is_rejected(units: Units) -> None:
    lead = await a_lead(units)
    content = step(lead.id, 0, kind=NurtureStepKind.CONTENT, task_kind=None, content_tags=["case-study"])
    await units.handle(kafka.on_nurture_step_due, content)
    assert units.uow.tasks.by_id == {}
    with pytest.raises(RejectedEvent, match="NurtureStepDue for a lead leads never captured"):
        await units.handle(kafka.on_nurture_step_due, step("ghost"))
