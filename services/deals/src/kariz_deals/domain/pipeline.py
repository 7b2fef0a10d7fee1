"""Pipelines and their stages: the order a deal usually follows, each stage's win probability and the
forecast category a deal in it counts towards.

The one place that knows which pipeline is the default: everything else is handed the pipeline it works
with (a deal knows its own; bootstrap hands the default to the consumer, the API and the metrics)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from kariz_shared.contracts.errors import NotFound, RuleViolation

WON = "won"
LOST = "lost"


class ForecastCategory(StrEnum):
    PIPELINE = "pipeline"
    BEST_CASE = "best_case"
    COMMIT = "commit"
    CLOSED = "closed"
    OMITTED = "omitted"


class Direction(StrEnum):
    FORWARD = "forward"
    BACK = "back"


@dataclass(frozen=True)
class Stage:
    name: str
    order: int
    probability: Decimal
    forecast_category: ForecastCategory
    # The entry criterion of the late stages: nobody proposes, negotiates or signs without a price.
    needs_amount: bool = False

    @property
    def is_closed(self) -> bool:
        return self.name in (WON, LOST)


@dataclass(frozen=True)
class Pipeline:
    name: str
    stages: tuple[Stage, ...]

    @property
    def first(self) -> Stage:
        return self.stages[0]

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.stages]

    @property
    def open_stages(self) -> list[Stage]:
        return [s for s in self.stages if not s.is_closed]

    def stage(self, name: str) -> Stage:
        """The stage called ``name``, or a RuleViolation that lists the valid ones."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        valid = ", ".join(self.stage_names)
        raise RuleViolation(f"unknown stage {name!r} in pipeline {self.name!r}; valid stages are: {valid}")

    def direction(self, from_stage: str, to_stage: str) -> Direction:
        return (
            Direction.FORWARD if self.stage(to_stage).order > self.stage(from_stage).order else Direction.BACK
        )


def _stage(
    order: int, name: str, probability: str, category: ForecastCategory, needs_amount: bool = False
) -> Stage:
    return Stage(name, order, Decimal(probability), category, needs_amount)


DEFAULT_PIPELINE = Pipeline(
    "default",
    (
        _stage(1, "qualification", "0.10", ForecastCategory.PIPELINE),
        _stage(2, "discovery", "0.20", ForecastCategory.PIPELINE),
        _stage(3, "demo", "0.40", ForecastCategory.BEST_CASE),
        _stage(4, "proposal", "0.60", ForecastCategory.BEST_CASE, needs_amount=True),
        _stage(5, "negotiation", "0.75", ForecastCategory.COMMIT, needs_amount=True),
        _stage(6, "contract", "0.90", ForecastCategory.COMMIT, needs_amount=True),
        _stage(7, WON, "1.0", ForecastCategory.CLOSED, needs_amount=True),
        _stage(8, LOST, "0.0", ForecastCategory.OMITTED),
    ),
)

PIPELINES: dict[str, Pipeline] = {DEFAULT_PIPELINE.name: DEFAULT_PIPELINE}


def pipeline_named(name: str) -> Pipeline:
    try:
        return PIPELINES[name]
    except KeyError:
        raise NotFound(f"no pipeline {name!r}; known pipelines: {', '.join(PIPELINES)}") from None
