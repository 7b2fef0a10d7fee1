"""The response SLA: a new lead's owner acts within a set time of its capture, or the lead is overdue.

How long depends on the lead (:meth:`ResponseSla.sla_of`): its source's SLA and its priority's, when
configured, the shorter of the two applying; the default when neither is. It is counted in business
hours (:class:`~kariz_leads.domain.business_hours.BusinessHours`) of the lead's team: the calendar of the
owner's team in the roster, else that of the lead's territory (its company's country), else the default
calendar. Whole days count business days, the rest working time.

From capture on a timer runs under the lead's :meth:`~kariz_leads.domain.lead.Lead.response_timer_key`;
when it fires, ``LeadResponseOverdue`` is published. With an escalation configured, a second timer
(:meth:`~kariz_leads.domain.lead.Lead.escalation_timer_key`) fires ``LeadResponseEscalationDue`` that
much business time after the response was due, and the lead goes to the next rep of its rotation. Both
are stopped when the lead no longer awaits a response, so the timers never need to look at the lead when
they fire.

A reassigned lead that still awaits a response gets a fresh response timer for its new owner, counted
from the reassignment in the new owner's calendar, and no escalation: a lead is escalated at most once,
and never against a manager's choice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kariz_leads.domain.business_hours import BusinessHours
from kariz_leads.domain.lead import Lead
from kariz_shared.contracts.events import (
    LeadPriority,
    LeadResponseEscalationDue,
    LeadResponseOverdue,
    LeadSource,
)
from kariz_shared.contracts.identity import team_queue
from kariz_shared.contracts.normalisation import normalise_country, normalise_email

#: How the owner of a lead waiting in a team's queue begins.
QUEUE = team_queue("")

AROUND_THE_CLOCK = BusinessHours.around_the_clock()


@dataclass(frozen=True)
class ResponseTimer:
    """The timer a lead should have running: at ``due_at`` it emits ``overdue``."""

    key: str
    due_at: datetime
    overdue: LeadResponseOverdue


@dataclass(frozen=True)
class EscalationTimer:
    """The timer that hands a lead still unanswered to the next rep: at ``due_at`` it emits ``due``."""

    key: str
    due_at: datetime
    due: LeadResponseEscalationDue


@dataclass(frozen=True)
class Calendars:
    """Whose business hours count for a lead: its owner's team's (``by_team``, the team the roster
    ``teams`` lists the owner in, the first by name when several), else its territory's (``by_country``,
    ISO codes), else ``default``."""

    default: BusinessHours = AROUND_THE_CLOCK
    by_team: Mapping[str, BusinessHours] = field(default_factory=dict)
    by_country: Mapping[str, BusinessHours] = field(default_factory=dict)
    #: The roster: team -> rep addresses (``KARIZ_TEAMS``), to find an owner's team.
    teams: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        default: BusinessHours = AROUND_THE_CLOCK,
        *,
        by_team: Mapping[str, BusinessHours] | None = None,
        by_country: Mapping[str, BusinessHours] | None = None,
        teams: Mapping[str, Iterable[str]] | None = None,
    ) -> Calendars:
        return cls(
            default=default,
            by_team=dict(by_team or {}),
            by_country={normalise_country(c): hours for c, hours in (by_country or {}).items()},
            teams={team: frozenset(map(normalise_email, reps)) for team, reps in (teams or {}).items()},
        )

    def team_of(self, owner: str) -> str | None:
        if owner.startswith(QUEUE):  # a lead waiting in a team's queue counts in that team's hours
            return owner[len(QUEUE) :]
        return next((team for team in sorted(self.teams) if owner in self.teams[team]), None)

    def for_lead(self, owner: str, country: str | None) -> BusinessHours:
        team = self.team_of(owner)
        if team is not None and team in self.by_team:
            return self.by_team[team]
        if country is not None and country in self.by_country:
            return self.by_country[country]
        return self.default


def _positive(what: str, sla: timedelta) -> timedelta:
    if sla <= timedelta(0):
        raise ValueError(f"{what} is a positive time, got {sla}")
    return sla


@dataclass(frozen=True)
class ResponseSla:
    """``within``: the default SLA; ``by_source`` and ``by_priority``: the SLAs configured for some
    sources and priorities; ``calendars``: the business hours they count in; ``escalate_after``: the
    business time after the response was due at which a lead still unanswered is reassigned (None: never).
    """

    within: timedelta
    by_source: Mapping[LeadSource, timedelta] = field(default_factory=dict)
    by_priority: Mapping[LeadPriority, timedelta] = field(default_factory=dict)
    calendars: Calendars = field(default_factory=Calendars)
    escalate_after: timedelta | None = None

    def __post_init__(self) -> None:
        _positive("a response SLA", self.within)
        for source, sla in self.by_source.items():
            _positive(f"the response SLA of source {source.value}", sla)
        for priority, sla in self.by_priority.items():
            _positive(f"the response SLA of priority {priority.value}", sla)
        if self.escalate_after is not None:
            _positive("the response escalation", self.escalate_after)

    def sla_of(self, lead: Lead) -> timedelta:
        """The lead's SLA: the shorter of its source's and its priority's, those configured; the default
        when neither is."""
        configured = [
            sla
            for sla in (self.by_source.get(lead.source), self.by_priority.get(lead.priority))
            if sla is not None
        ]
        return min(configured) if configured else self.within

    def calendar_of(self, lead: Lead) -> BusinessHours:
        return self.calendars.for_lead(lead.owner, lead.company.country)

    def due_at(self, lead: Lead, since: datetime | None = None) -> datetime:
        """When the lead's first action is due: its SLA in business hours after ``since`` (its capture)."""
        return self.calendar_of(lead).add(since or lead.created_at, self.sla_of(lead))

    def timer_for(self, lead: Lead, since: datetime | None = None) -> ResponseTimer | None:
        """The lead's response timer, counted from ``since`` (default: its capture); None once the lead no
        longer awaits a response (its timer is to be stopped). A repeated capture (a touch) does not
        restart it."""
        if not lead.awaits_response:
            return None
        due_at = self.due_at(lead, since)
        return ResponseTimer(
            key=lead.response_timer_key(),
            due_at=due_at,
            overdue=LeadResponseOverdue(
                lead_id=lead.id,
                owner=lead.owner,
                source=lead.source,
                captured_at=lead.created_at,
                due_at=due_at,
            ),
        )

    def escalation_for(self, lead: Lead) -> EscalationTimer | None:
        """The lead's escalation timer, ``escalate_after`` business time past its response due time (from
        capture); None without an escalation or once the lead no longer awaits a response."""
        if self.escalate_after is None or not lead.awaits_response:
            return None
        if lead.owner.startswith(QUEUE):
            # A queued lead's team had nobody available: there is no next rep to escalate to. Its
            # response timer stays armed (someone must answer); its manager hands it out.
            return None
        due_at = self.calendar_of(lead).add(self.due_at(lead), self.escalate_after)
        return EscalationTimer(
            key=lead.escalation_timer_key(),
            due_at=due_at,
            due=LeadResponseEscalationDue(
                lead_id=lead.id,
                owner=lead.owner,
                source=lead.source,
                captured_at=lead.created_at,
                due_at=due_at,
            ),
        )
