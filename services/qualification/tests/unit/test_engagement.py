"""Engagement with decay on the in-memory unit of work: signals raise a nurtured lead's score and qualify
it, old signals count for little, the decay timer rescores a lead when its band drops (LeadScored), and
POST /engagements with its credentials and its refusals. The clock is moved, never waited on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeAlias

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_qualification.adapters.in_memory import InMemoryQualificationUnitOfWork
from kariz_qualification.adapters.mongo.documents import lead_from_document, lead_to_document
from kariz_qualification.domain.engagement import (
    EngagementRules,
    Signal,
    band_drop_at,
    decayed,
    engagement_lines,
)
from kariz_qualification.domain.methodologies import Given
from kariz_qualification.domain.rules import DEFAULT_RULES
from kariz_qualification.entrypoints.engagements import router
from kariz_qualification.service_layer import engagement, handlers, views
from kariz_qualification.service_layer.commands import (
    DisqualifyLead,
    RecordAnswers,
    RecordChecklist,
    RecordEngagement,
    ReopenLead,
)
from kariz_qualification.service_layer.engagement import decay_timer_key
from kariz_shared.contracts.errors import Conflict, NotFound, RuleViolation
from kariz_shared.contracts.events import (
    ActivityChannel,
    ActivityDirection,
    ActivityLogged,
    ActivityOutcome,
    BantAnswers,
    Company,
    Contact,
    DealWon,
    LeadCaptured,
    LeadEngagementDecayDue,
    LeadQualified,
    LeadReopened,
    LeadScored,
    LeadSource,
    LeadTouched,
)
from kariz_shared.persistence.in_memory import InMemoryTimers, InMemoryUnitsOfWork
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.runtime.logging import correlation_id

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OWNER = "rep@kariz.test"
MARKETING = "key:marketing"
MANAGER = "mia@kariz.test"
FULL_BANT = BantAnswers(
    budget="confirmed", authority="decision_maker", need="confirmed", timeline="within_3_months"
)
Units: TypeAlias = InMemoryUnitsOfWork[InMemoryQualificationUnitOfWork]


def cold_lead(lead_id: str = "L-1", email: str = "ada@example.com") -> LeadCaptured:
    """retail 5 + 10-49 5 + FR 8 + manager 8 + web_form 8 = 34: nurture, in the cold band (below 40)."""
    return LeadCaptured(
        lead_id=lead_id,
        contact=Contact(first_name="Ada", last_name="Lovelace", email=email, title="IT Manager"),
        company=Company(name=f"Shop {lead_id}", industry="retail", size=20, country="FR"),
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
    return InMemoryUnitsOfWork(InMemoryQualificationUnitOfWork(clock))


@pytest.fixture(autouse=True)
def story() -> Iterator[None]:
    token = correlation_id.set("corr-from-leads")
    yield
    correlation_id.reset(token)


def signal(
    kind: str, at: datetime, lead_id: str = "L-1", engagement_id: str | None = None
) -> RecordEngagement:
    return RecordEngagement(
        kind=kind,  # type: ignore[arg-type]
        occurred_at=at,
        lead_id=lead_id,
        engagement_id=engagement_id,
        by=MARKETING,
    )


def timers(units: Units) -> InMemoryTimers:
    assert isinstance(units.uow.timers, InMemoryTimers)
    return units.uow.timers


# --- the arithmetic -------------------------------------------------------------------------------


def test_a_signal_is_worth_half_after_a_half_life_and_a_quarter_after_two() -> None:
    half_life = timedelta(days=14)
    assert decayed(16, timedelta(0), half_life) == 16
    assert decayed(16, half_life, half_life) == pytest.approx(8)
    assert decayed(16, 2 * half_life, half_life) == pytest.approx(4)
    # A sender's clock a little ahead: the signal counts as fresh, not more.
    assert decayed(16, -timedelta(hours=1), half_life) == 16


def test_engagement_is_summed_by_kind_rounded_and_capped() -> None:
    rules = EngagementRules(half_life_days=10, half_life_days_by_kind={"webinar_attended": 20}, max_points=25)
    signals = [
        Signal("webinar_attended", T0 - timedelta(days=20), "marketing"),  # 15 at one of its half-lives: 7.5
        Signal("email_clicked", T0, "marketing"),
        Signal("email_clicked", T0 - timedelta(days=10), "marketing"),  # 5 + 2.5
        Signal("content_downloaded", T0, "marketing"),
        Signal("content_downloaded", T0, "marketing"),
    ]
    lines = [(line.rule, line.points) for line in engagement_lines(signals, rules, T0)]
    # email_clicked 7.5 and webinar 7.5 round to 8 (half to even: 8), content 16: 32, capped at 25.
    assert lines == [
        ("engagement.email_clicked", 8),
        ("engagement.content_downloaded", 16),
        ("engagement.webinar_attended", 8),
        ("engagement.cap", -7),
    ]


def test_the_band_drop_is_found_where_the_falling_score_first_goes_below_the_floor() -> None:
    # 64 points halving daily, floor 8: below it just after three days (64 -> 32 -> 16 -> 8).
    def score(at: datetime) -> int:
        return int(64 * 0.5 ** ((at - T0) / timedelta(days=1)))

    due = band_drop_at(score, 8, T0, timedelta(days=30))
    assert due is not None
    assert timedelta(days=3) < due - T0 <= timedelta(days=3, minutes=1)
    assert score(due) < 8 <= score(due - timedelta(minutes=1))
    assert band_drop_at(score, 0, T0, timedelta(days=30)) is None


def test_bands_are_listed_from_zero_ascending() -> None:
    with pytest.raises(ValueError, match="first band must start at 0"):
        EngagementRules(bands=[{"name": "warm", "min": 40}])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="ascending"):
        EngagementRules(
            bands=[{"name": "cold", "min": 0}, {"name": "hot", "min": 70}, {"name": "warm", "min": 40}]
        )  # type: ignore[list-item]


# --- signals qualify a nurtured lead --------------------------------------------------------------


async def test_engagement_raises_a_nurtured_lead_through_warm_and_qualifies_it_once(
    units: Units, clock: FakeClock
) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    assert units.published == []

    # 34 + 15 = 49: warm, still nurtured.
    _, recorded = await engagement.record_engagement(units, signal("webinar_attended", clock.now()))
    assert recorded
    [scored] = units.of_type(LeadScored)
    assert (scored.fit, scored.engagement, scored.total) == (34, 15, 49)
    assert (scored.band, scored.previous_band) == ("warm", "cold")
    assert units.of_type(LeadQualified) == []

    # 49 + 15 + 8 = 72: over the threshold (70), qualified by engagement.
    clock.advance(timedelta(minutes=5))
    await engagement.record_engagement(units, signal("webinar_attended", clock.now()))
    await engagement.record_engagement(units, signal("content_downloaded", clock.now()))
    [qualified] = units.of_type(LeadQualified)
    assert (qualified.score, qualified.threshold, qualified.reason) == (72, 70, "engagement")
    assert ("engagement.webinar_attended", 30) in [(line.rule, line.points) for line in qualified.breakdown]

    lead = await views.qualification_of(units, "L-1")
    assert lead.status == "qualified"
    assert lead.decision is not None and lead.decision.reason == "engagement"
    assert [s.trigger for s in lead.scorings] == ["captured", "engagement", "engagement", "engagement"]
    # Decided: no decay timer, and a further signal is kept without a second decision.
    assert decay_timer_key("L-1") not in timers(units).armed
    await engagement.record_engagement(units, signal("email_clicked", clock.now()))
    assert len(units.of_type(LeadQualified)) == 1
    assert len((await views.qualification_of(units, "L-1")).signals) == 4
    assert units.uow.metrics.decisions == ["qualified"]


async def test_the_same_signals_sixty_days_old_count_for_little(units: Units, clock: FakeClock) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    old = clock.now() - timedelta(days=60)
    for kind in ("webinar_attended", "webinar_attended", "content_downloaded"):
        await engagement.record_engagement(units, signal(kind, old))
    lead = await views.qualification_of(units, "L-1")
    # 38 points fresh; after 60 days (over four half-lives of 14) about 2.
    assert lead.status == "nurture"
    assert lead.score - 34 <= 2
    assert units.of_type(LeadQualified) == [] and units.of_type(LeadScored) == []


async def test_a_repeated_engagement_id_counts_once(units: Units, clock: FakeClock) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    first = await engagement.record_engagement(
        units, signal("page_visited", clock.now(), engagement_id="e-1")
    )
    again = await engagement.record_engagement(
        units, signal("page_visited", clock.now(), engagement_id="e-1")
    )
    assert (first[1], again[1]) == (True, False)
    lead = await views.qualification_of(units, "L-1")
    assert (len(lead.signals), lead.score) == (1, 37)


async def test_a_lead_is_found_by_its_contacts_address_and_an_unknown_one_is_not_found(
    units: Units, clock: FakeClock
) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    command = RecordEngagement(
        kind="email_clicked", occurred_at=clock.now(), email=" Ada@Example.com ", by=MARKETING
    )
    lead, _ = await engagement.record_engagement(units, command)
    assert (lead.lead_id, lead.score) == ("L-1", 39)
    with pytest.raises(NotFound, match=r"nobody@example\.com"):
        await engagement.record_engagement(
            units,
            RecordEngagement(
                kind="email_clicked", occurred_at=clock.now(), email="nobody@example.com", by=MARKETING
            ),
        )


async def test_a_signal_from_the_future_is_refused_naming_occurred_at(units: Units, clock: FakeClock) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    with pytest.raises(RuleViolation, match="occurred_at"):
        await engagement.record_engagement(units, signal("email_opened", clock.now() + timedelta(hours=1)))
    assert (await views.qualification_of(units, "L-1")).signals == []


async def test_a_rep_reaching_the_contact_is_engagement_and_other_outcomes_are_not(
    units: Units, clock: FakeClock
) -> None:
    await units.handle(handlers.capture_lead, cold_lead())

    def activity(activity_id: str, outcome: ActivityOutcome, reaching: bool) -> ActivityLogged:
        return ActivityLogged(
            activity_id=activity_id,
            lead_id="L-1",
            owner=OWNER,
            channel=ActivityChannel.CALL,
            direction=ActivityDirection.OUTBOUND,
            outcome=outcome,
            reaching=reaching,
            occurred_at=clock.now(),
            logged_at=clock.now(),
            actor=OWNER,
        )

    await units.handle(engagement.engage_on_activity, activity("A-1", ActivityOutcome.NO_ANSWER, False))
    assert (await views.qualification_of(units, "L-1")).signals == []
    await units.handle(engagement.engage_on_activity, activity("A-2", ActivityOutcome.REACHED, True))
    await units.handle(engagement.engage_on_activity, activity("A-2", ActivityOutcome.REACHED, True))
    lead = await views.qualification_of(units, "L-1")
    assert [(s.kind, s.signal_id) for s in lead.signals] == [("reached", "activity:A-2")]
    assert lead.score == 44  # 34 + reached 10


async def test_a_repeat_capture_is_a_touched_signal_counted_once(units: Units, clock: FakeClock) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    touch = LeadTouched(lead_id="L-1", source=LeadSource.EVENT, touch_count=2, touched_at=clock.now())
    await units.handle(engagement.engage_on_touch, touch)
    # The same touch re-published under a new event id: its number makes it the same signal.
    await units.handle(engagement.engage_on_touch, touch)
    lead = await views.qualification_of(units, "L-1")
    assert [(s.kind, s.origin, s.signal_id) for s in lead.signals] == [("touched", "capture", "touch:L-1:2")]
    assert lead.score == 39  # 34 + touched 5
    # A touch of a lead not under qualification (its capture not arrived) is dropped, not an error.
    await units.handle(engagement.engage_on_touch, touch.model_copy(update={"lead_id": "L-unknown"}))


# --- decay by timer -------------------------------------------------------------------------------


async def test_the_decay_timer_rescores_the_lead_when_its_band_drops(units: Units, clock: FakeClock) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    # 34 + 15 + 8 = 57: warm. It drops below 40 once the 23 engagement points (rounded per kind) fade
    # to 5 or fewer: about two half-lives on; the bisection finds the minute, the test only brackets it.
    await engagement.record_engagement(units, signal("webinar_attended", clock.now()))
    await engagement.record_engagement(units, signal("content_downloaded", clock.now()))
    assert [e.band for e in units.of_type(LeadScored)] == ["warm"]
    timer = timers(units).armed[decay_timer_key("L-1")]
    assert isinstance(timer.event, LeadEngagementDecayDue) and timer.event.band == "warm"
    assert timedelta(days=14) < timer.due_at - clock.now() < timedelta(days=60)
    # The event says when its timer is due, to the millisecond a timer (and MongoDB) keeps.
    assert timer.event.due_at == timer.due_at

    # A minute before it is due nothing fires and the lead is still warm.
    clock.set(timer.due_at - timedelta(minutes=2))
    assert await units.fire_due_timers() == []
    lead, rules, now, _ = await views.qualification_and_rules_now(units, "L-1")
    assert sum(line.points for line in lead.score_lines(rules, now)) >= 40

    clock.set(timer.due_at)
    [due] = await units.fire_due_timers()
    assert isinstance(due, LeadEngagementDecayDue)
    await units.handle(engagement.fade_engagement, due)

    dropped = units.of_type(LeadScored)[-1]
    assert (dropped.band, dropped.previous_band, dropped.fit) == ("cold", "warm", 34)
    assert dropped.total < 40
    lead = await views.qualification_of(units, "L-1")
    assert (lead.status, lead.band, lead.scorings[-1].trigger) == ("nurture", "cold", "decay")
    # Cold is the lowest band: nothing is left to drop to, so no timer is armed again.
    assert decay_timer_key("L-1") not in timers(units).armed


async def test_a_strong_fit_keeps_its_band_so_no_decay_timer_is_armed(units: Units, clock: FakeClock) -> None:
    # 62: the fit alone is warm (40-69); one signal cannot take it below warm as it fades.
    event = cold_lead().model_copy(
        update={"company": Company(name="Big", industry="software", size=500, country="FR")}
    )
    await units.handle(handlers.capture_lead, event)
    await engagement.record_engagement(units, signal("email_opened", clock.now()))
    assert decay_timer_key("L-1") not in timers(units).armed


# --- POST /engagements ----------------------------------------------------------------------------


@pytest_asyncio.fixture
async def api(units: Units, issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    shared_http.install(app, "qualification")
    accepting(app, issuer, teams={"emea": [OWNER]})
    app.include_router(router(units))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://q") as client:
        yield client


async def test_post_engagements_needs_a_credential_and_refuses_bad_bodies_naming_the_field(
    api: httpx.AsyncClient, units: Units, issuer: LocalIssuer, clock: FakeClock
) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    body = {"kind": "webinar_attended", "occurred_at": clock.now().isoformat(), "lead_id": "L-1"}
    assert (await api.post("/engagements", json=body)).status_code == 401

    rep = bearer(issuer.token(OWNER, ["rep"]))
    other_rep = bearer(issuer.token("other@kariz.test", ["rep"]))
    assert (await api.post("/engagements", json=body, headers=other_rep)).status_code == 404
    response = await api.post("/engagements", json=body, headers=rep)
    assert (response.status_code, response.json()) == (200, {"recorded": True})
    assert (await views.qualification_of(units, "L-1")).score == 49

    for bad, field in (
        ({**body, "kind": "tweeted"}, "kind"),
        ({**body, "email": "ada@example.com"}, "lead_id, email"),
        ({**body, "occurred_at": "2026-03-02T09:00:00"}, "occurred_at"),
        ({**body, "occurred_at": (clock.now() + timedelta(days=1)).isoformat()}, "occurred_at"),
    ):
        response = await api.post("/engagements", json=bad, headers=rep)
        assert response.status_code == 422, bad
        assert field in response.text
    assert len((await views.qualification_of(units, "L-1")).signals) == 1


async def test_the_rules_default_engagement_is_part_of_the_rule_set() -> None:
    # A rule set stored before engagement was scored loads with the defaults.
    stored = DEFAULT_RULES.model_dump(mode="json")
    del stored["engagement"]
    assert type(DEFAULT_RULES).model_validate(stored).engagement == EngagementRules()


# --- decisions as a sequence, re-opening -----------------------------------------------------------


async def test_a_manager_reopens_a_disqualified_lead_and_its_next_decision_is_the_third(
    units: Units, clock: FakeClock
) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    with pytest.raises(Conflict, match="only a disqualified lead re-opens"):
        await engagement.reopen_lead(units, ReopenLead("L-1", "wrong lead", by=MANAGER))
    await handlers.disqualify_lead(units, DisqualifyLead("L-1", "no budget this year", by=OWNER))
    clock.advance(timedelta(days=3))
    lead = await engagement.reopen_lead(units, ReopenLead("L-1", "budget freed up", by=MANAGER))
    assert lead.status == "nurture"
    [reopened] = units.of_type(LeadReopened)
    assert (reopened.decision_number, reopened.reopened_decision, reopened.actor) == (2, 1, MANAGER)
    assert reopened.reason == "budget freed up"

    await handlers.record_answers(units, RecordAnswers("L-1", FULL_BANT, by=OWNER))
    [qualified] = units.of_type(LeadQualified)
    assert qualified.decision_number == 3
    lead = await views.qualification_of(units, "L-1")
    assert [(getattr(d, "outcome", "reopened"), d.number, d.by) for d in lead.decisions] == [
        ("disqualified", 1, OWNER),
        ("reopened", 2, MANAGER),
        ("qualified", 3, OWNER),
    ]
    assert units.uow.metrics.reopenings == ["manager"]


async def test_new_engagement_reopens_a_disqualified_lead_only_after_cooling_off(
    units: Units, clock: FakeClock
) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    await handlers.disqualify_lead(units, DisqualifyLead("L-1", "not now", by=OWNER))

    # Ten days on (the cooling-off is 30): 30 points of engagement are kept, nothing re-opens.
    clock.advance(timedelta(days=10))
    for kind in ("webinar_attended", "webinar_attended"):
        await engagement.record_engagement(units, signal(kind, clock.now()))
    assert units.of_type(LeadReopened) == []
    assert (await views.qualification_of(units, "L-1")).status == "disqualified"

    # Day 31: those have faded to 30 * 0.5^(21/14) = 10.6; a webinar more makes 26, over the 20 needed.
    clock.advance(timedelta(days=21))
    await engagement.record_engagement(units, signal("webinar_attended", clock.now()))
    [reopened] = units.of_type(LeadReopened)
    assert (reopened.decision_number, reopened.reopened_decision, reopened.actor) == (2, 1, None)
    assert reopened.reason == "engagement: 26 points since the disqualification"
    lead = await views.qualification_of(units, "L-1")
    # Rescored on re-opening: 34 + 26 = 60, warm, in nurture; the disqualification is in its history.
    assert (lead.status, lead.score, lead.band) == ("nurture", 60, "warm")
    assert [d.number for d in lead.decisions] == [1, 2]
    assert decay_timer_key("L-1") in timers(units).armed
    assert units.uow.metrics.reopenings == ["engagement"]
    assert units.uow.metrics.signals == ["webinar_attended"] * 3


async def test_only_managers_and_admins_reopen_over_http(
    api: httpx.AsyncClient, units: Units, issuer: LocalIssuer
) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    await handlers.disqualify_lead(units, DisqualifyLead("L-1", "not now", by=OWNER))
    rep = bearer(issuer.token(OWNER, ["rep"]))
    manager = bearer(issuer.token(MANAGER, ["manager"], team="emea"))
    assert (await api.post("/leads/L-1/reopen", json={"reason": "x"}, headers=rep)).status_code == 403
    assert (await api.post("/leads/L-1/reopen", json={"reason": " "}, headers=manager)).status_code == 422
    response = await api.post("/leads/L-1/reopen", json={"reason": "budget freed up"}, headers=manager)
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["status"] == "nurture"
    assert [(d["number"], d["outcome"]) for d in view["decisions"]] == [(1, "disqualified"), (2, "reopened")]
    again = await api.post("/leads/L-1/reopen", json={"reason": "again"}, headers=manager)
    assert again.status_code == 409


async def test_signals_bands_and_the_decision_sequence_survive_the_document_mapping(
    units: Units, clock: FakeClock
) -> None:
    await units.handle(handlers.capture_lead, cold_lead())
    await engagement.record_engagement(units, signal("webinar_attended", clock.now(), engagement_id="e-1"))
    await handlers.disqualify_lead(units, DisqualifyLead("L-1", "not now", by=OWNER))
    await engagement.reopen_lead(units, ReopenLead("L-1", "budget freed up", by=MANAGER))
    lead = await views.qualification_of(units, "L-1")
    doc = lead_to_document(lead)
    again = lead_from_document({**doc, "version": lead.version})
    assert (again.signals, again.band, again.past_decisions, again.reopenings, again.decision) == (
        lead.signals,
        "warm",
        lead.past_decisions,
        lead.reopenings,
        None,
    )
    assert [d.number for d in again.decisions] == [1, 2]


# --- existing customers ---------------------------------------------------------------------------


async def test_a_new_lead_of_an_account_with_a_won_deal_is_qualified_as_an_existing_customer(
    units: Units, clock: FakeClock
) -> None:
    await units.handle(handlers.capture_lead, cold_lead("L-1"))
    won = DealWon(
        deal_id="D-1",
        lead_id="L-1",
        account_id="A-1",
        account_name="Shop L-1",
        owner=OWNER,
        amount=Decimal("12000"),
        cycle_seconds=3600.0,
        won_at=clock.now(),
    )
    await units.handle(handlers.record_won_account, won)
    # A won deal of a lead qualification never held names no company here: nothing to remember.
    await units.handle(handlers.record_won_account, won.model_copy(update={"lead_id": "L-unknown"}))
    assert list(units.uow.accounts.by_key) == ["name:shop l-1"]

    # The same company again (its name written otherwise): 34 points of fit, but an upsell is judged by
    # its own items (the rule set's existing_customers: need and timeline), not by fit.
    again = cold_lead("L-2", email="bob@example.com")
    again = again.model_copy(update={"company": again.company.model_copy(update={"name": "  SHOP   l-1 "})})
    await units.handle(handlers.capture_lead, again)
    assert units.of_type(LeadQualified) == []
    waiting = await views.qualification_of(units, "L-2")
    assert waiting.status == "nurture" and waiting.customer is not None
    assert waiting.review(DEFAULT_RULES).missing == ("need", "timeline")
    # Need answered, timeline not yet: still waiting; both in, qualified whatever the score (34 + 15 + 5).
    need = {"need": Given("choice", value="confirmed")}
    await handlers.record_checklist(units, RecordChecklist("L-2", "bant", need, by=OWNER))
    assert units.of_type(LeadQualified) == []
    timeline = {"timeline": Given("choice", value="within_12_months")}
    await handlers.record_checklist(units, RecordChecklist("L-2", "bant", timeline, by=OWNER))
    [qualified] = units.of_type(LeadQualified)
    assert (qualified.lead_id, qualified.score, qualified.reason) == ("L-2", 54, "existing customer")
    assert (qualified.existing_customer, qualified.account_id) == (True, "A-1")
    # Another company's lead is scored on fit as before.
    await units.handle(handlers.capture_lead, cold_lead("L-3", email="eve@example.com"))
    assert (await views.qualification_of(units, "L-3")).status == "nurture"


async def test_a_managers_reopening_of_a_lead_whose_account_won_since_qualifies_it_for_upsell(
    units: Units, clock: FakeClock
) -> None:
    # Disqualified by hand first: not now.
    await units.handle(handlers.capture_lead, cold_lead("L-1"))
    await handlers.disqualify_lead(units, DisqualifyLead("L-1", "no project this year", by=OWNER))
    # Later another lead of the same company is won.
    await units.handle(handlers.capture_lead, cold_lead("L-2", email="bob@example.com"))
    won = DealWon(
        deal_id="D-2",
        lead_id="L-2",
        account_id="A-1",
        account_name="Shop L-1",
        owner=OWNER,
        amount=Decimal("9000"),
        cycle_seconds=3600.0,
        won_at=clock.now(),
    )
    await units.handle(handlers.record_won_account, won)
    # L-2's company is "Shop L-2": the won account is that one. L-1 is of another account and re-opens
    # as a stranger; a lead of the won account re-opens as an existing customer.
    reopened = await engagement.reopen_lead(units, ReopenLead("L-1", "asked again", by=MANAGER))
    assert reopened.customer is None

    await units.handle(
        handlers.capture_lead,
        cold_lead("L-3", email="eve@example.com").model_copy(update={"company": cold_lead("L-2").company}),
    )
    await handlers.disqualify_lead(units, DisqualifyLead("L-3", "not now", by=OWNER))
    upsell = await engagement.reopen_lead(
        units, ReopenLead("L-3", "the customer asks for more seats", by=MANAGER)
    )
    assert upsell.customer is not None and upsell.customer.account_id == "A-1"
    assert upsell.review(DEFAULT_RULES).missing == ("need", "timeline")
    answers = {
        "need": Given("choice", value="confirmed"),
        "timeline": Given("choice", value="within_3_months"),
    }
    decided = await handlers.record_checklist(units, RecordChecklist("L-3", "bant", answers, by=OWNER))
    assert decided.status == "qualified" and decided.decision is not None
    assert (decided.decision.reason, decided.decision.number) == ("existing customer", 3)
    [qualified] = [e for e in units.of_type(LeadQualified) if e.lead_id == "L-3"]
    assert (qualified.existing_customer, qualified.account_id, qualified.decision_number) == (True, "A-1", 3)
