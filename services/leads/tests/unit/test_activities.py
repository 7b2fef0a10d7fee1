"""Activities on the in-memory unit of work: logging one, the attempts it counts, the first contact it
makes, the response SLA it stops, the lead's timeline, and who may log them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kariz_leads.adapters.in_memory import InMemoryLeadsUnitOfWork
from kariz_leads.domain import Lead, LeadFilter, LeadStatus, ResponseSla, SalesTeam
from kariz_leads.domain.history import LeadChangeKind
from kariz_leads.domain.lead import ContactAttempts
from kariz_leads.entrypoints import kafka
from kariz_leads.service_layer import activities, handlers, views
from kariz_leads.service_layer.activities import LogActivity, OpenFollowUp
from kariz_leads.service_layer.commands import CaptureLead
from kariz_shared.contracts.errors import Forbidden, NotFound, RuleViolation
from kariz_shared.contracts.events import (
    ActivityChannel,
    ActivityDirection,
    ActivityLogged,
    ActivityOutcome,
    Company,
    Contact,
    FollowUpDue,
    LeadQualified,
    LeadResponseOverdue,
    LeadSource,
    ScoreLine,
    TaskKind,
)
from kariz_shared.contracts.identity import EVERYONE, Actor, Owners
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock

Units = InMemoryUnitsOfWork[InMemoryLeadsUnitOfWork]

ALEX, SAM = "alex@kariz.example", "sam@kariz.example"
TEAM = SalesTeam.of([ALEX])
SLA = ResponseSla(timedelta(hours=4))
#: What a rep reaches: their own records.
ALEXS = Owners(frozenset({ALEX}))
BY_ALEX = Actor(ALEX)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryLeadsUnitOfWork(clock))


async def a_lead(units: Units, email: str = "ada@analytical.example") -> Lead:
    command = CaptureLead(
        contact=Contact(first_name="Ada", last_name="Lovelace", email=email),
        company=Company(name="Analytical Engines"),
        source=LeadSource.WEB_FORM,
    )
    captured = await handlers.capture_lead(
        units, TEAM, SLA, command, correlation_id=f"story-{email}", by=BY_ALEX
    )
    return captured.lead


def call(outcome: ActivityOutcome = ActivityOutcome.REACHED, **changes: object) -> LogActivity:
    fields: dict[str, object] = {"channel": ActivityChannel.CALL, "outcome": outcome, **changes}
    return LogActivity(**fields)  # type: ignore[arg-type]


async def log(units: Units, lead: Lead, command: LogActivity, seen: Owners = ALEXS) -> activities.Logged:
    return await activities.log_activity(units, lead.id, command, seen=seen, by=BY_ALEX)


async def test_an_activity_is_stored_and_published_as_activity_logged_in_its_leads_story(
    units: Units, clock: FakeClock
) -> None:
    lead = await a_lead(units)
    clock.advance(timedelta(minutes=20))
    logged = await log(
        units,
        lead,
        call(
            ActivityOutcome.MEETING_BOOKED,
            direction=ActivityDirection.INBOUND,
            duration_s=300,
            note="Wants a demo",
            agreed="Demo on Thursday",
            deal_id="deal-1",
        ),
    )
    activity = logged.activity
    assert (activity.lead_id, activity.owner, activity.occurred_at, activity.logged_at) == (
        lead.id,
        ALEX,
        clock.now(),
        clock.now(),
    )
    [event] = units.of_type(ActivityLogged)
    assert event == ActivityLogged(
        activity_id=activity.id,
        lead_id=lead.id,
        deal_id="deal-1",
        owner=ALEX,
        channel=ActivityChannel.CALL,
        direction=ActivityDirection.INBOUND,
        outcome=ActivityOutcome.MEETING_BOOKED,
        reaching=True,
        duration_s=300,
        note="Wants a demo",
        agreed="Demo on Thursday",
        occurred_at=clock.now(),
        logged_at=clock.now(),
        actor=ALEX,
    )
    page, total = await activities.activities_of(units, lead.id, ALEXS, limit=10, offset=0)
    assert (page, total) == ([activity], 1)
    assert units.uow.metrics.activities == [(ActivityChannel.CALL, ActivityOutcome.MEETING_BOOKED)]


async def test_the_first_reaching_activity_sets_the_lead_working_with_its_first_contact(
    units: Units, clock: FakeClock
) -> None:
    lead = await a_lead(units)
    clock.advance(timedelta(hours=1))
    first_try = clock.now()
    logged = await log(units, lead, call(ActivityOutcome.NO_ANSWER))
    assert logged.lead.status is LeadStatus.NEW and logged.lead.first_contact_at is None
    clock.advance(timedelta(hours=1))
    await log(units, lead, call(ActivityOutcome.LEFT_VOICEMAIL))
    clock.advance(timedelta(minutes=30))
    reached_at = clock.now()
    email = await log(
        units, lead, LogActivity(channel=ActivityChannel.EMAIL, outcome=ActivityOutcome.REACHED)
    )
    clock.advance(timedelta(hours=1))
    await log(units, lead, call(ActivityOutcome.REACHED))

    stored = await views.lead(units, lead.id)
    assert email.lead.status is LeadStatus.WORKING
    assert (stored.status, stored.first_contact_at) == (LeadStatus.WORKING, reached_at)
    assert stored.time_to_first_contact_s == timedelta(hours=2, minutes=30).total_seconds()
    assert stored.attempts == {
        "call": ContactAttempts(3, first_try, clock.now()),
        "email": ContactAttempts(1, reached_at, reached_at),
    }
    assert stored.attempt_count == 4
    # One status change on the timeline, with the activity that made it.
    changes, _ = await activities.timeline(units, lead.id, ALEXS, limit=50, offset=0)
    [status] = [c for c in changes if c.kind is LeadChangeKind.STATUS_CHANGED]
    assert status.details == {"from": "new", "to": "working", "activity_id": email.activity.id}
    assert status.by == BY_ALEX


async def test_a_note_is_no_attempt_and_a_backdated_reach_is_the_first_contact(
    units: Units, clock: FakeClock
) -> None:
    lead = await a_lead(units)
    clock.advance(timedelta(hours=2))
    note = await log(units, lead, LogActivity(channel=ActivityChannel.NOTE, outcome=ActivityOutcome.REACHED))
    assert not note.activity.reaching and not note.activity.is_contact
    assert (note.lead.attempts, note.lead.status) == ({}, LeadStatus.NEW)
    [event] = units.of_type(ActivityLogged)
    assert event.reaching is False
    # The response SLA still runs: a note answers nobody.
    assert await units.uow.timers.get(lead.response_timer_key()) is not None

    await log(units, lead, call(occurred_at=clock.now() - timedelta(minutes=90)))
    stored = await views.lead(units, lead.id)
    assert stored.first_contact_at == clock.now() - timedelta(minutes=90)
    assert stored.time_to_first_contact_s == timedelta(minutes=30).total_seconds()


async def test_a_contact_activity_stops_the_response_sla_and_a_note_does_not(
    units: Units, clock: FakeClock
) -> None:
    lead = await a_lead(units)
    other = await a_lead(units, "other@acme.example")
    clock.advance(timedelta(hours=1))
    await log(units, lead, call(ActivityOutcome.NO_ANSWER))  # an attempt answers the SLA, reached or not
    await log(units, other, LogActivity(channel=ActivityChannel.NOTE, outcome=ActivityOutcome.DONE))
    assert await units.uow.timers.get(lead.response_timer_key()) is None
    clock.advance(timedelta(hours=4))
    fired = await units.fire_due_timers()
    assert [e.lead_id for e in fired if isinstance(e, LeadResponseOverdue)] == [other.id]


async def test_a_verdicts_status_stays_when_the_contact_is_reached(units: Units, clock: FakeClock) -> None:
    lead = await a_lead(units)
    verdict = LeadQualified(
        lead_id=lead.id,
        owner=lead.owner,
        contact=lead.contact,
        company=lead.company,
        source=lead.source,
        score=80,
        threshold=60,
        breakdown=[ScoreLine(rule="industry", matched="software", points=30)],
        qualified_at=clock.now(),
    )
    await units.handle(kafka.on_lead_qualified, verdict)
    clock.advance(timedelta(hours=1))
    logged = await log(units, lead, call())
    assert logged.lead.status is LeadStatus.QUALIFIED
    stored = await views.lead(units, lead.id)
    assert (stored.status, stored.first_contact_at) == (LeadStatus.QUALIFIED, clock.now())


async def test_an_activity_in_the_future_or_before_the_capture_is_refused(
    units: Units, clock: FakeClock
) -> None:
    lead = await a_lead(units)
    with pytest.raises(RuleViolation, match=r"^occurred_at: .* is in the future"):
        await log(units, lead, call(occurred_at=clock.now() + timedelta(minutes=6)))
    with pytest.raises(RuleViolation, match=r"^occurred_at: .* before the lead was captured"):
        await log(units, lead, call(occurred_at=clock.now() - timedelta(seconds=1)))
    # A little ahead (a phone's clock) is fine.
    await log(units, lead, call(occurred_at=clock.now() + timedelta(minutes=4)))
    assert len(units.of_type(ActivityLogged)) == 1


async def test_a_rep_logs_only_on_their_own_leads_a_manager_on_the_teams(units: Units) -> None:
    lead = await a_lead(units)
    for seen in (Owners(frozenset({SAM})), Owners(frozenset())):
        with pytest.raises(NotFound, match=rf"^no lead with id '{lead.id}'$"):
            await log(units, lead, call(), seen=seen)
        with pytest.raises(NotFound):
            await activities.activities_of(units, lead.id, seen, limit=10, offset=0)
        with pytest.raises(NotFound):
            await activities.timeline(units, lead.id, seen, limit=10, offset=0)
    with pytest.raises(NotFound, match=r"^no lead with id 'nope'$"):
        await activities.log_activity(units, "nope", call(), seen=EVERYONE, by=BY_ALEX)
    team = Owners(frozenset({ALEX, SAM, "maria@kariz.example"}))
    await log(units, lead, call(), seen=team)
    assert units.of_type(ActivityLogged)[0].actor == ALEX


async def test_an_activity_opens_its_next_step_for_the_leads_owner(units: Units, clock: FakeClock) -> None:
    lead = await a_lead(units)
    due = clock.now() + timedelta(days=2)
    next_step = OpenFollowUp(kind=TaskKind.SEND_MATERIAL, title=" Send the case study ", due_at=due)
    logged = await log(units, lead, call(follow_up=next_step))
    task = logged.follow_up
    assert task is not None
    assert (task.assignee, task.title, task.due_at, task.created_by) == (
        ALEX,
        "Send the case study",
        due,
        ALEX,
    )
    assert await units.uow.tasks.get(task.id) == task
    timer = await units.uow.timers.get(task.timer_key())
    assert timer is not None and timer.due_at == due and timer.correlation_id == lead.correlation_id
    # A next step for someone the rep does not reach, or in the past: nothing is logged at all.
    with pytest.raises(Forbidden, match=r"^follow_up\.assignee: sam@kariz\.example"):
        await log(units, lead, call(follow_up=OpenFollowUp(TaskKind.CALL_BACK, "Call", due, assignee=SAM)))
    past = OpenFollowUp(TaskKind.CALL_BACK, "Call", clock.now() - timedelta(hours=1))
    with pytest.raises(RuleViolation, match=r"^follow_up\.due_at: .* is in the past"):
        await log(units, lead, call(follow_up=past))
    assert len(units.of_type(ActivityLogged)) == 1
    assert len(units.uow.activities.by_id) == 1


async def test_the_timeline_is_the_leads_story_newest_first_with_who_did_it(
    units: Units, clock: FakeClock
) -> None:
    lead = await a_lead(units)
    clock.advance(timedelta(minutes=10))
    await log(units, lead, call(ActivityOutcome.NO_ANSWER, note="No one picked up"))
    clock.advance(timedelta(minutes=10))
    task = await activities.open_follow_up(
        units,
        lead.id,
        OpenFollowUp(TaskKind.CALL_BACK, "Try again", clock.now() + timedelta(hours=3)),
        seen=ALEXS,
        by=BY_ALEX,
    )
    clock.advance(timedelta(hours=3))
    await units.fire_due_timers()
    done = await activities.complete_follow_up(
        units, task.id, activities.CompleteFollowUp(activity=call()), seen=ALEXS, by=BY_ALEX
    )

    changes, total = await activities.timeline(units, lead.id, ALEXS, limit=50, offset=0)
    kinds = [c.kind for c in changes]
    assert kinds == [
        LeadChangeKind.FOLLOW_UP_COMPLETED,
        LeadChangeKind.STATUS_CHANGED,
        LeadChangeKind.ACTIVITY_LOGGED,
        LeadChangeKind.FOLLOW_UP_OPENED,
        LeadChangeKind.ACTIVITY_LOGGED,
        LeadChangeKind.CAPTURED,
    ]
    assert total == 6
    assert all(c.by == BY_ALEX for c in changes)
    assert changes[0].details["activity_id"] == done.completed_activity_id
    first_call = changes[4].details
    assert (first_call["channel"], first_call["outcome"], first_call["note"]) == (
        "call",
        "no_answer",
        "No one picked up",
    )
    assert changes[3].details["title"] == "Try again"
    page, _ = await activities.timeline(units, lead.id, ALEXS, limit=2, offset=1)
    assert [c.kind for c in page] == kinds[1:3]
    assert len(units.of_type(FollowUpDue)) == 1


async def test_the_latest_activity_is_kept_and_leads_are_found_by_it(units: Units, clock: FakeClock) -> None:
    worked, idle = await a_lead(units), await a_lead(units, "grace@cobol.example")
    captured_at = clock.now()
    clock.advance(timedelta(hours=2))
    await log(units, worked, LogActivity(channel=ActivityChannel.NOTE, outcome=ActivityOutcome.REACHED))
    # A note is an activity too; a backdated call does not move the latest one back.
    await log(units, worked, call(occurred_at=captured_at + timedelta(minutes=10)))
    stored = await views.lead(units, worked.id)
    assert stored.last_activity_at == clock.now()

    async def found(**criteria: object) -> list[str]:
        criteria_ = LeadFilter.of(**criteria)  # type: ignore[arg-type]
        leads, _ = await views.leads_matching(units, criteria_, limit=10, offset=0)
        return [lead.id for lead in leads]

    assert await found(last_activity_after=clock.now()) == [worked.id]
    assert await found(last_activity_before=clock.now() - timedelta(seconds=1)) == []
    # A lead nobody worked matches neither bound: it has no latest activity.
    assert await found(last_activity_before=clock.now() + timedelta(days=1)) == [worked.id] != [idle.id]
    with pytest.raises(RuleViolation, match="last_activity_after"):
        LeadFilter.of(last_activity_after=clock.now(), last_activity_before=captured_at)
