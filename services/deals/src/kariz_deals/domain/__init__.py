"""The deals domain: pipelines and stages, deals and their moves, accounts, the forecast. No I/O."""

from kariz_deals.domain.account import Account, normalise_domain, normalise_name
from kariz_deals.domain.deal import AccountRef, Deal, StageMove, StageVisit
from kariz_deals.domain.forecast import PipelineSummary, StageSummary, StageTotal, summarise
from kariz_deals.domain.pipeline import (
    DEFAULT_PIPELINE,
    LOST,
    PIPELINES,
    WON,
    Direction,
    ForecastCategory,
    Pipeline,
    Stage,
    pipeline_named,
)

__all__ = [
    "DEFAULT_PIPELINE",
    "LOST",
    "PIPELINES",
    "WON",
    "Account",
    "AccountRef",
    "Deal",
    "Direction",
    "ForecastCategory",
    "Pipeline",
    "PipelineSummary",
    "Stage",
    "StageMove",
    "StageSummary",
    "StageTotal",
    "StageVisit",
    "normalise_domain",
    "normalise_name",
    "pipeline_named",
    "summarise",
]
