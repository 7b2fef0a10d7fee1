"""The event contracts: Kariz's public interface.

Every event is a pydantic model. Its topic is ``kariz.<kebab-name>.v<version>``, its Kafka key the
aggregate id named by ``key_field``, and its value the JSON of the model. Other teams build on these:
add optional fields only; anything else is a new version (a new class and a new topic).
Consumers ignore fields they do not know (``extra="ignore"``), so producers may add fields first.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field


class Event(BaseModel):
    """Base of every event. Subclasses set ``key_field`` and, for a new version, ``version``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: ClassVar[int] = 1
    key_field: ClassVar[str]
    description: ClassVar[str] = ""
    #: The topic's name between ``kariz.`` and the version when it is not the class's kebab name (a
    #: state topic is named after what it holds: ``kariz.reps.v1``).
    stem: ClassVar[str | None] = None
    #: A state topic: the newest record per key is what counts, so the topic is compacted (not deleted
    #: after a retention time) and a consumer that reads it from the beginning has the whole state.
    compacted: ClassVar[bool] = False

    @classmethod
    def event_name(cls) -> str:
        return cls.__name__

    @classmethod
    def kebab_name(cls) -> str:
        return re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()

    @classmethod
    def topic(cls) -> str:
        return f"kariz.{cls.stem or cls.kebab_name()}.v{cls.version}"

    @classmethod
    def ce_type(cls) -> str:
        """The CloudEvents ``type`` attribute, e.g. ``kariz.lead-captured.v1``."""
        return cls.topic()

    def key(self) -> str:
        return str(getattr(self, self.key_field))


#: The body's ``actor``: who made the change, for consumers that keep it (an audit, a hand-over). The
#: ``ce_actor`` header carries it on every event; the body carries it on the changes people make.
ACTOR_DESCRIPTION = (
    "Who made the change: a person's e-mail address, or key:<id> for a machine's API key; absent when "
    "the service decided by itself (its ce_actor header then names the service)"
)


def actor_field() -> Any:
    return Field(default=None, description=ACTOR_DESCRIPTION)


# --- value objects carried by events -------------------------------------------------------------


class LeadSource(StrEnum):
    WEB_FORM = "web_form"
    EMAIL_CAMPAIGN = "email_campaign"
    EVENT = "event"
    TRADE_SHOW = "trade_show"
    PARTNER = "partner"
    FREE_TRIAL = "free_trial"
    REFERRAL = "referral"
    PURCHASED_LIST = "purchased_list"
    INBOUND_CALL = "inbound_call"
    OUTBOUND = "outbound"


class LeadPriority(StrEnum):
    """How urgent a lead is, as its source or the capturing person says; its response SLA may depend
    on it."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Contact(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    first_name: str
    last_name: str
    email: str
    phone: str | None = None
    title: str | None = None


class Company(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    domain: str | None = None
    industry: str | None = None
    size: int | None = Field(default=None, description="Number of employees")
    country: str | None = Field(default=None, description="ISO 3166-1 alpha-2 code, upper case")


class ScoreLine(BaseModel):
    """One rule's contribution to a score: which rule, what it matched, how many points."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    rule: str
    matched: str
    points: int


class BantAnswers(BaseModel):
    """Answers recorded on a qualification call (BANT)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    budget: str = Field(description="confirmed | planned | none | unknown")
    budget_amount: Decimal | None = None
    authority: str = Field(description="decision_maker | influencer | none | unknown")
    decision_maker: str | None = None
    need: str = Field(description="confirmed | possible | none | unknown")
    pain: str | None = None
    timeline: str = Field(
        description="within_3_months | within_6_months | within_12_months | later | unknown"
    )
    notes: str | None = None


class ChecklistAnswer(BaseModel):
    """One answered item of a qualification checklist (BANT, MEDDIC, MEDDPICC), with who answered it
    and when. Which of ``value``, ``amount``/``currency`` and ``title`` are set depends on ``kind``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    item: str = Field(description="The checklist item, e.g. economic_buyer or budget_amount")
    kind: str = Field(description="yes_no | choice | amount | person | text")
    value: str | None = Field(
        default=None,
        description="yes_no: yes | no | unknown; choice: the choice; text: the text; person: the name",
    )
    amount: Decimal | None = Field(default=None, description="amount: the sum")
    currency: str | None = Field(default=None, description="amount: ISO 4217 code, when given")
    title: str | None = Field(default=None, description="person: their role or job title, when given")
    answered_by: str | None = Field(
        default=None, description="Who recorded the answer (absent for answers recorded before it was kept)"
    )
    answered_at: datetime


class ChecklistCompleteness(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    answered: int = Field(description="Items answered (an unknown is not an answer)")
    items: int = Field(description="Items the checklist has")
    required: int = Field(description="Items the verdict rules require before the lead can qualify")
    required_answered: int
    missing: list[str] = Field(default_factory=list, description="The required items still unanswered")


class QualificationChecklist(BaseModel):
    """The checklist a lead was qualified with: its methodology, the answers, how complete it is."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    methodology: str = Field(description="bant | meddic | meddpicc")
    answers: list[ChecklistAnswer]
    completeness: ChecklistCompleteness


# --- leads ----------------------------------------------------------------------------------------


class LeadCaptured(Event):
    description: ClassVar[str] = "A new lead was captured from a source and assigned to a sales rep."
    key_field: ClassVar[str] = "lead_id"

    lead_id: str
    contact: Contact
    company: Company
    source: LeadSource
    campaign: str | None = None
    consent: bool = False
    owner: str = Field(
        description="The sales rep the lead is assigned to (their e-mail address), or queue:<team> when an "
        "assignment rule chose a team none of whose reps was available (LeadQueued says so)"
    )
    assigned_by: str = Field(
        description="round_robin | territory | rule (an assignment rule's team) | queue (its team's queue) "
        "| manual (an import that names its owner)"
    )
    captured_at: datetime
    actor: str | None = actor_field()
    priority: LeadPriority = Field(
        default=LeadPriority.NORMAL, description="high | normal | low; normal when the capture named none"
    )


class LeadResponseOverdue(Event):
    description: ClassVar[str] = (
        "A lead is still new, with no action by its owner, a response SLA after it was captured "
        "(a timer of the leads service, armed at capture and cancelled when the lead leaves new)."
    )
    key_field: ClassVar[str] = "lead_id"

    lead_id: str
    owner: str = Field(description="The sales rep the lead is assigned to (their e-mail address)")
    source: LeadSource
    captured_at: datetime
    due_at: datetime = Field(
        description="When the first action was due: the response SLA after capture (or after the lead's "
        "reassignment), counted in its team's business hours"
    )


class LeadResponseEscalationDue(Event):
    description: ClassVar[str] = (
        "A lead is still new, with no action by its owner, at its response SLA's escalation threshold (a "
        "second timer of the leads service, armed at capture beside the overdue one and cancelled with "
        "it); leads itself consumes it and hands the lead to the next rep of its rotation (LeadReassigned)."
    )
    key_field: ClassVar[str] = "lead_id"

    lead_id: str
    owner: str = Field(description="The sales rep the lead was assigned to when the timer was armed")
    source: LeadSource
    captured_at: datetime
    due_at: datetime = Field(description="When the lead was to be escalated: past its response due time")


class ActivityChannel(StrEnum):
    CALL = "call"
    EMAIL = "email"
    MEETING = "meeting"
    VIDEO = "video"
    CHAT = "chat"
    VISIT = "visit"
    NOTE = "note"


class ActivityDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class ActivityOutcome(StrEnum):
    """What came of one activity. ``REACHING`` outcomes mean the rep spoke with the contact."""

    REACHED = "reached"
    NO_ANSWER = "no_answer"
    LEFT_VOICEMAIL = "left_voicemail"
    BOUNCED = "bounced"
    MEETING_BOOKED = "meeting_booked"
    NOT_INTERESTED = "not_interested"
    WRONG_CONTACT = "wrong_contact"
    CALL_BACK_LATER = "call_back_later"
    DONE = "done"


#: The outcomes in which the rep got through to the contact (the first sets a lead working).
REACHING = frozenset(
    {
        ActivityOutcome.REACHED,
        ActivityOutcome.MEETING_BOOKED,
        ActivityOutcome.NOT_INTERESTED,
        ActivityOutcome.CALL_BACK_LATER,
    }
)


class TaskKind(StrEnum):
    CALL_BACK = "call_back"
    SEND_MATERIAL = "send_material"
    MEETING = "meeting"
    EMAIL = "email"
    DEMO = "demo"
    OTHER = "other"


class ActivityLogged(Event):
    description: ClassVar[str] = (
        "A rep logged an activity on a lead (a call, an e-mail, a meeting, ...), optionally on one of its "
        "deals: the channel, its outcome and what was agreed."
    )
    key_field: ClassVar[str] = "lead_id"

    activity_id: str
    lead_id: str
    deal_id: str | None = Field(default=None, description="The lead's deal it was about, if any")
    owner: str = Field(description="The lead's owner when it was logged")
    channel: ActivityChannel
    direction: ActivityDirection
    outcome: ActivityOutcome
    reaching: bool = Field(description="The rep got through to the contact (the outcome is a reaching one)")
    duration_s: int | None = Field(default=None, description="How long it took, in seconds")
    note: str | None = None
    agreed: str | None = Field(default=None, description="What was agreed with the contact")
    occurred_at: datetime = Field(description="When it happened (it may be logged later)")
    logged_at: datetime
    actor: str | None = actor_field()


class FollowUpDue(Event):
    description: ClassVar[str] = (
        "An open follow-up (task) reached its due time: emitted once, by a timer of the leads service; "
        "completing, cancelling or moving the follow-up first disarms or re-arms it."
    )
    key_field: ClassVar[str] = "lead_id"

    task_id: str
    lead_id: str
    deal_id: str | None = None
    assignee: str = Field(description="Who is to do it (their e-mail address)")
    kind: TaskKind
    title: str
    due_at: datetime


class TaskRequested(Event):
    description: ClassVar[str] = (
        "Another service asks for a follow-up on a lead (an automation rule's task action); the leads "
        "service makes it a follow-up of the assignee, or of the lead's owner when none is named."
    )
    key_field: ClassVar[str] = "lead_id"

    request_id: str = Field(description="Unique per request: a repeat of one request makes one follow-up")
    lead_id: str
    deal_id: str | None = None
    assignee: str | None = Field(default=None, description="None: the lead's owner")
    kind: TaskKind
    title: str
    due_at: datetime
    note: str | None = None
    requested_at: datetime


class LeadTouched(Event):
    description: ClassVar[str] = (
        "A known contact was captured again (a repeat form fill, another list, an import's repeat): a "
        "touch of the lead the address already is, never a new lead. Qualification counts it as "
        "engagement."
    )
    key_field: ClassVar[str] = "lead_id"

    lead_id: str
    source: LeadSource
    campaign: str | None = None
    touch_count: int = Field(description="Every capture of this contact so far, the first one included")
    touched_at: datetime
    actor: str | None = actor_field()


class LeadReassigned(Event):
    description: ClassVar[str] = (
        "A lead changed owner: a manager reassigned it, or its response SLA's escalation handed it to the "
        "next rep."
    )
    key_field: ClassVar[str] = "lead_id"

    lead_id: str
    from_owner: str
    to_owner: str
    reason: str
    reassigned_at: datetime
    actor: str | None = actor_field()


class LeadQueued(Event):
    description: ClassVar[str] = (
        "A new lead went to its team's queue: an assignment rule chose the team, and none of its reps was "
        "available (away, inactive or at capacity). Its owner is queue:<team> until a manager assigns it; "
        "the team's manager is alerted."
    )
    key_field: ClassVar[str] = "lead_id"

    lead_id: str
    team: str
    queue: str = Field(description="The lead's owner while it waits: queue:<team>")
    rule: str | None = Field(default=None, description="The assignment rule that chose the team")
    reason: str = Field(description="Why nobody was available, e.g. 'every rep is away or at capacity'")
    queued_at: datetime


class LeadsMerged(Event):
    description: ClassVar[str] = (
        "Two records of one person became one: the duplicate (merged_lead_id) is now `merged` and points "
        "to the survivor (lead_id), which keeps both histories, activities, follow-ups and touches. "
        "Qualification keeps the better verdict on the survivor; deals of the duplicate point to it."
    )
    key_field: ClassVar[str] = "lead_id"

    lead_id: str = Field(description="The survivor: the lead that remains")
    merged_lead_id: str = Field(description="The duplicate, merged into the survivor")
    owner: str = Field(description="The survivor's owner (after the merge)")
    merged_owner: str = Field(description="The duplicate's owner before the merge")
    merged_at: datetime
    actor: str | None = actor_field()


class RepProfile(Event):
    description: ClassVar[str] = (
        "A rep as the roster has them now (kariz.reps.v1, compacted, keyed by e-mail): the newest record "
        "of an address is the rep's state. Published on every change to the rep in the leads service's "
        "roster (/reps); a rep who left is kept with active false."
    )
    key_field: ClassVar[str] = "email"
    stem: ClassVar[str | None] = "reps"
    compacted: ClassVar[bool] = True

    email: str
    name: str | None = None
    team: str | None = Field(default=None, description="The team the rep belongs to")
    manager: str | None = Field(default=None, description="The e-mail of the rep's manager")
    time_zone: str = Field(default="UTC", description="IANA time zone, e.g. Europe/Berlin")
    locale: str = Field(default="en", description="BCP 47 language tag, e.g. en, fa-IR")
    active: bool = True
    capacity: int | None = Field(default=None, description="Open leads at most; none: no limit")
    weight: int = Field(default=1, description="Share of a team's new leads, relative to its other reps")
    away_until: datetime | None = Field(default=None, description="Gets no new leads before this time")
    updated_at: datetime
    actor: str | None = actor_field()


# --- qualification --------------------------------------------------------------------------------


class LeadQualified(Event):
    description: ClassVar[str] = "A lead reached the qualification threshold; a deal should be opened."
    key_field: ClassVar[str] = "lead_id"

    lead_id: str
    owner: str
    contact: Contact
    company: Company
    source: LeadSource
    score: int
    threshold: int
    breakdown: list[ScoreLine]
    answers: BantAnswers | None = None
    checklist: QualificationChecklist | None = Field(
        default=None, description="The methodology and its answers; absent when nothing was answered"
    )
    budget_amount: Decimal | None = Field(
        default=None,
        description="The budget from whichever checklist holds an amount (BANT budget_amount, MEDDIC budget)",
    )
    budget_currency: str | None = Field(
        default=None, description="ISO 4217 code of budget_amount, when the answer gave one"
    )
    qualified_at: datetime
    actor: str | None = actor_field()
    reason: str | None = Field(
        default=None,
        description="Why it qualified when not by an answer or the capture's score: 'engagement' (signals "
        "raised a nurtured lead's combined score over the threshold)",
    )
    decision_number: int | None = Field(
        default=None,
        description="Which decision of the lead this is (1 the first; a re-opened lead's next is later)",
    )
    existing_customer: bool = Field(
        default=False,
        description="The lead's account has a won deal: an upsell or cross-sell opportunity (account_id)",
    )
    account_id: str | None = Field(
        default=None, description="For an existing customer: the account of its won deal, as deals names it"
    )


class LeadDisqualified(Event):
    description: ClassVar[str] = "A lead was disqualified, with the reason."
    key_field: ClassVar[str] = "lead_id"

    lead_id: str
    owner: str
    reason: str
    score: int
    breakdown: list[ScoreLine]
    answers: BantAnswers | None = None
    checklist: QualificationChecklist | None = Field(
        default=None, description="The methodology and its answers; absent when nothing was answered"
    )
    disqualified_at: datetime
    actor: str | None = actor_field()
    decision_number: int | None = Field(
        default=None,
        description="Which decision of the lead this is (1 the first; a re-opened lead's next is later)",
    )


class LeadReopened(Event):
    description: ClassVar[str] = (
        "A disqualified lead was re-opened (back in nurture, to be decided again): by a manager, or by "
        "new engagement above the rule set's threshold after its cooling-off period. Its earlier decisions "
        "are kept; the re-opening is a decision of its own in the lead's sequence."
    )
    key_field: ClassVar[str] = "lead_id"

    lead_id: str
    owner: str
    decision_number: int = Field(description="Which decision of the lead the re-opening is")
    reopened_decision: int = Field(description="The number of the disqualification it re-opens")
    reason: str
    reopened_at: datetime
    actor: str | None = actor_field()


class LeadScored(Event):
    description: ClassVar[str] = (
        "A lead's score changed band (e.g. warm to hot, or hot to warm as its engagement faded), for "
        "marketing automation: the fit and engagement parts, their total and both bands."
    )
    key_field: ClassVar[str] = "lead_id"

    lead_id: str
    owner: str
    fit: int = Field(description="The fit part of the score (with the checklist's answers)")
    engagement: int = Field(description="The engagement part, decayed to scored_at")
    total: int
    band: str
    previous_band: str | None = Field(default=None, description="The band it was in before")
    breakdown: list[ScoreLine] = Field(default_factory=list, description="Every rule that counted")
    scored_at: datetime


class LeadEngagementDecayDue(Event):
    description: ClassVar[str] = (
        "A lead's decayed engagement is due to take its score below its band: a timer of the "
        "qualification service, armed when engagement is recorded; qualification itself consumes it and "
        "rescores the lead (LeadScored), arming the next one."
    )
    key_field: ClassVar[str] = "lead_id"

    lead_id: str
    band: str = Field(description="The band the lead was in when the timer was armed")
    due_at: datetime


class NurtureStepKind(StrEnum):
    TASK = "task"
    CONTENT = "content"


class NurtureStepDue(Event):
    description: ClassVar[str] = (
        "A step of a nurtured lead's nurture track fell due (issue D): a timer of the qualification "
        "service, armed when the lead enters nurture and after each step, cancelled when it qualifies, is "
        "disqualified or unsubscribes. Qualification consumes it to arm the next step; for a task step the "
        "leads service opens a follow-up for the owner, for a content step notifications sends the "
        "content library's piece to the contact (with consent)."
    )
    key_field: ClassVar[str] = "lead_id"

    step_id: str = Field(description="Unique per step of one lead's track: <lead>:<track>:<n>")
    lead_id: str
    owner: str
    track: str = Field(description="The nurture track's name in the rule set")
    step: int = Field(description="The step's place in its track, from 0")
    kind: NurtureStepKind
    title: str = Field(description="The task's title, or what the content is about")
    task_kind: TaskKind | None = Field(default=None, description="A task step's kind (call, e-mail...)")
    content_tags: list[str] = Field(
        default_factory=list, description="A content step: the content library's pieces with these tags"
    )
    due_at: datetime


# --- deals ----------------------------------------------------------------------------------------


def probability_field() -> Any:
    return Field(
        default=None,
        description="The win probability (0 to 1) of the deal's stage after this event, as its pipeline says "
        "(absent in events published before the forecast read it)",
    )


def forecast_category_field() -> Any:
    return Field(
        default=None,
        description="The forecast category of the deal's stage after this event: pipeline | best_case | "
        "commit | closed | omitted (absent in events published before the forecast read it)",
    )


def expected_close_field() -> Any:
    return Field(
        default=None,
        description="When the deal is expected to close (a calendar date), after this event; absent when "
        "nobody said, or in events published before the forecast read it",
    )


class DealOpened(Event):
    description: ClassVar[str] = "A deal was opened in a pipeline for a qualified lead."
    key_field: ClassVar[str] = "deal_id"

    deal_id: str
    lead_id: str
    account_id: str
    account_name: str
    owner: str
    pipeline: str
    stage: str
    amount: Decimal | None = None
    currency: str = "EUR"
    opened_at: datetime
    # The forecast's inputs (issue F): where the deal stands when it opens.
    expected_close_date: date | None = expected_close_field()
    probability: Decimal | None = probability_field()
    forecast_category: str | None = forecast_category_field()


class StageChanged(Event):
    description: ClassVar[str] = "A deal moved from one pipeline stage to another (forward or back)."
    key_field: ClassVar[str] = "deal_id"

    deal_id: str
    lead_id: str
    owner: str
    pipeline: str
    from_stage: str
    to_stage: str
    direction: str = Field(description="forward | back")
    seconds_in_from_stage: float = Field(description="Time the deal spent in the stage it left")
    amount: Decimal | None = None
    currency: str = "EUR"
    note: str | None = None
    changed_at: datetime
    actor: str | None = actor_field()
    reason: str | None = Field(
        default=None,
        description="Why it moved back, or 'pipeline changed' when a new version of its pipeline removed "
        "the stage it was in (absent on other moves)",
    )
    expected_close_date: date | None = expected_close_field()
    probability: Decimal | None = probability_field()
    forecast_category: str | None = forecast_category_field()


class DealWon(Event):
    description: ClassVar[str] = (
        "A deal was closed won. Finance books revenue; onboarding starts the hand-over."
    )
    key_field: ClassVar[str] = "deal_id"

    deal_id: str
    lead_id: str
    account_id: str
    account_name: str
    owner: str
    amount: Decimal
    currency: str = "EUR"
    cycle_seconds: float = Field(description="Time from deal opened to won")
    won_at: datetime
    actor: str | None = actor_field()


class DealLost(Event):
    description: ClassVar[str] = "A deal was closed lost, with the reason."
    key_field: ClassVar[str] = "deal_id"

    deal_id: str
    lead_id: str
    account_id: str
    account_name: str
    owner: str
    reason: str
    lost_at_stage: str
    amount: Decimal | None = None
    currency: str = "EUR"
    cycle_seconds: float
    lost_at: datetime
    actor: str | None = actor_field()


class DealFieldChange(BaseModel):
    field: str = Field(description="amount | expected_close_date | owner | next_step | deal_type")
    old: str | None = Field(description="The value before, as text (an amount as a decimal string)")
    new: str | None = Field(description="The value after, as text")


class DealUpdated(Event):
    description: ClassVar[str] = (
        "A deal's amount, expected close date, owner, next step or type changed (not by a stage move): "
        "what changed, from what to what. The forecast and subscribers follow it."
    )
    key_field: ClassVar[str] = "deal_id"

    deal_id: str
    lead_id: str
    owner: str = Field(description="The deal's owner after the change")
    pipeline: str
    stage: str
    changes: list[DealFieldChange]
    amount: Decimal | None = None
    currency: str = "EUR"
    updated_at: datetime
    actor: str | None = actor_field()
    expected_close_date: date | None = expected_close_field()
    probability: Decimal | None = probability_field()
    forecast_category: str | None = forecast_category_field()


class DealStalled(Event):
    description: ClassVar[str] = (
        "A deal sat in its stage past the stage's rot limit, with no move (and, where its pipeline says "
        "so, no activity): emitted once by a timer of the deals service, so someone acts on it."
    )
    key_field: ClassVar[str] = "deal_id"

    deal_id: str
    lead_id: str
    owner: str
    pipeline: str
    stage: str
    days_in_stage: float = Field(description="Days since the deal entered the stage")
    rot_days: int = Field(description="The stage's rot limit, in days")
    amount: Decimal | None = None
    currency: str = "EUR"
    entered_stage_at: datetime
    stalled_at: datetime


class RfpResponseDue(Event):
    description: ClassVar[str] = (
        "The response to an RFP/RFI a deal answers is due soon (kind 'reminder', the reminder time before "
        "the due time) or overdue (kind 'overdue', at the due time): emitted by timers of the deals "
        "service while the deal is open and not a no-go, for the owner and their manager to act on."
    )
    key_field: ClassVar[str] = "deal_id"

    deal_id: str
    lead_id: str
    owner: str
    account_id: str
    account_name: str
    issuer: str = Field(description="Who issued the RFP")
    response_due_at: datetime
    kind: str = Field(description="reminder | overdue")
    decision: str | None = Field(default=None, description="go, or none yet (a no-go stops the timers)")


# --- quotes (issue E) ------------------------------------------------------------------------------


class QuoteApprovalRequested(Event):
    description: ClassVar[str] = (
        "A quote on a deal gives a discount over the configured limit: the deal owner's manager must "
        "approve it before it can be sent."
    )
    key_field: ClassVar[str] = "deal_id"

    deal_id: str
    quote_id: str
    quote_number: int
    owner: str
    manager: str | None = Field(default=None, description="The owner's manager, as the roster names them")
    currency: str
    total: Decimal
    max_discount_pct: Decimal = Field(description="The largest discount of any line, in percent")
    discount_limit_pct: Decimal = Field(description="The discount a quote may give without approval")
    requested_at: datetime
    actor: str | None = actor_field()


class QuoteSent(Event):
    description: ClassVar[str] = "A quote was sent to the customer; it is valid until valid_until."
    key_field: ClassVar[str] = "deal_id"

    deal_id: str
    quote_id: str
    quote_number: int
    owner: str
    currency: str
    total: Decimal
    valid_until: datetime
    sent_at: datetime
    actor: str | None = actor_field()


class QuoteAccepted(Event):
    description: ClassVar[str] = "The customer accepted a quote: its total is the deal's amount now."
    key_field: ClassVar[str] = "deal_id"

    deal_id: str
    quote_id: str
    quote_number: int
    owner: str
    currency: str
    total: Decimal
    accepted_at: datetime
    actor: str | None = actor_field()


class QuoteExpired(Event):
    description: ClassVar[str] = "A sent quote reached its validity date without an answer (a timer)."
    key_field: ClassVar[str] = "deal_id"

    deal_id: str
    quote_id: str
    quote_number: int
    owner: str
    valid_until: datetime


# --- deals: objections ----------------------------------------------------------------------------


class ObjectionCategory(StrEnum):
    PRICE = "price"
    TIMING = "timing"
    COMPETITOR = "competitor"
    MISSING_FEATURE = "missing_feature"
    AUTHORITY = "authority"
    TRUST = "trust"
    OTHER = "other"


class ObjectionStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    RESOLVED = "resolved"
    #: Open and in the way of the deal: counted on the deal (``blocking_objections``).
    BLOCKING = "blocking"


class ObjectionJudgement(StrEnum):
    """What the rep makes of it: the customer's real concern, or an excuse for something else."""

    REAL = "real"
    EXCUSE = "excuse"


class ObjectionRecorded(Event):
    description: ClassVar[str] = (
        "A rep recorded a customer's objection on a deal: its category, the customer's words, whether the "
        "rep judges it real or an excuse, its status and the answer given (a library answer or free text)."
    )
    key_field: ClassVar[str] = "deal_id"

    objection_id: str
    deal_id: str
    lead_id: str
    owner: str = Field(description="The deal's owner when it was recorded")
    category: ObjectionCategory
    words: str = Field(description="The customer's words")
    judgement: ObjectionJudgement | None = Field(default=None, description="Absent: not judged yet")
    status: ObjectionStatus
    answer_id: str | None = Field(default=None, description="The library answer given, if one was")
    answer_text: str | None = Field(default=None, description="The answer given (the library's or free text)")
    recorded_at: datetime
    actor: str | None = actor_field()


# --- notifications --------------------------------------------------------------------------------


class NotificationDue(Event):
    description: ClassVar[str] = (
        "An automation rule's action fell due later than its trigger (issue G): after the action's delay "
        '("3 days after DealWon"), or for one recipient at the end of their quiet hours. Emitted once by '
        "a timer of the notifications service, which consumes it and then runs that action for the "
        "trigger event it carries."
    )
    key_field: ClassVar[str] = "subject_id"

    deferral_id: str = Field(description="Unique per deferred action (and recipient): <event id>:<rule>:<n>")
    subject_id: str = Field(description="The id of the lead or deal the trigger event is about")
    rule_id: str
    action: int = Field(description="The action's place in its rule, from 0")
    trigger: str = Field(description="The trigger event's type, e.g. DealWon")
    trigger_event_id: str
    event: dict[str, Any] = Field(description="The trigger event's fields, as it was published")
    recipient: str | None = Field(default=None, description="Only this recipient (a quiet-hours deferral)")
    due_at: datetime


class DigestItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str
    event_type: str
    subject_id: str = Field(description="The lead or deal the alert is about")
    subject: str = Field(description="The alert's e-mail subject")
    text: str = Field(description="The alert's e-mail text")


class DigestDue(Event):
    description: ClassVar[str] = (
        "The digest window of an automation rule's e-mail action to one recipient ended (issue G): the "
        "alerts it gathered since the first go as one e-mail. Emitted once by a timer of the notifications "
        "service, which consumes it; each alert of the window is added to the armed timer's event."
    )
    key_field: ClassVar[str] = "recipient"

    digest_id: str = Field(description="Unique per window: <rule>:<action>:<recipient>:<window start>")
    recipient: str
    rule_id: str
    action: int
    locale: str = Field(default="en", description="The recipient's locale when the window opened")
    window_started_at: datetime
    items: list[DigestItem] = Field(description="The alerts, in the order they came (at most 100)")
    more: int = Field(default=0, description="Alerts beyond the first 100, counted only")
    due_at: datetime


class SubscriptionDebounceDue(Event):
    description: ClassVar[str] = (
        "A managed webhook subscription's debounce window for one subject ended (issue G): the latest "
        "event of that subject in the window is delivered to it, the earlier ones collapsed into it. "
        "Emitted once by a timer of the notifications service, which consumes it; each event of the "
        "window replaces the armed timer's latest."
    )
    key_field: ClassVar[str] = "subject"

    debounce_id: str = Field(description="Unique per window: <subscription id>:<subject>:<window start>")
    subscription_id: str
    subject: str = Field(description="The key of the events collapsed: the lead or deal id")
    event_id: str = Field(description="The latest event's id: the delivery carries it")
    event_type: str
    body: str = Field(description="The webhook JSON of the latest event, as it is signed and posted")
    collapsed: int = Field(default=0, description="Earlier events of the window, not delivered")
    window_started_at: datetime
    due_at: datetime


class ContactUnsubscribed(Event):
    description: ClassVar[str] = (
        "A lead's contact unsubscribed (the link in a content e-mail, or recorded by a user): "
        "notifications sends them no more content, and nurture stops for the lead (issue G, D)."
    )
    key_field: ClassVar[str] = "lead_id"

    lead_id: str
    email: str
    channel: str = Field(default="email", description="What they unsubscribed from")
    content_id: str | None = Field(default=None, description="The content whose link they followed")
    unsubscribed_at: datetime
    actor: str | None = actor_field()


# --- reports --------------------------------------------------------------------------------------


class ForecastSnapshotDue(Event):
    description: ClassVar[str] = (
        "A forecast snapshot of the reports service fell due (issue F): a timer of reports, armed at its "
        "start-up for the next configured weekday and time of day in the organisation's time zone (default "
        "Monday 00:00) and again each time it fires. Reports consumes it to keep where every open deal "
        "stands in the forecast (close date, category, amount), so what changed since is one query."
    )
    key_field: ClassVar[str] = "schedule"

    snapshot_id: str = Field(description="Unique per firing: <schedule>:<due time, ISO 8601 in UTC>")
    schedule: str = Field(description="Which snapshots fell due: weekly")
    time_zone: str = Field(description="The organisation's IANA time zone the weekday and time are read in")
    due_at: datetime


#: Every event type, by name. A new event must be added here to get a topic.
EVENTS: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        LeadCaptured,
        LeadResponseOverdue,
        LeadResponseEscalationDue,
        ActivityLogged,
        FollowUpDue,
        TaskRequested,
        LeadTouched,
        LeadReassigned,
        LeadQueued,
        LeadsMerged,
        RepProfile,
        LeadQualified,
        LeadDisqualified,
        LeadScored,
        LeadEngagementDecayDue,
        LeadReopened,
        NurtureStepDue,
        DealOpened,
        StageChanged,
        DealWon,
        DealLost,
        DealUpdated,
        DealStalled,
        RfpResponseDue,
        QuoteApprovalRequested,
        QuoteSent,
        QuoteAccepted,
        QuoteExpired,
        ObjectionRecorded,
        NotificationDue,
        DigestDue,
        SubscriptionDebounceDue,
        ContactUnsubscribed,
        ForecastSnapshotDue,
    )
}

EVENTS_BY_TOPIC: dict[str, type[Event]] = {cls.topic(): cls for cls in EVENTS.values()}


def lead_id_of(event: Event) -> str | None:
    """The lead an event is about, if it names one (every lead event and every deal event does)."""
    lead_id = getattr(event, "lead_id", None)
    return lead_id if isinstance(lead_id, str) else None


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


def all_topics() -> list[str]:
    """Every event topic and its dead-letter topic."""
    topics = [cls.topic() for cls in EVENTS.values()]
    return topics + [dead_letter_topic(t) for t in topics]


def json_schema(cls: type[Event]) -> dict[str, Any]:
    return cls.model_json_schema(mode="serialization")
