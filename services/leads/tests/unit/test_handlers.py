"""The use cases on the in-memory unit of work: the real handlers, no database, no broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kariz_leads.adapters.in_memory import InMemoryLeadRepository, InMemoryLeadsUnitOfWork
from kariz_leads.domain import AssignedBy, InvalidImport, LeadFilter, LeadStatus, ResponseSla, SalesTeam
from kariz_leads.domain.history import LeadChangeKind
from kariz_leads.domain.lead import RECENT_TOUCHES
from kariz_leads.entrypoints import kafka
from kariz_leads.service_layer import handlers, views
from kariz_leads.service_layer.commands import CaptureLead, ImportLeads
from kariz_shared.contracts.errors import DuplicateRecord, NotFound, RejectedEvent, RuleViolation
from kariz_shared.contracts.events import (
    Company,
    Contact,
    LeadCaptured,
    LeadDisqualified,
    LeadQualified,
    LeadResponseOverdue,
    LeadSource,
    ScoreLine,
)
from kariz_shared.contracts.identity import EVERYONE, Actor, Owners
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock

Units = InMemoryUnitsOfWork[InMemoryLeadsUnitOfWork]

REPS = ("alex@kariz.example", "sam@kariz.example", "kim@kariz.example")
DE_TEAM = ("jonas@kariz.example", "lena@kariz.example")
TEAM = SalesTeam.of(REPS, {"DE": DE_TEAM})
SLA = ResponseSla(timedelta(hours=4))
#: Who makes the tests' captures and imports.
REP = Actor("alex@kariz.example")
BREAKDOWN = [ScoreLine(rule="industry", matched="software", points=30)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 2, 9, 30, tzinfo=UTC))


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryLeadsUnitOfWork(clock))


def a_lead(
    email: str = "ada@analytical.example",
    *,
    country: str | None = None,
    source: LeadSource = LeadSource.WEB_FORM,
    campaign: str | None = None,
    **company: Any,
) -> CaptureLead:
    return CaptureLead(
        contact=Contact(first_name="Ada", last_name="Lovelace", email=email),
        company=Company(name="Analytical Engines", country=country, **company),
        source=source,
        campaign=campaign,
        consent=True,
    )


async def capture(units: Units, command: CaptureLead, cid: str = "corr-1") -> handlers.Captured:
    return await handlers.capture_lead(units, TEAM, SLA, command, correlation_id=cid, by=REP)


async def import_(units: Units, *commands: CaptureLead) -> list[handlers.Captured]:
    return await handlers.import_leads(
        units, TEAM, SLA, ImportLeads(commands), correlation_id="import-1", by=REP
    )


def qualified(lead_id: str, owner: str, score: int = 85) -> LeadQualified:
    return LeadQualified(
        lead_id=lead_id,
        owner=owner,
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@analytical.example"),
        company=Company(name="Analytical Engines"),
        source=LeadSource.WEB_FORM,
        score=score,
        threshold=60,
        breakdown=BREAKDOWN,
        qualified_at=datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
    )


def disqualified(lead_id: str, owner: str) -> LeadDisqualified:
    return LeadDisqualified(
        lead_id=lead_id,
        owner=owner,
        reason="no budget this year",
        score=20,
        breakdown=BREAKDOWN,
        disqualified_at=datetime(2026, 3, 2, 10, 0, tzinfo=UTC),
    )


# --- capture --------------------------------------------------------------------------------------


async def test_a_capture_stores_the_normalised_lead_and_publishes_lead_captured(
    units: Units, clock: FakeClock
) -> None:
    command = CaptureLead(
        contact=Contact(first_name=" Ada ", last_name="King   Lovelace", email=" ADA@Analytical.Example "),
        company=Company(name=" Analytical Engines ", industry="Financial Services", country="gb"),
        source=LeadSource.TRADE_SHOW,
        campaign=" cebit-2026 ",
        consent=True,
    )
    captured = await capture(units, command, cid="story-7")

    lead = captured.lead
    assert not captured.duplicate
    assert (lead.contact.first_name, lead.contact.last_name, lead.email) == (
        "Ada",
        "King Lovelace",
        "ada@analytical.example",
    )
    assert (lead.company.domain, lead.company.industry, lead.company.country) == (
        "analytical.example",
        "financial_services",
        "GB",
    )
    assert (lead.campaign, lead.status, lead.correlation_id) == ("cebit-2026", LeadStatus.NEW, "story-7")
    assert lead.created_at == lead.updated_at == clock.now()
    [event] = units.of_type(LeadCaptured)
    assert event == lead.captured()
    assert await views.lead(units, lead.id) == lead
    assert units.uow.metrics.captures == [LeadSource.TRADE_SHOW]


async def test_free_mail_leaves_the_company_domain_empty(units: Units) -> None:
    lead = (await capture(units, a_lead("ada.lovelace@GMail.com"))).lead
    assert (lead.email, lead.company.domain) == ("ada.lovelace@gmail.com", None)


async def test_new_leads_go_round_robin_and_a_territorys_leads_to_its_team_in_turn(units: Units) -> None:
    countries = [None, "DE", "FR", "de", None, "DE", "US"]
    owners = [
        (await capture(units, a_lead(f"lead{n}@acme.example", country=c))).lead
        for n, c in enumerate(countries)
    ]
    assert [(lead.owner, lead.assigned_by) for lead in owners] == [
        (REPS[0], AssignedBy.ROUND_ROBIN),
        (DE_TEAM[0], AssignedBy.TERRITORY),
        (REPS[1], AssignedBy.ROUND_ROBIN),  # France has no team: the general rotation goes on
        (DE_TEAM[1], AssignedBy.TERRITORY),
        (REPS[2], AssignedBy.ROUND_ROBIN),
        (DE_TEAM[0], AssignedBy.TERRITORY),
        (REPS[0], AssignedBy.ROUND_ROBIN),
    ]
    assert units.uow.turns.taken == {"round_robin": 4, "territory:DE": 3}


async def test_a_known_address_is_a_touch_of_its_lead_and_takes_no_turn(
    units: Units, clock: FakeClock
) -> None:
    first = await capture(units, a_lead(campaign="spring"))
    clock.advance(timedelta(days=2))
    again = await capture(
        units, a_lead(" Ada@ANALYTICAL.example", source=LeadSource.EVENT, campaign="summit"), cid="other"
    )

    assert again.duplicate
    assert again.lead.id == first.lead.id
    assert (again.lead.source, again.lead.campaign, again.lead.owner, again.lead.correlation_id) == (
        LeadSource.WEB_FORM,
        "spring",
        first.lead.owner,
        "corr-1",
    )
    assert [(t.source, t.campaign) for t in again.lead.touches] == [
        (LeadSource.WEB_FORM, "spring"),
        (LeadSource.EVENT, "summit"),
    ]
    stored = await views.lead(units, first.lead.id)
    assert stored.touches == again.lead.touches and stored.updated_at == clock.now()
    assert len(units.uow.leads.by_id) == 1
    assert len(units.of_type(LeadCaptured)) == 1
    assert units.uow.turns.taken == {"round_robin": 1}
    assert (units.uow.metrics.captures, units.uow.metrics.touches) == (
        [LeadSource.WEB_FORM],
        [LeadSource.EVENT],
    )


async def test_an_invalid_capture_is_refused_naming_the_field(units: Units) -> None:
    with pytest.raises(RuleViolation, match=r"^contact\.email: 'ada\.example\.com' is not an e-mail address"):
        await capture(units, a_lead("ada.example.com"))
    with pytest.raises(RuleViolation, match=r"^company\.country: .* is not a country"):
        await capture(units, a_lead(country="Germania"))
    with pytest.raises(RuleViolation, match=r"^company\.size: "):
        await capture(units, a_lead(size=0))
    assert units.uow.leads.by_id == {} and units.published == []


async def test_a_capture_that_loses_the_race_for_a_new_address_becomes_a_touch(
    units: Units, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await capture(units, a_lead())
    # The duplicate check misses once, as when a concurrent capture commits between check and insert:
    # the store refuses the second lead with that address, and the capture is run again.
    real = InMemoryLeadRepository.with_emails
    misses = [True]

    async def stale(self: InMemoryLeadRepository, emails: list[str]) -> Any:
        return {} if misses and misses.pop() else await real(self, emails)

    monkeypatch.setattr(InMemoryLeadRepository, "with_emails", stale)
    second = await capture(units, a_lead(source=LeadSource.REFERRAL))

    assert not misses
    assert second.duplicate and second.lead.id == first.lead.id
    assert [t.source for t in second.lead.touches] == [LeadSource.WEB_FORM, LeadSource.REFERRAL]
    assert len(units.uow.leads.by_id) == 1
    assert len(units.of_type(LeadCaptured)) == 1
    assert (await units.uow.timers.get(first.lead.response_timer_key())) is not None


async def test_a_refusal_by_another_unique_index_is_not_taken_for_a_race(
    units: Units, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await capture(units, a_lead())
    monkeypatch.setattr(handlers, "new_lead_id", lambda: first.lead.id)
    real, tries = InMemoryLeadRepository.add_all, []

    async def counted(self: InMemoryLeadRepository, leads: list[Any]) -> None:
        tries.append(leads)
        await real(self, leads)

    monkeypatch.setattr(InMemoryLeadRepository, "add_all", counted)
    with pytest.raises(DuplicateRecord) as refused:
        await capture(units, a_lead("grace@navy.example"))
    assert refused.value.index == "_id_"
    assert len(tries) == 1  # not run again: only a known address turns a capture into a touch
    assert len(units.uow.leads.by_id) == 1


async def test_an_import_run_again_after_a_lost_race_reuses_the_turns_it_took(
    units: Units, monkeypatch: pytest.MonkeyPatch
) -> None:
    await capture(units, a_lead("raced@acme.example"))  # turn 0
    real = InMemoryLeadRepository.with_emails
    misses = [True]

    async def stale(self: InMemoryLeadRepository, emails: list[str]) -> Any:
        return {} if misses and misses.pop() else await real(self, emails)

    monkeypatch.setattr(InMemoryLeadRepository, "with_emails", stale)
    report = await import_(
        units, a_lead("raced@acme.example"), a_lead("b@acme.example"), a_lead("c@acme.example")
    )

    assert [c.duplicate for c in report] == [True, False, False]
    # The first try took turns 1-3 for three new leads; the second needs two and hands out 1 and 2.
    assert [c.lead.owner for c in report[1:]] == [REPS[1], REPS[2]]
    assert units.uow.turns.taken == {"round_robin": 4}


# --- import ---------------------------------------------------------------------------------------


async def test_an_import_stores_each_new_lead_with_its_own_story_and_repeats_as_touches(units: Units) -> None:
    known = (await capture(units, a_lead("known@acme.example"))).lead
    fresh = [a_lead(f"fresh{n}@acme.example") for n in range(6)]
    lines = [*fresh[:3], a_lead("KNOWN@acme.example", source=LeadSource.PARTNER), *fresh[3:]]
    lines.append(a_lead("fresh0@acme.example", source=LeadSource.EVENT))
    published_before = len(units.published)

    report = await import_(units, *lines)

    assert [c.duplicate for c in report] == [False] * 3 + [True] + [False] * 3 + [True]
    assert [c.lead.email for c in report] == [line.contact.email.lower() for line in lines]
    assert report[3].lead.id == known.id
    assert report[-1].lead.id == report[0].lead.id  # a repeat within the import touches its first line
    new = [c.lead for c in report if not c.duplicate]
    # Round robin across the import, after the one lead captured before: six leads over three reps.
    assert [lead.owner for lead in new] == [*REPS[1:], REPS[0], *REPS[1:], REPS[0]]
    # Each new lead starts a story of its own, none the import's.
    assert len({lead.correlation_id for lead in new}) == 6
    assert "import-1" not in {lead.correlation_id for lead in new}
    events = units.published[published_before:]
    assert [e.lead_id for e in events if isinstance(e, LeadCaptured)] == [lead.id for lead in new]
    stored = await views.lead(units, report[0].lead.id)
    assert [t.source for t in stored.touches] == [LeadSource.WEB_FORM, LeadSource.EVENT]
    touched = await views.lead(units, known.id)
    assert [t.source for t in touched.touches] == [LeadSource.WEB_FORM, LeadSource.PARTNER]
    assert units.uow.turns.taken == {"round_robin": 7}


async def test_an_import_with_bad_lines_stores_nothing_and_names_each_line_and_field(units: Units) -> None:
    good = [a_lead(f"good{n}@acme.example") for n in range(3)]
    with pytest.raises(InvalidImport) as refused:
        await import_(units, good[0], a_lead("not-an-address"), good[1], a_lead(country="XX"), good[2])

    assert {n: p.field for n, p in refused.value.problems.items()} == {
        1: "contact.email",
        3: "company.country",
    }
    message = str(refused.value)
    assert message.startswith("leads.1.contact.email: 'not-an-address' is not an e-mail address")
    assert "; leads.3.company.country: 'XX' is not an assigned ISO 3166-1 alpha-2 country code" in message
    assert units.uow.leads.by_id == {}
    assert units.published == [] and units.uow.timers.armed == {}
    assert units.uow.turns.taken == {} and units.uow.metrics.captures == []


async def test_an_import_that_fails_in_storage_leaves_nothing_behind(
    units: Units, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: InMemoryLeadRepository, leads: list[Any]) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(InMemoryLeadRepository, "add_all", broken)
    with pytest.raises(RuntimeError):
        await import_(units, a_lead("one@acme.example"), a_lead("two@acme.example"))
    assert units.uow.leads.by_id == {} and units.published == []
    assert units.uow.timers.armed == {}
    assert units.uow.metrics.captures == []


# --- verdicts -------------------------------------------------------------------------------------


async def test_verdicts_set_status_score_and_reason(units: Units, clock: FakeClock) -> None:
    good, bad = [(await capture(units, a_lead(f"{n}@acme.example"))).lead for n in ("good", "bad")]
    clock.advance(timedelta(minutes=30))
    await units.handle(kafka.on_lead_qualified, qualified(good.id, good.owner, score=85))
    await units.handle(kafka.on_lead_disqualified, disqualified(bad.id, bad.owner))

    now_good, now_bad = await views.lead(units, good.id), await views.lead(units, bad.id)
    assert (now_good.status, now_good.score, now_good.disqualification_reason) == (
        LeadStatus.QUALIFIED,
        85,
        None,
    )
    assert now_good.updated_at == clock.now()
    assert (now_bad.status, now_bad.score, now_bad.disqualification_reason) == (
        LeadStatus.DISQUALIFIED,
        20,
        "no budget this year",
    )
    page, total = await views.leads_matching(
        units, LeadFilter.of(status=LeadStatus.DISQUALIFIED), limit=10, offset=0
    )
    assert ([lead.id for lead in page], total) == ([bad.id], 1)


async def test_a_verdict_for_a_lead_never_captured_is_rejected(units: Units) -> None:
    with pytest.raises(NotFound, match="no lead with id 'ghost'"):
        await units.handle(handlers.record_qualified, qualified("ghost", "alex@kariz.example"))
    with pytest.raises(RejectedEvent, match="LeadDisqualified for a lead leads never captured"):
        await units.handle(kafka.on_lead_disqualified, disqualified("ghost", "alex@kariz.example"))


# --- the response SLA -----------------------------------------------------------------------------


async def test_a_capture_arms_the_response_timer_at_capture_plus_the_sla(
    units: Units, clock: FakeClock
) -> None:
    lead = (await capture(units, a_lead(country="DE", source=LeadSource.REFERRAL))).lead

    timer = await units.uow.timers.get(f"lead:{lead.id}:response")
    assert timer is not None
    assert timer.due_at == clock.now() + timedelta(hours=4)
    assert timer.every is None
    assert timer.event == LeadResponseOverdue(
        lead_id=lead.id,
        owner=DE_TEAM[0],
        source=LeadSource.REFERRAL,
        captured_at=clock.now(),
        due_at=clock.now() + timedelta(hours=4),
    )


async def test_a_lead_left_new_fires_lead_response_overdue_once_when_the_sla_ran_out(
    units: Units, clock: FakeClock
) -> None:
    lead = (await capture(units, a_lead())).lead
    clock.advance(timedelta(hours=4) - timedelta(milliseconds=1))
    assert await units.fire_due_timers() == []
    clock.advance(timedelta(milliseconds=1))
    [fired] = await units.fire_due_timers()
    assert isinstance(fired, LeadResponseOverdue) and fired.lead_id == lead.id
    clock.advance(timedelta(days=3))
    assert await units.fire_due_timers() == []
    assert units.of_type(LeadResponseOverdue) == [fired]


async def test_a_touch_does_not_restart_the_response_timer(units: Units, clock: FakeClock) -> None:
    lead = (await capture(units, a_lead())).lead
    due = clock.now() + timedelta(hours=4)
    clock.advance(timedelta(hours=3))
    await capture(units, a_lead(source=LeadSource.EVENT))
    timer = await units.uow.timers.get(lead.response_timer_key())
    assert timer is not None and timer.due_at == due
    clock.advance(timedelta(hours=1))
    assert [e.lead_id for e in await units.fire_due_timers()] == [lead.id]


@pytest.mark.parametrize("verdict", ["qualified", "disqualified"])
async def test_a_verdict_stops_the_response_timer(units: Units, clock: FakeClock, verdict: str) -> None:
    lead = (await capture(units, a_lead())).lead
    other = (await capture(units, a_lead("other@acme.example"))).lead
    clock.advance(timedelta(hours=1))
    if verdict == "qualified":
        await units.handle(kafka.on_lead_qualified, qualified(lead.id, lead.owner))
    else:
        await units.handle(kafka.on_lead_disqualified, disqualified(lead.id, lead.owner))

    assert await units.uow.timers.get(lead.response_timer_key()) is None
    assert await units.uow.timers.get(other.response_timer_key()) is not None
    clock.advance(timedelta(hours=5))
    assert [e.lead_id for e in await units.fire_due_timers()] == [other.id]


async def test_an_import_arms_one_response_timer_per_new_lead(units: Units, clock: FakeClock) -> None:
    known = (await capture(units, a_lead("known@acme.example"))).lead
    clock.advance(timedelta(hours=1))
    report = await import_(
        units, a_lead("one@acme.example"), a_lead("known@acme.example"), a_lead("two@acme.example")
    )
    new = [c.lead for c in report if not c.duplicate]
    for lead in new:
        timer = await units.uow.timers.get(lead.response_timer_key())
        assert timer is not None and timer.due_at == clock.now() + timedelta(hours=4)
        # Its overdue event continues the lead's own story, not the import request's.
        assert timer.correlation_id == lead.correlation_id
    # The known lead's timer still counts from its own capture.
    known_timer = await units.uow.timers.get(known.response_timer_key())
    assert known_timer is not None and known_timer.due_at == known.created_at + timedelta(hours=4)
    clock.advance(timedelta(hours=4))
    assert sorted(e.lead_id for e in await units.fire_due_timers()) == sorted(
        [known.id, *(x.id for x in new)]
    )


def test_a_response_sla_is_a_positive_time() -> None:
    with pytest.raises(ValueError, match="positive"):
        ResponseSla(timedelta(0))


# --- the read side --------------------------------------------------------------------------------


async def test_an_unknown_lead_is_not_found(units: Units) -> None:
    with pytest.raises(NotFound, match=r"^no lead with id 'no-such-lead'$"):
        await views.lead(units, "no-such-lead")


async def test_leads_are_found_by_every_criterion_newest_first_a_page_at_a_time(
    units: Units, clock: FakeClock
) -> None:
    specs = [
        (LeadSource.WEB_FORM, "DE"),
        (LeadSource.EVENT, "DE"),
        (LeadSource.EVENT, "FR"),
        (LeadSource.PARTNER, None),
    ]
    ids = []
    for n, (source, country) in enumerate(specs):
        ids.append(
            (await capture(units, a_lead(f"l{n}@acme.example", country=country, source=source))).lead.id
        )
        clock.advance(timedelta(minutes=1))
    third_at = (await views.lead(units, ids[2])).created_at

    async def find(**criteria: Any) -> list[str]:
        page, _ = await views.leads_matching(units, LeadFilter.of(**criteria), limit=50, offset=0)
        return [lead.id for lead in page]

    assert await find() == ids[::-1]
    assert await find(source=LeadSource.EVENT) == [ids[2], ids[1]]
    assert await find(country="de") == [ids[1], ids[0]]
    assert await find(owner=DE_TEAM[1].upper()) == [ids[1]]
    assert await find(created_from=third_at) == [ids[3], ids[2]]
    assert await find(created_to=third_at) == [ids[2], ids[1], ids[0]]
    page, total = await views.leads_matching(units, LeadFilter.of(), limit=2, offset=2)
    assert ([lead.id for lead in page], total) == ([ids[1], ids[0]], 4)


async def test_a_lead_keeps_its_recent_touches_and_counts_them_all(units: Units, clock: FakeClock) -> None:
    first = await capture(units, a_lead(source=LeadSource.WEB_FORM))
    for n in range(RECENT_TOUCHES + 4):
        clock.advance(timedelta(minutes=1))
        source = LeadSource.EVENT if n % 2 else LeadSource.WEB_FORM
        again = await capture(units, a_lead(source=source))
        assert again.duplicate
    lead = await views.lead(units, first.lead.id)
    assert len(lead.touches) == RECENT_TOUCHES, "the list is bounded"
    assert lead.touches[-1].at == clock.now(), "the newest are kept"
    assert lead.touch_count == RECENT_TOUCHES + 5
    assert lead.touches_by_source == {
        "web_form": 1 + (RECENT_TOUCHES + 4 + 1) // 2,
        "event": (RECENT_TOUCHES + 4) // 2,
    }


# --- history --------------------------------------------------------------------------------------


async def test_the_history_keeps_each_change_with_who_made_it_newest_first(
    units: Units, clock: FakeClock
) -> None:
    lead = (await capture(units, a_lead(source=LeadSource.WEB_FORM, campaign="spring"))).lead
    clock.advance(timedelta(minutes=5))
    partner = Actor("key:abc123", on_behalf_of="partner:acme")
    await handlers.capture_lead(
        units, TEAM, SLA, a_lead(source=LeadSource.PARTNER), correlation_id="corr-2", by=partner
    )
    clock.advance(timedelta(minutes=5))
    await units.handle(
        kafka.on_lead_qualified, qualified(lead.id, lead.owner).model_copy(update={"actor": None})
    )
    clock.advance(timedelta(minutes=5))
    by_hand = disqualified(lead.id, lead.owner).model_copy(update={"actor": "sam@kariz.example"})
    await units.handle(kafka.on_lead_disqualified, by_hand)

    changes, total = await views.history(units, lead.id, EVERYONE, limit=10, offset=0)

    assert total == 4
    assert [(c.kind, c.by, c.at) for c in changes] == [
        (LeadChangeKind.DISQUALIFIED, Actor("sam@kariz.example"), clock.now()),
        (LeadChangeKind.QUALIFIED, Actor("/kariz/qualification"), clock.now() - timedelta(minutes=5)),
        (LeadChangeKind.TOUCHED, partner, clock.now() - timedelta(minutes=10)),
        (LeadChangeKind.CAPTURED, REP, clock.now() - timedelta(minutes=15)),
    ]
    assert changes[0].details == {"score": 20, "reason": "no budget this year"}
    assert changes[2].details == {"source": "partner", "campaign": None}
    assert changes[3].details == {
        "source": "web_form",
        "campaign": "spring",
        "owner": lead.owner,
        "assigned_by": "round_robin",
        "priority": "normal",
    }
    [page] = (await views.history(units, lead.id, EVERYONE, limit=1, offset=1))[0]
    assert page.kind is LeadChangeKind.QUALIFIED, "paged like every list"
    [event] = units.of_type(LeadCaptured)
    assert event.actor == REP.who, "LeadCaptured names who captured the lead"


async def test_an_import_records_one_capture_per_new_lead_and_a_touch_per_repeat(units: Units) -> None:
    [first, repeat] = await import_(units, a_lead("ada@acme.example"), a_lead("ADA@acme.example"))

    changes, total = await views.history(units, first.lead.id, EVERYONE, limit=10, offset=0)

    assert repeat.lead.id == first.lead.id and total == 2
    assert {c.kind for c in changes} == {LeadChangeKind.CAPTURED, LeadChangeKind.TOUCHED}
    assert changes[-1].kind is LeadChangeKind.CAPTURED, "the capture is the oldest change"


async def test_the_history_of_a_lead_out_of_reach_is_not_there(units: Units) -> None:
    lead = (await capture(units, a_lead())).lead
    elsewhere = Owners(frozenset({"someone-else@kariz.example"}))

    with pytest.raises(NotFound, match=f"no lead with id {lead.id!r}"):
        await views.history(units, lead.id, elsewhere, limit=10, offset=0)
    with pytest.raises(NotFound, match="no lead with id 'nope'"):
        await views.history(units, "nope", EVERYONE, limit=10, offset=0)
