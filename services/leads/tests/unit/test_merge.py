"""Merging two leads on the in-memory unit of work: the survivor keeps both stories (touches, attempts,
activities, follow-ups and their timers, history), takes the more advanced status, and everything that
comes later for the merged record reaches the survivor. The route with real tokens of the test issuer."""

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
from kariz_leads.domain import LeadFilter, LeadStatus, ResponseSla, SalesTeam
from kariz_leads.domain.assignment import AssignedBy, Assignment
from kariz_leads.domain.history import LeadChangeKind
from kariz_leads.domain.imports import DuplicatePolicy, ImportOptions
from kariz_leads.domain.lead import Lead
from kariz_leads.entrypoints import http, kafka, merge
from kariz_leads.service_layer import activities, handlers, views
from kariz_leads.service_layer.activities import LogActivity, OpenFollowUp
from kariz_leads.service_layer.commands import CaptureLead
from kariz_leads.service_layer.imports import ImportRunner, Upload, start_import
from kariz_leads.service_layer.merge import MergeLeads, merge_leads
from kariz_shared.contracts.errors import Conflict, NotFound, RuleViolation
from kariz_shared.contracts.events import (
    ActivityChannel,
    ActivityOutcome,
    Company,
    Contact,
    FollowUpDue,
    LeadDisqualified,
    LeadQualified,
    LeadsMerged,
    LeadSource,
    TaskKind,
    TaskRequested,
)
from kariz_shared.contracts.identity import EVERYONE, Actor, Owners
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock

Units = InMemoryUnitsOfWork[InMemoryLeadsUnitOfWork]

ALEX, SAM, KIM = "alex@kariz.example", "sam@kariz.example", "kim@kariz.example"
# Round robin: the first lead is Alex's, the second Sam's, the third Kim's.
TEAM = SalesTeam.of([ALEX, SAM, KIM])
TEAMS = {"emea": [ALEX, SAM, KIM]}
SLA = ResponseSla(timedelta(hours=4))
MONDAY_9 = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
MARIA = Actor("maria@kariz.example")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(MONDAY_9)


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryLeadsUnitOfWork(clock))


def a_capture(email: str, source: LeadSource = LeadSource.WEB_FORM) -> CaptureLead:
    return CaptureLead(
        contact=Contact(first_name="Ada", last_name="Lovelace", email=email),
        company=Company(name="Analytical Engines"),
        source=source,
    )


async def capture(units: Units, email: str, source: LeadSource = LeadSource.WEB_FORM) -> handlers.Captured:
    return await handlers.capture_lead(
        units, TEAM, SLA, a_capture(email, source), correlation_id=f"story-{email}", by=Actor(ALEX)
    )


async def two_leads(units: Units) -> tuple[Lead, Lead]:
    survivor = (await capture(units, "ada@analytical.example")).lead
    duplicate = (await capture(units, "ada.lovelace@private.example", LeadSource.EVENT)).lead
    assert (survivor.owner, duplicate.owner) == (ALEX, SAM)
    return survivor, duplicate


async def merged(units: Units, survivor: str, duplicate: str, *, seen: Owners = EVERYONE) -> Lead:
    return await merge_leads(
        units, MergeLeads(survivor, duplicate, "same person"), seen=seen, by=MARIA, correlation_id="m-1"
    )


async def stored(units: Units, lead_id: str) -> Lead:
    return await views.lead(units, lead_id)


async def follow_up(units: Units, lead: Lead, assignee: str, due_at: datetime) -> str:
    command = OpenFollowUp(kind=TaskKind.CALL_BACK, title="Call back", due_at=due_at, assignee=assignee)
    return (await activities.open_follow_up(units, lead.id, command, seen=EVERYONE, by=MARIA)).id


def qualified(lead: Lead, score: int) -> LeadQualified:
    return LeadQualified(
        lead_id=lead.id,
        owner=lead.owner,
        contact=lead.contact,
        company=lead.company,
        source=lead.source,
        score=score,
        threshold=70,
        breakdown=[],
        qualified_at=MONDAY_9,
    )


def disqualified(lead: Lead, score: int, reason: str = "no budget") -> LeadDisqualified:
    return LeadDisqualified(
        lead_id=lead.id, owner=lead.owner, reason=reason, score=score, breakdown=[], disqualified_at=MONDAY_9
    )


# --- the merge ------------------------------------------------------------------------------------


async def test_the_survivor_keeps_both_stories_and_the_duplicate_points_to_it(
    units: Units, clock: FakeClock
) -> None:
    survivor, duplicate = await two_leads(units)
    clock.advance(timedelta(minutes=5))
    await capture(units, duplicate.email, LeadSource.EVENT)  # a second touch of the duplicate
    clock.advance(timedelta(minutes=5))
    call = LogActivity(channel=ActivityChannel.CALL, outcome=ActivityOutcome.REACHED)
    logged = await activities.log_activity(units, duplicate.id, call, seen=EVERYONE, by=Actor(SAM))
    sams = await follow_up(units, duplicate, SAM, MONDAY_9 + timedelta(days=1))
    kims = await follow_up(units, duplicate, KIM, MONDAY_9 + timedelta(days=2))
    clock.advance(timedelta(minutes=5))

    after = await merged(units, survivor.id, duplicate.id)

    assert after.id == survivor.id and after.owner == ALEX
    # The duplicate's reaching call made it working: the more advanced status, its attempt and first contact.
    assert after.status is LeadStatus.WORKING
    assert after.attempt_count == 1 and after.first_contact_at == logged.activity.occurred_at
    assert (after.touch_count, after.touches_by_source) == (3, {"web_form": 1, "event": 2})
    assert [t.source for t in after.touches] == [LeadSource.WEB_FORM, LeadSource.EVENT, LeadSource.EVENT]
    assert await stored(units, survivor.id) == after
    gone = await stored(units, duplicate.id)
    assert (gone.status, gone.merged_into) == (LeadStatus.MERGED, survivor.id)

    [event] = units.of_type(LeadsMerged)
    assert event == LeadsMerged(
        lead_id=survivor.id,
        merged_lead_id=duplicate.id,
        owner=ALEX,
        merged_owner=SAM,
        merged_at=clock.now(),
        actor=MARIA.who,
    )
    assert event.key() == survivor.id
    assert units.uow.metrics.merges == 1

    # Its activities and follow-ups are the survivor's; the duplicate owner's follow-up went to Alex.
    acts, _ = await activities.activities_of(units, survivor.id, EVERYONE, limit=10, offset=0)
    assert [a.id for a in acts] == [logged.activity.id]
    assert (await activities.activities_of(units, duplicate.id, EVERYONE, limit=10, offset=0))[1] == 0
    tasks = {t: await activities.follow_up(units, t, EVERYONE) for t in (sams, kims)}
    assert {t.lead_id for t in tasks.values()} == {survivor.id}
    assert (tasks[sams].assignee, tasks[kims].assignee) == (ALEX, KIM)
    # Their timers name the survivor (and the new assignee), due when they were.
    for task in tasks.values():
        timer = await units.uow.timers.get(task.timer_key())
        assert timer is not None and timer.due_at == task.due_at
        assert isinstance(timer.event, FollowUpDue) and timer.event.lead_id == survivor.id
    clock.set(MONDAY_9 + timedelta(days=3))
    fired = [e for e in await units.fire_due_timers() if isinstance(e, FollowUpDue)]
    assert [(e.task_id, e.lead_id, e.assignee) for e in fired] == [
        (sams, survivor.id, ALEX),
        (kims, survivor.id, KIM),
    ]

    # Both histories on the survivor, in the order they happened; the merge recorded on both.
    changes, total = await views.history(units, survivor.id, EVERYONE, limit=50, offset=0)
    kinds = [c.kind for c in changes]
    assert kinds[:2] == [LeadChangeKind.FOLLOW_UP_REASSIGNED, LeadChangeKind.DUPLICATE_MERGED], kinds
    assert kinds.count(LeadChangeKind.CAPTURED) == 2 and LeadChangeKind.ACTIVITY_LOGGED in kinds
    assert kinds.count(LeadChangeKind.FOLLOW_UP_OPENED) == 2 and total == len(kinds)
    merge_change = changes[1]
    assert (merge_change.by, dict(merge_change.details)) == (
        MARIA,
        {
            "merged_lead_id": duplicate.id,
            "merged_owner": SAM,
            "status_from": "new",
            "status_to": "working",
            "reason": "same person",
        },
    )
    [own], _ = await views.history(units, duplicate.id, EVERYONE, limit=50, offset=0)
    assert own.kind is LeadChangeKind.MERGED_INTO
    assert dict(own.details) == {"merged_into": survivor.id, "owner": ALEX, "reason": "same person"}


async def test_the_duplicates_response_timers_stop_and_the_survivor_answered_through_it_stops_its_own(
    units: Units,
) -> None:
    survivor, duplicate = await two_leads(units)
    for lead in (survivor, duplicate):
        assert await units.uow.timers.get(lead.response_timer_key()) is not None
    call = LogActivity(channel=ActivityChannel.CALL, outcome=ActivityOutcome.NO_ANSWER)
    await activities.log_activity(units, duplicate.id, call, seen=EVERYONE, by=Actor(SAM))
    third = (await capture(units, "grace@cobol.example")).lead

    await merged(units, survivor.id, duplicate.id)
    # The attempt on the duplicate answered the person: nobody owes either record a response now.
    for lead in (survivor, duplicate):
        assert await units.uow.timers.get(lead.response_timer_key()) is None
    assert (await stored(units, survivor.id)).attempt_count == 1
    # A merge of two unanswered leads leaves the survivor's timer armed; the duplicate's goes.
    fourth = (await capture(units, "grace.hopper@private.example")).lead
    await merged(units, third.id, fourth.id)
    assert await units.uow.timers.get(third.response_timer_key()) is not None
    assert await units.uow.timers.get(fourth.response_timer_key()) is None


def a_lead(lead_id: str, *, at: datetime = MONDAY_9) -> Lead:
    lead = Lead.capture(
        lead_id=lead_id,
        contact=Contact(first_name="Ada", last_name="Lovelace", email=f"{lead_id}@acme.example"),
        company=Company(name="Acme"),
        source=LeadSource.WEB_FORM,
        campaign=None,
        consent=True,
        assignment=Assignment(ALEX, AssignedBy.ROUND_ROBIN),
        correlation_id=lead_id,
        at=at,
        by=Actor(ALEX),
    )
    lead.pull_events()
    return lead


def in_status(lead: Lead, status: str, score: int | None = None) -> Lead:
    if status == "qualified":
        lead.qualify(score or 0, MONDAY_9, MARIA)
    elif status == "disqualified":
        lead.disqualify(f"reason of {lead.id}", score or 0, MONDAY_9, MARIA)
    elif status == "working":
        lead.status = LeadStatus.WORKING
    return lead


@pytest.mark.parametrize(
    ("survivor", "duplicate", "expected"),
    [
        (("new", None), ("qualified", 80), ("qualified", 80, None)),
        (("qualified", 90), ("working", None), ("qualified", 90, None)),
        (("qualified", 70), ("qualified", 90), ("qualified", 90, None)),
        (("qualified", 90), ("qualified", 70), ("qualified", 90, None)),
        (("working", None), ("new", None), ("working", None, None)),
        # A record still being worked outranks a disqualified one: the person is in play through it.
        (("disqualified", 20), ("new", None), ("new", None, None)),
        (("working", None), ("disqualified", 20), ("working", None, None)),
        (("disqualified", 10), ("disqualified", 30), ("disqualified", 30, "reason of dup")),
        (("disqualified", 30), ("disqualified", 10), ("disqualified", 30, "reason of surv")),
    ],
)
def test_the_survivor_takes_the_more_advanced_status_and_its_verdict(
    survivor: tuple[str, int | None],
    duplicate: tuple[str, int | None],
    expected: tuple[str, int | None, str | None],
) -> None:
    surv = in_status(a_lead("surv"), *survivor)
    dup = in_status(a_lead("dup"), *duplicate)
    surv.merge(dup, MONDAY_9 + timedelta(hours=1), MARIA)
    assert (surv.status.value, surv.score, surv.disqualification_reason) == expected
    assert (dup.status, dup.merged_into) == (LeadStatus.MERGED, "surv")


def test_the_earliest_first_contact_and_the_attempts_of_both_are_kept() -> None:
    from kariz_leads.domain.lead import ContactAttempts

    surv, dup = a_lead("surv"), a_lead("dup")
    t = MONDAY_9
    surv.attempts = {"call": ContactAttempts(2, t + timedelta(hours=2), t + timedelta(hours=5))}
    surv.first_contact_at = t + timedelta(hours=5)
    dup.attempts = {
        "call": ContactAttempts(1, t + timedelta(hours=1), t + timedelta(hours=1)),
        "email": ContactAttempts(3, t, t + timedelta(hours=3)),
    }
    dup.first_contact_at = t + timedelta(hours=1)
    surv.merge(dup, t + timedelta(hours=6), MARIA)
    assert surv.attempts == {
        "call": ContactAttempts(3, t + timedelta(hours=1), t + timedelta(hours=5)),
        "email": ContactAttempts(3, t, t + timedelta(hours=3)),
    }
    assert surv.first_contact_at == t + timedelta(hours=1) and surv.attempt_count == 6


async def test_refused_merges_change_nothing(units: Units) -> None:
    survivor, duplicate = await two_leads(units)
    third = (await capture(units, "grace@cobol.example")).lead
    with pytest.raises(RuleViolation, match=r"^duplicate_id: .* cannot be merged into itself"):
        await merged(units, survivor.id, survivor.id)
    with pytest.raises(NotFound, match=r"^duplicate_id: no lead with id 'ghost'$"):
        await merged(units, survivor.id, "ghost")
    with pytest.raises(NotFound, match=r"^no lead with id 'ghost'$"):
        await merged(units, "ghost", duplicate.id)
    # A rep sees their own leads only: Sam's duplicate is out of Alex's reach, as if absent.
    with pytest.raises(NotFound, match=f"^duplicate_id: no lead with id '{duplicate.id}'$"):
        await merged(units, survivor.id, duplicate.id, seen=Owners(frozenset({ALEX})))
    assert units.of_type(LeadsMerged) == []

    await merged(units, survivor.id, duplicate.id)
    with pytest.raises(Conflict, match=f"^duplicate_id: lead {duplicate.id} was merged into {survivor.id}"):
        await merged(units, third.id, duplicate.id)
    with pytest.raises(Conflict, match=f"^lead_id: lead {duplicate.id} was merged into {survivor.id}"):
        await merged(units, duplicate.id, third.id)
    assert len(units.of_type(LeadsMerged)) == 1
    assert (await stored(units, third.id)).status is LeadStatus.NEW
    # A merged record takes no new work: its survivor is the one to work.
    call = LogActivity(channel=ActivityChannel.CALL, outcome=ActivityOutcome.REACHED)
    with pytest.raises(Conflict, match=r"^lead_id: .* work that lead instead"):
        await activities.log_activity(units, duplicate.id, call, seen=EVERYONE, by=Actor(ALEX))


# --- what comes later for the merged record -------------------------------------------------------


async def test_a_later_capture_of_the_duplicates_address_touches_the_survivor(units: Units) -> None:
    survivor, duplicate = await two_leads(units)
    await merged(units, survivor.id, duplicate.id)
    again = await capture(units, duplicate.email, LeadSource.PARTNER)
    assert again.duplicate and again.lead.id == survivor.id
    assert (await stored(units, survivor.id)).touches_by_source == {"web_form": 1, "event": 1, "partner": 1}
    assert (await stored(units, duplicate.id)).touch_count == 1
    # Through a later merge of the survivor too, and both addresses in one import touch the one lead.
    third = (await capture(units, "ada@third.example")).lead
    await merged(units, third.id, survivor.id)
    lines = [a_capture(duplicate.email), a_capture(survivor.email)]
    imported = await handlers.import_leads(
        units, TEAM, SLA, handlers.ImportLeads(tuple(lines)), correlation_id="i-1", by=Actor(ALEX)
    )
    assert [c.lead.id for c in imported] == [third.id, third.id] and all(c.duplicate for c in imported)
    assert (await stored(units, third.id)).touch_count == 1 + 3 + 2  # its own, the survivor's, the import


async def test_a_csv_import_that_fills_empty_fields_fills_the_survivors_for_a_merged_address(
    units: Units,
) -> None:
    survivor, duplicate = await two_leads(units)
    await merged(units, survivor.id, duplicate.id)
    csv = f"email,first name,last name,company,phone\n{duplicate.email},Ada,Lovelace,Acme,+44 20 7946 0958\n"
    options = ImportOptions(LeadSource.EVENT, duplicates=DuplicatePolicy.UPDATE_EMPTY)
    await start_import(units, Upload(csv.encode(), "leads.csv", options), by=MARIA, correlation_id="i-1")
    runner = ImportRunner(units, TEAM, SLA, lease=timedelta(seconds=30))
    job = await runner.claim("worker-a")
    assert job is not None
    finished = await runner.run(job, "worker-a")
    assert (finished.created, finished.duplicates) == (0, 1)
    after = await stored(units, survivor.id)
    assert (after.contact.phone, after.contact.email, after.touch_count) == (
        "+44 20 7946 0958",
        survivor.email,
        3,
    )
    assert (await stored(units, duplicate.id)).contact.phone is None


async def test_a_verdict_that_reaches_the_merged_record_counts_for_the_survivor_when_better(
    units: Units,
) -> None:
    survivor, duplicate = await two_leads(units)
    await merged(units, survivor.id, duplicate.id)
    await units.handle(kafka.on_lead_disqualified, disqualified(duplicate, 10))
    assert (await stored(units, survivor.id)).status is LeadStatus.NEW, "new outranks disqualified"
    await units.handle(kafka.on_lead_qualified, qualified(duplicate, 85))
    after = await stored(units, survivor.id)
    assert (after.status, after.score) == (LeadStatus.QUALIFIED, 85)
    assert (await stored(units, duplicate.id)).status is LeadStatus.MERGED
    [newest], _ = await views.history(units, survivor.id, EVERYONE, limit=1, offset=0)
    assert (newest.kind, newest.details["merged_lead_id"]) == (LeadChangeKind.QUALIFIED, duplicate.id)


async def test_a_follow_up_requested_for_the_merged_record_opens_on_the_survivor(units: Units) -> None:
    survivor, duplicate = await two_leads(units)
    await merged(units, survivor.id, duplicate.id)
    request = TaskRequested(
        request_id="req-1",
        lead_id=duplicate.id,
        kind=TaskKind.CALL_BACK,
        title="Call back after the demo",
        due_at=MONDAY_9 + timedelta(days=1),
        requested_at=MONDAY_9,
    )
    await units.handle(kafka.on_task_requested, request)
    task = await activities.follow_up(units, "req-1", EVERYONE)
    assert (task.lead_id, task.assignee) == (survivor.id, ALEX)


async def test_merged_records_are_no_duplicate_candidates_and_are_found_by_their_status(units: Units) -> None:
    survivor, duplicate = await two_leads(units)
    assert [c.lead.id for c in await views.duplicate_candidates(units, survivor.id, EVERYONE, limit=5)] == [
        duplicate.id
    ]
    await merged(units, survivor.id, duplicate.id)
    assert await views.duplicate_candidates(units, survivor.id, EVERYONE, limit=5) == []
    found, total = await views.leads_matching(
        units, LeadFilter.of(status=LeadStatus.MERGED), limit=10, offset=0
    )
    assert [lead.id for lead in found] == [duplicate.id] and total == 1


# --- the route ------------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def api(units: Units, issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    shared_http.install(app, "leads")
    accepting(app, issuer, teams=TEAMS)
    app.include_router(http.router(units, TEAM, SLA))
    app.include_router(merge.router(units))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://leads") as client:
        yield client


async def test_the_route_merges_what_the_caller_sees_and_answers_with_the_survivor(
    api: httpx.AsyncClient, units: Units, issuer: LocalIssuer
) -> None:
    survivor, duplicate = await two_leads(units)
    own = (await capture(units, "ada@own.example")).lead
    assert own.owner == KIM
    alex = bearer(issuer.token(ALEX, ["rep"], team="emea"))
    kim = bearer(issuer.token(KIM, ["rep"], team="emea"))
    manager = bearer(issuer.token("maria@kariz.example", ["manager"], team="emea"))
    stranger = bearer(issuer.token("max@kariz.example", ["manager"], team="dach"))
    path = f"/leads/{survivor.id}/merge"
    body = {"duplicate_id": duplicate.id, "reason": "same person"}

    assert (await api.post(path, json=body)).status_code == 401
    # Alex does not see Sam's lead; another team's manager sees neither.
    unseen = await api.post(path, json=body, headers=alex)
    assert unseen.status_code == 404 and unseen.json()["message"].startswith("duplicate_id:")
    assert (await api.post(path, json=body, headers=stranger)).status_code == 404
    for bad in ({}, {"duplicate_id": "  "}, {"duplicate_id": duplicate.id, "reason": "x" * 501}):
        refused = await api.post(path, json=bad, headers=manager)
        assert refused.status_code == 422, bad
    itself = await api.post(path, json={"duplicate_id": survivor.id}, headers=manager)
    assert itself.status_code == 422 and itself.json()["message"].startswith("duplicate_id:")
    assert units.of_type(LeadsMerged) == []

    done = await api.post(path, json=body, headers=manager)
    assert done.status_code == 200, done.text
    assert (done.json()["id"], done.json()["touch_count"], done.json()["merged_into"]) == (
        survivor.id,
        2,
        None,
    )
    again = await api.post(path, json=body, headers=manager)
    assert again.status_code == 409 and again.json()["message"].startswith("duplicate_id:")
    shown = (await api.get(f"/leads/{duplicate.id}", headers=manager)).json()
    assert (shown["status"], shown["merged_into"]) == ("merged", survivor.id)
    listed = await api.get("/leads", params={"status": "merged"}, headers=manager)
    assert [lead["id"] for lead in listed.json()["items"]] == [duplicate.id]
    # A rep merges two leads of their own, and no one else's.
    more = [(await capture(units, f"ada{n}@more.example")).lead for n in range(3)]
    alexs, kims = (next(lead for lead in more if lead.owner == rep) for rep in (ALEX, KIM))
    refused = await api.post(f"/leads/{own.id}/merge", json={"duplicate_id": alexs.id}, headers=kim)
    assert refused.status_code == 404
    by_kim = await api.post(f"/leads/{own.id}/merge", json={"duplicate_id": kims.id}, headers=kim)
    assert by_kim.status_code == 200, by_kim.text
    [_, event] = units.of_type(LeadsMerged)
    assert (event.actor, event.owner, event.merged_owner) == (KIM, KIM, KIM)
