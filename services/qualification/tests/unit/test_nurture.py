"""Nurture tracks on the in-memory unit of work with a fake clock: a nurtured lead's first step is armed
as a timer, each step that comes back arms the next until the track's end, and the track stops when the
lead qualifies (by answers or by engagement), is disqualified, merged away or unsubscribes; a late or
repeated step changes nothing; a re-opened lead runs its track again. And what a rule set may say of
tracks (PUT /rules answers 422 naming the field)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pydantic import ValidationError

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_qualification.adapters.in_memory import InMemoryQualificationUnitOfWork
from kariz_qualification.adapters.mongo.documents import lead_from_document, lead_to_document
from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet
from kariz_qualification.entrypoints.http import QualificationView, router
from kariz_qualification.service_layer import engagement, handlers, nurture, views
from kariz_qualification.service_layer.commands import (
    DisqualifyLead,
    RecordAnswers,
    RecordEngagement,
    ReopenLead,
    ReplaceRules,
)
from kariz_qualification.service_layer.nurture import nurture_timer_key
from kariz_shared.contracts.events import (
    BantAnswers,
    Company,
    Contact,
    ContactUnsubscribed,
    LeadCaptured,
    LeadQualified,
    LeadsMerged,
    LeadSource,
    NurtureStepDue,
    NurtureStepKind,
    TaskKind,
)
from kariz_shared.persistence.in_memory import InMemoryTimers, InMemoryUnitsOfWork
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.runtime.logging import correlation_id

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OWNER = "rep@kariz.test"
CONTENT, TASK = NurtureStepKind.CONTENT, NurtureStepKind.TASK
Units: TypeAlias = InMemoryUnitsOfWork[InMemoryQualificationUnitOfWork]

STANDARD = {
    "steps": [
        {
            "kind": "content",
            "after_days": 3,
            "title": "How teams like yours do it",
            "content_tags": ["case-study"],
        },
        {
            "kind": "task",
            "after_days": 4,
            "title": "Call to follow up the case study",
            "task_kind": "call_back",
        },
        {"kind": "content", "after_days": 7, "title": "The product tour", "content_tags": ["demo", "video"]},
    ]
}
ENTERPRISE = {
    "steps": [{"kind": "task", "after_days": 2, "title": "Book a discovery call", "task_kind": "meeting"}]
}


def rules_body(**changes: Any) -> dict[str, Any]:
    body = DEFAULT_RULES.model_dump(mode="json")
    body["nurture"] = {
        "tracks": {"standard": STANDARD, "enterprise": ENTERPRISE},
        "default_track": "standard",
    }
    body["segments"] = [
        {"name": "enterprise", "methodology": "bant", "min_size": 1000, "nurture_track": "enterprise"}
    ]
    body.update(changes)
    return body


NURTURING = RuleSet.model_validate(rules_body())


def cold_lead(lead_id: str = "L-1", *, size: int = 20, email: str | None = None) -> LeadCaptured:
    """retail 5 + 10-49 5 + FR 8 + manager 8 + web_form 8 = 34: nurtured (15 <= 34 < 70)."""
    return LeadCaptured(
        lead_id=lead_id,
        contact=Contact(
            first_name="Ada",
            last_name="Lovelace",
            email=email or f"{lead_id}@example.com",
            title="IT Manager",
        ),
        company=Company(name=f"Shop {lead_id}", industry="retail", size=size, country="FR"),
        source=LeadSource.WEB_FORM,
        owner=OWNER,
        assigned_by="round_robin",
        captured_at=T0,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryQualificationUnitOfWork(clock, rules=NURTURING))


@pytest.fixture(autouse=True)
def story() -> Iterator[None]:
    token = correlation_id.set("corr-from-leads")
    yield
    correlation_id.reset(token)


def timers(units: Units) -> InMemoryTimers:
    assert isinstance(units.uow.timers, InMemoryTimers)
    return units.uow.timers


def armed_step(units: Units, lead_id: str = "L-1") -> NurtureStepDue | None:
    timer = timers(units).armed.get(nurture_timer_key(lead_id))
    if timer is None:
        return None
    assert isinstance(timer.event, NurtureStepDue)
    assert timer.due_at == timer.event.due_at
    return timer.event


async def fire_step(units: Units, clock: FakeClock, lead_id: str = "L-1") -> NurtureStepDue:
    """Move the clock to the armed step, let the timer fire it, and consume it as the service does."""
    step = armed_step(units, lead_id)
    assert step is not None
    clock.set(step.due_at)
    fired = [e for e in await units.fire_due_timers() if isinstance(e, NurtureStepDue)]
    assert fired == [step]
    await units.handle(nurture.take_nurture_step, step)
    return step


# --- the chain of steps ---------------------------------------------------------------------------


async def test_a_nurtured_lead_gets_its_tracks_steps_one_after_the_other_until_the_end(
    units: Units, clock: FakeClock
) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    first = armed_step(units)
    assert first is not None
    assert (first.step_id, first.track, first.step, first.kind) == ("L-1:standard:0", "standard", 0, CONTENT)
    assert (first.content_tags, first.task_kind, first.owner) == (["case-study"], None, OWNER)
    assert first.due_at == T0 + timedelta(days=3)
    assert units.uow.metrics.nurture_armed == [("standard", CONTENT)]

    # Nothing fires before it is due.
    clock.set(first.due_at - timedelta(minutes=1))
    assert await units.fire_due_timers() == []

    await fire_step(units, clock)
    second = armed_step(units)
    assert second is not None
    assert (second.step_id, second.kind, second.task_kind) == ("L-1:standard:1", TASK, TaskKind.CALL_BACK)
    assert second.title == "Call to follow up the case study"
    assert second.due_at == T0 + timedelta(days=3 + 4), "every N days from the step before"

    await fire_step(units, clock)
    third = armed_step(units)
    assert third is not None and (third.step, third.due_at) == (2, T0 + timedelta(days=14))
    view = await views.qualification_of(units, "L-1")
    assert view.nurture_run is not None and (view.nurture_run.step, view.nurture_run.taken) == (2, 2)

    await fire_step(units, clock)
    assert armed_step(units) is None, "the track's end stops it"
    lead = await views.qualification_of(units, "L-1")
    assert lead.nurture_run is not None
    assert (lead.nurture_run.stop_reason, lead.nurture_run.taken) == ("completed", 3)
    assert lead.status == "nurture", "the lead stays in nurture; only its track ended"
    metrics = units.uow.metrics
    assert metrics.nurture_fired == [("standard", CONTENT), ("standard", TASK), ("standard", CONTENT)]
    assert metrics.nurture_armed == [("standard", CONTENT), ("standard", TASK), ("standard", CONTENT)]
    assert metrics.nurture_stops == ["completed"]

    # A later change of the lead (a rescore) does not start an ended track again in the same stay.
    await engagement.record_engagement(units, signal("email_opened", clock.now()))
    assert armed_step(units) is None


async def test_the_segments_track_else_the_default_and_no_track_no_nurture(units: Units) -> None:
    await units.handle(handlers.capture_lead, cold_lead("L-big", size=5000))
    big = armed_step(units, "L-big")
    assert big is not None
    assert (big.track, big.kind, big.task_kind, big.due_at) == (
        "enterprise",
        TASK,
        TaskKind.MEETING,
        T0 + timedelta(days=2),
    )

    plain = InMemoryUnitsOfWork(InMemoryQualificationUnitOfWork(FakeClock(T0)))
    await plain.handle(handlers.capture_lead, cold_lead())
    assert nurture_timer_key("L-1") not in timers(plain).armed, "the default rule set has no track"
    assert (await views.qualification_of(plain, "L-1")).nurture_run is None


async def test_a_lead_decided_at_capture_is_not_nurtured(units: Units) -> None:
    strong = cold_lead().model_copy(
        update={"company": Company(name="Big", industry="software", size=500, country="DE")}
    )
    # software 20 + 200-999 20 + DE 10 + manager 8 + web_form 8 = 66: nurture; a purchased list is not.
    await units.handle(handlers.capture_lead, strong.model_copy(update={"lead_id": "L-1"}))
    assert armed_step(units) is not None
    weak = cold_lead("L-2").model_copy(
        update={"company": Company(name="Tiny", size=3), "source": LeadSource.PURCHASED_LIST}
    )
    await units.handle(handlers.capture_lead, weak)
    assert (await views.qualification_of(units, "L-2")).status == "disqualified"
    assert armed_step(units, "L-2") is None


async def test_a_repeated_step_and_one_of_another_stay_change_nothing(units: Units, clock: FakeClock) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    first = await fire_step(units, clock)
    second = armed_step(units)
    await units.handle(nurture.take_nurture_step, first)  # redelivered
    assert armed_step(units) == second
    assert len(units.uow.metrics.nurture_fired) == 1
    stranger = first.model_copy(update={"step_id": "L-1:standard:1:reopened-3", "step": 1})
    await units.handle(nurture.take_nurture_step, stranger)
    assert armed_step(units) == second


# --- stops ----------------------------------------------------------------------------------------


async def test_qualifying_stops_the_track_and_its_late_step_does_nothing(
    units: Units, clock: FakeClock
) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    pending = armed_step(units)
    assert pending is not None
    full = BantAnswers(
        budget="confirmed", authority="decision_maker", need="confirmed", timeline="within_3_months"
    )
    await handlers.record_answers(units, RecordAnswers("L-1", full, by=OWNER))
    assert units.of_type(LeadQualified)
    assert armed_step(units) is None, "the timer is disarmed in the qualifying unit"
    assert units.uow.metrics.nurture_stops == ["qualified"]

    # The step fell due as the lead qualified (its event was on its way): it is ignored.
    clock.set(pending.due_at)
    await units.handle(nurture.take_nurture_step, pending)
    lead = await views.qualification_of(units, "L-1")
    assert lead.nurture_run is not None
    assert (lead.nurture_run.stop_reason, lead.nurture_run.taken) == ("qualified", 0)
    assert armed_step(units) is None and units.uow.metrics.nurture_fired == []


async def test_engagement_rescoring_a_nurtured_lead_over_the_threshold_stops_its_track(
    units: Units, clock: FakeClock
) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    await fire_step(units, clock)  # the case study went out; the contact reads it and comes to a webinar
    for kind in ("webinar_attended", "webinar_attended", "content_downloaded"):
        await engagement.record_engagement(units, signal(kind, clock.now()))
    [qualified] = units.of_type(LeadQualified)
    assert qualified.reason == "engagement"
    assert armed_step(units) is None
    lead = await views.qualification_of(units, "L-1")
    assert lead.nurture_run is not None and lead.nurture_run.stop_reason == "qualified"


async def test_disqualifying_stops_the_track_and_a_reopening_runs_it_again(
    units: Units, clock: FakeClock
) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    stale = await fire_step(units, clock)
    before = armed_step(units)
    clock.advance(timedelta(hours=1))
    await handlers.disqualify_lead(units, DisqualifyLead("L-1", "no project this year", by=OWNER))
    assert armed_step(units) is None
    assert units.uow.metrics.nurture_stops == ["disqualified"]

    clock.advance(timedelta(days=30))
    await engagement.reopen_lead(units, ReopenLead("L-1", "a new budget", by="mia@kariz.test"))
    again = armed_step(units)
    assert again is not None
    assert (again.step_id, again.step, again.due_at) == (
        "L-1:standard:0:reopened-1",
        0,
        clock.now() + timedelta(days=3),
    )
    # Steps of the first stay, late or redelivered, do not move the new run.
    assert before is not None
    for late in (stale, before):
        await units.handle(nurture.take_nurture_step, late)
    assert armed_step(units) == again
    lead = await views.qualification_of(units, "L-1")
    assert [(r.stay, r.stop_reason) for r in lead.nurture_runs] == [(0, "disqualified"), (1, None)]


async def test_an_unsubscribe_stops_the_track_for_good(units: Units, clock: FakeClock) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    pending = armed_step(units)
    assert pending is not None
    unsubscribed = ContactUnsubscribed(
        lead_id="L-1", email="L-1@example.com", unsubscribed_at=T0 + timedelta(days=1)
    )
    await units.handle(nurture.stop_nurture_on_unsubscribe, unsubscribed)
    await units.handle(nurture.stop_nurture_on_unsubscribe, unsubscribed)  # redelivered
    assert armed_step(units) is None
    assert units.uow.metrics.nurture_stops == ["unsubscribed"]
    await units.handle(nurture.take_nurture_step, pending)
    assert armed_step(units) is None

    # Disqualified and re-opened later, the lead is still unsubscribed: no track again.
    await handlers.disqualify_lead(units, DisqualifyLead("L-1", "gone quiet", by=OWNER))
    await engagement.reopen_lead(units, ReopenLead("L-1", "one more try", by="mia@kariz.test"))
    assert armed_step(units) is None
    lead = await views.qualification_of(units, "L-1")
    assert lead.unsubscribed_at == T0 + timedelta(days=1) and len(lead.nurture_runs) == 1

    # An unsubscribe of a lead not under qualification is ignored, not failed.
    await units.handle(
        nurture.stop_nurture_on_unsubscribe, unsubscribed.model_copy(update={"lead_id": "L-9"})
    )


async def test_a_merge_stops_the_duplicates_track_and_the_survivor_keeps_its_own(
    units: Units, clock: FakeClock
) -> None:
    await units.handle(handlers.capture_lead, cold_lead("L-1"))
    await units.handle(handlers.capture_lead, cold_lead("L-2"))
    merged = LeadsMerged(lead_id="L-1", merged_lead_id="L-2", owner=OWNER, merged_owner=OWNER, merged_at=T0)
    await units.handle(handlers.follow_merge, merged)
    assert armed_step(units, "L-2") is None
    assert armed_step(units, "L-1") is not None
    duplicate = await views.qualification_of(units, "L-2")
    assert duplicate.nurture_run is not None and duplicate.nurture_run.stop_reason == "merged"
    assert units.uow.metrics.nurture_stops == ["merged"]

    # The unsubscribe of the duplicate's contact reaches the survivor, who is nurtured for both.
    gone = ContactUnsubscribed(lead_id="L-2", email="L-2@example.com", unsubscribed_at=T0)
    await units.handle(nurture.stop_nurture_on_unsubscribe, gone)
    assert armed_step(units, "L-1") is None


async def test_a_track_removed_or_shortened_while_it_runs_ends_it(units: Units, clock: FakeClock) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    without = RuleSet.model_validate(rules_body(nurture={"tracks": {}}, segments=[]))
    await handlers.replace_rules(units, ReplaceRules(without, "admin@kariz.test"))
    await fire_step(units, clock)
    assert armed_step(units) is None
    lead = await views.qualification_of(units, "L-1")
    assert lead.nurture_run is not None and lead.nurture_run.stop_reason == "withdrawn"


# --- what is kept and shown -----------------------------------------------------------------------


async def test_the_nurture_state_is_stored_and_shown(units: Units, clock: FakeClock) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    await fire_step(units, clock)
    lead = await views.qualification_of(units, "L-1")
    assert lead_from_document({**lead_to_document(lead), "version": lead.version}) == lead

    view = QualificationView.of(lead, NURTURING, clock.now()).model_dump(mode="json")["nurture"]
    assert view["track"] == "standard" and view["status"] == "running"
    assert (view["steps"], view["taken"], view["stop_reason"]) == (3, 1, None)
    assert view["next_step"] == {
        "step": 1,
        "kind": "task",
        "title": "Call to follow up the case study",
        "due_at": "2026-03-09T09:00:00Z",
    }

    # A lead stored before nurture tracks were run loads without any.
    old = {k: v for k, v in lead_to_document(lead).items() if k not in ("nurture_runs", "unsubscribed_at")}
    loaded = lead_from_document(old)
    assert (loaded.nurture_runs, loaded.unsubscribed_at) == ([], None)


# --- the rule set ---------------------------------------------------------------------------------


def test_a_rule_set_stored_before_tracks_loads_without_any() -> None:
    body = DEFAULT_RULES.model_dump(mode="json")
    del body["nurture"]
    rules = RuleSet.model_validate(body)
    assert rules.nurture.tracks == {} and rules.track_for(cold_lead().company) is None
    assert RuleSet.model_validate(rules_body()) == NURTURING, "the tracks round-trip through JSON"


def _step(**changes: Any) -> dict[str, Any]:
    return {**STANDARD["steps"][0], **changes}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nurture": {"tracks": {"a": {"steps": [_step(kind="task", content_tags=[])]}}}}, "task_kind"),
        ({"nurture": {"tracks": {"a": {"steps": [_step(task_kind="call_back")]}}}}, "task_kind"),
        ({"nurture": {"tracks": {"a": {"steps": [_step(content_tags=[])]}}}}, "content_tags"),
        ({"nurture": {"tracks": {"a": {"steps": [_step(after_days=0)]}}}}, "greater than or equal to 1"),
        ({"nurture": {"tracks": {"a": {"steps": [_step(title="  ")]}}}}, "at least 1 character"),
        ({"nurture": {"tracks": {"a": {"steps": []}}}}, "at least 1 item"),
        ({"nurture": {"tracks": {"Has:Colon": STANDARD}}}, "should match pattern"),
        ({"nurture": {"tracks": {"a": STANDARD}, "default_track": "b"}}, "nurture.default_track: 'b'"),
        ({"nurture": {"tracks": {"a": STANDARD}}}, "names nurture track 'enterprise'"),
    ],
)
def test_tracks_are_validated_as_the_rule_set_is_saved(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RuleSet.model_validate(rules_body(**changes))


@pytest_asyncio.fixture
async def api(units: Units, issuer: LocalIssuer, admin_token: str) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    shared_http.install(app, "qualification")
    accepting(app, issuer, teams={"emea": [OWNER]})
    app.include_router(router(units))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://qualification", headers=bearer(admin_token)
    ) as client:
        yield client


async def test_put_rules_refuses_a_bad_track_naming_the_field_and_shows_the_nurture_state(
    api: httpx.AsyncClient, units: Units
) -> None:
    bad = rules_body(nurture={"tracks": {"a": {"steps": [_step(kind="task", content_tags=[])]}}})
    refused = await api.put("/rules", json=bad)
    assert refused.status_code == 422
    assert "nurture" in refused.json()["message"] and "task_kind" in refused.json()["message"]
    assert len(units.uow.rules.versions) == 1

    saved = await api.put("/rules", json=rules_body(segments=[]))
    assert saved.status_code == 200, saved.text
    await units.handle(handlers.capture_lead, cold_lead())
    shown = (await api.get("/leads/L-1/qualification")).json()["nurture"]
    assert (shown["track"], shown["status"], shown["next_step"]["kind"]) == ("standard", "running", "content")


# --- helpers --------------------------------------------------------------------------------------


def signal(kind: str, at: datetime) -> RecordEngagement:
    return RecordEngagement(kind=kind, occurred_at=at, lead_id="L-1", by="key:marketing")  # type: ignore[arg-type]
