"""The runtime roster and the assignment rules: the rules (matching, validation), the weighted rotation
(proportions, who is skipped), and capture on the in-memory unit of work (a rule's team and rep, the
team's queue, the settings' assignment when no rule matches, turns kept across a retry, versions)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kariz_leads.adapters.in_memory import InMemoryLeadsUnitOfWork
from kariz_leads.domain import AssignedBy, LeadStatus, ResponseSla, SalesTeam
from kariz_leads.domain.assignment_rules import AssignmentRule, AssignmentRules, AssignmentRulesVersion
from kariz_leads.domain.intake import InvalidField
from kariz_leads.domain.regions import Region
from kariz_leads.domain.roster import OpenLeads, Rep, RosterAccess, TeamRotation
from kariz_leads.service_layer import handlers, roster
from kariz_leads.service_layer.commands import CaptureLead, ImportLeads
from kariz_leads.service_layer.roster import RepChange
from kariz_leads.service_layer.roster_store import RulesInForce
from kariz_shared.contracts.errors import Conflict, Forbidden, NotFound, RuleViolation
from kariz_shared.contracts.events import (
    Company,
    Contact,
    LeadCaptured,
    LeadQueued,
    LeadResponseEscalationDue,
    LeadResponseOverdue,
    LeadSource,
    RepProfile,
)
from kariz_shared.contracts.identity import Actor
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock

Units = InMemoryUnitsOfWork[InMemoryLeadsUnitOfWork]

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SETTINGS_TEAM = SalesTeam.of(["alex@kariz.example", "sam@kariz.example"], {"DE": ["jonas@kariz.example"]})
SLA = ResponseSla(timedelta(hours=4), escalate_after=timedelta(hours=2))
ADMIN = RosterAccess(admin=True)
BY = Actor("root@kariz.example")
ANA, BEA, CY = "ana@kariz.example", "bea@kariz.example", "cy@kariz.example"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryLeadsUnitOfWork(clock))


def rep(email: str, team: str = "dach", **fields: Any) -> Rep:
    return Rep.of(email=email, team=team, at=T0, actor="root@kariz.example", **fields)


def company(**fields: Any) -> Company:
    return Company(name="Acme", **fields)


def a_lead(n: int, *, country: str | None = "DE", campaign: str | None = None, **more: Any) -> CaptureLead:
    return CaptureLead(
        contact=Contact(first_name="Ada", last_name="Lovelace", email=f"ada{n}@acme.example"),
        company=Company(name="Acme", country=country, **more),
        source=LeadSource.WEB_FORM,
        campaign=campaign,
        consent=True,
    )


async def put(units: Units, *reps: Rep) -> None:
    for r in reps:
        change = RepChange(
            email=r.email,
            team=r.team,
            active=r.active,
            capacity=r.capacity,
            weight=r.weight,
            away_until=r.away_until,
        )
        await roster.put_rep(units, change, ADMIN, BY.who)


async def rules(units: Units, *rules_: AssignmentRule) -> AssignmentRulesVersion:
    return await roster.replace_assignment_rules(units, AssignmentRules.of(rules_), BY.who, None)


DACH = AssignmentRule.of(name="DACH", team="dach", countries=["de", "AT", "ch"])


async def capture(units: Units, command: CaptureLead) -> handlers.Captured:
    return await handlers.capture_lead(units, SETTINGS_TEAM, SLA, command, correlation_id="c", by=BY)


# --- the rules ------------------------------------------------------------------------------------


def test_a_rule_matches_when_every_criterion_it_names_holds() -> None:
    rule = AssignmentRule.of(
        name="big EMEA software from events",
        team="emea",
        regions=["EMEA"],
        industries=["Software"],
        size_min=100,
        size_max=5000,
        sources=["event"],
        campaigns=["fair-2026"],
    )
    lead = company(country="FR", industry="software", size=400)
    assert rule.matches(lead, LeadSource.EVENT, "fair-2026")
    assert not rule.matches(
        company(country="US", industry="software", size=400), LeadSource.EVENT, "fair-2026"
    )
    assert not rule.matches(company(country="FR", industry="retail", size=400), LeadSource.EVENT, "fair-2026")
    assert not rule.matches(
        company(country="FR", industry="software", size=99), LeadSource.EVENT, "fair-2026"
    )
    assert not rule.matches(company(country="FR", industry="software"), LeadSource.EVENT, "fair-2026")
    assert not rule.matches(lead, LeadSource.WEB_FORM, "fair-2026")
    assert not rule.matches(lead, LeadSource.EVENT, None)


def test_countries_and_regions_are_one_criterion_either_will_do() -> None:
    rule = AssignmentRule.of(name="geo", team="t", countries=["br"], regions=[Region.NA])
    assert rule.countries == {"BR"}
    assert rule.matches(company(country="BR"), LeadSource.WEB_FORM, None)
    assert rule.matches(company(country="CA"), LeadSource.WEB_FORM, None)
    assert not rule.matches(company(country="AR"), LeadSource.WEB_FORM, None)
    assert not rule.matches(company(), LeadSource.WEB_FORM, None)


def test_the_first_matching_rule_wins() -> None:
    listed = AssignmentRules.of(
        [
            AssignmentRule.of(name="enterprise DE", team="enterprise", countries=["DE"], size_min=1000),
            DACH,
            AssignmentRule.of(name="everyone else", team="inbound"),
        ]
    )
    first = listed.first_match(company(country="DE", size=5000), LeadSource.WEB_FORM, None)
    assert first is not None and first.team == "enterprise"
    second = listed.first_match(company(country="DE", size=50), LeadSource.WEB_FORM, None)
    assert second is not None and second.team == "dach"
    last = listed.first_match(company(country="JP"), LeadSource.WEB_FORM, None)
    assert last is not None and last.team == "inbound"
    assert AssignmentRules.of([DACH]).first_match(company(country="JP"), LeadSource.WEB_FORM, None) is None


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"size_min": 500, "size_max": 10}, "size_min", "above size_max"),
        ({"team": "  "}, "team", "needs a name"),
        ({"team": "queue:x"}, "team", "not a team name"),
        ({"sources": ["carrier_pigeon"]}, "sources[0]", "not a lead source"),
        ({"regions": ["EMEA", "MARS"]}, "regions[1]", "not a region"),
        ({"countries": ["Atlantis"]}, "countries[0]", "not a country"),
        ({"name": " "}, "name", "needs a name"),
        ({"size_max": 0}, "size_max", "at least 1"),
    ],
)
def test_a_bad_rule_is_refused_naming_its_field(fields: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(InvalidField, match=says) as refused:
        AssignmentRule.of(**{"name": "r", "team": "dach", **fields})
    assert refused.value.field == field


def test_a_rule_list_refuses_two_names_alike_and_a_catch_all_before_the_end() -> None:
    with pytest.raises(InvalidField) as twice:
        AssignmentRules.of([DACH, AssignmentRule.of(name="dach", team="other", countries=["FR"])])
    assert twice.value.field == "rules[1].name"
    with pytest.raises(InvalidField, match="only the last rule") as early:
        AssignmentRules.of([AssignmentRule.of(name="all", team="inbound"), DACH])
    assert early.value.field == "rules[0]"


# --- the roster and the rotation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"weight": 0}, "weight"),
        ({"capacity": 0}, "capacity"),
        ({"locale": "not a tag"}, "locale"),
        ({"manager": "nobody"}, "manager"),
        ({"away_until": datetime(2026, 3, 3)}, "away_until"),  # no zone, on purpose
    ],
)
def test_a_bad_rep_is_refused_naming_its_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidField) as refused:
        rep(ANA, **fields)
    assert refused.value.field == field


def test_weights_share_the_turns_and_interleave() -> None:
    rotation = TeamRotation.of("dach", [rep(ANA, weight=3), rep(BEA, weight=1)], T0)
    assert [r.email for r in rotation.slots] == [ANA, ANA, BEA, ANA]  # smooth: B is not left to the end
    load = OpenLeads({})
    owners = Counter(rotation.pick(turn, load).email for turn in range(400))  # type: ignore[union-attr]
    assert owners == {ANA: 300, BEA: 100}


def test_away_inactive_and_full_reps_are_skipped() -> None:
    reps = [
        rep(ANA, away_until=T0 + timedelta(days=1)),
        rep(BEA, active=False),
        rep(CY, capacity=2),
        rep("dee@kariz.example", team="other"),
    ]
    rotation = TeamRotation.of("dach", reps, T0)
    assert [r.email for r in rotation.slots] == [CY]
    load = OpenLeads({CY: 1})
    assert rotation.pick(7, load) == reps[2]
    load.given(CY)
    assert rotation.pick(8, load) is None
    assert rotation.why_nobody(reps) == "every available rep of the team is at capacity"
    # Back from being away at the clock's now: in the rotation again.
    assert ANA in {r.email for r in TeamRotation.of("dach", reps, T0 + timedelta(days=1)).slots}
    assert TeamRotation.of("sales", reps, T0).why_nobody(reps) == "team 'sales' has no reps in the roster"
    assert TeamRotation.of("dach", reps[:2], T0).why_nobody(reps[:2]) == (
        "every rep of the team is away or inactive"
    )


def test_a_manager_keeps_their_own_teams_reps_only() -> None:
    manager = RosterAccess(admin=False, team="dach")
    manager.check_change(None, rep(ANA))
    manager.check_change(rep(ANA), rep(ANA, weight=2))
    with pytest.raises(Forbidden, match="team:"):
        manager.check_change(rep(ANA), rep(ANA, team="apac"))
    with pytest.raises(Forbidden, match="team:"):
        manager.check_change(None, rep(ANA, team="apac"))
    with pytest.raises(NotFound):
        manager.check_change(rep(ANA, team="apac"), rep(ANA))
    with pytest.raises(Forbidden, match="names no team"):
        RosterAccess(admin=False).check_change(None, rep(ANA))
    assert not manager.sees(rep(ANA, team="apac")) and manager.sees(rep(ANA))


async def test_a_put_rep_is_stored_and_published_with_its_actor(units: Units, clock: FakeClock) -> None:
    change = RepChange(email=" Ana@Kariz.Example ", team="dach", time_zone="Europe/Berlin", weight=2)
    stored, created = await roster.put_rep(
        units, change, RosterAccess(admin=False, team="dach"), "kim@kariz.example"
    )
    assert created and stored.email == ANA and stored.actor == "kim@kariz.example" and stored.updated_at == T0
    clock.advance(timedelta(minutes=5))
    left = RepChange(email=ANA, team="dach", active=False)
    stored, created = await roster.put_rep(units, left, ADMIN, BY.who)
    assert not created and stored.updated_at == T0 + timedelta(minutes=5)
    profiles = units.of_type(RepProfile)
    assert [(p.email, p.active, p.time_zone, p.actor) for p in profiles] == [
        (ANA, True, "Europe/Berlin", "kim@kariz.example"),
        (ANA, False, "UTC", BY.who),
    ]
    assert (await roster.rep(units, ANA, ADMIN)).active is False  # kept, never deleted
    with pytest.raises(RuleViolation, match="time_zone"):
        await roster.put_rep(units, RepChange(email=ANA, team="dach", time_zone="Nowhere"), ADMIN, BY.who)


async def test_a_manager_lists_their_team_and_an_admin_everyone(units: Units) -> None:
    await put(units, rep(BEA), rep(ANA), rep(CY, team="apac"))
    mine, total = await roster.reps(units, RosterAccess(admin=False, team="dach"), limit=10, offset=0)
    assert [r.email for r in mine] == [ANA, BEA] and total == 2
    every, total = await roster.reps(units, ADMIN, limit=2, offset=0)
    assert [r.email for r in every] == [ANA, BEA] and total == 3
    with pytest.raises(NotFound):
        await roster.rep(units, CY, RosterAccess(admin=False, team="dach"))


# --- capture by the rules -------------------------------------------------------------------------


async def test_a_rules_team_gets_the_lead_by_weight_and_the_turns_are_the_teams(units: Units) -> None:
    await put(units, rep(ANA, weight=2), rep(BEA))
    await rules(units, DACH)
    captured = [await capture(units, a_lead(n)) for n in range(6)]
    owners = [(c.lead.owner, c.lead.assigned_by) for c in captured]
    assert owners == [(ANA, AssignedBy.RULE), (BEA, AssignedBy.RULE), (ANA, AssignedBy.RULE)] * 2
    assert units.uow.turns.taken["team:dach"] == 6
    assert [e.assigned_by for e in units.of_type(LeadCaptured)] == ["rule"] * 6
    assert not units.of_type(LeadQueued)


async def test_no_rule_matching_assigns_as_the_settings_say(units: Units) -> None:
    await put(units, rep(ANA))
    await rules(units, DACH)
    french = await capture(units, a_lead(1, country="FR"))
    assert (french.lead.owner, french.lead.assigned_by) == ("alex@kariz.example", AssignedBy.ROUND_ROBIN)
    await rules(units)  # no rules at all: Germany is the settings' territory again
    german = await capture(units, a_lead(2))
    assert (german.lead.owner, german.lead.assigned_by) == ("jonas@kariz.example", AssignedBy.TERRITORY)
    assert "team:dach" not in units.uow.turns.taken


async def test_a_rep_at_capacity_is_skipped_counting_open_leads_only(units: Units) -> None:
    await put(units, rep(ANA, capacity=1), rep(BEA))
    await rules(units, DACH)
    first = await capture(units, a_lead(1))
    assert first.lead.owner == ANA
    # Ana is full: her turn goes to Bea, and Bea's own turn too.
    assert [(await capture(units, a_lead(n))).lead.owner for n in (2, 3)] == [BEA, BEA]
    # A decided lead no longer counts against her capacity.
    units.uow.leads.by_id[first.lead.id].status = LeadStatus.QUALIFIED
    assert [(await capture(units, a_lead(n))).lead.owner for n in (4, 5)] == [BEA, ANA]


async def test_nobody_available_queues_the_lead_for_its_team(units: Units, clock: FakeClock) -> None:
    await put(units, rep(ANA, away_until=T0 + timedelta(days=2)), rep(BEA, active=False))
    await rules(units, DACH)
    queued = (await capture(units, a_lead(1))).lead
    assert (queued.owner, queued.assigned_by) == ("queue:dach", AssignedBy.QUEUE)
    [event] = units.of_type(LeadQueued)
    assert (event.lead_id, event.team, event.queue, event.rule) == (queued.id, "dach", "queue:dach", "DACH")
    assert event.reason == "every rep of the team is away or inactive" and event.queued_at == T0
    assert units.of_type(LeadCaptured)[0].owner == "queue:dach"
    assert units.uow.metrics.queues == ["dach"]
    assert "team:dach" not in units.uow.turns.taken  # nobody to take a turn
    # Someone must answer: the response timer is armed; there is nobody to escalate to.
    armed = {t.event.__class__ for t in units.uow.timers.armed.values()}
    assert LeadResponseOverdue in armed and LeadResponseEscalationDue not in armed


async def test_an_import_counts_the_leads_it_assigns_against_capacity(units: Units) -> None:
    await put(units, rep(ANA, capacity=2), rep(BEA, capacity=1))
    await rules(units, DACH)
    command = ImportLeads(tuple(a_lead(n) for n in range(5)))
    captured = await handlers.import_leads(units, SETTINGS_TEAM, SLA, command, correlation_id="i", by=BY)
    assert Counter(c.lead.owner for c in captured) == {ANA: 2, BEA: 1, "queue:dach": 2}
    assert [e.reason for e in units.of_type(LeadQueued)] == [
        "every available rep of the team is at capacity"
    ] * 2


async def test_a_retried_unit_hands_out_the_same_turns(units: Units) -> None:
    await put(units, rep(ANA), rep(BEA))
    await rules(units, DACH)
    turns = handlers.TurnsTaken()
    line = handlers.CaptureLine(
        handlers.LeadDetails.clean(a_lead(1).contact, a_lead(1).company, None),
        LeadSource.WEB_FORM,
        True,
        "lead-1",
        "story-1",
    )

    async def failing(uow: InMemoryLeadsUnitOfWork) -> None:
        await handlers.capture_lines(uow, SETTINGS_TEAM, SLA, [line], turns, BY)
        raise ConnectionError("the commit did not make it")

    with pytest.raises(ConnectionError):
        await units.run(failing)
    [again] = await units.run(lambda uow: handlers.capture_lines(uow, SETTINGS_TEAM, SLA, [line], turns, BY))
    assert again.lead.owner == ANA and units.uow.turns.taken["team:dach"] == 1


async def test_an_import_naming_its_owner_follows_no_rule(units: Units) -> None:
    from kariz_leads.service_layer.imports import FixedOwner

    await put(units, rep(ANA))
    await rules(units, DACH)
    owner = FixedOwner(reps=("kim@kariz.example",))
    [captured] = await handlers.import_leads(
        units, owner, SLA, ImportLeads((a_lead(1),)), correlation_id="i", by=BY
    )
    assert (captured.lead.owner, captured.lead.assigned_by) == ("kim@kariz.example", AssignedBy.MANUAL)


# --- versions -------------------------------------------------------------------------------------


async def test_each_replacement_is_a_new_version_and_a_stale_edit_is_refused(
    units: Units, clock: FakeClock
) -> None:
    assert (await roster.current_assignment_rules(units)).number == 0
    clock.advance(timedelta(minutes=1))
    first = await roster.replace_assignment_rules(units, AssignmentRules.of([DACH]), "ada@kariz.example", 0)
    assert (first.number, first.actor, first.took_effect_at) == (
        1,
        "ada@kariz.example",
        T0 + timedelta(minutes=1),
    )
    with pytest.raises(Conflict, match="you edited version 0 of the assignment rules, but version 1"):
        await roster.replace_assignment_rules(units, AssignmentRules.of([]), "lee@kariz.example", 0)
    second = await roster.replace_assignment_rules(units, AssignmentRules.of([]), "lee@kariz.example", None)
    assert second.number == 2
    versions, total = await roster.assignment_rule_versions(units, limit=10, offset=0)
    assert [v.number for v in versions] == [2, 1, 0] and total == 3
    assert (await roster.assignment_rules_version(units, 1)).rules.rules == (DACH,)
    with pytest.raises(NotFound, match="version 2 is in force"):
        await roster.assignment_rules_version(units, 9)


async def test_two_replacements_of_one_version_cannot_both_become_the_next(
    units: Units, monkeypatch: pytest.MonkeyPatch
) -> None:
    await rules(units, DACH)  # version 1
    seen_then = await roster.current_assignment_rules(units)
    await rules(units)  # version 2, by someone else meanwhile
    stored = units.uow.assignment_rules

    async def as_read_before() -> AssignmentRulesVersion:
        return AssignmentRulesVersion(1, seen_then.rules, seen_then.took_effect_at, seen_then.actor)

    monkeypatch.setattr(stored, "current", as_read_before)
    with pytest.raises(Conflict, match="version 2 of the assignment rules was put in force by another"):
        await roster.replace_assignment_rules(units, AssignmentRules.of([]), BY.who, 1)


async def test_the_rules_in_force_are_read_again_only_after_their_refresh(clock: FakeClock) -> None:
    reads: list[int] = []
    stored = [AssignmentRulesVersion.seeded(T0)]

    async def load() -> AssignmentRulesVersion:
        reads.append(1)
        return stored[-1]

    cache = RulesInForce(timedelta(seconds=5), number=lambda version: version.number)
    assert (await cache.get(clock.now(), load)).number == 0
    stored.append(stored[0].replaced_by(AssignmentRules.of([DACH]), T0, BY.who))  # another replica's
    clock.advance(timedelta(seconds=4))
    assert (await cache.get(clock.now(), load)).number == 0 and len(reads) == 1
    clock.advance(timedelta(seconds=1))
    assert (await cache.get(clock.now(), load)).number == 1 and len(reads) == 2
    # One made in this process applies at once, and an older read does not undo it.
    cache.took_effect(stored[-1].replaced_by(AssignmentRules.of([]), T0, BY.who), clock.now())
    assert (await cache.get(clock.now(), load)).number == 2 and len(reads) == 2
    clock.advance(timedelta(seconds=6))
    assert (await cache.get(clock.now(), load)).number == 2 and len(reads) == 3


# --- escalation of a rule's lead ------------------------------------------------------------------


async def test_an_unanswered_rule_lead_escalates_to_the_next_available_rep_of_its_team(
    units: Units, clock: FakeClock
) -> None:
    from kariz_leads.entrypoints import kafka

    await put(units, rep(ANA), rep(BEA), rep(CY))
    await rules(units, DACH)
    lead = (await capture(units, a_lead(1))).lead
    assert lead.owner == ANA
    await put(units, rep(BEA, away_until=T0 + timedelta(days=7)))  # Bea went away: passed by
    clock.advance(timedelta(hours=6, minutes=1))
    escalations = [e for e in await units.fire_due_timers() if isinstance(e, LeadResponseEscalationDue)]
    for event in escalations:
        await units.handle(kafka.on_response_escalation_due(SETTINGS_TEAM, SLA), event)
    escalated = units.uow.leads.by_id[lead.id]
    assert (escalated.owner, escalated.assigned_by) == (CY, AssignedBy.ESCALATION)


def test_the_rep_after_an_owner_is_the_next_with_room_never_the_owner() -> None:
    rotation = TeamRotation.of("dach", [rep(ANA), rep(BEA, capacity=1), rep(CY)], T0)
    assert rotation.after(ANA, OpenLeads({})) == rep(BEA, capacity=1)
    assert rotation.after(ANA, OpenLeads({BEA: 1})) == rep(CY)
    assert rotation.after(CY, OpenLeads({})) == rep(ANA)
    assert TeamRotation.of("dach", [rep(ANA)], T0).after(ANA, OpenLeads({})) is None
