"""A lead under qualification: its scorings, its checklist (the answers of its qualification
methodology, BANT or MEDDIC, each with who answered and when), and its decision.

The lead's methodology is its segment's when it is captured (the rule set says which) and stays: the
answers are of one checklist. The decision is final. A lead is scored when it is captured and again when
answers are recorded; each
scoring may decide it (qualified or disqualified) and a decided lead refuses any further scoring or
decision, so it gets exactly one ``LeadQualified`` or ``LeadDisqualified``, ever. The lead raises that
event itself; its use case hands it to the unit of work (``uow.publish(lead)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from kariz_qualification.domain.customers import EXISTING_CUSTOMER, WonAccount
from kariz_qualification.domain.engagement import (
    Signal,
    band_drop_at,
    engagement_lines,
    is_engagement,
    knows,
    newest,
)
from kariz_qualification.domain.methodologies import (
    METHODOLOGIES,
    ChecklistReview,
    Given,
    MethodologyName,
    bant_answers,
    bant_checklist,
    budget_of,
)
from kariz_qualification.domain.nurture import NurtureMove, NurtureRun, StopReason, after, step_due
from kariz_qualification.domain.rules import RuleSet, Thresholds
from kariz_shared.contracts.aggregate import Aggregate
from kariz_shared.contracts.errors import Conflict, RuleViolation
from kariz_shared.contracts.events import (
    BantAnswers,
    ChecklistAnswer,
    Company,
    Contact,
    LeadCaptured,
    LeadDisqualified,
    LeadQualified,
    LeadReopened,
    LeadScored,
    LeadSource,
    NurtureStepDue,
    QualificationChecklist,
    ScoreLine,
)

Outcome = Literal["qualified", "disqualified"]
#: ``merged``: the lead was folded into another record of the same person (``merged_into``).
Status = Literal["nurture", "qualified", "disqualified", "merged"]
#: ``merged``: the scoring a merge took from the duplicate, which had the better verdict.
#: ``checklist``: answers recorded with ``PUT /leads/{id}/checklist/{methodology}``.
#: ``engagement``: an engagement signal (POST /engagements, a repeat capture, a rep reaching the contact);
#: ``decay``: the decay timer, when fading engagement takes the score below its band.
Trigger = Literal["captured", "bant", "checklist", "merged", "engagement", "decay"]
#: The triggers that may qualify a lead but never disqualify it: a signal or its fading only adds
#: points to a fit that was good enough at capture.
ENGAGEMENT_TRIGGERS: frozenset[Trigger] = frozenset({"engagement", "decay"})
#: What re-opened a disqualified lead.
ReopenedBy = Literal["manager", "engagement"]
#: Why a lead qualified when a signal took it over the threshold (``LeadQualified.reason``).
BY_ENGAGEMENT = "engagement"
#: What kind of reason decided a lead, a bounded word for metrics (the reason itself is free text: a
#: rep's words, a rule set's hard no). ``score``: the score reached the threshold or fell below the
#: floor; ``answers``: a qualification call's answers took it over the threshold; ``engagement``: a
#: signal did; ``existing_customer``: a lead of a won account; ``hard_no``: an answer that disqualifies;
#: ``manual``: a rep disqualified it by hand.
ReasonKind = Literal["score", "answers", "engagement", "existing_customer", "hard_no", "manual"]
#: The kinds each outcome can have.
REASON_KINDS: dict[Outcome, tuple[ReasonKind, ...]] = {
    "qualified": ("score", "answers", "engagement", "existing_customer"),
    "disqualified": ("score", "hard_no", "manual"),
}
#: The triggers by which a qualification call's answers are recorded.
ANSWER_TRIGGERS: frozenset[Trigger] = frozenset({"bant", "checklist"})

#: How good a verdict is, for a merge: the better qualification wins (then the higher score).
VERDICT_RANK = {"qualified": 2, "nurture": 1, "disqualified": 0}


@dataclass(frozen=True)
class Verdict:
    """What a score says about a lead: ``nurture`` leaves it open."""

    status: Status
    reason: str | None = None


def decide(score: int, thresholds: Thresholds, review: ChecklistReview | None = None) -> Verdict:
    """Qualified at or above the qualify threshold once the checklist's required items are answered;
    disqualified by a hard no of the checklist (BANT: no need, no budget) or a score below the
    disqualification threshold; otherwise nurtured (with the required items still missing, if any).

    A "no" from the qualification call outweighs any score: a perfect fit with no need is not a deal;
    and a perfect fit whose economic buyer nobody has found is not one yet.
    """
    if review is not None and review.hard_no is not None:
        return Verdict("disqualified", review.hard_no)
    missing = review.missing if review is not None else ()
    if score >= thresholds.qualify and not missing:
        return Verdict("qualified")
    if score < thresholds.disqualify_below:
        return Verdict(
            "disqualified",
            f"fit score {score} is below the disqualification threshold {thresholds.disqualify_below}",
        )
    if review is not None and missing:
        return Verdict("nurture", f"{review.methodology} answers missing: {', '.join(missing)}")
    return Verdict("nurture")


@dataclass(frozen=True)
class Scoring:
    at: datetime
    score: int
    breakdown: tuple[ScoreLine, ...]
    trigger: Trigger
    #: The version of the rule set it was scored with (None: scored before versions were kept).
    rules_version: int | None = None


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    at: datetime
    reason: str | None = None
    # The qualify threshold in force when the lead was decided (a rule-set change does not rewrite it).
    threshold: int | None = None
    manual: bool = False
    #: Who decided: the rep whose answers or disqualification it was; None when the scoring decided.
    by: str | None = None
    #: Which decision of the lead it is, re-openings counted (1: the first).
    number: int = 1
    #: What kind of reason decided it; None for a decision stored before kinds were kept.
    reason_kind: ReasonKind | None = None


@dataclass(frozen=True)
class Reopening:
    """A disqualified lead put back in nurture: a decision of its own in the lead's sequence."""

    number: int
    #: The number of the disqualification it re-opened.
    reopened: int
    at: datetime
    reason: str
    #: The manager who re-opened it; None when new engagement did.
    by: str | None = None


@dataclass
class Lead(Aggregate):
    lead_id: str
    owner: str
    contact: Contact
    company: Company
    source: LeadSource
    campaign: str | None
    correlation_id: str
    captured_at: datetime
    #: The BANT answers as v1 events carry them: a BANT lead's checklist, or answers stored before
    #: checklists were kept (taken into the checklist when the lead is loaded).
    answers: BantAnswers | None = None
    methodology: MethodologyName = "bant"
    #: The checklist's answers by item, in the methodology's order.
    checklist: dict[str, ChecklistAnswer] = field(default_factory=dict)
    scorings: list[Scoring] = field(default_factory=list)
    decision: Decision | None = None
    #: The survivor this lead was merged into (status ``merged``): it carries on for both.
    merged_into: str | None = None
    #: The leads merged into this one, oldest first.
    merged_from: list[str] = field(default_factory=list)
    #: Engagement signals, oldest first (the most recent ``KEPT_SIGNALS``); kept after a decision too.
    signals: list[Signal] = field(default_factory=list)
    #: The band of the latest scoring (None: scored before bands were kept); LeadScored on a change.
    band: str | None = None
    #: The won account this lead belongs to when it was captured: an existing customer.
    customer: WonAccount | None = None
    #: Decisions a re-opening superseded, oldest first (the current one is ``decision``).
    past_decisions: list[Decision] = field(default_factory=list)
    reopenings: list[Reopening] = field(default_factory=list)
    #: Its nurture track's runs, one per stay in nurture, oldest first (the last may be running).
    nurture_runs: list[NurtureRun] = field(default_factory=list)
    #: When its contact unsubscribed (``ContactUnsubscribed``): it is nurtured no more.
    unsubscribed_at: datetime | None = None
    # Optimistic concurrency: the version this copy was loaded at.
    version: int = 0

    def __post_init__(self) -> None:
        if self.answers is not None and not self.checklist and self.methodology == "bant":
            # Answered before checklists were kept: the whole call, by whoever decided the lead (if it
            # did), when the answers were scored.
            at = next((s.at for s in reversed(self.scorings) if s.trigger == "bant"), self.captured_at)
            by = self.decision.by if self.decision is not None else None
            self.checklist = bant_checklist(self.answers, by, at)

    @classmethod
    def capture(
        cls,
        event: LeadCaptured,
        correlation_id: str,
        rules: RuleSet,
        at: datetime,
        *,
        rules_version: int | None = None,
        customer: WonAccount | None = None,
    ) -> Lead:
        """Take a captured lead into qualification and score its fit straight away with ``rules``
        (version ``rules_version`` of the rule set). A lead of a ``customer`` account (a deal was won
        with it) qualifies as an existing customer unless a hard no of its checklist says otherwise."""
        lead = cls(
            lead_id=event.lead_id,
            owner=event.owner,
            contact=event.contact,
            company=event.company,
            source=event.source,
            campaign=event.campaign,
            correlation_id=correlation_id,
            captured_at=event.captured_at,
            methodology=rules.methodology_for(event.company),
            customer=customer,
        )
        lead.rescore(rules, "captured", at, rules_version=rules_version)
        return lead

    # --- state --------------------------------------------------------------------------------------

    @property
    def status(self) -> Status:
        if self.merged_into is not None:
            return "merged"
        return "nurture" if self.decision is None else self.decision.outcome

    @property
    def verdict(self) -> Status:
        """Where qualification left it, merged or not."""
        return "nurture" if self.decision is None else self.decision.outcome

    @property
    def latest(self) -> Scoring | None:
        return self.scorings[-1] if self.scorings else None

    @property
    def score(self) -> int:
        return self.latest.score if self.latest else 0

    @property
    def breakdown(self) -> tuple[ScoreLine, ...]:
        return self.latest.breakdown if self.latest else ()

    def review(self, rules: RuleSet) -> ChecklistReview:
        """What ``rules``' verdict rules say of this lead's checklist."""
        return rules.review(self.methodology, self.checklist, existing_customer=self.customer is not None)

    def qualification_checklist(self, rules: RuleSet) -> QualificationChecklist | None:
        """The checklist as the decision events carry it; None when nothing was answered."""
        if not self.checklist:
            return None
        return QualificationChecklist(
            methodology=self.methodology,
            answers=list(self.checklist.values()),
            completeness=self.review(rules).completeness(),
        )

    # --- behaviour ----------------------------------------------------------------------------------

    def record_answers(
        self,
        answers: BantAnswers,
        rules: RuleSet,
        at: datetime,
        *,
        rules_version: int | None = None,
        by: str | None = None,
    ) -> Scoring:
        """Record (or correct) the qualification call's answers, recorded ``by`` a rep, then rescore
        and decide (the decision is theirs)."""
        self._refuse_if_decided("record answers for")
        self._refuse_unless_methodology("bant", "record BANT answers for")
        self.answers = answers
        # The whole call: answers it no longer gives (a pain, a decision maker) are gone.
        self.checklist = bant_checklist(answers, by, at)
        return self.rescore(rules, "bant", at, rules_version=rules_version, by=by)

    def record_checklist(
        self,
        methodology: str,
        answers: Mapping[str, Given],
        rules: RuleSet,
        at: datetime,
        *,
        rules_version: int | None = None,
        by: str | None = None,
    ) -> Scoring:
        """Record (or correct) some items of the lead's checklist, each answered ``by`` a rep ``at`` now;
        items not given keep their answers. Then rescore and decide (the decision is theirs)."""
        self._refuse_if_decided("record answers for")
        self._refuse_unless_methodology(methodology, "record answers for")
        catalogue = METHODOLOGIES[self.methodology]
        for key, given in answers.items():
            item = catalogue.item(key)
            if item is None or item.kind != given.kind:
                raise RuleViolation(f"answers.{key}: not a {given.kind} item of {self.methodology}")
            if item.kind in ("yes_no", "choice") and given.value not in item.values:
                raise RuleViolation(f"answers.{key}: {given.value!r} is not one of {', '.join(item.values)}")
        recorded = {**self.checklist, **{key: given.recorded(key, by, at) for key, given in answers.items()}}
        self.checklist = {key: recorded[key] for key in catalogue.keys if key in recorded}
        if self.methodology == "bant":
            self.answers = bant_answers(self.checklist)
        return self.rescore(rules, "checklist", at, rules_version=rules_version, by=by)

    def rescore(
        self,
        rules: RuleSet,
        trigger: Trigger,
        at: datetime,
        *,
        rules_version: int | None = None,
        by: str | None = None,
    ) -> Scoring:
        """Score with ``rules`` (fit, plus the answers if any), keep the scoring, and decide."""
        self._refuse_if_decided("rescore")
        lines = self.score_lines(rules, at)
        score = sum(line.points for line in lines)
        scoring = Scoring(
            at=at, score=score, breakdown=tuple(lines), trigger=trigger, rules_version=rules_version
        )
        self.scorings.append(scoring)
        review = self.review(rules)
        verdict = decide(scoring.score, rules.thresholds, review)
        if self.customer is not None and review.hard_no is None:
            # Fit is known for an account that bought: its score is not what decides it, the upsell's own
            # items (need and timeline by default) are; until they are in, it is nurtured.
            if not review.missing:
                self._qualify(rules, at, by, "existing_customer", reason=EXISTING_CUSTOMER)
        elif verdict.status == "qualified" and trigger == "engagement":
            self._qualify(rules, at, by, "engagement", reason=BY_ENGAGEMENT)
        elif verdict.status == "qualified":
            self._qualify(rules, at, by, "answers" if trigger in ANSWER_TRIGGERS else "score")
        elif verdict.status == "disqualified" and trigger not in ENGAGEMENT_TRIGGERS:
            kind: ReasonKind = "hard_no" if review.hard_no is not None else "score"
            self._disqualify(verdict.reason or "disqualified", at, kind, manual=False, by=by, rules=rules)
        self._observe_band(rules, scoring)
        return scoring

    # --- engagement ---------------------------------------------------------------------------------

    def fit_lines(self, rules: RuleSet) -> list[ScoreLine]:
        """The fit part of the score: the company, contact and source, and the checklist's answers."""
        return rules.score_fit(self.company, self.contact, self.source) + rules.score_checklist(
            self.methodology, self.checklist
        )

    def engagement_lines(self, rules: RuleSet, at: datetime) -> list[ScoreLine]:
        """The engagement part of the score, decayed to ``at``."""
        return engagement_lines(self.signals, rules.engagement, at)

    def score_lines(self, rules: RuleSet, at: datetime) -> list[ScoreLine]:
        return self.fit_lines(rules) + self.engagement_lines(rules, at)

    def engage(
        self, signal: Signal, rules: RuleSet, at: datetime, *, rules_version: int | None = None
    ) -> Scoring | None:
        """Take an engagement signal. A lead in nurture is rescored (and qualified when the combined
        score reaches the threshold with the checklist's required items in); a decided lead keeps the
        signal for its history and is not rescored (a decision stands). None when nothing was scored: a
        decided lead, or a signal of the same id taken before."""
        self._refuse_if_merged("record engagement for")
        if knows(self.signals, signal.signal_id):
            return None
        self.signals = newest([*self.signals, signal])
        if self.decision is not None and not self._reopens_on_engagement(rules, at):
            return None
        return self.rescore(rules, "engagement", at, rules_version=rules_version)

    def reopen(self, reason: str, at: datetime, by: str | None) -> Reopening:
        """Put a disqualified lead back in nurture (a manager's call, or new engagement): a new decision
        in its sequence; the disqualification stays in its history. A qualified lead has its deal."""
        self._refuse_if_merged("re-open")
        if self.decision is None or self.decision.outcome != "disqualified":
            state = "in nurture" if self.decision is None else self.decision.outcome
            raise Conflict(
                f"cannot re-open lead {self.lead_id}: it is {state}; only a disqualified lead re-opens"
            )
        reopened = self.decision
        self.past_decisions.append(reopened)
        self.decision = None
        reopening = Reopening(self._next_number(), reopened.number, at, reason, by)
        self.reopenings.append(reopening)
        self.raise_event(
            LeadReopened(
                lead_id=self.lead_id,
                owner=self.owner,
                decision_number=reopening.number,
                reopened_decision=reopened.number,
                reason=reason,
                reopened_at=at,
                actor=by,
            )
        )
        return reopening

    def known_as_customer(self, account: WonAccount) -> bool:
        """The lead's account won a deal since it was captured: from now on it is qualified as an
        existing customer (the upsell rules). Returns whether that is new."""
        if self.customer is not None:
            return False
        self.customer = account
        return True

    @property
    def decisions(self) -> list[Decision | Reopening]:
        """Every decision of the lead, re-openings included, in order."""
        current = [] if self.decision is None else [self.decision]
        return sorted([*self.past_decisions, *self.reopenings, *current], key=lambda d: d.number)

    def _next_number(self) -> int:
        return len(self.past_decisions) + len(self.reopenings) + (0 if self.decision is None else 1) + 1

    def _reopens_on_engagement(self, rules: RuleSet, at: datetime) -> bool:
        """A disqualified lead re-opens when the engagement since its disqualification, decayed to
        ``at``, reaches the rule set's ``reopen_points`` once its cooling-off period is over."""
        engagement, decided = rules.engagement, self.decision
        if decided is None or decided.outcome != "disqualified" or engagement.reopen_points is None:
            return False
        if at - decided.at < timedelta(days=engagement.reopen_after_days):
            return False
        since = [s for s in self.signals if s.at > decided.at]
        points = sum(line.points for line in engagement_lines(since, engagement, at))
        if points < engagement.reopen_points:
            return False
        self.reopen(f"engagement: {points} points since the disqualification", at, by=None)
        return True

    def fade(self, rules: RuleSet, at: datetime, *, rules_version: int | None = None) -> Scoring | None:
        """The decay timer fired: rescore a lead still in nurture with its engagement decayed to ``at``
        (LeadScored when that changes its band). None for a lead decided or merged meanwhile."""
        if self.decision is not None or self.merged_into is not None:
            return None
        return self.rescore(rules, "decay", at, rules_version=rules_version)

    def band_drop_at(self, rules: RuleSet, at: datetime) -> datetime | None:
        """When fading engagement will take the score below the band it is in at ``at``; None when it
        never will (the fit alone keeps it there, or it is in the lowest band) or the lead is decided."""
        if self.decision is not None or self.merged_into is not None or not self.signals:
            return None
        fit = sum(line.points for line in self.fit_lines(rules))
        engagement = rules.engagement
        floor = engagement.band_of(fit + self._engagement_points(rules, at)).min
        if floor == 0 or fit >= floor:
            return None
        longest = max(engagement.half_life(signal.kind) for signal in self.signals)
        # After 20 half-lives 100 points are worth a ten-thousandth of a point: nothing is left to fade.
        return band_drop_at(lambda t: fit + self._engagement_points(rules, t), floor, at, longest * 20)

    def _engagement_points(self, rules: RuleSet, at: datetime) -> int:
        return sum(line.points for line in self.engagement_lines(rules, at))

    def _observe_band(self, rules: RuleSet, scoring: Scoring) -> None:
        """Keep the band of ``scoring``; a change of band raises ``LeadScored`` for marketing automation,
        unless the scoring decided the lead (its LeadQualified or LeadDisqualified says it, score and
        all) or was its first (at capture: there is no change to tell)."""
        band = rules.engagement.band_of(scoring.score).name
        previous, self.band = self.band, band
        if previous is None or previous == band or self.decision is not None:
            return
        engagement = sum(line.points for line in scoring.breakdown if is_engagement(line))
        self.raise_event(
            LeadScored(
                lead_id=self.lead_id,
                owner=self.owner,
                fit=scoring.score - engagement,
                engagement=engagement,
                total=scoring.score,
                band=band,
                previous_band=previous,
                breakdown=list(scoring.breakdown),
                scored_at=scoring.at,
            )
        )

    # --- nurture -------------------------------------------------------------------------------------

    @property
    def nurture_run(self) -> NurtureRun | None:
        """The latest run of its nurture track (running or stopped); None: never nurtured by a track."""
        return self.nurture_runs[-1] if self.nurture_runs else None

    def follow_nurture(self, rules: RuleSet, at: datetime) -> NurtureMove | None:
        """Keep the nurture track in step with the lead, after any change of it: stop the running track
        once the lead left nurture or its contact unsubscribed; start its track (``rules.track_for``)
        when it is in nurture and has not run one in this stay (a track that ended is not run again
        until a re-opening). None when nothing changed."""
        run = self.nurture_run
        if run is not None and run.active:
            reason = self._nurture_stop_reason()
            return None if reason is None else self._stop_nurture(run, reason, at)
        if self._nurture_stop_reason() is not None:
            return None
        stay = len(self.reopenings)
        if any(r.stay == stay for r in self.nurture_runs):
            return None
        chosen = rules.track_for(self.company)
        if chosen is None:
            return None
        name, track = chosen
        due = after(track.steps[0], at)
        run = NurtureRun(track=name, stay=stay, started_at=at, step=0, next_due_at=due)
        self.nurture_runs.append(run)
        return NurtureMove(armed=step_due(run, self.lead_id, self.owner, track, 0, due), track=name)

    def take_nurture_step(self, event: NurtureStepDue, rules: RuleSet, at: datetime) -> NurtureMove | None:
        """A step of its track fell due: count it and move to the next step (due its ``after_days``
        after this one's due time), or stop at the track's end. None for a step that is not the one
        armed: a repeat, a step of an earlier stay, or one that fell due as the run stopped."""
        run = self.nurture_run
        if run is None or not run.active or event.step_id != run.step_id(self.lead_id):
            return None
        reason = self._nurture_stop_reason()
        if reason is not None:
            return self._stop_nurture(run, reason, at)
        taken = replace(run, taken=run.taken + 1)
        track = rules.nurture.tracks.get(run.track)
        following = run.step + 1
        if track is None or following >= len(track.steps):
            # An admin may remove or shorten the track while it runs: what is left of it is not run.
            ended: StopReason = "withdrawn" if track is None else "completed"
            self.nurture_runs[-1] = taken.stopped(ended, at)
            return NurtureMove(taken=event, stopped=ended, track=run.track)
        # From the due time, not from when the step came back: consumer lag does not stretch the cadence.
        due = max(after(track.steps[following], event.due_at), at)
        self.nurture_runs[-1] = replace(taken, step=following, next_due_at=due)
        armed = step_due(run, self.lead_id, self.owner, track, following, due)
        return NurtureMove(armed=armed, taken=event, track=run.track)

    def unsubscribe(self, at: datetime) -> bool:
        """Its contact unsubscribed ``at``; False when that was known already (its nurture stops with
        the next ``follow_nurture``)."""
        if self.unsubscribed_at is not None:
            return False
        self.unsubscribed_at = at
        return True

    def _nurture_stop_reason(self) -> StopReason | None:
        if self.merged_into is not None:
            return "merged"
        if self.decision is not None:
            return self.decision.outcome
        return "unsubscribed" if self.unsubscribed_at is not None else None

    def _stop_nurture(self, run: NurtureRun, reason: StopReason, at: datetime) -> NurtureMove:
        self.nurture_runs[-1] = run.stopped(reason, at)
        return NurtureMove(stopped=reason, track=run.track)

    def disqualify(
        self, reason: str, at: datetime, by: str | None = None, rules: RuleSet | None = None
    ) -> None:
        """Disqualify by hand, with the rep's reason (``rules``: to say how complete the checklist was)."""
        self._refuse_if_decided("disqualify")
        self._disqualify(reason, at, "manual", manual=True, by=by, rules=rules)

    def absorb(self, duplicate: Lead, at: datetime) -> bool:
        """A merge in leads folded ``duplicate`` into this lead: the better qualification wins (qualified
        beats undecided beats disqualified; the higher score between equals). When the duplicate's is
        better this lead takes its decision, its latest scoring (as a ``merged`` scoring) and its answers
        if it has them. No event: the duplicate's verdict was published when it was made, and a second
        ``LeadQualified`` would open a second deal. True when this lead's verdict changed.

        Also when this lead was decided: a merge is not a new decision of the same lead, it says what
        qualification knows of the person, so it may reopen a disqualified lead (nurture) or qualify it."""
        if duplicate.lead_id in self.merged_from:
            return False
        self.merged_from.append(duplicate.lead_id)
        ours = (VERDICT_RANK[self.verdict], self.score)
        theirs = (VERDICT_RANK[duplicate.verdict], duplicate.score)
        if theirs <= ours:
            return False
        self.decision = duplicate.decision
        if duplicate.latest is not None:
            taken = duplicate.latest
            self.scorings.append(
                Scoring(at, taken.score, taken.breakdown, "merged", rules_version=taken.rules_version)
            )
        if duplicate.checklist or not self.checklist:
            # The answers come with the better record (its checklist is of its own methodology).
            self.answers = duplicate.answers
            self.methodology = duplicate.methodology
            self.checklist = dict(duplicate.checklist)
        return True

    def merge_into(self, survivor_id: str) -> None:
        """This lead was folded into ``survivor_id``: it takes no answers or decision any more."""
        self.merged_into = survivor_id

    def _refuse_unless_methodology(self, methodology: str, action: str) -> None:
        if methodology != self.methodology:
            raise RuleViolation(
                f"methodology: cannot {action} lead {self.lead_id} with {methodology}: "
                f"it is qualified with {self.methodology} (its segment's methodology when it was captured)"
            )

    def _refuse_if_merged(self, action: str) -> None:
        if self.merged_into is not None:
            raise Conflict(
                f"cannot {action} lead {self.lead_id}: it was merged into {self.merged_into}; "
                "qualify that lead instead"
            )

    def _refuse_if_decided(self, action: str) -> None:
        if self.merged_into is not None:
            raise Conflict(
                f"cannot {action} lead {self.lead_id}: it was merged into {self.merged_into}; "
                "qualify that lead instead"
            )
        if self.decision is not None:
            raise Conflict(
                f"cannot {action} lead {self.lead_id}: it was already {self.decision.outcome} "
                f"at {self.decision.at.isoformat()} and a decision is final"
            )

    def _qualify(
        self, rules: RuleSet, at: datetime, by: str | None, kind: ReasonKind, reason: str | None = None
    ) -> None:
        threshold = rules.thresholds.qualify
        self.decision = Decision(
            outcome="qualified",
            at=at,
            reason=reason,
            threshold=threshold,
            by=by,
            number=self._next_number(),
            reason_kind=kind,
        )
        budget, currency = budget_of(self.methodology, self.checklist)
        self.raise_event(
            LeadQualified(
                lead_id=self.lead_id,
                owner=self.owner,
                contact=self.contact,
                company=self.company,
                source=self.source,
                score=self.score,
                threshold=threshold,
                breakdown=list(self.breakdown),
                answers=self.answers,
                checklist=self.qualification_checklist(rules),
                budget_amount=budget,
                budget_currency=currency,
                qualified_at=at,
                actor=by,
                reason=reason,
                decision_number=self.decision.number,
                existing_customer=self.customer is not None,
                account_id=None if self.customer is None else self.customer.account_id,
            )
        )

    def _disqualify(
        self,
        reason: str,
        at: datetime,
        kind: ReasonKind,
        *,
        manual: bool,
        by: str | None,
        rules: RuleSet | None = None,
    ) -> None:
        number = self._next_number()
        self.decision = Decision(
            outcome="disqualified",
            at=at,
            reason=reason,
            manual=manual,
            by=by,
            number=number,
            reason_kind=kind,
        )
        self.raise_event(
            LeadDisqualified(
                lead_id=self.lead_id,
                owner=self.owner,
                reason=reason,
                score=self.score,
                breakdown=list(self.breakdown),
                answers=self.answers,
                checklist=None if rules is None else self.qualification_checklist(rules),
                disqualified_at=at,
                actor=by,
                decision_number=number,
            )
        )
