"""The HTTP API of pipelines an admin defines (``/pipelines``: anyone signed in reads them, an admin
defines and replaces them, versioned with the ETag/If-Match of every versioned configuration) and of deal
edits (``PATCH /deals/{id}``: the owner, their manager or an admin)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kariz_deals.domain import (
    DealChanges,
    DealType,
    ExitCriteria,
    ForecastCategory,
    Pipeline,
    PipelineVersion,
    Requirement,
    RoutingRule,
    Segment,
    Stage,
    StageMapping,
    defined_pipeline,
)
from kariz_deals.domain.pipeline import MAX_ROT_DAYS, MAX_ROUTING_RULES, MAX_STAGES, PIPELINE_NAME
from kariz_deals.entrypoints.http import DealView
from kariz_deals.service_layer import pipelines
from kariz_deals.service_layer.pipelines import EditDeal
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_shared.contracts.errors import Forbidden, RuleViolation
from kariz_shared.contracts.identity import PEOPLE, Role
from kariz_shared.contracts.normalisation import normalise_email
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate
from kariz_shared.runtime.http import IF_MATCH, Limit, Offset, Page, edited_version, version_etag

StageName = Annotated[str, Field(pattern=PIPELINE_NAME, description="Lower case, digits, - and _")]
ChecklistItem = Annotated[str, Field(min_length=1, max_length=100)]
Text = Annotated[str, Field(min_length=1, max_length=200)]
Country = Annotated[str, Field(pattern="^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
PipelineName = Annotated[str, Path(pattern=PIPELINE_NAME, description="The pipeline's name")]


# --- requests -------------------------------------------------------------------------------------


class ExitCriteriaBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    required: list[Requirement] = Field(default_factory=list, max_length=len(Requirement))
    checklist: list[ChecklistItem] = Field(default_factory=list, max_length=20)

    @field_validator("required", "checklist")
    @classmethod
    def _once(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError("each item once")
        return values


class StageBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: StageName
    probability: Decimal = Field(ge=0, le=1, max_digits=4, decimal_places=3, description="0 to 1")
    forecast_category: ForecastCategory
    needs_amount: bool = Field(default=False, description="A deal enters it only with an amount")
    exit_criteria: ExitCriteriaBody = Field(default_factory=ExitCriteriaBody)
    rot_days: int | None = Field(default=None, ge=1, le=MAX_ROT_DAYS, description="Days before it stalls")

    def stage(self) -> Stage:
        criteria = ExitCriteria(tuple(self.exit_criteria.required), tuple(self.exit_criteria.checklist))
        # The order is the position in the list (defined_pipeline numbers them).
        return Stage(
            self.name, 0, self.probability, self.forecast_category, self.needs_amount, criteria, self.rot_days
        )


class RoutingRuleBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    deal_types: list[DealType] = Field(default_factory=list, max_length=len(DealType))
    segments: list[Segment] = Field(default_factory=list, max_length=len(Segment))
    product_lines: list[Text] = Field(default_factory=list, max_length=50)
    countries: list[Country] = Field(default_factory=list, max_length=250)

    def rule(self) -> RoutingRule:
        return RoutingRule(
            frozenset(self.deal_types),
            frozenset(self.segments),
            frozenset(self.product_lines),
            frozenset(self.countries),
        )


class PipelineBody(BaseModel):
    """A pipeline's open stages, in order (won and lost close it and are added), and its rules."""

    model_config = ConfigDict(extra="forbid")

    stages: list[StageBody] = Field(min_length=1, max_length=MAX_STAGES)
    activity_rearms: bool = Field(
        default=True, description="An activity logged for a deal starts its stall clock again"
    )
    routing: list[RoutingRuleBody] = Field(
        default_factory=list,
        max_length=MAX_ROUTING_RULES,
        description="New deals matching a rule (every trait it names) enter this pipeline",
    )

    def pipeline(self, name: str) -> Pipeline:
        return defined_pipeline(
            name,
            [s.stage() for s in self.stages],
            activity_rearms=self.activity_rearms,
            routing=tuple(r.rule() for r in self.routing),
        )


class NewPipelineBody(PipelineBody):
    name: StageName


class ReplacePipelineBody(PipelineBody):
    stage_mapping: dict[StageName, StageName] = Field(
        default_factory=dict,
        max_length=MAX_STAGES,
        description="Where the open deals of each removed stage go: {removed stage: stage of this version}",
    )


class DealPatchBody(BaseModel):
    """The fields to change; a field sent as null is emptied (amount and owner cannot be)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    amount: Decimal | None = Field(default=None, gt=0, max_digits=18, decimal_places=2)
    expected_close_date: date | None = None
    owner: str | None = Field(default=None, max_length=320, description="A manager or an admin reassigns")
    next_step: str | None = Field(default=None, min_length=1, max_length=500)
    deal_type: DealType | None = None
    product_line: str | None = Field(default=None, min_length=1, max_length=200)
    decision_maker: str | None = Field(default=None, min_length=1, max_length=200)
    competitor: str | None = Field(default=None, min_length=1, max_length=200)
    checklist: list[ChecklistItem] | None = Field(
        default=None, max_length=100, description="The exit criteria's checklist items done (all of them)"
    )

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        return None if value is None else normalise_email(value)

    @field_validator("expected_close_date")
    @classmethod
    def _year(cls, value: date | None) -> date | None:
        if value is not None and not 2000 <= value.year <= 2200:
            raise ValueError("a close date between the years 2000 and 2200")
        return value

    def changes(self) -> DealChanges:
        sent = self.model_fields_set
        if not sent:
            raise RuleViolation("body: name at least one field to change")
        for kept in ("amount", "owner"):
            if kept in sent and getattr(self, kept) is None:
                raise RuleViolation(f"{kept}: a deal's {kept} can be changed, not emptied")
        cleared = frozenset(name for name in sent if getattr(self, name) is None)
        return DealChanges(
            amount=self.amount,
            expected_close_date=self.expected_close_date,
            owner=self.owner,
            next_step=self.next_step,
            deal_type=self.deal_type,
            product_line=self.product_line,
            decision_maker=self.decision_maker,
            competitor=self.competitor,
            checklist=frozenset(self.checklist) if self.checklist is not None else None,
            cleared=cleared,
        )


# --- responses ------------------------------------------------------------------------------------


class ExitCriteriaView(BaseModel):
    required: list[str]
    checklist: list[str]


class StageDefinitionView(BaseModel):
    name: str
    order: int
    probability: float
    forecast_category: str
    needs_amount: bool
    closed: bool
    exit_criteria: ExitCriteriaView
    rot_days: int | None


class RoutingRuleView(BaseModel):
    deal_types: list[str]
    segments: list[str]
    product_lines: list[str]
    countries: list[str]


class PipelineVersionView(BaseModel):
    name: str
    version: int
    took_effect_at: datetime
    actor: str = Field(description="Who put this version in force (/kariz/deals: the built-in one)")
    activity_rearms: bool
    stages: list[StageDefinitionView]
    routing: list[RoutingRuleView]

    @classmethod
    def of(cls, version: PipelineVersion) -> PipelineVersionView:
        pipeline = version.pipeline
        return cls(
            name=pipeline.name,
            version=version.number,
            took_effect_at=version.took_effect_at,
            actor=version.actor,
            activity_rearms=pipeline.activity_rearms,
            stages=[
                StageDefinitionView(
                    name=s.name,
                    order=s.order,
                    probability=float(s.probability),
                    forecast_category=s.forecast_category.value,
                    needs_amount=s.needs_amount,
                    closed=s.is_closed,
                    exit_criteria=ExitCriteriaView(
                        required=[r.value for r in s.exit_criteria.required],
                        checklist=list(s.exit_criteria.checklist),
                    ),
                    rot_days=s.rot_days,
                )
                for s in pipeline.stages
            ],
            routing=[
                RoutingRuleView(
                    deal_types=sorted(r.deal_types),
                    segments=sorted(r.segments),
                    product_lines=sorted(r.product_lines),
                    countries=sorted(r.countries),
                )
                for r in pipeline.routing
            ],
        )


class ReplacedPipelineView(PipelineVersionView):
    deals_following: int = Field(description="Open deals that follow this version from now on")
    deals_moved: int = Field(description="Of those, moved out of a removed stage (reason 'pipeline changed')")


# --- routes ---------------------------------------------------------------------------------------

IF_MATCH_HEADER = Header(
    pattern=IF_MATCH,
    description='The ETag of the version edited (from GET /pipelines/{name}, e.g. "3"): refused with 409 if '
    "another is in force by now. Without it, whatever is in force is replaced",
)


def router(units: UnitsOfWork[DealsUnitOfWork]) -> APIRouter:
    routes = APIRouter(tags=["pipelines"], dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    @routes.get("/pipelines", summary="Every pipeline, the version in force of each")
    async def list_pipelines(caller: Authenticated) -> list[PipelineVersionView]:
        caller.require(*PEOPLE)
        return [PipelineVersionView.of(v) for v in await pipelines.pipelines_in_force(units)]

    @routes.post(
        "/pipelines",
        status_code=201,
        summary="Define a new pipeline (version 1)",
        responses={403: {"description": "Not an admin"}, 409: {"description": "The name is taken"}},
    )
    async def define(body: NewPipelineBody, caller: Authenticated, response: Response) -> PipelineVersionView:
        caller.require(Role.ADMIN)
        version = await pipelines.define_pipeline(units, body.pipeline(body.name), caller.actor)
        response.headers["ETag"] = version_etag(version.number)
        return PipelineVersionView.of(version)

    @routes.get(
        "/pipelines/{name}",
        summary="A pipeline's version in force (its number in the ETag)",
        responses={404: {"description": "No such pipeline"}},
    )
    async def get_pipeline(
        name: PipelineName, caller: Authenticated, response: Response
    ) -> PipelineVersionView:
        caller.require(*PEOPLE)
        version = await pipelines.pipeline_in_force(units, name)
        response.headers["ETag"] = version_etag(version.number)
        return PipelineVersionView.of(version)

    @routes.put(
        "/pipelines/{name}",
        summary="Replace a pipeline: a new version; its open deals follow it",
        description="A stage that holds open deals can be removed only with `stage_mapping` saying where "
        "they go; they are moved there with `StageChanged` (reason 'pipeline changed'). Deals keep their "
        "stage history; closed deals keep the version they closed in.",
        responses={
            403: {"description": "Not an admin"},
            404: {"description": "No such pipeline"},
            409: {"description": "If-Match names a version no longer in force"},
            422: {"description": "An invalid definition, or open deals in a removed stage with no mapping"},
        },
    )
    async def replace(
        name: PipelineName,
        body: ReplacePipelineBody,
        caller: Authenticated,
        response: Response,
        if_match: Annotated[str | None, IF_MATCH_HEADER] = None,
    ) -> ReplacedPipelineView:
        caller.require(Role.ADMIN)
        replaced = await pipelines.replace_pipeline(
            units,
            body.pipeline(name),
            StageMapping(body.stage_mapping),
            caller.as_actor,
            edited_version(if_match),
        )
        response.headers["ETag"] = version_etag(replaced.version.number)
        return ReplacedPipelineView(
            **PipelineVersionView.of(replaced.version).model_dump(),
            deals_following=replaced.following,
            deals_moved=replaced.moved,
        )

    @routes.get(
        "/pipelines/{name}/versions", summary="A pipeline's versions, newest first, each with its actor"
    )
    async def list_versions(
        name: PipelineName, caller: Authenticated, limit: Limit = 50, offset: Offset = 0
    ) -> Page[PipelineVersionView]:
        caller.require(Role.MANAGER, Role.ADMIN)
        versions, total = await pipelines.pipeline_versions(units, name, limit=limit, offset=offset)
        return Page[PipelineVersionView](
            items=[PipelineVersionView.of(v) for v in versions], total=total, limit=limit, offset=offset
        )

    @routes.patch(
        "/deals/{deal_id}",
        tags=["deals"],
        summary="Change a deal's fields (DealUpdated for amount, close date, owner, next step, type)",
        responses={
            403: {"description": "A rep changing the owner, or a new owner outside the manager's team"},
            404: {"description": "No such deal (or not the caller's to see)"},
            409: {"description": "The deal is closed (amount and owner stay), or changed meanwhile"},
            422: {"description": "An invalid field, or none named"},
        },
    )
    async def edit(deal_id: str, body: DealPatchBody, caller: Authenticated) -> DealView:
        caller.require(*PEOPLE)
        changes = body.changes()
        if changes.owner is not None:
            # B's rules: a manager hands a deal to a rep of their team, an admin to anyone.
            caller.require(Role.MANAGER, Role.ADMIN)
            if not caller.seen.include(changes.owner):
                raise Forbidden(f"owner: {changes.owner} is not in your team")
        deal = await pipelines.edit_deal(units, EditDeal(deal_id, changes, caller.seen, caller.as_actor))
        return DealView.of(deal, units.clock.now())

    return routes
