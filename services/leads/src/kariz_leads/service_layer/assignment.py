"""Who gets the new leads of one capture (a lead, a JSON import, a CSV chunk): the first assignment rule
that matches a lead names its team, and the team's weighted rotation the rep: an available one (active,
not away at the clock's now, below capacity); nobody available puts the lead in the team's queue
(owner ``queue:<team>``, ``LeadQueued``). No rule matching: the territory or round robin of the
settings, as before the rules.

One plan per unit of work: the rules in force (the process's copy, no read), then only when a rule
matched the teams' reps (one read) and the open leads of those with a capacity (one count), the leads
this unit hands out counted on top. The turns come from the shared counters (``team:<name>``) through
the caller's ``TurnsTaken``, so a retried unit hands out the same turns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from kariz_leads.domain.assignment import AssignedBy, Assignment, Rotation, SalesTeam
from kariz_leads.domain.assignment_rules import AssignmentRule
from kariz_leads.domain.roster import OpenLeads, Rep, TeamRotation, queue_of
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_shared.contracts.events import Company, LeadQueued, LeadSource


@dataclass(frozen=True)
class LeadFacts:
    """What of a new lead the rules look at."""

    company: Company
    source: LeadSource
    campaign: str | None


@dataclass(frozen=True)
class Queued:
    """A lead the rule's team had nobody for."""

    team: str
    rule: str
    reason: str

    def event(self, lead_id: str, at: datetime) -> LeadQueued:
        return LeadQueued(
            lead_id=lead_id,
            team=self.team,
            queue=queue_of(self.team),
            rule=self.rule,
            reason=self.reason,
            queued_at=at,
        )


@dataclass(frozen=True)
class Decision:
    assignment: Assignment
    queued: Queued | None = None


@dataclass(frozen=True)
class _ByRule:
    rule: AssignmentRule
    rotation: TeamRotation


class AssignmentPlan:
    """The rotation each new lead of a unit takes a turn in, and the turns that needs."""

    def __init__(
        self,
        chosen: Mapping[str, Rotation | _ByRule],
        reps: list[Rep],
        load: OpenLeads,
    ) -> None:
        self.chosen, self.reps, self.load = chosen, reps, load

    @property
    def wanted(self) -> Counter[str]:
        """Turns per counter: one per lead, none for a team with nobody to take a turn."""
        return Counter(
            choice.key if isinstance(choice, Rotation) else choice.rotation.key
            for choice in self.chosen.values()
            if isinstance(choice, Rotation) or choice.rotation.slots
        )

    def decide(self, key: str, turns: Mapping[str, Iterator[int]]) -> Decision:
        """The owner of the new lead ``key``, taking its turn (call once per lead, in capture order)."""
        choice = self.chosen[key]
        if isinstance(choice, Rotation):
            return Decision(choice.pick(next(turns[choice.key])))
        rotation = choice.rotation
        rep = rotation.pick(next(turns[rotation.key]), self.load) if rotation.slots else None
        if rep is None:
            queued = Queued(rotation.team, choice.rule.name, rotation.why_nobody(self.reps))
            return Decision(Assignment(queue_of(rotation.team), AssignedBy.QUEUE), queued)
        self.load.given(rep.email)
        return Decision(Assignment(rep.email, AssignedBy.RULE))


async def plan_assignments(
    uow: LeadsUnitOfWork, team: SalesTeam, leads: Mapping[str, LeadFacts]
) -> AssignmentPlan:
    """The plan for ``leads`` (by a key of the caller's, e.g. the address), in their order."""
    rules = (await uow.assignment_rules.in_force()).rules if team.follows_assignment_rules else None
    matched: dict[str, AssignmentRule] = {}
    chosen: dict[str, Rotation | _ByRule] = {}
    for key, facts in leads.items():
        rule = rules.first_match(facts.company, facts.source, facts.campaign) if rules else None
        if rule is None:
            chosen[key] = team.rotation_for(facts.company.country)
        else:
            matched[key] = rule
    if not matched:
        return AssignmentPlan(chosen, [], OpenLeads({}))
    teams = sorted({rule.team for rule in matched.values()})
    reps = await uow.reps.of_teams(teams)
    now = uow.clock.now()
    rotations = {name: TeamRotation.of(name, reps, now) for name in teams}
    # Only reps who could get a lead and have a limit need counting.
    limited = sorted({r.email for rot in rotations.values() for r in rot.slots if r.capacity is not None})
    load = OpenLeads(await uow.reps.open_leads(limited) if limited else {})
    for key, rule in matched.items():
        chosen[key] = _ByRule(rule, rotations[rule.team])
    # Keep the capture order: a rule's leads and the settings' ones take their turns as they come.
    return AssignmentPlan({key: chosen[key] for key in leads}, reps, load)


async def next_rep_of_team(uow: LeadsUnitOfWork, owner: str) -> str | None:
    """For a lead an assignment rule gave ``owner``: the next available rep of ``owner``'s team in the
    roster (active, not away, with room), or None (``owner`` is in no team there, or nobody else is)."""
    rep = await uow.reps.get(owner)
    if rep is None:
        return None
    reps = await uow.reps.of_teams([rep.team])
    rotation = TeamRotation.of(rep.team, reps, uow.clock.now())
    limited = sorted({r.email for r in rotation.slots if r.capacity is not None})
    load = OpenLeads(await uow.reps.open_leads(limited) if limited else {})
    chosen = rotation.after(owner, load)
    return chosen.email if chosen else None
