"""Pipelines and their stages: the order a deal usually follows, each stage's win probability and the
forecast category a deal in it counts towards.

The one place that knows which pipeline is the default: everything else is handed the pipeline it works
with (a deal knows its own; bootstrap hands the default to the consumer, the API and the metrics)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from kariz_shared.contracts.errors import NotFound, RuleViolation
from kariz_shared.contracts.versions import next_version

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


class Requirement(StrEnum):
    """A field a deal must have filled in (or a state it must be in) to leave a stage forward."""

    AMOUNT = "amount"
    EXPECTED_CLOSE_DATE = "expected_close_date"
    DECISION_MAKER = "decision_maker"
    ACCEPTED_QUOTE = "accepted_quote"
    SIGNED_CONTRACT = "signed_contract"
    NO_BLOCKING_OBJECTIONS = "no_blocking_objections"


@dataclass(frozen=True)
class DealFacts:
    """What of a deal the exit criteria look at (as it would be after the move asked for)."""

    amount: Decimal | None
    expected_close_date: date | None
    decision_maker: str | None
    accepted_quote_id: str | None
    contract_status: str | None
    blocking_objections: int
    checklist: frozenset[str]

    def meets(self, requirement: Requirement) -> bool:
        match requirement:
            case Requirement.AMOUNT:
                return self.amount is not None
            case Requirement.EXPECTED_CLOSE_DATE:
                return self.expected_close_date is not None
            case Requirement.DECISION_MAKER:
                return bool(self.decision_maker)
            case Requirement.ACCEPTED_QUOTE:
                return self.accepted_quote_id is not None
            case Requirement.SIGNED_CONTRACT:
                return self.contract_status == "signed"
            case Requirement.NO_BLOCKING_OBJECTIONS:
                return self.blocking_objections == 0


@dataclass(frozen=True)
class ExitCriteria:
    """What a deal needs before it leaves a stage forward: fields filled in and checklist items done."""

    required: tuple[Requirement, ...] = ()
    checklist: tuple[str, ...] = ()

    def missing(self, facts: DealFacts) -> list[str]:
        """What ``facts`` lack, by name: the requirements, then ``checklist:<item>`` per item not done."""
        lacking = [r.value for r in self.required if not facts.meets(r)]
        return lacking + [f"checklist:{item}" for item in self.checklist if item not in facts.checklist]


@dataclass(frozen=True)
class Stage:
    name: str
    order: int
    probability: Decimal
    forecast_category: ForecastCategory
    # The entry criterion of the late stages: nobody proposes, negotiates or signs without a price.
    needs_amount: bool = False
    #: What a deal must have before it leaves this stage forward (see ``ExitCriteria``).
    exit_criteria: ExitCriteria = field(default_factory=lambda: ExitCriteria())
    #: Days a deal may sit in this stage before it is stalled (``DealStalled``); None: never.
    rot_days: int | None = None

    @property
    def is_closed(self) -> bool:
        return self.name in (WON, LOST)


@dataclass(frozen=True)
class Pipeline:
    name: str
    stages: tuple[Stage, ...]
    #: An activity logged for a deal (``ActivityLogged``) starts its stall clock again.
    activity_rearms: bool = True
    #: Which new deals enter this pipeline (none: only those sent to it by name, or the default's).
    routing: tuple[RoutingRule, ...] = ()

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

    def has_stage(self, name: str) -> bool:
        return any(s.name == name for s in self.stages)

    def left_by(self, from_stage: str, to_stage: str) -> list[Stage]:
        """The stages a forward move from ``from_stage`` to ``to_stage`` leaves: the one it is in and each it
        jumps over. None for a move back or to lost (giving up needs no criteria, only a reason)."""
        start, target = self.stage(from_stage), self.stage(to_stage)
        if target.name == LOST or target.order <= start.order:
            return []
        return [s for s in self.stages if start.order <= s.order < target.order and not s.is_closed]

    def unmet_exit_criteria(self, from_stage: str, to_stage: str, facts: DealFacts) -> dict[str, list[str]]:
        """Stage by stage, what ``facts`` lack to leave each stage the move leaves (empty: it may go)."""
        unmet = {s.name: s.exit_criteria.missing(facts) for s in self.left_by(from_stage, to_stage)}
        return {stage: lacking for stage, lacking in unmet.items() if lacking}

    def rot_days_of(self, stage: str) -> int | None:
        return self.stage(stage).rot_days


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

# --- pipelines an admin defines ---------------------------------------------------------------------

#: Who put version 0 (the built-in pipeline) in force.
SEEDED_BY = "/kariz/deals"
#: Bounds of a definition, so a stored pipeline stays small and every list in it is a short scan.
MAX_STAGES = 30
MAX_ROT_DAYS = 3650
MAX_ROUTING_RULES = 50
PIPELINE_NAME = r"^[a-z0-9][a-z0-9_-]{0,49}$"


class DealType(StrEnum):
    NEW_BUSINESS = "new_business"
    UPSELL = "upsell"
    CROSS_SELL = "cross_sell"
    RENEWAL = "renewal"
    RFP = "rfp"


class Segment(StrEnum):
    """A company's size band, as routing rules name it (from the account's employees)."""

    SMB = "smb"
    MID_MARKET = "mid_market"
    ENTERPRISE = "enterprise"

    @classmethod
    def of_size(cls, size: int | None) -> Segment | None:
        if size is None:
            return None
        # The usual bands of B2B sales: under 100 people, under 1,000, and the rest.
        if size < 100:
            return cls.SMB
        return cls.MID_MARKET if size < 1000 else cls.ENTERPRISE


@dataclass(frozen=True)
class DealProfile:
    """What a routing rule looks at of a deal about to be opened."""

    deal_type: DealType = DealType.NEW_BUSINESS
    segment: Segment | None = None
    product_line: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class RoutingRule:
    """New deals with every named trait (each an any-of set; empty: any) enter the rule's pipeline."""

    deal_types: frozenset[DealType] = frozenset()
    segments: frozenset[Segment] = frozenset()
    product_lines: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()

    @property
    def specificity(self) -> int:
        """How many traits it names: the more specific of two matching rules wins."""
        return sum(1 for part in (self.deal_types, self.segments, self.product_lines, self.countries) if part)

    def matches(self, deal: DealProfile) -> bool:
        wanted: tuple[tuple[frozenset[object], object], ...] = (
            (frozenset(self.deal_types), deal.deal_type),
            (frozenset(self.segments), deal.segment),
            (frozenset(self.product_lines), deal.product_line),
            (frozenset(self.countries), deal.country),
        )
        return all(not options or have in options for options, have in wanted)


def defined_pipeline(
    name: str,
    stages: list[Stage],
    *,
    activity_rearms: bool = True,
    routing: tuple[RoutingRule, ...] = (),
) -> Pipeline:
    """A pipeline from an admin's open stages, in their order, closed by won and lost (every pipeline
    ends the same way: the forecast and the events know those two). RuleViolation naming what is wrong."""
    if not stages:
        raise RuleViolation("stages: a pipeline needs at least one open stage")
    if len(stages) > MAX_STAGES:
        raise RuleViolation(f"stages: at most {MAX_STAGES} stages")
    names = [s.name for s in stages]
    for closing in (WON, LOST):
        if closing in names:
            raise RuleViolation(f"stages: {closing!r} closes every pipeline and is added to it; leave it out")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise RuleViolation(f"stages: each stage once; named twice: {', '.join(twice)}")
    if len(routing) > MAX_ROUTING_RULES:
        raise RuleViolation(f"routing: at most {MAX_ROUTING_RULES} rules")
    if name == DEFAULT_PIPELINE.name and routing:
        raise RuleViolation("routing: the default pipeline takes every deal no rule routes; it has no rules")
    ordered = [replace(stage, order=i) for i, stage in enumerate(stages, start=1)]
    ordered.append(Stage(WON, len(ordered) + 1, Decimal("1.0"), ForecastCategory.CLOSED, needs_amount=True))
    ordered.append(Stage(LOST, len(ordered) + 1, Decimal("0.0"), ForecastCategory.OMITTED))
    return Pipeline(name, tuple(ordered), activity_rearms=activity_rearms, routing=routing)


@dataclass(frozen=True)
class PipelineVersion:
    """One numbered version of one pipeline: version 0 of ``default`` is the built-in one."""

    number: int
    pipeline: Pipeline
    took_effect_at: datetime
    actor: str

    @property
    def name(self) -> str:
        return self.pipeline.name

    @classmethod
    def seeded(cls, at: datetime) -> PipelineVersion:
        return cls(0, DEFAULT_PIPELINE, at, SEEDED_BY)

    def replaced_by(
        self, pipeline: Pipeline, at: datetime, actor: str, *, edited: int | None = None
    ) -> PipelineVersion:
        """The version after this one; 409 when ``edited`` (If-Match) is not this one."""
        return PipelineVersion(
            next_version(f"pipeline {self.name!r}", self.number, edited), pipeline, at, actor
        )


@dataclass(frozen=True)
class StageMapping:
    """Where the open deals of stages a new version removes go: ``{removed stage: stage of the new one}``."""

    moves: Mapping[str, str] = field(default_factory=dict)

    def checked(self, old: Pipeline, new: Pipeline, occupied: set[str]) -> StageMapping:
        """This mapping, if every removed stage holding open deals (``occupied``) maps onto an open stage
        of ``new``; else a RuleViolation naming the stages without one."""
        for source, target in self.moves.items():
            if not old.has_stage(source) or new.has_stage(source):
                raise RuleViolation(f"stage_mapping: {source!r} is not a stage this change removes")
            if not new.has_stage(target) or new.stage(target).is_closed:
                raise RuleViolation(f"stage_mapping: {target!r} is not an open stage of the new pipeline")
        removed = sorted(s for s in occupied if not new.has_stage(s) and s not in self.moves)
        if removed:
            raise RuleViolation(
                "stage_mapping: open deals are in stages this change removes; say where they go: "
                + ", ".join(removed)
            )
        return self

    def target_of(self, stage: str) -> str | None:
        return self.moves.get(stage)


def route(pipelines: list[Pipeline], deal: DealProfile) -> Pipeline | None:
    """The pipeline a new deal enters: the one whose matching rule is the most specific (ties: the first
    by name); None when no rule matches (the default then)."""
    best: tuple[int, str, Pipeline] | None = None
    for pipeline in pipelines:
        for rule in pipeline.routing:
            if rule.matches(deal):
                candidate = (-rule.specificity, pipeline.name, pipeline)
                if best is None or candidate[:2] < best[:2]:
                    best = candidate
    return best[2] if best else None


def pipeline_named(name: str) -> Pipeline:
    try:
        return PIPELINES[name]
    except KeyError:
        raise NotFound(f"no pipeline {name!r}; known pipelines: {', '.join(PIPELINES)}") from None
