"""HTTP API: the scoring rule set, a lead's qualification, the qualification call (BANT, or any
methodology's checklist), manual disqualification, and the review queues."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, create_model

from kariz_qualification.domain.calibration import WinModel
from kariz_qualification.domain.lead import Decision, Lead, Outcome, Reopening, Status, Trigger
from kariz_qualification.domain.methodologies import (
    METHODOLOGIES,
    Given,
    Item,
    ItemKind,
    Methodology,
    MethodologyName,
)
from kariz_qualification.domain.nurture import NurtureRun, StopReason
from kariz_qualification.domain.outcomes import features_of
from kariz_qualification.domain.queries import LeadsByStatus, LeadSummary
from kariz_qualification.domain.rule_versions import RuleSetVersion
from kariz_qualification.domain.rules import Authority, Budget, Need, RuleSet, Timeline
from kariz_qualification.service_layer import handlers, views
from kariz_qualification.service_layer.commands import (
    DisqualifyLead,
    RecordAnswers,
    RecordChecklist,
    ReplaceRules,
)
from kariz_qualification.service_layer.unit_of_work import QualificationUnitOfWork
from kariz_shared.contracts.events import (
    BantAnswers,
    ChecklistAnswer,
    ChecklistCompleteness,
    NurtureStepKind,
    ScoreLine,
)
from kariz_shared.contracts.identity import PEOPLE, Role
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate
from kariz_shared.runtime.http import (
    IF_MATCH,
    Limit,
    Offset,
    Page,
    VersionNumber,
    edited_version,
    version_etag,
)

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
LongText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
LeadId = Annotated[str, StringConstraints(min_length=1, max_length=100)]

ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such lead here (its LeadCaptured event may not have arrived yet)"},
    409: {"description": "The lead is already decided: a decision is final"},
    422: {"description": "The body is invalid; the message says which field and why"},
}
RULE_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "The rule set has no such version; the message names the version in force"},
    409: {
        "description": "If-Match names a version no longer in force (another admin replaced the rule set "
        "first); the message names the version in force. Nothing was changed"
    },
    422: {"description": "The body or the If-Match header is invalid; the message says which and why"},
}


def etag(version: RuleSetVersion) -> str:
    """The ``ETag`` of a version of the rule set: its number, quoted (If-Match: kariz_shared's)."""
    return version_etag(version.number)


# --- requests -------------------------------------------------------------------------------------


class BantRequest(BaseModel):
    """The answers of a qualification call (the fields of the ``BantAnswers`` event value)."""

    model_config = ConfigDict(extra="forbid")

    budget: Budget
    budget_amount: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)] | None = None
    authority: Authority
    decision_maker: ShortText | None = None
    need: Need
    pain: LongText | None = None
    timeline: Timeline
    notes: LongText | None = None

    def to_answers(self) -> BantAnswers:
        return BantAnswers(**self.model_dump())


class AmountAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=2)]
    currency: Annotated[str, StringConstraints(pattern="^[A-Z]{3}$")] | None = Field(
        default=None, description="ISO 4217; none: the deal currency"
    )


class PersonAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ShortText
    title: ShortText | None = None


def _answer_type(item: Item) -> Any:
    """What an answer to ``item`` may be in a request body."""
    if item.kind in ("yes_no", "choice"):
        return Literal[item.values]
    return {"amount": AmountAnswer, "person": PersonAnswer, "text": LongText}[item.kind]


def _answers_model(methodology: Methodology) -> type[BaseModel]:
    # One optional field per item, unknown items refused: pydantic names the field of each mistake.
    fields: dict[str, Any] = {
        item.key: (_answer_type(item) | None, Field(default=None, description=item.question))
        for item in methodology.items
    }
    return create_model(
        f"{methodology.name.capitalize()}Answers", __config__=ConfigDict(extra="forbid"), **fields
    )


ANSWER_MODELS = {name: _answers_model(m) for name, m in METHODOLOGIES.items()}


def _given(kind: ItemKind, answer: Any) -> Given:
    if isinstance(answer, AmountAnswer):
        return Given(kind, amount=answer.amount, currency=answer.currency)
    if isinstance(answer, PersonAnswer):
        return Given(kind, value=answer.name, title=answer.title)
    return Given(kind, value=str(answer))


class ChecklistRequest(BaseModel):
    """Some answers of a lead's checklist, by item; items not given keep their answers. An answer is,
    by the item's kind: yes_no "yes" | "no" | "unknown"; choice one of the item's choices; amount
    {"amount", "currency"}; person {"name", "title"}; text a string."""

    model_config = ConfigDict(extra="forbid")

    answers: Annotated[dict[str, Any], Field(min_length=1)]

    def given(self, methodology: str) -> dict[str, Given]:
        """The answers, checked against the methodology's items (422 naming the item otherwise)."""
        try:
            parsed = ANSWER_MODELS[methodology].model_validate(self.answers)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**error, "loc": ("body", "answers", *error["loc"])} for error in exc.errors()]
            ) from exc
        catalogue = METHODOLOGIES[methodology]
        return {
            key: _given(item.kind, getattr(parsed, key))
            for key, item in ((i.key, i) for i in catalogue.items)
            if key in self.answers and getattr(parsed, key) is not None
        }


class DisqualifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


# --- views ----------------------------------------------------------------------------------------


class DecisionView(BaseModel):
    outcome: Outcome
    reason: str | None
    at: datetime
    threshold: int | None = Field(description="The qualify threshold in force when a lead qualified")
    manual: bool = Field(description="Decided by a rep (manual disqualification) rather than by the score")
    by: str | None = Field(
        default=None,
        description="The rep whose BANT answers or disqualification decided it; none when the score did",
    )


class ScoringView(BaseModel):
    at: datetime
    score: int
    breakdown: list[ScoreLine]
    trigger: Trigger
    rules_version: int | None = Field(
        description="The version of the rule set it was scored with (none: scored before versions were kept)"
    )


class ChecklistItemView(BaseModel):
    item: str
    kind: ItemKind
    question: str
    choices: list[str] = Field(description="The answers a yes_no or choice item takes")
    required: bool = Field(description="Needed before the lead can qualify (the rule set in force)")
    answer: ChecklistAnswer | None = Field(description="The answer recorded, with who and when; none yet")
    points: int = Field(description="What the answer earns under the rule set in force")


class ChecklistView(BaseModel):
    methodology: MethodologyName
    items: list[ChecklistItemView]
    completeness: ChecklistCompleteness
    hard_no: str | None = Field(description="The answer that disqualifies the lead, if one does")
    score: int = Field(description="The points of the answers; the rest of the score is fit")

    @classmethod
    def of(cls, lead: Lead, rules: RuleSet) -> ChecklistView:
        review = lead.review(rules)
        lines = {line.rule: line.points for line in rules.score_checklist(lead.methodology, lead.checklist)}
        return cls(
            methodology=lead.methodology,
            items=[
                ChecklistItemView(
                    item=item.key,
                    kind=item.kind,
                    question=item.question,
                    choices=list(item.values) if item.kind in ("yes_no", "choice") else [],
                    required=item.key in review.required,
                    answer=lead.checklist.get(item.key),
                    points=lines.get(f"{lead.methodology}.{item.key}", 0),
                )
                for item in METHODOLOGIES[lead.methodology].items
            ],
            completeness=review.completeness(),
            hard_no=review.hard_no,
            score=sum(lines.values()),
        )


class DecisionStepView(BaseModel):
    """One decision of the lead's sequence: a verdict, or the re-opening of a disqualification."""

    number: int
    outcome: Literal["qualified", "disqualified", "reopened"]
    at: datetime
    reason: str | None
    by: str | None = Field(
        description="Who decided (a rep, a manager); none when the score or engagement did"
    )

    @classmethod
    def of(cls, step: Decision | Reopening) -> DecisionStepView:
        if isinstance(step, Reopening):
            return cls(number=step.number, outcome="reopened", at=step.at, reason=step.reason, by=step.by)
        return cls(number=step.number, outcome=step.outcome, at=step.at, reason=step.reason, by=step.by)


class ScorePartView(BaseModel):
    points: int
    breakdown: list[ScoreLine]


class CurrentScoreView(BaseModel):
    """The score as it stands now: fit (with the checklist's answers) plus engagement decayed to now."""

    at: datetime = Field(description="When it was computed")
    fit: ScorePartView
    engagement: ScorePartView = Field(description="Engagement signals by kind, each decayed by its half-life")
    total: int
    band: str = Field(description="The band of the total (the rule set's engagement.bands)")
    signals: int = Field(description="Engagement signals kept for the lead")

    @classmethod
    def of(cls, lead: Lead, rules: RuleSet, at: datetime) -> CurrentScoreView:
        fit, engagement = lead.fit_lines(rules), lead.engagement_lines(rules, at)
        total = sum(line.points for line in [*fit, *engagement])
        return cls(
            at=at,
            fit=ScorePartView(points=sum(line.points for line in fit), breakdown=fit),
            engagement=ScorePartView(points=sum(line.points for line in engagement), breakdown=engagement),
            total=total,
            band=rules.engagement.band_of(total).name,
            signals=len(lead.signals),
        )


class NurtureStepView(BaseModel):
    step: int = Field(description="Its place in the track, from 0")
    kind: NurtureStepKind
    title: str
    due_at: datetime


class NurtureView(BaseModel):
    """The lead's nurture track: the latest run (one per stay in nurture) and the step it has armed."""

    track: str
    stay: int = Field(description="0: since capture; n: since the lead's n-th re-opening")
    status: Literal["running", "stopped"]
    started_at: datetime
    steps: int | None = Field(description="Steps in the track (none: the rule set no longer has it)")
    taken: int = Field(description="Steps that fell due so far")
    next_step: NurtureStepView | None = Field(description="The step armed, while the track runs")
    stopped_at: datetime | None
    stop_reason: StopReason | None
    unsubscribed_at: datetime | None = Field(description="When the contact unsubscribed: nurtured no more")

    @classmethod
    def of(cls, lead: Lead, run: NurtureRun, rules: RuleSet) -> NurtureView:
        track = rules.nurture.tracks.get(run.track)
        next_step = None
        if run.active and run.next_due_at is not None and track is not None and run.step < len(track.steps):
            rule = track.steps[run.step]
            next_step = NurtureStepView(
                step=run.step, kind=rule.kind, title=rule.title, due_at=run.next_due_at
            )
        return cls(
            track=run.track,
            stay=run.stay,
            status="running" if run.active else "stopped",
            started_at=run.started_at,
            steps=None if track is None else len(track.steps),
            taken=run.taken,
            next_step=next_step,
            stopped_at=run.stopped_at,
            stop_reason=run.stop_reason,
            unsubscribed_at=lead.unsubscribed_at,
        )


class WinProbabilityView(BaseModel):
    probability: float | None = Field(
        description="The calibrated probability that a lead scored like this one is won (from the rules "
        "of its latest scoring); none before a calibration"
    )
    calibration: int | None = Field(description="The calibration it comes from (GET /scoring/calibrations)")
    basis: str = Field(description="What it rests on, or why there is none")

    @classmethod
    def of(cls, lead: Lead, model: WinModel | None) -> WinProbabilityView:
        if model is None:
            return cls(
                probability=None,
                calibration=None,
                basis="not enough outcomes yet (GET /scoring/performance): the rule score alone stands",
            )
        return cls(
            probability=model.probability(features_of(lead.breakdown)),
            calibration=model.number,
            basis=f"calibration {model.number}: {model.outcomes} outcomes, out-of-sample AUC "
            f"{model.auc:.2f}, Brier {model.brier:.3f}",
        )


class QualificationView(BaseModel):
    lead_id: str
    owner: str
    company: str
    status: Status
    score: int
    breakdown: list[ScoreLine]
    answers: BantAnswers | None = Field(description="BANT leads: the answers as BANT (v1) has them")
    methodology: MethodologyName = Field(description="The methodology the lead is qualified with")
    checklist: ChecklistView
    decision: DecisionView | None
    scorings: list[ScoringView]
    captured_at: datetime
    merged_into: str | None = Field(
        default=None, description="For a merged lead (status merged): the lead it was merged into"
    )
    decisions: list[DecisionStepView] = Field(
        description="Every decision, re-openings included, oldest first: a re-opened lead keeps its history"
    )
    current: CurrentScoreView = Field(
        description="The score now, fit + engagement with their breakdowns (score is the latest scoring's)"
    )
    nurture: NurtureView | None = Field(
        default=None, description="Its nurture track, running or stopped; none: it never ran one"
    )
    win_probability: WinProbabilityView = Field(
        description="How likely it is to be won, from the outcomes of leads like it"
    )

    @classmethod
    def of(
        cls, lead: Lead, rules: RuleSet, at: datetime | None = None, *, odds: WinModel | None = None
    ) -> QualificationView:
        """The view at ``at`` (default: the latest scoring's time, which a change has just made), with its
        probability of winning by the calibration ``odds`` (none: the rule score alone)."""
        d = lead.decision
        now = at or (lead.latest.at if lead.latest is not None else lead.captured_at)
        return cls(
            decisions=[DecisionStepView.of(step) for step in lead.decisions],
            current=CurrentScoreView.of(lead, rules, now),
            nurture=None if lead.nurture_run is None else NurtureView.of(lead, lead.nurture_run, rules),
            win_probability=WinProbabilityView.of(lead, odds),
            lead_id=lead.lead_id,
            owner=lead.owner,
            company=lead.company.name,
            status=lead.status,
            score=lead.score,
            breakdown=list(lead.breakdown),
            answers=lead.answers,
            methodology=lead.methodology,
            checklist=ChecklistView.of(lead, rules),
            decision=None
            if d is None
            else DecisionView(
                outcome=d.outcome,
                reason=d.reason,
                at=d.at,
                threshold=d.threshold,
                manual=d.manual,
                by=d.by,
            ),
            scorings=[
                ScoringView(
                    at=s.at,
                    score=s.score,
                    breakdown=list(s.breakdown),
                    trigger=s.trigger,
                    rules_version=s.rules_version,
                )
                for s in lead.scorings
            ],
            captured_at=lead.captured_at,
            merged_into=lead.merged_into,
        )


class RuleSetSummary(BaseModel):
    changed: list[str] | None = Field(
        description="The parts of the rule set that differ from the version before (industry, "
        "company_size, country, seniority, source, bant, thresholds, methodologies, segments); none when no "
        "version before it is kept"
    )
    qualify: int = Field(description="The qualify threshold of this version")
    disqualify_below: int = Field(description="The disqualification threshold of this version")


class RuleSetVersionRow(BaseModel):
    """One version in the list: who put it in force when, and what it changed."""

    version: int = Field(description="0 is the rule set seeded at start-up; each replacement is the next")
    took_effect_at: datetime
    actor: str = Field(description="Who put it in force (kariz for the seeded defaults)")
    summary: RuleSetSummary

    @classmethod
    def of(cls, version: RuleSetVersion) -> RuleSetVersionRow:
        return cls(**cls.fields_of(version))

    @staticmethod
    def fields_of(version: RuleSetVersion) -> dict[str, Any]:
        thresholds = version.rules.thresholds
        return {
            "version": version.number,
            "took_effect_at": version.took_effect_at,
            "actor": version.actor,
            "summary": RuleSetSummary(
                changed=None if version.changed is None else list(version.changed),
                qualify=thresholds.qualify,
                disqualify_below=thresholds.disqualify_below,
            ),
        }


class RuleSetVersionView(RuleSetVersionRow):
    """One version whole: the row and the rule set it put in force."""

    rules: RuleSet

    @classmethod
    def of(cls, version: RuleSetVersion) -> RuleSetVersionView:
        return cls(**cls.fields_of(version), rules=version.rules)


def router(units: UnitsOfWork[QualificationUnitOfWork]) -> APIRouter:
    # Every route needs a signed-in caller; the rule set is an admin's to change (its history a manager's
    # to read too), a lead its owner's (and up).
    api = APIRouter(dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    @api.get("/rules", tags=["rules"], summary="The scoring rule set in force (its version in the ETag)")
    async def get_rules(response: Response) -> RuleSet:
        in_force = await views.current_rules(units)
        response.headers["ETag"] = etag(in_force)
        return in_force.rules

    @api.put(
        "/rules",
        tags=["rules"],
        summary="Replace the whole scoring rule set: a new version (later scorings use it; past ones stay)",
        responses={409: RULE_ERRORS[409], 422: RULE_ERRORS[422]},
    )
    async def put_rules(
        rules: RuleSet,
        caller: Authenticated,
        response: Response,
        if_match: Annotated[
            str | None,
            Header(
                pattern=IF_MATCH,
                description='The ETag of the version edited (from GET /rules, e.g. "3"): refused with 409 '
                "if another is in force by now. Without it, whatever is in force is replaced",
            ),
        ] = None,
    ) -> RuleSet:
        caller.require(Role.ADMIN)
        version = await handlers.replace_rules(
            units, ReplaceRules(rules, caller.actor, edited_version(if_match))
        )
        response.headers["ETag"] = etag(version)
        return version.rules

    @api.get("/rules/versions", tags=["rules"], summary="The rule set's versions, newest first")
    async def list_rule_set_versions(
        caller: Authenticated, limit: Limit = 50, offset: Offset = 0
    ) -> Page[RuleSetVersionRow]:
        caller.require(Role.ADMIN, Role.MANAGER)
        versions, total = await views.rule_set_versions(units, limit, offset)
        return Page[RuleSetVersionRow](
            items=[RuleSetVersionRow.of(v) for v in versions], total=total, limit=limit, offset=offset
        )

    @api.get(
        "/rules/versions/{number}",
        tags=["rules"],
        summary="One version of the rule set, whole: when it took effect, who put it in force, its rules",
        responses={404: RULE_ERRORS[404]},
    )
    async def get_rule_set_version(number: VersionNumber, caller: Authenticated) -> RuleSetVersionView:
        caller.require(Role.ADMIN, Role.MANAGER)
        return RuleSetVersionView.of(await views.rule_set_version(units, number))

    @api.get(
        "/leads/{lead_id}/qualification",
        tags=["leads"],
        summary="A lead's status, score and breakdown, checklist (answers, completeness, what is missing), "
        "decision and scoring history",
        responses={404: ERRORS[404]},
    )
    async def get_qualification(lead_id: LeadId, caller: Authenticated) -> QualificationView:
        caller.require(*PEOPLE)
        lead, rules, now, model = await views.qualification_and_rules_now(units, lead_id, caller.seen)
        return QualificationView.of(lead, rules, now, odds=model)

    async def answered(lead: Lead) -> QualificationView:
        # What is still missing is the rule set in force's to say.
        rules, model = await views.rules_and_calibration(units)
        return QualificationView.of(lead, rules, odds=model)

    @api.put(
        "/leads/{lead_id}/checklist/{methodology}",
        tags=["leads"],
        summary="Record some answers of the lead's qualification checklist (its methodology's: bant, meddic "
        "or meddpicc); the lead is rescored and may be decided",
        responses={
            **ERRORS,
            422: {
                "description": "An unknown methodology or item, an answer of the wrong type, or a "
                "methodology other than the lead's; the message names the field"
            },
        },
    )
    async def put_checklist(
        lead_id: LeadId, methodology: MethodologyName, body: ChecklistRequest, caller: Authenticated
    ) -> QualificationView:
        caller.require(*PEOPLE)
        command = RecordChecklist(lead_id, methodology, body.given(methodology), caller.seen, by=caller.actor)
        return await answered(await handlers.record_checklist(units, command))

    @api.put(
        "/leads/{lead_id}/bant",
        tags=["leads"],
        summary="Record the qualification call's answers (BANT); the lead is rescored and may be decided",
        responses=ERRORS,
    )
    async def put_bant(lead_id: LeadId, body: BantRequest, caller: Authenticated) -> QualificationView:
        caller.require(*PEOPLE)
        lead = await handlers.record_answers(
            units, RecordAnswers(lead_id, body.to_answers(), caller.seen, by=caller.actor)
        )
        return await answered(lead)

    @api.post(
        "/leads/{lead_id}/disqualify",
        tags=["leads"],
        summary="Disqualify a lead by hand, with a reason",
        responses=ERRORS,
    )
    async def post_disqualify(
        lead_id: LeadId, body: DisqualifyRequest, caller: Authenticated
    ) -> QualificationView:
        caller.require(*PEOPLE)
        return await answered(
            await handlers.disqualify_lead(
                units, DisqualifyLead(lead_id, body.reason, caller.seen, by=caller.actor)
            )
        )

    @api.get("/leads", tags=["leads"], summary="Leads by status (the nurture queue by default), newest first")
    async def list_leads(
        status: Status = "nurture",
        owner: Annotated[str | None, Query(max_length=320)] = None,
        *,
        caller: Authenticated,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[LeadSummary]:
        # The queue's row is the domain's summary as it is: one definition of what a row shows.
        rows, total = await views.leads_by_status(
            units, LeadsByStatus(status, owner).seen_by(caller), limit, offset
        )
        return Page[LeadSummary](items=rows, total=total, limit=limit, offset=offset)

    return api
