"""Follow-ups (tasks) on the in-memory unit of work: opened, due (``FollowUpDue`` once, from a timer),
completed, snoozed, reassigned, cancelled; my day's list; requested by another service; who may do what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kariz_leads.adapters.in_memory import InMemoryLeadsUnitOfWork
from kariz_leads.domain import Lead, ResponseSla, SalesTeam
from kariz_leads.domain.history import LeadChangeKind
from kariz_leads.domain.task import Task, TaskFilter, TaskStatus
from kariz_leads.entrypoints import kafka
from kariz_leads.service_layer import activities, handlers
from kariz_leads.service_layer.activities import CompleteFollowUp, LogActivity, OpenFollowUp
from kariz_leads.service_layer.commands import CaptureLead
from kariz_shared.contracts.errors import Conflict, Forbidden, NotFound, RejectedEvent, RuleViolation
from kariz_shared.contracts.events import (
    ActivityChannel,
    ActivityLogged,
    ActivityOutcome,
    Company,
    Contact,
    FollowUpDue,
    LeadSource,
    TaskKind,
    TaskRequested,
)
from kariz_shared.contracts.identity import EVERYONE, Actor, Owners
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock

Units = InMemoryUnitsOfWork[InMemoryLeadsUnitOfWork]

ALEX, SAM, KIM = "alex@kariz.example", "sam@kariz.example", "kim@kariz.example"
TEAM = SalesTeam.of([ALEX, SAM])
SLA = ResponseSla(timedelta(hours=4))
ALEXS, SAMS = Owners(frozenset({ALEX})), Owners(frozenset({SAM}))
#: A manager of the team alex and sam are in.
MANAGERS = Owners(frozenset({"maria@kariz.example", ALEX, SAM}))
BY_ALEX, BY_MARIA = Actor(ALEX), Actor("maria@kariz.example")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryLeadsUnitOfWork(clock))


async def a_lead(units: Units, email: str = "ada@analytical.example") -> Lead:
    """A lead; round robin gives the first to alex, the second to sam."""
    command = CaptureLead(
        contact=Contact(first_name="Ada", last_name="Lovelace", email=email),
        company=Company(name="Analytical Engines"),
        source=LeadSource.WEB_FORM,
    )
    captured = await handlers.capture_lead(
        units, TEAM, SLA, command, correlation_id=f"story-{email}", by=BY_ALEX
    )
    return captured.lead


async def a_follow_up(
    units: Units,
    lead: Lead,
    due_at: datetime,
    *,
    title: str = "Call back",
    seen: Owners = ALEXS,
    by: Actor = BY_ALEX,
    **changes: object,
) -> Task:
    command = OpenFollowUp(kind=TaskKind.CALL_BACK, title=title, due_at=due_at, **changes)  # type: ignore[arg-type]
    return await activities.open_follow_up(units, lead.id, command, seen=seen, by=by)


def query(seen: Owners, now: datetime, **criteria: object) -> TaskFilter:
    """``GET /tasks``'s criteria: the caller's open follow-ups unless said otherwise."""
    fields: dict[str, object] = {
        "assignee": None,
        "status": TaskStatus.OPEN,
        "due_before": None,
        "overdue": False,
    }
    return TaskFilter.of(seen, now=now, **{**fields, **criteria})  # type: ignore[arg-type]


def due_events(fired: list[object]) -> list[FollowUpDue]:
    return [e for e in fired if isinstance(e, FollowUpDue)]


async def test_a_follow_up_is_due_once_when_the_clock_passes_its_time(units: Units, clock: FakeClock) -> None:
    lead = await a_lead(units)
    due = clock.now() + timedelta(hours=2)
    task = await a_follow_up(units, lead, due, deal_id="deal-7", note="Ask about the budget")
    assert (task.assignee, task.status, task.created_by, task.snoozed) == (ALEX, TaskStatus.OPEN, ALEX, 0)

    clock.advance(timedelta(hours=2) - timedelta(milliseconds=1))
    assert due_events(await units.fire_due_timers()) == []
    clock.advance(timedelta(milliseconds=1))
    [fired] = due_events(await units.fire_due_timers())
    assert fired == FollowUpDue(
        task_id=task.id,
        lead_id=lead.id,
        deal_id="deal-7",
        assignee=ALEX,
        kind=TaskKind.CALL_BACK,
        title="Call back",
        due_at=due,
    )
    clock.advance(timedelta(days=3))
    assert due_events(await units.fire_due_timers()) == []
    assert units.of_type(FollowUpDue) == [fired]
    # Still open, and overdue now.
    stored = await activities.follow_up(units, task.id, ALEXS)
    assert stored.is_open and stored.is_overdue(clock.now())


async def test_a_completed_follow_up_is_never_due(units: Units, clock: FakeClock) -> None:
    lead = await a_lead(units)
    task = await a_follow_up(units, lead, clock.now() + timedelta(hours=2))
    clock.advance(timedelta(hours=1))
    done = await activities.complete_follow_up(units, task.id, CompleteFollowUp(), seen=ALEXS, by=BY_ALEX)
    assert (done.status, done.completed_by, done.completed_at, done.completed_activity_id) == (
        TaskStatus.DONE,
        ALEX,
        clock.now(),
        None,
    )
    assert await units.uow.timers.get(task.timer_key()) is None
    clock.advance(timedelta(days=1))
    assert due_events(await units.fire_due_timers()) == []
    with pytest.raises(Conflict, match="is done: it cannot be completed"):
        await activities.complete_follow_up(units, task.id, CompleteFollowUp(), seen=ALEXS, by=BY_ALEX)
    for change in (
        activities.snooze_follow_up(units, task.id, clock.now() + timedelta(hours=1), seen=ALEXS, by=BY_ALEX),
        activities.cancel_follow_up(units, task.id, seen=ALEXS, by=BY_ALEX),
        activities.reassign_follow_up(units, task.id, SAM, seen=MANAGERS, by=BY_MARIA),
    ):
        with pytest.raises(Conflict):
            await change


async def test_completing_links_the_activity_that_did_it(units: Units, clock: FakeClock) -> None:
    lead = await a_lead(units)
    other_lead = await a_lead(units, "grace@navy.example")  # sam's
    first = await a_follow_up(units, lead, clock.now() + timedelta(hours=2))
    second = await a_follow_up(units, lead, clock.now() + timedelta(hours=3), deal_id="deal-9")
    call = LogActivity(channel=ActivityChannel.CALL, outcome=ActivityOutcome.REACHED)
    logged = await activities.log_activity(units, lead.id, call, seen=ALEXS, by=BY_ALEX)
    elsewhere = await activities.log_activity(units, other_lead.id, call, seen=SAMS, by=Actor(SAM))

    done = await activities.complete_follow_up(
        units, first.id, CompleteFollowUp(activity_id=logged.activity.id), seen=ALEXS, by=BY_ALEX
    )
    assert done.completed_activity_id == logged.activity.id
    with pytest.raises(RuleViolation, match=r"^activity_id: no activity .* on this follow-up's lead"):
        await activities.complete_follow_up(
            units, second.id, CompleteFollowUp(activity_id=elsewhere.activity.id), seen=ALEXS, by=BY_ALEX
        )
    with pytest.raises(RuleViolation, match=r"^activity: "):
        await activities.complete_follow_up(
            units, second.id, CompleteFollowUp(activity_id="x", activity=call), seen=ALEXS, by=BY_ALEX
        )
    # An activity logged with the completion is logged (and published) in the same unit.
    before = len(units.of_type(ActivityLogged))
    done = await activities.complete_follow_up(
        units, second.id, CompleteFollowUp(activity=call), seen=ALEXS, by=BY_ALEX
    )
    [inline] = units.of_type(ActivityLogged)[before:]
    assert done.completed_activity_id == inline.activity_id
    assert inline.deal_id == "deal-9"  # the follow-up's deal
    assert await units.uow.activities.get(inline.activity_id) is not None


async def test_snoozing_moves_the_due_time_and_its_timer(units: Units, clock: FakeClock) -> None:
    lead = await a_lead(units)
    task = await a_follow_up(units, lead, clock.now() + timedelta(hours=1))
    clock.advance(timedelta(minutes=50))
    later = clock.now() + timedelta(hours=2)
    snoozed = await activities.snooze_follow_up(units, task.id, later, seen=ALEXS, by=BY_ALEX)
    assert (snoozed.due_at, snoozed.snoozed) == (later, 1)
    clock.advance(timedelta(hours=1))
    assert due_events(await units.fire_due_timers()) == []  # not at the old time
    clock.set(later)
    [fired] = due_events(await units.fire_due_timers())
    assert fired.due_at == later
    # Snoozed again after it was due: due again at the new time.
    again = clock.now() + timedelta(days=1)
    await activities.snooze_follow_up(units, task.id, again, seen=ALEXS, by=BY_ALEX)
    clock.set(again)
    assert [e.due_at for e in due_events(await units.fire_due_timers())] == [again]
    with pytest.raises(RuleViolation, match=r"^due_at: a follow-up is snoozed to a later time"):
        await activities.snooze_follow_up(units, task.id, clock.now(), seen=ALEXS, by=BY_ALEX)


async def test_reassigning_rearms_the_timer_for_the_new_assignee(units: Units, clock: FakeClock) -> None:
    lead = await a_lead(units)
    task = await a_follow_up(units, lead, clock.now() + timedelta(hours=1))
    moved = await activities.reassign_follow_up(
        units, task.id, " Sam@Kariz.example ", seen=MANAGERS, by=BY_MARIA
    )
    assert moved.assignee == SAM
    with pytest.raises(Forbidden, match=r"^assignee: kim@kariz\.example is not one of the people"):
        await activities.reassign_follow_up(units, task.id, KIM, seen=MANAGERS, by=BY_MARIA)
    # Alex no longer sees it; Sam does.
    with pytest.raises(NotFound, match=rf"^no follow-up with id '{task.id}'$"):
        await activities.follow_up(units, task.id, ALEXS)
    assert (await activities.follow_up(units, task.id, SAMS)).assignee == SAM
    clock.advance(timedelta(hours=1))
    [fired] = due_events(await units.fire_due_timers())
    assert fired.assignee == SAM
    # An admin gives it to anyone.
    assert (
        await activities.reassign_follow_up(units, task.id, KIM, seen=EVERYONE, by=BY_MARIA)
    ).assignee == KIM


async def test_a_cancelled_follow_up_is_never_due(units: Units, clock: FakeClock) -> None:
    lead = await a_lead(units)
    task = await a_follow_up(units, lead, clock.now() + timedelta(hours=1))
    cancelled = await activities.cancel_follow_up(units, task.id, seen=ALEXS, by=BY_ALEX)
    assert (cancelled.status, cancelled.cancelled_by) == (TaskStatus.CANCELLED, ALEX)
    clock.advance(timedelta(hours=2))
    assert due_events(await units.fire_due_timers()) == []
    changes, _ = await activities.timeline(units, lead.id, ALEXS, limit=10, offset=0)
    assert [c.kind for c in changes][:2] == [
        LeadChangeKind.FOLLOW_UP_CANCELLED,
        LeadChangeKind.FOLLOW_UP_OPENED,
    ]


async def test_a_follow_up_in_the_past_or_for_someone_out_of_reach_is_refused(
    units: Units, clock: FakeClock
) -> None:
    lead = await a_lead(units)
    with pytest.raises(RuleViolation, match=r"^due_at: .* is in the past"):
        await a_follow_up(units, lead, clock.now() - timedelta(minutes=6))
    with pytest.raises(Forbidden, match=r"^assignee: sam@kariz\.example"):
        await a_follow_up(units, lead, clock.now() + timedelta(hours=1), assignee=SAM)
    with pytest.raises(RuleViolation, match=r"^title: "):
        await a_follow_up(units, lead, clock.now() + timedelta(hours=1), title="  ")
    # A manager gives one of the team's leads to anyone in the team.
    task = await a_follow_up(units, lead, clock.now() + timedelta(hours=1), seen=MANAGERS, assignee=SAM)
    assert task.assignee == SAM
    assert len(units.uow.tasks.by_id) == 1


async def test_a_rep_sees_and_changes_only_their_own_follow_ups(units: Units, clock: FakeClock) -> None:
    alexs_lead = await a_lead(units)
    sams_lead = await a_lead(units, "grace@navy.example")
    assert sams_lead.owner == SAM
    sams = await a_follow_up(units, sams_lead, clock.now() + timedelta(hours=1), seen=SAMS)
    alexs = await a_follow_up(units, alexs_lead, clock.now() + timedelta(hours=1))
    missing = rf"^no follow-up with id '{sams.id}'$"
    for attempt in (
        activities.follow_up(units, sams.id, ALEXS),
        activities.complete_follow_up(units, sams.id, CompleteFollowUp(), seen=ALEXS, by=BY_ALEX),
        activities.snooze_follow_up(units, sams.id, clock.now() + timedelta(hours=2), seen=ALEXS, by=BY_ALEX),
        activities.cancel_follow_up(units, sams.id, seen=ALEXS, by=BY_ALEX),
    ):
        with pytest.raises(NotFound, match=missing):
            await attempt
    with pytest.raises(NotFound, match=r"^no lead with id"):
        await a_follow_up(units, sams_lead, clock.now() + timedelta(hours=1))

    def mine(**criteria: object) -> TaskFilter:
        return query(ALEXS, clock.now(), **criteria)

    assert await activities.follow_ups(units, mine(), limit=10, offset=0) == ([alexs], 1)
    assert await activities.follow_ups(units, mine(assignee=SAM), limit=10, offset=0) == ([], 0)
    assert await activities.follow_ups(units, mine(assignee="*"), limit=10, offset=0) == ([alexs], 1)
    team = query(MANAGERS, clock.now(), assignee="*", status=None)
    assert (await activities.follow_ups(units, team, limit=10, offset=0))[1] == 2


async def test_my_day_lists_follow_ups_soonest_first_by_status_due_time_and_overdue(
    units: Units, clock: FakeClock
) -> None:
    lead = await a_lead(units)
    start = clock.now()
    tasks = [await a_follow_up(units, lead, start + timedelta(hours=h), title=f"T{h}") for h in (5, 1, 3, 30)]
    clock.advance(timedelta(hours=2))
    done = await activities.complete_follow_up(units, tasks[2].id, CompleteFollowUp(), seen=ALEXS, by=BY_ALEX)

    async def titles(**criteria: object) -> list[str]:
        found, total = await activities.follow_ups(
            units, query(ALEXS, clock.now(), **criteria), limit=10, offset=0
        )
        assert total == len(found)
        return [t.title for t in found]

    assert await titles() == ["T1", "T5", "T30"]
    assert await titles(overdue=True) == ["T1"]
    assert await titles(due_before=start + timedelta(hours=24)) == ["T1", "T5"]
    assert await titles(status=TaskStatus.DONE) == [done.title]
    assert await titles(status=None) == ["T1", "T3", "T5", "T30"]
    with pytest.raises(RuleViolation, match=r"^status: an overdue follow-up is open"):
        await titles(overdue=True, status=TaskStatus.DONE)
    with pytest.raises(RuleViolation, match=r"^assignee: "):
        await titles(assignee="not an address")
    page, total = await activities.follow_ups(
        units,
        query(ALEXS, clock.now(), assignee=ALEX),
        limit=1,
        offset=1,
    )
    assert ([t.title for t in page], total) == (["T5"], 3)


def requested(lead_id: str, request_id: str = "req-1", **changes: object) -> TaskRequested:
    fields: dict[str, object] = {
        "request_id": request_id,
        "lead_id": lead_id,
        "kind": TaskKind.SEND_MATERIAL,
        "title": "Send the catalogue",
        "due_at": datetime(2026, 3, 3, 9, 0, tzinfo=UTC),
        "requested_at": datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        **changes,
    }
    return TaskRequested(**fields)  # type: ignore[arg-type]


async def test_a_requested_follow_up_is_made_once_per_request(units: Units, clock: FakeClock) -> None:
    lead = await a_lead(units)
    await units.handle(kafka.on_task_requested, requested(lead.id, note="From the automation"))
    await units.handle(kafka.on_task_requested, requested(lead.id, title="A repeat, another event"))
    await units.handle(kafka.on_task_requested, requested(lead.id, "req-2", assignee="Kim@Kariz.example"))

    first = await activities.follow_up(units, "req-1", EVERYONE)
    assert (first.assignee, first.title, first.request_id, first.created_by, first.note) == (
        ALEX,
        "Send the catalogue",
        "req-1",
        "/kariz/notifications",
        "From the automation",
    )
    assert (await activities.follow_up(units, "req-2", EVERYONE)).assignee == KIM
    assert len(units.uow.tasks.by_id) == 2
    clock.set(datetime(2026, 3, 3, 9, 0, tzinfo=UTC))
    assert sorted(e.task_id for e in due_events(await units.fire_due_timers())) == ["req-1", "req-2"]
    changes, _ = await activities.timeline(units, lead.id, EVERYONE, limit=10, offset=0)
    opened = [c for c in changes if c.kind is LeadChangeKind.FOLLOW_UP_OPENED]
    assert {c.by.who for c in opened} == {"/kariz/notifications"}


async def test_a_request_for_an_unknown_lead_or_without_a_title_is_rejected(units: Units) -> None:
    with pytest.raises(RejectedEvent, match="TaskRequested for a lead leads never captured"):
        await units.handle(kafka.on_task_requested, requested("ghost"))
    lead = await a_lead(units)
    with pytest.raises(RejectedEvent, match="title"):
        await units.handle(kafka.on_task_requested, requested(lead.id, title="   "))
    assert units.uow.tasks.by_id == {}


async def test_a_reassigned_leads_open_follow_ups_of_its_old_owner_move_to_the_new_one(
    units: Units, clock: FakeClock
) -> None:
    lead = await a_lead(units)
    mine = await a_follow_up(units, lead, clock.now() + timedelta(hours=1))
    kims = await a_follow_up(units, lead, clock.now() + timedelta(hours=2), seen=EVERYONE, assignee=KIM)
    done = await a_follow_up(units, lead, clock.now() + timedelta(hours=3))
    await activities.complete_follow_up(units, done.id, CompleteFollowUp(), seen=ALEXS, by=BY_ALEX)

    async def reassigned(uow: InMemoryLeadsUnitOfWork) -> list[Task]:
        # As a reassignment's use case does, once the lead has its new owner.
        stored = await uow.leads.get(lead.id)
        assert stored is not None
        stored.owner = SAM
        return await activities.move_open_follow_ups(uow, stored, ALEX, at=clock.now(), by=BY_MARIA)

    moved = await units.run(reassigned)
    assert [t.id for t in moved] == [mine.id]
    assert (await activities.follow_up(units, mine.id, SAMS)).assignee == SAM
    assert (await activities.follow_up(units, kims.id, EVERYONE)).assignee == KIM
    assert (await activities.follow_up(units, done.id, EVERYONE)).assignee == ALEX
    clock.advance(timedelta(hours=2))
    assert sorted((e.task_id, e.assignee) for e in due_events(await units.fire_due_timers())) == sorted(
        [(mine.id, SAM), (kims.id, KIM)]
    )
