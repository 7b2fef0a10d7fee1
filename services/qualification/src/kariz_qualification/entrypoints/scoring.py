"""HTTP API of the closed loop: how the qualified leads did by score band and by rule
(``GET /scoring/performance``), the calibrations of the probability of winning (``/scoring/calibrations``),
and the points they suggest (``/scoring/suggestion``, applied as a new rule-set version)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Response
from pydantic import BaseModel, Field

from kariz_qualification.domain.calibration import PointSuggestion, WinModel, enough
from kariz_qualification.domain.outcomes import CalibrationRules, Tally
from kariz_qualification.domain.rules import RuleSet
from kariz_qualification.entrypoints.http import RULE_ERRORS, etag
from kariz_qualification.service_layer import outcomes
from kariz_qualification.service_layer.commands import ApplySuggestedPoints, Calibrate
from kariz_qualification.service_layer.unit_of_work import QualificationUnitOfWork
from kariz_shared.contracts.identity import Role
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate
from kariz_shared.runtime.http import IF_MATCH, Limit, Offset, Page, edited_version


class TallyView(BaseModel):
    won: int
    lost: int
    open: int = Field(description="Qualified leads whose deal has not closed (or was never opened)")
    closed: int = Field(description="Won + lost: how many outcomes the rate is based on")
    win_rate: float | None = Field(description="Won of closed; none while nothing closed")

    @staticmethod
    def fields_of(tally: Tally) -> dict[str, Any]:
        return {
            "won": tally.won,
            "lost": tally.lost,
            "open": tally.open,
            "closed": tally.closed,
            "win_rate": tally.win_rate,
        }


class BandView(TallyView):
    band: str = Field(description="Score at qualification, 10 points wide (e.g. 70-79)")


class RulePerformanceView(TallyView):
    rule: str
    matched: str
    lift: float | None = Field(
        description="Its win rate over the overall one: above 1, leads it gave points to won more often"
    )


class CalibrationView(BaseModel):
    version: int
    trained_at: datetime
    rules_version: int = Field(description="The rule-set version in force when it was trained")
    outcomes: int = Field(description="Closed outcomes it was trained on")
    won: int
    lost: int
    auc: float = Field(description="Out-of-sample (k-fold) area under the ROC curve: 0.5 a coin, 1 perfect")
    brier: float = Field(description="Out-of-sample Brier score: mean squared error of the probabilities")
    folds: int = Field(description="The folds of the out-of-sample measure")
    intercept: float
    weights: dict[str, float] = Field(description="Log-odds by rule=matched")

    @classmethod
    def of(cls, model: WinModel) -> CalibrationView:
        return cls(
            version=model.number,
            trained_at=model.trained_at,
            rules_version=model.rules_version,
            outcomes=model.outcomes,
            won=model.won,
            lost=model.lost,
            auc=model.auc,
            brier=model.brier,
            folds=model.folds,
            intercept=model.intercept,
            weights=dict(model.weights),
        )


class CalibrationStatus(BaseModel):
    status: Literal["calibrated", "not enough outcomes"]
    message: str
    age_seconds: float | None = Field(description="How old the calibration in force is; none without one")
    closed: int = Field(description="Closed outcomes kept now")
    needed: int = Field(description="Closed outcomes needed for a calibration (calibration.min_outcomes)")
    calibration: CalibrationView | None


class ScoringPerformanceView(BaseModel):
    at: datetime
    rules_version: int = Field(description="The rule-set version in force")
    overall: TallyView
    bands: list[BandView]
    rules: list[RulePerformanceView]
    calibration: CalibrationStatus


class SuggestionRow(BaseModel):
    rule: str
    matched: str
    current: int = Field(description="Its points in the rule set in force")
    suggested: int = Field(description="What the calibration's weight comes to on the rule set's scale")
    weight: float = Field(description="The calibration's log-odds for it")
    outcomes: int = Field(description="Closed outcomes of leads it gave points to")

    @classmethod
    def of(cls, suggestion: PointSuggestion) -> SuggestionRow:
        return cls(
            rule=suggestion.rule,
            matched=suggestion.matched,
            current=suggestion.current,
            suggested=suggestion.suggested,
            weight=suggestion.weight,
            outcomes=suggestion.outcomes,
        )


class SuggestionView(BaseModel):
    calibration: int | None = Field(description="The calibration suggesting; none yet: nothing to suggest")
    rules_version: int = Field(description="The rule-set version compared with (its ETag for If-Match)")
    rows: list[SuggestionRow] = Field(description="Every rule with enough outcomes, changed or not")
    changes: int = Field(description="How many rows suggest other points than the current")
    rules: RuleSet | None = Field(
        description="The rule set applying the suggestion would put in force; none when it would not be "
        "valid (e.g. the qualify threshold out of reach) or there is no calibration"
    )


def _status(view: outcomes.ScoringPerformance) -> CalibrationStatus:
    rules: CalibrationRules = view.rules.rules.calibration
    overall = view.report.overall
    model = view.model
    if model is None:
        message = (
            "calibrated on the next closed outcome"
            if enough(overall.won, overall.lost, rules)
            else f"not enough outcomes: {overall.closed} closed ({overall.won} won, {overall.lost} lost) "
            f"of {rules.min_outcomes} needed, {rules.min_each} of each; the rule score alone stands"
        )
        return CalibrationStatus(
            status="not enough outcomes",
            message=message,
            age_seconds=None,
            closed=overall.closed,
            needed=rules.min_outcomes,
            calibration=None,
        )
    return CalibrationStatus(
        status="calibrated",
        message=f"calibration {model.number}, trained on {model.outcomes} outcomes",
        age_seconds=(view.at - model.trained_at).total_seconds(),
        closed=overall.closed,
        needed=rules.min_outcomes,
        calibration=CalibrationView.of(model),
    )


def router(units: UnitsOfWork[QualificationUnitOfWork]) -> APIRouter:
    # The closed loop is the managers' to read and the admins' to act on.
    api = APIRouter(dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS, tags=["scoring"])

    @api.get(
        "/scoring/performance",
        summary="How qualified leads did: win rate by score band and by rule (with its lift), how many "
        "outcomes each is based on, and the calibration in force",
    )
    async def get_performance(caller: Authenticated) -> ScoringPerformanceView:
        caller.require(Role.ADMIN, Role.MANAGER)
        view = await outcomes.scoring_performance(units)
        report = view.report
        return ScoringPerformanceView(
            at=view.at,
            rules_version=view.rules.number,
            overall=TallyView(**TallyView.fields_of(report.overall)),
            bands=[BandView(band=band, **TallyView.fields_of(t)) for band, t in report.bands.items()],
            rules=[
                RulePerformanceView(
                    rule=feature.split("=", 1)[0],
                    matched=feature.split("=", 1)[1],
                    lift=report.lift(feature),
                    **TallyView.fields_of(t),
                )
                for feature, t in report.rules.items()
            ],
            calibration=_status(view),
        )

    @api.get("/scoring/calibrations", summary="The calibrations, newest first (the first is in force)")
    async def list_calibrations(
        caller: Authenticated, limit: Limit = 50, offset: Offset = 0
    ) -> Page[CalibrationView]:
        caller.require(Role.ADMIN, Role.MANAGER)
        models, total = await outcomes.calibrations(units, limit, offset)
        return Page[CalibrationView](
            items=[CalibrationView.of(m) for m in models], total=total, limit=limit, offset=offset
        )

    @api.post(
        "/scoring/calibrations",
        status_code=201,
        summary="Calibrate now from the outcomes kept (one is also made every calibration.retrain_every "
        "closed outcomes)",
        responses={
            409: {"description": "Another calibration took the same version number first; send it again"},
            422: {"description": "Not enough outcomes: the message says how many there are and are needed"},
        },
    )
    async def post_calibration(caller: Authenticated) -> CalibrationView:
        caller.require(Role.ADMIN)
        return CalibrationView.of(await outcomes.calibrate(units, Calibrate(caller.actor)))

    @api.get(
        "/scoring/suggestion",
        summary="The current points beside those the calibration in force suggests, and the rule set "
        "applying them would make",
    )
    async def get_suggestion(caller: Authenticated, response: Response) -> SuggestionView:
        caller.require(Role.ADMIN, Role.MANAGER)
        view = await outcomes.scoring_performance(units)
        response.headers["ETag"] = etag(view.rules)
        changes = [s for s in view.suggestions if s.suggested != s.current]
        return SuggestionView(
            calibration=None if view.model is None else view.model.number,
            rules_version=view.rules.number,
            rows=[SuggestionRow.of(s) for s in view.suggestions],
            changes=len(changes),
            rules=outcomes.suggested_rules(view.rules.rules, changes) if view.model is not None else None,
        )

    @api.post(
        "/scoring/suggestion/apply",
        summary="Put the suggested points in force: a new version of the rule set (GET /rules/versions)",
        responses={
            409: RULE_ERRORS[409],
            422: {
                "description": "No calibration yet, no point to change, the suggested rule set is not "
                "valid, or an invalid If-Match; the message says which"
            },
        },
    )
    async def apply_suggestion(
        caller: Authenticated,
        response: Response,
        if_match: Annotated[
            str | None,
            Header(
                pattern=IF_MATCH,
                description="The ETag of the rule-set version the suggestion was read against (GET "
                '/scoring/suggestion, e.g. "3"): refused with 409 if another is in force by now',
            ),
        ] = None,
    ) -> RuleSet:
        caller.require(Role.ADMIN)
        version = await outcomes.apply_suggested_points(
            units, ApplySuggestedPoints(caller.actor, edited_version(if_match))
        )
        response.headers["ETag"] = etag(version)
        return version.rules

    return api
