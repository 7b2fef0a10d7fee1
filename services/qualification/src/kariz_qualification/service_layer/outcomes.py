"""The closed loop: qualified leads are kept with the rules that qualified them, their deals' outcomes
(``DealWon``, ``DealLost``) are counted against them, and once enough have closed the score is calibrated
(a new version every ``retrain_every`` outcomes, or when an admin asks) and can suggest new points."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from kariz_qualification.domain.calibration import (
    NotEnoughOutcomes,
    PointSuggestion,
    WinModel,
    enough,
    suggest,
    train,
    with_suggested_points,
)
from kariz_qualification.domain.lead import Lead
from kariz_qualification.domain.outcomes import Closed, Performance, QualifiedLead, features_of, performance
from kariz_qualification.domain.rule_versions import RuleSetVersion
from kariz_qualification.domain.rules import RuleSet
from kariz_qualification.service_layer.commands import ApplySuggestedPoints, Calibrate
from kariz_qualification.service_layer.unit_of_work import QualificationUnitOfWork
from kariz_qualification.service_layer.views import survivor
from kariz_shared.contracts.errors import DuplicateRecord, RuleViolation
from kariz_shared.contracts.events import DealLost, DealWon
from kariz_shared.contracts.versions import next_version, raced
from kariz_shared.persistence.unit_of_work import UnitsOfWork

log = logging.getLogger(__name__)


def qualified_lead(lead: Lead) -> QualifiedLead:
    """A qualified lead as the closed loop keeps it: the scoring that qualified it (its latest: a
    qualified lead is scored no more)."""
    assert lead.decision is not None and lead.decision.outcome == "qualified", lead.lead_id
    latest = lead.latest
    return QualifiedLead(
        lead_id=lead.lead_id,
        qualified_at=lead.decision.at,
        score=lead.score,
        features=features_of(lead.breakdown),
        rules_version=None if latest is None else latest.rules_version,
    )


def keep_if_qualified(uow: QualificationUnitOfWork, lead: Lead) -> None:
    """Called as a lead is decided: a qualification starts its row, open until its deal closes."""
    if lead.decision is not None and lead.decision.outcome == "qualified" and lead.merged_into is None:
        uow.outcomes.add(qualified_lead(lead))


# --- consumed events ------------------------------------------------------------------------------


async def count_won(uow: QualificationUnitOfWork, event: DealWon) -> None:
    await _count(uow, event.lead_id, "won", event.won_at, event.deal_id)


async def count_lost(uow: QualificationUnitOfWork, event: DealLost) -> None:
    await _count(uow, event.lead_id, "lost", event.lost_at, event.deal_id)


async def _count(
    uow: QualificationUnitOfWork, lead_id: str, result: Closed, at: datetime, deal_id: str
) -> None:
    row = await _row_of(uow, lead_id)
    if row is None:
        # A deal opened by hand, or of a lead never qualified here: it says nothing about the score.
        log.info("outcome of a deal whose lead qualification did not qualify", extra={"lead_id": lead_id})
        return
    if row.already(result, deal_id):
        return
    await uow.outcomes.save(row.closed(result, at, deal_id))
    metrics = uow.metrics
    uow.after_commit(lambda: metrics.outcome_closed(result))
    await _calibrate_if_due(uow)


async def _row_of(uow: QualificationUnitOfWork, lead_id: str) -> QualifiedLead | None:
    """The row of the lead the deal was opened for: its own, or, when it was merged (deals moves a
    duplicate's deals to the survivor), the survivor's or that of a lead merged into it."""
    row = await uow.outcomes.get(lead_id)
    if row is not None:
        return row
    lead = await survivor(uow, lead_id)
    if lead is None:
        return None
    for candidate in (lead.lead_id, *lead.merged_from):
        row = await uow.outcomes.get(candidate)
        if row is not None:
            return row
    if lead.decision is not None and lead.decision.outcome == "qualified":
        return qualified_lead(lead)  # qualified before outcomes were kept
    return None


async def _calibrate_if_due(uow: QualificationUnitOfWork) -> None:
    in_force = await uow.rules.current()
    rules = in_force.rules.calibration
    won, lost = await uow.outcomes.closed_counts()
    if not enough(won, lost, rules):
        return
    latest = await uow.calibrations.latest()
    if latest is not None and won + lost - latest.closed < rules.retrain_every:
        return
    await _calibrate(uow, in_force, latest)


async def _calibrate(
    uow: QualificationUnitOfWork, in_force: RuleSetVersion, latest: WinModel | None
) -> WinModel:
    rules = in_force.rules.calibration
    won, lost = await uow.outcomes.closed_counts()
    model = train(
        await uow.outcomes.closed(newest=rules.max_outcomes),
        rules,
        number=1 if latest is None else latest.number + 1,
        at=uow.clock.now(),
        rules_version=in_force.number,
        closed_in_all=won + lost,
    )
    # Another replica (or consumer) calibrating at once takes the same number: DuplicateRecord fails this
    # unit, and the consumer's retry finds that calibration in force.
    await uow.calibrations.add(model)
    metrics = uow.metrics
    uow.after_commit(lambda: metrics.calibrated(model))
    log.info("calibrated the score", extra={"version": model.number, "outcomes": model.outcomes})
    return model


# --- commands -------------------------------------------------------------------------------------


async def calibrate(units: UnitsOfWork[QualificationUnitOfWork], command: Calibrate) -> WinModel:
    """A new calibration now (422 with too few outcomes, saying how many there are and are needed)."""
    numbers: list[int] = []

    async def work(uow: QualificationUnitOfWork) -> WinModel:
        latest = await uow.calibrations.latest()
        numbers.append(1 if latest is None else latest.number + 1)
        try:
            model = await _calibrate(uow, await uow.rules.current(), latest)
        except NotEnoughOutcomes as exc:
            raise RuleViolation(str(exc)) from exc
        log.info("calibration asked for", extra={"actor": command.actor, "version": model.number})
        return model

    try:
        return await units.run(work)
    except DuplicateRecord as exc:
        raise raced("the calibration", numbers[-1]) from exc


async def apply_suggested_points(
    units: UnitsOfWork[QualificationUnitOfWork], command: ApplySuggestedPoints
) -> RuleSetVersion:
    """Put the calibration's suggested points in force as a new rule-set version (everything else of
    the rule set as it is). Refused (422) without a calibration, with no point to change, or when the
    new points would leave the qualify threshold out of reach; 409 as any edit of a stale version."""
    numbers: list[int] = []

    async def work(uow: QualificationUnitOfWork) -> RuleSetVersion:
        in_force = await uow.rules.current()
        # A stale edit first (409): what the admin compared is not what is in force any more.
        next_version("the rule set", in_force.number, command.edited_version)
        model = await uow.calibrations.latest()
        if model is None:
            raise RuleViolation("no calibration yet: the outcomes kept are not enough to suggest points")
        suggestions = suggest(
            model, in_force.rules, _support(await uow.outcomes.every()), in_force.rules.calibration
        )
        changes = [s for s in suggestions if s.suggested != s.current]
        if not changes:
            raise RuleViolation(f"calibration {model.number} suggests the points in force: nothing to change")
        try:
            rules = with_suggested_points(in_force.rules, changes)
        except ValidationError as exc:
            raise RuleViolation(
                f"the suggested points make an invalid rule set: {exc.errors()[0]['msg']}"
            ) from exc
        version = in_force.replaced_by(rules, uow.clock.now(), command.actor, edited=command.edited_version)
        numbers.append(version.number)
        await uow.rules.add(version)
        return version

    try:
        return await units.run(work)
    except DuplicateRecord as exc:
        raise raced("the rule set", numbers[-1]) from exc


# --- queries --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoringPerformance:
    """The performance report: the outcomes counted, the calibration in force, and what it suggests."""

    report: Performance
    model: WinModel | None
    rules: RuleSetVersion
    suggestions: list[PointSuggestion]
    at: datetime


async def scoring_performance(units: UnitsOfWork[QualificationUnitOfWork]) -> ScoringPerformance:
    async def read(uow: QualificationUnitOfWork) -> ScoringPerformance:
        rows = await uow.outcomes.every()
        in_force = await uow.rules.current()
        model = await uow.calibrations.latest()
        suggestions = (
            []
            if model is None
            else suggest(model, in_force.rules, _support(rows), in_force.rules.calibration)
        )
        return ScoringPerformance(performance(rows), model, in_force, suggestions, uow.clock.now())

    return await units.read(read)


async def calibrations(
    units: UnitsOfWork[QualificationUnitOfWork], limit: int, offset: int
) -> tuple[list[WinModel], int]:
    async def read(uow: QualificationUnitOfWork) -> tuple[list[WinModel], int]:
        return await uow.calibrations.page(limit, offset)

    return await units.read(read)


def suggested_rules(rules: RuleSet, suggestions: list[PointSuggestion]) -> RuleSet | None:
    """The rule set the suggestion would put in force (None when it is not a valid one)."""
    try:
        return with_suggested_points(rules, suggestions)
    except ValidationError:
        return None


def _support(rows: list[QualifiedLead]) -> dict[str, int]:
    """Closed outcomes per feature."""
    counts: dict[str, int] = {}
    for row in rows:
        if row.is_closed:
            for feature in row.features:
                counts[feature] = counts.get(feature, 0) + 1
    return counts
