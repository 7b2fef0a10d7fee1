"""The use cases on the in-memory unit of work: the real handlers, no database, no broker."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from kariz_qualification.adapters.in_memory import InMemoryQualificationUnitOfWork
from kariz_qualification.domain.queries import LeadsByStatus
from kariz_qualification.domain.rule_versions import SEEDED_BY, RuleSetVersion
from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet
from kariz_qualification.service_layer import handlers, views
from kariz_qualification.service_layer.commands import DisqualifyLead, RecordAnswers, ReplaceRules
from kariz_shared.contracts.errors import Conflict, NotFound
from kariz_shared.contracts.events import (
    BantAnswers,
    Company,
    Contact,
    LeadCaptured,
    LeadDisqualified,
    LeadQualified,
    LeadSource,
    ScoreLine,
)
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.runtime.logging import correlation_id

#: The rep who records the tests' answers and disqualifications.
REP = "alex@kariz.example"

Units = InMemoryUnitsOfWork[InMemoryQualificationUnitOfWork]

CAPTURED_AT = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
FULL_BANT = BantAnswers(
    budget="confirmed", authority="decision_maker", need="confirmed", timeline="within_3_months"
)
UNKNOWN_BANT = BantAnswers(budget="unknown", authority="unknown", need="unknown", timeline="unknown")
ADMIN = "admin@kariz.test"


def captured(
    lead_id: str = "L-1",
    *,
    industry: str = "software",
    size: int = 500,
    country: str = "DE",
    title: str | None = "VP Sales",
    source: LeadSource = LeadSource.REFERRAL,
    owner: str = "rep@kariz.test",
    captured_at: datetime = CAPTURED_AT,
) -> LeadCaptured:
    """Strong fit by default: software 20 + 200-999 20 + DE 10 + VP 15 + referral 15 = 80."""
    return LeadCaptured(
        lead_id=lead_id,
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@example.com", title=title),
        company=Company(name=f"Acme {lead_id}", industry=industry, size=size, country=country),
        source=source,
        owner=owner,
        assigned_by="round_robin",
        captured_at=captured_at,
    )


def middling(lead_id: str = "L-1", **fields: object) -> LeadCaptured:
    """manufacturing 10 + 50-199 10 + FR 8 + manager 8 + web_form 8 = 44: nurture."""
    return captured(
        lead_id,
        industry="manufacturing",
        size=60,
        country="FR",
        title="IT Manager",
        source=LeadSource.WEB_FORM,
        **fields,  # type: ignore[arg-type]
    )


def poor(lead_id: str = "L-1") -> LeadCaptured:
    """mining 0 + 1-9 0 + BR 0 + individual 2 + purchased_list 0 = 2: disqualified."""
    return captured(
        lead_id, industry="mining", size=3, country="BR", title=None, source=LeadSource.PURCHASED_LIST
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryQualificationUnitOfWork(clock))


@pytest.fixture(autouse=True)
def story() -> Iterator[str]:
    """The correlation id the consumer sets for the event it applies."""
    token = correlation_id.set("corr-from-leads")
    yield "corr-from-leads"
    correlation_id.reset(token)


def lines(breakdown: list[ScoreLine] | tuple[ScoreLine, ...]) -> list[tuple[str, str, int]]:
    return [(line.rule, line.matched, line.points) for line in breakdown]


# --- capture --------------------------------------------------------------------------------------


async def test_a_strong_fit_is_scored_and_qualified_at_capture(units: Units, clock: FakeClock) -> None:
    event = captured()
    await units.handle(handlers.capture_lead, event)

    lead = await views.qualification_of(units, "L-1")
    assert (lead.status, lead.score, lead.correlation_id) == ("qualified", 80, "corr-from-leads")
    assert lines(lead.breakdown) == [
        ("industry", "software", 20),
        ("company_size", "200-999", 20),
        ("country", "DE", 10),
        ("seniority", "vp", 15),
        ("source", "referral", 15),
    ]
    assert [s.trigger for s in lead.scorings] == ["captured"]
    assert lead.captured_at == CAPTURED_AT
    assert lead.decision is not None
    assert (lead.decision.at, lead.decision.threshold, lead.decision.manual) == (clock.now(), 70, False)

    assert units.published == [
        LeadQualified(
            lead_id="L-1",
            owner="rep@kariz.test",
            contact=event.contact,
            company=event.company,
            source=LeadSource.REFERRAL,
            score=80,
            threshold=70,
            breakdown=list(lead.breakdown),
            answers=None,
            qualified_at=clock.now(),
            decision_number=1,
        )
    ]
    assert units.uow.metrics.scores == [("captured", 80)]
    assert units.uow.metrics.decisions == ["qualified"]


async def test_a_middling_fit_is_nurtured_with_no_event(units: Units) -> None:
    await units.handle(handlers.capture_lead, middling())

    lead = await views.qualification_of(units, "L-1")
    assert (lead.status, lead.score, lead.decision, lead.answers) == ("nurture", 44, None, None)
    assert units.published == []
    assert units.uow.metrics.scores == [("captured", 44)]
    assert units.uow.metrics.decisions == []


async def test_a_poor_fit_is_disqualified_at_capture_with_the_reason(units: Units, clock: FakeClock) -> None:
    await units.handle(handlers.capture_lead, poor())

    [event] = units.published
    assert event == LeadDisqualified(
        lead_id="L-1",
        owner="rep@kariz.test",
        reason="fit score 2 is below the disqualification threshold 15",
        score=2,
        breakdown=[
            ScoreLine(rule="company_size", matched="1-9", points=0),
            ScoreLine(rule="seniority", matched="individual", points=2),
            ScoreLine(rule="source", matched="purchased_list", points=0),
        ],
        answers=None,
        disqualified_at=clock.now(),
        decision_number=1,
    )
    lead = await views.qualification_of(units, "L-1")
    assert lead.status == "disqualified"
    assert units.uow.metrics.decisions == ["disqualified"]


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (captured(size=20), "nurture"),  # 80 - 20 + 5 = 65, just below the qualify threshold of 70
        (captured(size=20, country="SE"), "nurture"),  # 55
        (captured(title="CEO", size=20), "qualified"),  # 65 - 15 + 20 = 70, at the threshold
        (poor(), "disqualified"),
    ],
    ids=["below-threshold", "well-below", "at-threshold", "below-disqualify"],
)
async def test_the_thresholds_decide_at_capture(units: Units, event: LeadCaptured, status: str) -> None:
    await units.handle(handlers.capture_lead, event)
    assert (await views.qualification_of(units, "L-1")).status == status
    decided = {"qualified": [LeadQualified], "disqualified": [LeadDisqualified], "nurture": []}[status]
    assert [type(e) for e in units.published] == decided


async def test_a_repeat_capture_in_one_batch_opens_one_lead(units: Units) -> None:
    first, again, other = captured("L-1"), captured("L-1", size=5), middling("L-2")

    async def batch(uow: InMemoryQualificationUnitOfWork) -> None:
        for event in (first, again, other):
            await handlers.capture_lead(uow, event)

    await units.run(batch)

    assert sorted(units.uow.leads.by_id) == ["L-1", "L-2"]
    lead = await views.qualification_of(units, "L-1")
    assert (lead.score, len(lead.scorings), lead.company.size) == (80, 1, 500)
    assert [(type(e), e.lead_id) for e in units.published] == [(LeadQualified, "L-1")]
    assert units.uow.metrics.scores == [("captured", 80), ("captured", 44)]


async def test_a_lead_captured_again_later_is_not_rescored_nor_decided_twice(units: Units) -> None:
    await units.handle(handlers.capture_lead, captured())
    await units.handle(handlers.capture_lead, captured(size=5))  # re-published under a new event id

    assert len(units.of_type(LeadQualified)) == 1
    lead = await views.qualification_of(units, "L-1")
    assert (lead.score, len(lead.scorings)) == (80, 1)


# --- the qualification call -----------------------------------------------------------------------


async def test_answers_qualify_a_nurtured_lead(units: Units, clock: FakeClock) -> None:
    await units.handle(handlers.capture_lead, middling())
    clock.advance(timedelta(days=3))

    lead = await handlers.record_answers(units, RecordAnswers("L-1", FULL_BANT, by=REP))

    assert (lead.status, lead.score, lead.answers) == ("qualified", 104, FULL_BANT)
    assert [(s.trigger, s.score, s.at) for s in lead.scorings] == [
        ("captured", 44, clock.now() - timedelta(days=3)),
        ("bant", 104, clock.now()),
    ]
    assert lines(lead.breakdown)[-4:] == [
        ("bant.budget", "confirmed", 15),
        ("bant.authority", "decision_maker", 15),
        ("bant.need", "confirmed", 15),
        ("bant.timeline", "within_3_months", 15),
    ]
    [event] = units.published
    assert isinstance(event, LeadQualified)
    assert (event.score, event.threshold, event.answers, event.qualified_at) == (
        104,
        70,
        FULL_BANT,
        clock.now(),
    )
    assert event.breakdown == list(lead.breakdown)
    assert await views.qualification_of(units, "L-1") == lead
    assert units.uow.metrics.scores == [("captured", 44), ("bant", 104)]
    assert units.uow.metrics.decisions == ["qualified"]


async def test_answers_can_be_corrected_while_nurtured_and_are_re_decided(units: Units) -> None:
    await units.handle(handlers.capture_lead, middling())

    possible = UNKNOWN_BANT.model_copy(update={"need": "possible"})
    lead = await handlers.record_answers(units, RecordAnswers("L-1", possible, by=REP))
    assert (lead.status, lead.score, lead.answers) == ("nurture", 49, possible)
    confirmed = UNKNOWN_BANT.model_copy(update={"need": "confirmed", "timeline": "within_6_months"})
    lead = await handlers.record_answers(units, RecordAnswers("L-1", confirmed, by=REP))
    assert (lead.status, lead.score, lead.answers) == ("nurture", 69, confirmed)
    assert [s.score for s in lead.scorings] == [44, 49, 69]
    assert units.published == []

    firm = confirmed.model_copy(update={"budget": "planned"})
    lead = await handlers.record_answers(units, RecordAnswers("L-1", firm, by=REP))
    assert (lead.status, lead.score) == ("qualified", 74)
    assert [type(e) for e in units.published] == [LeadQualified]


@pytest.mark.parametrize(
    ("answer", "reason", "score"),
    [({"need": "none"}, "no need", 89), ({"budget": "none"}, "no budget", 89)],
)
async def test_a_no_from_the_call_disqualifies_despite_the_score(
    units: Units, clock: FakeClock, answer: dict[str, str], reason: str, score: int
) -> None:
    await units.handle(handlers.capture_lead, middling())
    answers = FULL_BANT.model_copy(update=answer)

    lead = await handlers.record_answers(units, RecordAnswers("L-1", answers, by=REP))

    assert lead.decision is not None
    assert (lead.status, lead.decision.reason, lead.decision.manual) == ("disqualified", reason, False)
    [event] = units.published
    assert event == LeadDisqualified(
        lead_id="L-1",
        owner="rep@kariz.test",
        reason=reason,
        score=score,
        breakdown=list(lead.breakdown),
        answers=answers,
        checklist=event.checklist,
        disqualified_at=clock.now(),
        decision_number=1,
        actor=REP,
    ), "the rep whose answers decided it is its actor"
    assert lead.decision.by == REP
    # The call's answers as a BANT checklist too, each answered by the rep just now.
    assert event.checklist is not None and event.checklist.methodology == "bant"
    assert [(a.item, a.value, a.answered_by, a.answered_at) for a in event.checklist.answers] == [
        (key, getattr(answers, key), REP, clock.now()) for key in ("budget", "authority", "need", "timeline")
    ]
    assert event.checklist.completeness.answered == 4, "a none is an answer (only unknown is not)"


async def test_a_rep_disqualifies_by_hand(units: Units, clock: FakeClock) -> None:
    await units.handle(handlers.capture_lead, middling())

    lead = await handlers.disqualify_lead(units, DisqualifyLead("L-1", "went with a competitor", by=REP))

    assert lead.decision is not None
    assert (lead.decision.outcome, lead.decision.reason, lead.decision.manual, lead.decision.threshold) == (
        "disqualified",
        "went with a competitor",
        True,
        None,
    )
    [event] = units.published
    assert isinstance(event, LeadDisqualified)
    assert (event.reason, event.score, event.disqualified_at) == ("went with a competitor", 44, clock.now())
    assert event.actor == lead.decision.by == REP, "a disqualification by hand names the rep"
    # No scoring: only the decision is counted.
    assert units.uow.metrics.scores == [("captured", 44)]
    assert units.uow.metrics.decisions == ["disqualified"]


@pytest.mark.parametrize(
    "command",
    [
        RecordAnswers("L-1", FULL_BANT, by=REP),
        RecordAnswers("L-1", UNKNOWN_BANT, by=REP),
        DisqualifyLead("L-1", "no", by=REP),
    ],
    ids=["answers", "no-answers", "disqualify"],
)
@pytest.mark.parametrize("first", ["qualified", "disqualified"])
async def test_a_decision_is_final(units: Units, first: str, command: RecordAnswers | DisqualifyLead) -> None:
    await units.handle(handlers.capture_lead, captured() if first == "qualified" else poor())
    before = await views.qualification_of(units, "L-1")
    published, metrics = (
        list(units.published),
        (list(units.uow.metrics.scores), units.uow.metrics.decisions[:]),
    )

    with pytest.raises(Conflict, match=f"already {first}.*decision is final"):
        if isinstance(command, RecordAnswers):
            await handlers.record_answers(units, command)
        else:
            await handlers.disqualify_lead(units, command)

    assert await views.qualification_of(units, "L-1") == before
    assert units.published == published
    assert (units.uow.metrics.scores, units.uow.metrics.decisions) == metrics


async def test_an_unknown_lead_is_not_found_and_nothing_happens(units: Units) -> None:
    for attempt in (
        views.qualification_of(units, "L-404"),
        handlers.record_answers(units, RecordAnswers("L-404", FULL_BANT, by=REP)),
        handlers.disqualify_lead(units, DisqualifyLead("L-404", "spam", by=REP)),
    ):
        with pytest.raises(NotFound, match="LeadCaptured"):
            await attempt
    assert units.uow.leads.by_id == {}
    assert units.published == []


async def test_a_stale_copy_is_not_saved(units: Units) -> None:
    await units.handle(handlers.capture_lead, middling())
    stale = await views.qualification_of(units, "L-1")
    await handlers.record_answers(units, RecordAnswers("L-1", UNKNOWN_BANT, by=REP))

    stale.disqualify("too late", stale.captured_at)
    with pytest.raises(Conflict, match="changed by another request"):
        await units.run(lambda uow: uow.leads.save(stale))
    assert (await views.qualification_of(units, "L-1")).status == "nurture"


# --- the rule set ---------------------------------------------------------------------------------


async def test_the_defaults_are_in_force_until_an_admin_replaces_them(units: Units, clock: FakeClock) -> None:
    assert await views.current_rules(units) == RuleSetVersion(0, DEFAULT_RULES, clock.now(), SEEDED_BY)


async def test_a_replaced_rule_set_scores_later_scorings_only(units: Units, clock: FakeClock) -> None:
    # A mining lead earns nothing for its industry under the defaults: 0 + 20 + 10 + 15 + 8 = 53, nurture.
    await units.handle(
        handlers.capture_lead, captured("L-early", industry="mining", source=LeadSource.WEB_FORM)
    )
    assert (await views.qualification_of(units, "L-early")).score == 53

    generous = RuleSet.model_validate(
        {**DEFAULT_RULES.model_dump(mode="json"), "industry": {**DEFAULT_RULES.industry, "Mining": 30}}
    )
    replaced = await handlers.replace_rules(units, ReplaceRules(generous, ADMIN))
    assert (replaced.number, replaced.rules, replaced.took_effect_at) == (1, generous, clock.now())
    assert await views.current_rules(units) == replaced

    # A lead captured now is scored with the new rules: 30 + 20 + 10 + 15 + 8 = 83.
    await units.handle(
        handlers.capture_lead, captured("L-late", industry="mining", source=LeadSource.WEB_FORM)
    )
    [event] = units.of_type(LeadQualified)
    assert (event.lead_id, event.score) == ("L-late", 83)
    assert ("industry", "mining", 30) in lines(event.breakdown)

    # The earlier lead kept its scoring; its next scoring (a call with no firm answers) uses the new rules.
    early = await views.qualification_of(units, "L-early")
    assert [(s.score, s.rules_version) for s in early.scorings] == [(53, 0)]
    early = await handlers.record_answers(units, RecordAnswers("L-early", UNKNOWN_BANT, by=REP))
    assert [(s.score, s.rules_version) for s in early.scorings] == [(53, 0), (83, 1)]
    assert early.status == "qualified"
    late = await views.qualification_of(units, "L-late")
    assert [s.rules_version for s in late.scorings] == [1]


async def test_the_thresholds_of_the_rule_set_in_force_decide(units: Units) -> None:
    strict = RuleSet.model_validate(
        {**DEFAULT_RULES.model_dump(mode="json"), "thresholds": {"qualify": 90, "disqualify_below": 50}}
    )
    await handlers.replace_rules(units, ReplaceRules(strict, ADMIN))
    await units.handle(handlers.capture_lead, captured("L-strong"))  # 80: nurture under these thresholds
    await units.handle(handlers.capture_lead, middling("L-mid"))  # 44: below 50, disqualified
    assert (await views.qualification_of(units, "L-strong")).status == "nurture"
    [event] = units.published
    assert isinstance(event, LeadDisqualified) and event.lead_id == "L-mid"
    assert event.reason == "fit score 44 is below the disqualification threshold 50"


# --- the rule set's versions ----------------------------------------------------------------------


def edited(**parts: object) -> RuleSet:
    return RuleSet.model_validate({**DEFAULT_RULES.model_dump(mode="json"), **parts})


async def test_each_replacement_is_a_new_version_with_its_time_and_actor(
    units: Units, clock: FakeClock
) -> None:
    seeded_at = clock.now()
    clock.advance(timedelta(hours=1))
    first = await handlers.replace_rules(units, ReplaceRules(edited(country={"SE": 10}), ADMIN))
    clock.advance(timedelta(days=2))
    second = await handlers.replace_rules(
        units,
        ReplaceRules(
            edited(country={"SE": 10}, thresholds={"qualify": 60, "disqualify_below": 10}),
            "mia@kariz.test",
            edited_version=1,
        ),
    )

    assert (first.number, first.actor, first.took_effect_at) == (1, ADMIN, seeded_at + timedelta(hours=1))
    assert (second.number, second.actor, second.took_effect_at) == (2, "mia@kariz.test", clock.now())
    # What each changed from the version before; version 0 has none before it.
    assert [v.changed for v in units.uow.rules.versions] == [None, ("country",), ("thresholds",)]
    assert await views.current_rules(units) == second
    # Past versions are kept as they were put in force.
    assert await views.rule_set_version(units, 0) == RuleSetVersion(0, DEFAULT_RULES, seeded_at, SEEDED_BY)
    assert await views.rule_set_version(units, 1) == first


async def test_an_edit_of_a_version_no_longer_in_force_is_refused_and_changes_nothing(units: Units) -> None:
    await handlers.replace_rules(units, ReplaceRules(edited(country={"SE": 10}), ADMIN, edited_version=0))
    before = list(units.uow.rules.versions)

    # A second admin edited version 0 too and saves after the first one.
    for stale in (0, 7):
        with pytest.raises(Conflict, match=f"edited version {stale} .* version 1 is in force"):
            await handlers.replace_rules(
                units, ReplaceRules(edited(country={"NO": 5}), "lee@kariz.test", stale)
            )
    assert units.uow.rules.versions == before
    assert (await views.current_rules(units)).number == 1

    # Without a version (today's clients) the replacement goes ahead.
    replaced = await handlers.replace_rules(units, ReplaceRules(edited(country={"NO": 5}), "lee@kariz.test"))
    assert replaced.number == 2


async def test_a_version_number_taken_meanwhile_is_a_conflict_naming_it(
    units: Units, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = units.uow.rules
    store = rules.add

    async def rival_first(version: RuleSetVersion) -> None:
        # Another replica committed the same number between this unit's read and its write.
        await store(RuleSetVersion(version.number, DEFAULT_RULES, clock.now(), "rival@kariz.test"))
        await store(version)

    monkeypatch.setattr(rules, "add", rival_first)
    with pytest.raises(Conflict, match="version 1 of the rule set was put in force by another replacement"):
        await handlers.replace_rules(units, ReplaceRules(edited(country={"SE": 10}), ADMIN))
    assert [v.number for v in units.uow.rules.versions] == [0], "the failed unit stored nothing"


async def test_the_versions_list_newest_first_in_pages(units: Units) -> None:
    for points in range(1, 6):
        await handlers.replace_rules(units, ReplaceRules(edited(country={"SE": points}), ADMIN))

    versions, total = await views.rule_set_versions(units, 50, 0)
    assert ([v.number for v in versions], total) == ([5, 4, 3, 2, 1, 0], 6)
    versions, total = await views.rule_set_versions(units, 2, 1)
    assert ([v.number for v in versions], total) == ([4, 3], 6)
    versions, total = await views.rule_set_versions(units, 10, 6)
    assert (versions, total) == ([], 6)
    with pytest.raises(NotFound, match="no version 6; version 5 is in force"):
        await views.rule_set_version(units, 6)


# --- the review queues ----------------------------------------------------------------------------


async def test_the_review_queues_list_by_status_and_owner_newest_first(units: Units) -> None:
    hour = timedelta(hours=1)
    for i, (lead_id, owner) in enumerate(
        [("N-1", "a@kariz.test"), ("N-2", "b@kariz.test"), ("N-3", "a@kariz.test")]
    ):
        await units.handle(
            handlers.capture_lead, middling(lead_id, owner=owner, captured_at=CAPTURED_AT + i * hour)
        )
    await units.handle(handlers.capture_lead, captured("Q-1"))

    rows, total = await views.leads_by_status(units, LeadsByStatus(), 50, 0)
    assert ([r.lead_id for r in rows], total) == (["N-3", "N-2", "N-1"], 3)
    rows, total = await views.leads_by_status(units, LeadsByStatus("nurture", "a@kariz.test"), 1, 1)
    assert ([r.lead_id for r in rows], total) == (["N-1"], 2)
    [row], total = await views.leads_by_status(units, LeadsByStatus("qualified"), 50, 0)
    assert (row.lead_id, row.company, row.score, row.status, total) == ("Q-1", "Acme Q-1", 80, "qualified", 1)
    assert row.decided_at is not None and row.captured_at == CAPTURED_AT
