"""Reassignment on the in-memory unit of work: the response SLA's escalation to the next rep, and a
manager's or an admin's hand (``POST /leads/{id}/assign``, with real tokens of the test issuer)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_leads.adapters.in_memory import InMemoryLeadsUnitOfWork
from kariz_leads.domain import AssignedBy, ResponseSla, SalesTeam
from kariz_leads.domain.business_hours import BusinessHours
from kariz_leads.domain.history import LeadChangeKind
from kariz_leads.domain.lead import Lead
from kariz_leads.domain.response import Calendars
from kariz_leads.entrypoints import assignment, kafka
from kariz_leads.service_layer import activities, handlers, reassignment, views
from kariz_leads.service_layer.activities import OpenFollowUp
from kariz_leads.service_layer.commands import AssignLead, CaptureLead
from kariz_shared.contracts.errors import Forbidden, NotFound, RuleViolation
from kariz_shared.contracts.events import (
    Company,
    Contact,
    LeadQualified,
    LeadReassigned,
    LeadResponseEscalationDue,
    LeadResponseOverdue,
    LeadSource,
    TaskKind,
)
from kariz_shared.contracts.identity import EVERYONE, Actor, Owners, Roster
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock

Units = InMemoryUnitsOfWork[InMemoryLeadsUnitOfWork]

ALEX, SAM, KIM = "alex@kariz.example", "sam@kariz.example", "kim@kariz.example"
JONAS, LENA = "jonas@kariz.example", "lena@kariz.example"
TEAM = SalesTeam.of([ALEX, SAM, KIM], {"DE": [JONAS, LENA]})
TEAMS = {"emea": [ALEX, SAM, KIM], "dach": [JONAS, LENA]}
ROSTER = Roster.of(TEAMS)
# Monday to Friday 09:00-17:00 UTC; a lead is overdue 4 business hours after capture, and goes to the next
# rep 2 business hours after that.
SLA = ResponseSla(
    timedelta(hours=4), calendars=Calendars.of(BusinessHours.of()), escalate_after=timedelta(hours=2)
)
MONDAY_9 = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
MANAGER = Actor("maria@kariz.example")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY_9)


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryLeadsUnitOfWork(clock))


def a_lead(email: str = "ada@analytical.example", country: str | None = None) -> CaptureLead:
    return CaptureLead(
        contact=Contact(first_name="Ada", last_name="Lovelace", email=email),
        company=Company(name="Analytical Engines", country=country),
        source=LeadSource.WEB_FORM,
    )


async def capture(units: Units, command: CaptureLead, team: SalesTeam = TEAM) -> Lead:
    captured = await handlers.capture_lead(units, team, SLA, command, correlation_id="c-1", by=Actor(ALEX))
    return captured.lead


async def stored(units: Units, lead_id: str) -> Lead:
    return await views.lead(units, lead_id)


async def fire(units: Units) -> list[object]:
    """Fire the due timers and, as the service's consumer would, handle its own escalations."""
    fired = await units.fire_due_timers()
    for event in fired:
        if isinstance(event, LeadResponseEscalationDue):
            await units.handle(kafka.on_response_escalation_due(TEAM, SLA), event)
    return list(fired)


# --- the escalation -------------------------------------------------------------------------------


async def test_an_unanswered_lead_goes_to_the_next_rep_once_at_its_escalation(
    units: Units, clock: FakeClock
) -> None:
    lead = await capture(units, a_lead())
    assert lead.owner == ALEX
    clock.set(MONDAY_9 + timedelta(hours=4))
    [overdue] = await fire(units)
    assert isinstance(overdue, LeadResponseOverdue) and overdue.owner == ALEX
    clock.set(MONDAY_9 + timedelta(hours=6) - timedelta(milliseconds=1))
    assert await fire(units) == []
    clock.set(MONDAY_9 + timedelta(hours=6))
    [escalation] = await fire(units)
    assert isinstance(escalation, LeadResponseEscalationDue)

    [reassigned] = units.of_type(LeadReassigned)
    assert reassigned == LeadReassigned(
        lead_id=lead.id,
        from_owner=ALEX,
        to_owner=SAM,
        reason=reassignment.ESCALATION_REASON,
        reassigned_at=clock.now(),
        actor=None,  # the service decided by itself
    )
    now = await stored(units, lead.id)
    assert (now.owner, now.assigned_by) == (SAM, AssignedBy.ESCALATION)
    changes, _ = await views.history(units, lead.id, EVERYONE, limit=1, offset=0)
    assert [(c.kind, c.by, dict(c.details)) for c in changes] == [
        (
            LeadChangeKind.REASSIGNED,
            Actor("/kariz/leads"),
            {
                "from_owner": ALEX,
                "to_owner": SAM,
                "reason": "response_sla_escalation",
                "assigned_by": "escalation",
            },
        )
    ]
    # Sam owes an answer one SLA from now (Monday 15:00 + 4 business hours: Tuesday 11:00); no second
    # escalation is armed.
    timer = await units.uow.timers.get(lead.response_timer_key())
    assert timer is not None and timer.due_at == datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    assert isinstance(timer.event, LeadResponseOverdue) and timer.event.owner == SAM
    assert await units.uow.timers.get(lead.escalation_timer_key()) is None
    clock.set(datetime(2026, 3, 10, 11, 0, tzinfo=UTC))
    [again] = await fire(units)
    assert isinstance(again, LeadResponseOverdue) and again.owner == SAM
    clock.advance(timedelta(days=14))
    assert await fire(units) == []
    assert len(units.of_type(LeadReassigned)) == 1


async def test_the_next_rep_is_of_the_leads_own_rotation(units: Units, clock: FakeClock) -> None:
    first = await capture(units, a_lead("one@acme.example", "DE"))
    second = await capture(units, a_lead("two@acme.example", "DE"))
    assert (first.owner, second.owner) == (JONAS, LENA)
    clock.set(MONDAY_9 + timedelta(hours=6))
    await fire(units)
    assert [(e.lead_id, e.from_owner, e.to_owner) for e in units.of_type(LeadReassigned)] == [
        (first.id, JONAS, LENA),
        (second.id, LENA, JONAS),
    ]


async def test_an_escalation_of_a_lead_answered_or_reassigned_meanwhile_changes_nothing(
    units: Units, clock: FakeClock
) -> None:
    answered = await capture(units, a_lead("one@acme.example"))
    moved = await capture(units, a_lead("two@acme.example"))
    due = MONDAY_9 + timedelta(hours=6)
    # Escalations that fired in the same instant as the answer (their timers are stopped by it).
    late = [
        LeadResponseEscalationDue(
            lead_id=lead.id, owner=lead.owner, source=lead.source, captured_at=lead.created_at, due_at=due
        )
        for lead in (answered, moved)
    ]
    await units.handle(
        kafka.on_lead_qualified,
        LeadQualified(
            lead_id=answered.id,
            owner=answered.owner,
            contact=answered.contact,
            company=answered.company,
            source=answered.source,
            score=80,
            threshold=70,
            breakdown=[],
            qualified_at=clock.now(),
        ),
    )
    assert await units.uow.timers.get(answered.escalation_timer_key()) is None
    await reassignment.reassign_lead(
        units,
        SLA,
        AssignLead(moved.id, KIM, "holiday cover"),
        seen=EVERYONE,
        assignable=EVERYONE,
        by=MANAGER,
        correlation_id="r-1",
    )
    for event in late:
        await units.handle(kafka.on_response_escalation_due(TEAM, SLA), event)
    assert [e.reason for e in units.of_type(LeadReassigned)] == ["holiday cover"]
    assert (await stored(units, answered.id)).owner == answered.owner
    assert (await stored(units, moved.id)).owner == KIM


async def test_a_rotation_of_one_rep_has_nobody_to_escalate_to(units: Units, clock: FakeClock) -> None:
    alone = SalesTeam.of([ALEX])
    lead = await capture(units, a_lead(), alone)
    clock.set(MONDAY_9 + timedelta(hours=6))
    for event in await units.fire_due_timers():
        if isinstance(event, LeadResponseEscalationDue):
            await units.handle(kafka.on_response_escalation_due(alone, SLA), event)
    assert units.of_type(LeadReassigned) == []
    assert (await stored(units, lead.id)).owner == ALEX


async def test_an_escalation_for_a_lead_never_captured_is_rejected(units: Units) -> None:
    ghost = LeadResponseEscalationDue(
        lead_id="ghost", owner=ALEX, source=LeadSource.WEB_FORM, captured_at=MONDAY_9, due_at=MONDAY_9
    )
    with pytest.raises(Exception, match="LeadResponseEscalationDue for a lead leads never captured"):
        await units.handle(kafka.on_response_escalation_due(TEAM, SLA), ghost)


# --- by hand --------------------------------------------------------------------------------------


async def assign(units: Units, lead_id: str, to: str, *, seen: Owners, assignable: Owners) -> Lead:
    return await reassignment.reassign_lead(
        units,
        SLA,
        AssignLead(lead_id, to, "Sam covers this account"),
        seen=seen,
        assignable=assignable,
        by=MANAGER,
        correlation_id="r-1",
    )


async def test_a_manager_reassigns_within_their_team(units: Units, clock: FakeClock) -> None:
    emea = Owners(ROSTER.members("emea"))
    lead = await capture(units, a_lead())
    clock.advance(timedelta(hours=1))
    after = await assign(units, lead.id, " Sam@Kariz.example ", seen=emea, assignable=emea)
    assert (after.owner, after.assigned_by) == (SAM, AssignedBy.MANUAL)
    assert (await stored(units, lead.id)).owner == SAM
    [event] = units.of_type(LeadReassigned)
    assert (event.from_owner, event.to_owner, event.reason, event.actor) == (
        ALEX,
        SAM,
        "Sam covers this account",
        MANAGER.who,
    )
    [change], _ = await views.history(units, lead.id, EVERYONE, limit=1, offset=0)
    assert (change.kind, change.by, change.details["to_owner"]) == (LeadChangeKind.REASSIGNED, MANAGER, SAM)
    # Still unanswered: Sam owes the answer 4 business hours from now; no escalation over the choice.
    timer = await units.uow.timers.get(lead.response_timer_key())
    assert timer is not None and timer.due_at == clock.now() + timedelta(hours=4)
    assert isinstance(timer.event, LeadResponseOverdue) and timer.event.owner == SAM
    assert await units.uow.timers.get(lead.escalation_timer_key()) is None


async def test_an_answered_lead_reassigned_gets_no_timer(units: Units, clock: FakeClock) -> None:
    lead = await capture(units, a_lead())
    await units.handle(
        kafka.on_lead_qualified,
        LeadQualified(
            lead_id=lead.id,
            owner=lead.owner,
            contact=lead.contact,
            company=lead.company,
            source=lead.source,
            score=80,
            threshold=70,
            breakdown=[],
            qualified_at=clock.now(),
        ),
    )
    await assign(units, lead.id, SAM, seen=EVERYONE, assignable=EVERYONE)
    assert await units.uow.timers.get(lead.response_timer_key()) is None
    assert await units.uow.timers.get(lead.escalation_timer_key()) is None


async def test_a_manager_assigns_only_to_their_team_and_only_leads_they_see(units: Units) -> None:
    emea = Owners(ROSTER.members("emea"))
    ours = await capture(units, a_lead("one@acme.example"))
    theirs = await capture(units, a_lead("two@acme.example", "DE"))
    with pytest.raises(Forbidden, match="not a rep of your team"):
        await assign(units, ours.id, JONAS, seen=emea, assignable=emea)
    with pytest.raises(NotFound, match=f"^no lead with id '{theirs.id}'$"):
        await assign(units, theirs.id, SAM, seen=emea, assignable=emea)
    with pytest.raises(NotFound, match=r"^no lead with id 'ghost'$"):
        await assign(units, "ghost", SAM, seen=emea, assignable=emea)
    with pytest.raises(RuleViolation, match="already owns"):
        await assign(units, ours.id, ALEX, seen=emea, assignable=emea)
    assert units.of_type(LeadReassigned) == []
    # An admin hands a lead to anyone.
    await assign(units, theirs.id, SAM, seen=EVERYONE, assignable=EVERYONE)
    assert (await stored(units, theirs.id)).owner == SAM


# --- the route ------------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def api(units: Units, issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    shared_http.install(app, "leads")
    accepting(app, issuer, teams=TEAMS)
    app.include_router(assignment.router(units, SLA, ROSTER))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://leads") as client:
        yield client


async def test_the_route_answers_by_role_and_reach(
    api: httpx.AsyncClient, units: Units, issuer: LocalIssuer
) -> None:
    lead = await capture(units, a_lead())
    body = {"owner": SAM, "reason": "Sam covers this account"}
    path = f"/leads/{lead.id}/assign"
    rep = bearer(issuer.token(ALEX, ["rep"], team="emea"))
    other_manager = bearer(issuer.token("max@kariz.example", ["manager"], team="dach"))
    manager = bearer(issuer.token("maria@kariz.example", ["manager"], team="emea"))
    admin = bearer(issuer.token("root@kariz.example", ["admin"]))

    assert (await api.post(path, json=body)).status_code == 401
    refused = await api.post(path, json=body, headers=rep)
    assert refused.status_code == 403 and "manager or admin" in refused.json()["message"]
    unseen = await api.post(path, json=body, headers=other_manager)
    absent = await api.post("/leads/ghost/assign", json=body, headers=other_manager)
    # Out of reach answers as absent does.
    assert (unseen.status_code, absent.status_code) == (404, 404)
    assert unseen.json()["message"] == f"no lead with id {lead.id!r}"
    assert absent.json()["message"] == "no lead with id 'ghost'"
    assert unseen.json()["error"] == absent.json()["error"]
    outside = await api.post(path, json={**body, "owner": JONAS}, headers=manager)
    assert outside.status_code == 403
    for bad in ({**body, "owner": "not-an-address"}, {**body, "reason": "  "}, {"owner": SAM}):
        assert (await api.post(path, json=bad, headers=manager)).status_code == 422, bad
    assert units.of_type(LeadReassigned) == []

    done = await api.post(path, json=body, headers=manager)
    assert done.status_code == 200, done.text
    assert (done.json()["owner"], done.json()["assigned_by"]) == (SAM, "manual")
    [event] = units.of_type(LeadReassigned)
    assert event.actor == "maria@kariz.example"
    again = await api.post(path, json={**body, "owner": JONAS}, headers=admin)
    assert again.status_code == 200 and again.json()["owner"] == JONAS


# --- open follow-ups go with the lead -------------------------------------------------------------


async def follow_up(units: Units, lead: Lead, assignee: str, hours: int) -> str:
    task = await activities.open_follow_up(
        units,
        lead.id,
        OpenFollowUp(
            kind=TaskKind.CALL_BACK,
            title="Call back",
            due_at=units.clock.now() + timedelta(hours=hours),
            assignee=assignee,
        ),
        seen=EVERYONE,
        by=MANAGER,
    )
    return task.id


async def assignee_of(units: Units, task_id: str) -> str:
    return (await activities.follow_up(units, task_id, EVERYONE)).assignee


@pytest.mark.parametrize("keep_tasks", [False, True])
async def test_a_managers_reassignment_moves_the_old_owners_open_follow_ups_unless_told_not_to(
    units: Units, keep_tasks: bool
) -> None:
    lead = await capture(units, a_lead())
    mine, kims = await follow_up(units, lead, ALEX, 1), await follow_up(units, lead, KIM, 2)
    await reassignment.reassign_lead(
        units,
        SLA,
        AssignLead(lead.id, SAM, "Sam covers this account", keep_tasks=keep_tasks),
        seen=EVERYONE,
        assignable=EVERYONE,
        by=MANAGER,
        correlation_id="r-1",
    )
    assert await assignee_of(units, mine) == (ALEX if keep_tasks else SAM)
    assert await assignee_of(units, kims) == KIM, "another rep's follow-up stays theirs"
    changes, _ = await views.history(units, lead.id, EVERYONE, limit=50, offset=0)
    moved = [c for c in changes if c.kind is LeadChangeKind.FOLLOW_UP_REASSIGNED]
    assert [c.details["task_id"] for c in moved] == ([] if keep_tasks else [mine])


async def test_an_escalation_moves_the_old_owners_open_follow_ups(units: Units, clock: FakeClock) -> None:
    lead = await capture(units, a_lead())
    task = await follow_up(units, lead, ALEX, 24)
    clock.set(MONDAY_9 + timedelta(hours=6))
    await fire(units)
    assert await assignee_of(units, task) == SAM
