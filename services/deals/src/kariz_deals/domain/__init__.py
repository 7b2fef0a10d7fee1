"""The deals domain: pipelines and stages, deals and their moves, accounts, the forecast, the read
side's criteria. No I/O."""

from kariz_deals.domain.account import Account, new_account_id, normalise_domain, normalise_name
from kariz_deals.domain.deal import AccountRef, Deal, StageMove, StageVisit, new_deal_id
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
from kariz_deals.domain.queries import DealCriteria, PipelineScope

__all__ = [
    "DEFAULT_PIPELINE",
    "LOST",
    "PIPELINES",
    "WON",
    "Account",
    "AccountRef",
    "Deal",
    "DealCriteria",
    "Direction",
    "ForecastCategory",
    "Pipeline",
    "PipelineScope",
    "PipelineSummary",
    "Stage",
    "StageMove",
    "StageSummary",
    "StageTotal",
    "StageVisit",
    "new_account_id",
    "new_deal_id",
    "normalise_domain",
    "normalise_name",
    "pipeline_named",
    "summarise",
]
