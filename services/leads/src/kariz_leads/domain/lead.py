"""The lead: a contact at a company who showed interest, how we got them, who works them, and where
qualification left them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from kariz_leads.domain.activity import Activity
from kariz_leads.domain.assignment import AssignedBy, Assignment
from kariz_leads.domain.history import Detail, LeadChange, LeadChangeKind
from kariz_shared.contracts.aggregate import Aggregate
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import (
    Company,
    Contact,
    LeadCaptured,
    LeadPriority,
    LeadReassigned,
    LeadSource,
)
from kariz_shared.contracts.identity import Actor
from kariz_shared.contracts.normalisation import duplicate_key

#: A lead keeps its most recent touches only, and counts them all (in all and by source): a contact who
#: fills in a form every day must not grow their lead towards MongoDB's 16 MB document limit.
RECENT_TOUCHES = 100


class LeadStatus(StrEnum):
    NEW = "new"
    #: A rep got through to the contact (a reaching activity) before qualification decided.
    WORKING = "working"
    QUALIFIED = "qualified"
    DISQUALIFIED = "disqualified"


@dataclass(frozen=True)
class Touch:
    """One time the contact reached us: the first capture, and every capture of the same address after."""

    source: LeadSource
    campaign: str | None
    at: datetime


@dataclass(frozen=True)
class ContactAttempts:
    """The attempts to reach a lead's contact over one channel: how many, the first and the last."""

    count: int
    first_at: datetime
    last_at: datetime

    def and_one_at(self, at: datetime) -> ContactAttempts:
        return ContactAttempts(self.count + 1, min(self.first_at, at), max(self.last_at, at))


@dataclass
class Lead(Aggregate):
    id: str
    contact: Contact
    company: Company
    source: LeadSource
    campaign: str | None
    consent: bool
    owner: str
    assigned_by: AssignedBy
    correlation_id: str
    created_at: datetime
    updated_at: datetime
    status: LeadStatus = LeadStatus.NEW
    #: How urgent the capture said it is (its response SLA may depend on it).
    priority: LeadPriority = LeadPriority.NORMAL
    score: int | None = None
    disqualification_reason: str | None = None
    #: The most recent touches (at most RECENT_TOUCHES), oldest first; the first capture is the first.
    touches: list[Touch] = field(default_factory=list)
    #: Every touch ever, the first capture included, in all and by source.
    touch_count: int = 1
    touches_by_source: dict[str, int] = field(default_factory=dict)
    #: Who captured it: a rep, an importing manager, a machine's key (None: stored before it was kept).
    captured_by: str | None = None
    #: The attempts to reach the contact (every activity but a note), by channel.
    attempts: dict[str, ContactAttempts] = field(default_factory=dict)
    #: When a rep first got through to the contact (the earliest reaching activity).
    first_contact_at: datetime | None = None
    #: When the latest activity on the lead happened, a note included (None: none logged yet).
    last_activity_at: datetime | None = None

    @classmethod
    def capture(
        cls,
        *,
        lead_id: str,
        contact: Contact,
        company: Company,
        source: LeadSource,
        campaign: str | None,
        consent: bool,
        assignment: Assignment,
        correlation_id: str,
        at: datetime,
        by: Actor,
        priority: LeadPriority = LeadPriority.NORMAL,
    ) -> Lead:
        """A new lead from already normalised contact and company data; it raises ``LeadCaptured``
        and records its capture by ``by``."""
        lead = cls(
            id=lead_id,
            contact=contact,
            company=company,
            source=source,
            campaign=campaign,
            consent=consent,
            owner=assignment.owner,
            assigned_by=assignment.assigned_by,
            correlation_id=correlation_id,
            created_at=at,
            updated_at=at,
            touches=[Touch(source=source, campaign=campaign, at=at)],
            touch_count=1,
            touches_by_source={source.value: 1},
            captured_by=by.who,
            priority=priority,
        )
        lead.raise_event(lead.captured())
        lead._record(
            LeadChangeKind.CAPTURED,
            at,
            by,
            source=source.value,
            campaign=campaign,
            owner=lead.owner,
            assigned_by=lead.assigned_by.value,
            priority=priority.value,
        )
        return lead

    @property
    def email(self) -> str:
        return self.contact.email

    @property
    def awaits_response(self) -> bool:
        """Still new: nobody has acted on the lead yet (qualification's verdict counts as an action, and
        so does an attempt to reach the contact)."""
        return self.status is LeadStatus.NEW and not self.attempts

    @property
    def attempt_count(self) -> int:
        """Every attempt to reach the contact, over all channels."""
        return sum(a.count for a in self.attempts.values())

    @property
    def time_to_first_contact_s(self) -> float | None:
        """Seconds from capture to the first time a rep got through (None until then)."""
        if self.first_contact_at is None:
            return None
        return max(0.0, (self.first_contact_at - self.created_at).total_seconds())

    def record_activity(self, activity: Activity) -> None:
        """An activity on this lead: an attempt over its channel (a note is none), and the first reaching
        one makes a new lead ``working`` and is its first contact. A verdict's status stays."""
        self._record_change(activity.change())
        if self.last_activity_at is None or activity.occurred_at > self.last_activity_at:
            self.last_activity_at = activity.occurred_at
        if not activity.is_contact:
            return
        at, channel = activity.occurred_at, activity.channel.value
        kept = self.attempts.get(channel)
        self.attempts[channel] = kept.and_one_at(at) if kept else ContactAttempts(1, at, at)
        self.updated_at = max(self.updated_at, activity.logged_at)
        if not activity.reaching:
            return
        if self.first_contact_at is None or at < self.first_contact_at:
            self.first_contact_at = at
        if self.status is LeadStatus.NEW:
            self.status = LeadStatus.WORKING
            self._record(
                LeadChangeKind.STATUS_CHANGED,
                activity.logged_at,
                activity.logged_by,
                **{"from": LeadStatus.NEW.value, "to": LeadStatus.WORKING.value, "activity_id": activity.id},
            )

    def response_timer_key(self) -> str:
        """The key of the timer that says the lead waited too long for a response (see ResponseSla)."""
        return f"lead:{self.id}:response"

    def escalation_timer_key(self) -> str:
        """The key of the timer that hands a lead still unanswered to the next rep (see ResponseSla)."""
        return f"lead:{self.id}:response-escalation"

    def reassign(
        self, to_owner: str, reason: str, at: datetime, by: Actor, *, assigned_by: AssignedBy
    ) -> None:
        """Another rep works the lead from now on (a manager's choice, or the response SLA's escalation):
        it raises ``LeadReassigned`` and records the change. The lead's status and history stay."""
        if to_owner == self.owner:
            raise RuleViolation(f"owner: {to_owner} already owns lead {self.id}")
        from_owner, self.owner, self.assigned_by, self.updated_at = self.owner, to_owner, assigned_by, at
        self.raise_event(
            LeadReassigned(
                lead_id=self.id,
                from_owner=from_owner,
                to_owner=to_owner,
                reason=reason,
                reassigned_at=at,
                actor=by.who if assigned_by is AssignedBy.MANUAL else None,
            )
        )
        self._record(
            LeadChangeKind.REASSIGNED,
            at,
            by,
            from_owner=from_owner,
            to_owner=to_owner,
            reason=reason,
            assigned_by=assigned_by.value,
        )

    def is_same_contact(self, email: str) -> bool:
        """The duplicate rule: another capture with this address is this lead again."""
        return duplicate_key(email) == duplicate_key(self.email)

    def touch(self, source: LeadSource, campaign: str | None, at: datetime, by: Actor) -> Touch:
        """The contact came in again: record where from. Owner, first source and status stay."""
        touch = Touch(source=source, campaign=campaign, at=at)
        self.touches = [*self.touches, touch][-RECENT_TOUCHES:]
        self.touch_count += 1
        self.touches_by_source[source.value] = self.touches_by_source.get(source.value, 0) + 1
        self.updated_at = at
        self._record(LeadChangeKind.TOUCHED, at, by, source=source.value, campaign=campaign)
        return touch

    def qualify(self, score: int, at: datetime, by: Actor) -> None:
        # Qualification owns the verdict and may re-qualify a lead, so the latest verdict wins.
        self.status = LeadStatus.QUALIFIED
        self.score = score
        self.disqualification_reason = None
        self.updated_at = at
        self._record(LeadChangeKind.QUALIFIED, at, by, score=score)

    def disqualify(self, reason: str, score: int, at: datetime, by: Actor) -> None:
        self.status = LeadStatus.DISQUALIFIED
        self.score = score
        self.disqualification_reason = reason
        self.updated_at = at
        self._record(LeadChangeKind.DISQUALIFIED, at, by, score=score, reason=reason)

    def _record(self, kind: LeadChangeKind, at: datetime, by: Actor, **details: Detail) -> None:
        self._record_change(LeadChange(self.id, kind, at, by, details))

    def _record_change(self, change: LeadChange) -> None:
        self.__dict__.setdefault("_changes", []).append(change)

    def pull_changes(self) -> list[LeadChange]:
        """The changes recorded since the last pull, oldest first, for the lead's history."""
        changes: list[LeadChange] = self.__dict__.pop("_changes", [])
        return changes

    def captured(self) -> LeadCaptured:
        return LeadCaptured(
            lead_id=self.id,
            contact=self.contact,
            company=self.company,
            source=self.source,
            campaign=self.campaign,
            consent=self.consent,
            owner=self.owner,
            assigned_by=self.assigned_by.value,
            captured_at=self.created_at,
            actor=self.captured_by,
            priority=self.priority,
        )
