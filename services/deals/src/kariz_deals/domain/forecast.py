"""The pipeline in numbers: deals and value per stage, weighted by each stage's win probability."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from kariz_deals.domain.deal import to_cents
from kariz_deals.domain.pipeline import WON, Pipeline, Stage

ZERO = Decimal(0)


@dataclass(frozen=True)
class StageTotal:
    """What the database counted for one stage; deals without an amount count as 0."""

    count: int
    value: Decimal


@dataclass(frozen=True)
class StageSummary:
    stage: Stage
    count: int
    value: Decimal
    weighted_value: Decimal


@dataclass(frozen=True)
class PipelineSummary:
    pipeline: Pipeline
    stages: list[StageSummary]
    open_count: int
    open_value: Decimal
    open_weighted_value: Decimal
    won_count: int
    won_value: Decimal


def summarise(pipeline: Pipeline, totals: Mapping[str, StageTotal]) -> PipelineSummary:
    """Per stage in pipeline order, then the open totals (every stage but won and lost) and won.

    Weighted values are rounded to the cent per stage and the open total adds the rounded figures,
    so the numbers a manager sees add up.
    """
    stages: list[StageSummary] = []
    for stage in pipeline.stages:
        total = totals.get(stage.name, StageTotal(0, ZERO))
        stages.append(
            StageSummary(stage, total.count, total.value, to_cents(total.value * stage.probability))
        )
    open_stages = [s for s in stages if not s.stage.is_closed]
    won = next(s for s in stages if s.stage.name == WON)
    return PipelineSummary(
        pipeline=pipeline,
        stages=stages,
        open_count=sum(s.count for s in open_stages),
        open_value=sum((s.value for s in open_stages), ZERO),
        open_weighted_value=sum((s.weighted_value for s in open_stages), ZERO),
        won_count=won.count,
        won_value=won.value,
    )
