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
from kariz_shared.contracts.errors import Conflict, RuleViolation
from kariz_shared.contracts.events import (
    Company,
    Contact,
    LeadCaptured,
    LeadPriority,
    LeadReassigned,
    LeadsMerged,
    LeadSource,
    LeadTouched,
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
    #: Folded into another record of the same person (``merged_into``, the survivor), which carries on.
    MERGED = "merged"


#: How far each status has come, for a merge: the survivor takes the more advanced of the two. A lead still
#: being worked (new, working) outranks a disqualified one: the person is in play again through it.
STATUS_RANK = {
    LeadStatus.DISQUALIFIED: 0,
    LeadStatus.NEW: 1,
    LeadStatus.WORKING: 2,
    LeadStatus.QUALIFIED: 3,
}


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
    #: The lead this one was merged into (status ``merged``): the survivor, which carries on for both.
    merged_into: str | None = None
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

    @property
    def is_merged(self) -> bool:
        return self.status is LeadStatus.MERGED

    def must_not_be_merged(self, field: str = "lead_id") -> None:
        """Conflict for a change of a merged lead: its survivor is the one to work."""
        if self.is_merged:
            raise Conflict(
                f"{field}: lead {self.id} was merged into {self.merged_into}; work that lead instead"
            )

    def merge(self, duplicate: Lead, at: datetime, by: Actor, reason: str | None = None) -> None:
        """Fold ``duplicate`` (another record of the same person) into this lead, the survivor, and make
        it ``merged``: the survivor keeps its own contact, company, source and owner, and gains the
        duplicate's touches, contact attempts and earliest first contact; its status becomes the more
        advanced of the two (see STATUS_RANK; the verdict's score and reason come with it). Raises
        ``LeadsMerged`` and records the merge on both. (Activities, follow-ups and history entries are
        records of their own: the use case re-points them.)"""
        if duplicate.id == self.id:
            raise RuleViolation(f"duplicate_id: lead {self.id} cannot be merged into itself")
        self.must_not_be_merged("lead_id")
        duplicate.must_not_be_merged("duplicate_id")
        status_before = self.status
        self.touches = sorted([*self.touches, *duplicate.touches], key=lambda t: t.at)[-RECENT_TOUCHES:]
        self.touch_count += duplicate.touch_count
        for source, count in duplicate.touches_by_source.items():
            self.touches_by_source[source] = self.touches_by_source.get(source, 0) + count
        for channel, theirs in duplicate.attempts.items():
            ours = self.attempts.get(channel)
            self.attempts[channel] = (
                theirs
                if ours is None
                else ContactAttempts(
                    ours.count + theirs.count,
                    min(ours.first_at, theirs.first_at),
                    max(ours.last_at, theirs.last_at),
                )
            )
        if duplicate.first_contact_at is not None and (
            self.first_contact_at is None or duplicate.first_contact_at < self.first_contact_at
        ):
            self.first_contact_at = duplicate.first_contact_at
        if duplicate.last_activity_at is not None and (
            self.last_activity_at is None or duplicate.last_activity_at > self.last_activity_at
        ):
            self.last_activity_at = duplicate.last_activity_at
        self._take_verdict_if_better(duplicate)
        self.updated_at = at
        duplicate.status, duplicate.merged_into, duplicate.updated_at = LeadStatus.MERGED, self.id, at
        self.raise_event(
            LeadsMerged(
                lead_id=self.id,
                merged_lead_id=duplicate.id,
                owner=self.owner,
                merged_owner=duplicate.owner,
                merged_at=at,
                actor=by.who,
            )
        )
        self._record(
            LeadChangeKind.DUPLICATE_MERGED,
            at,
            by,
            merged_lead_id=duplicate.id,
            merged_owner=duplicate.owner,
            status_from=status_before.value,
            status_to=self.status.value,
            reason=reason,
        )
        duplicate._record(
            LeadChangeKind.MERGED_INTO, at, by, merged_into=self.id, owner=self.owner, reason=reason
        )

    def take_verdict_of_merged(self, verdict: Lead, at: datetime, by: Actor) -> bool:
        """A verdict that reached a merged record after its merge (``verdict``: that record with the
        verdict applied) counts for this survivor when it is the better one; True when it changed it."""
        before = (self.status, self.score)
        self._take_verdict_if_better(verdict)
        if (self.status, self.score) == before:
            return False
        self.updated_at = at
        kind = LeadChangeKind.QUALIFIED if self.is_qualified else LeadChangeKind.DISQUALIFIED
        details: dict[str, Detail] = {"score": self.score, "merged_lead_id": verdict.id}
        if not self.is_qualified:
            details["reason"] = self.disqualification_reason
        self._record(kind, at, by, **details)
        return True

    @property
    def is_qualified(self) -> bool:
        return self.status is LeadStatus.QUALIFIED

    def _take_verdict_if_better(self, other: Lead) -> None:
        # The more advanced status wins, the higher score between equals (a merged record is no verdict).
        ours, theirs = STATUS_RANK.get(self.status, -1), STATUS_RANK.get(other.status, -1)
        if (theirs, other.score or 0) > (ours, self.score or 0):
            self.status, self.score = other.status, other.score
            self.disqualification_reason = other.disqualification_reason

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
        # Qualification counts a repeat capture as engagement.
        self.raise_event(
            LeadTouched(
                lead_id=self.id,
                source=source,
                campaign=campaign,
                touch_count=self.touch_count,
                touched_at=at,
                actor=by.who,
            )
        )
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
