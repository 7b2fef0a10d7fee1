"""The HTTP API of the roster (``/reps``: admins, and managers for their own team) and of the assignment
rules (``/assignment-rules``: admins change them, managers read them), versioned like qualification's
scoring rules: the version in force in the ETag, ``If-Match`` on a replacement (409 when stale)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kariz_leads.domain.assignment_rules import (
    MAX_RULES,
    AssignmentRule,
    AssignmentRules,
    AssignmentRulesVersion,
)
from kariz_leads.domain.regions import Region
from kariz_leads.domain.roster import (
    MAX_CAPACITY,
    MAX_WEIGHT,
    Rep,
    RosterAccess,
    locale_tag,
    team_name,
    time_zone_name,
)
from kariz_leads.entrypoints.http import SIZE_MAX, ErrorView
from kariz_leads.service_layer import roster
from kariz_leads.service_layer.roster import RepChange
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import LeadSource
from kariz_shared.contracts.identity import Caller, Role
from kariz_shared.contracts.normalisation import normalise_email
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

RepEmail = Annotated[str, Path(max_length=320, description="The rep's e-mail address")]


def access_of(caller: Caller) -> RosterAccess:
    """An admin keeps the whole roster, a manager their team's (the token's team); 403 for anyone else."""
    caller.require(Role.ADMIN, Role.MANAGER)
    return RosterAccess(admin=caller.has(Role.ADMIN), team=caller.team)


# --- the roster -----------------------------------------------------------------------------------


class RepRequest(BaseModel):
    """A rep whole (PUT replaces): every field left out takes its default."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200, examples=["Jonas Weber"])
    team: str = Field(max_length=64, examples=["dach"])
    manager: str | None = Field(default=None, max_length=320, description="The e-mail of the rep's manager")
    time_zone: str = Field(default="UTC", max_length=64, description="IANA time zone, e.g. Europe/Berlin")
    locale: str = Field(default="en", max_length=35, description="BCP 47 language tag, e.g. en, fa-IR")
    active: bool = Field(
        default=True, description="false: the rep left or takes no leads (kept, never deleted)"
    )
    capacity: int | None = Field(
        default=None,
        ge=1,
        le=MAX_CAPACITY,
        strict=True,
        description="Open leads (new or working) at most; null: no limit",
    )
    weight: int = Field(
        default=1,
        ge=1,
        le=MAX_WEIGHT,
        strict=True,
        description="Share of the team's new leads, relative to its other reps",
    )
    away_until: datetime | None = Field(
        default=None, description="Gets no new leads before this time (ISO 8601 with its zone)"
    )

    @field_validator("team")
    @classmethod
    def _team(cls, value: str) -> str:
        return team_name(value)

    @field_validator("manager")
    @classmethod
    def _manager(cls, value: str | None) -> str | None:
        return normalise_email(value) if value and value.strip() else None

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        return time_zone_name(value)

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str) -> str:
        return locale_tag(value)

    @field_validator("away_until")
    @classmethod
    def _away_until(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("a time with its zone, e.g. 2026-12-24T09:00:00Z")
        return value

    def change(self, email: str) -> RepChange:
        return RepChange(email=email, **self.model_dump())


class RepView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    email: str
    name: str | None
    team: str
    manager: str | None
    time_zone: str
    locale: str
    active: bool
    capacity: int | None
    weight: int
    away_until: datetime | None
    updated_at: datetime
    actor: str = Field(description="Who made the last change")

    @classmethod
    def of(cls, rep: Rep) -> RepView:
        return cls.model_validate(rep)


# --- the assignment rules -------------------------------------------------------------------------


class AssignmentRuleModel(BaseModel):
    """One rule: the criteria it names must all hold (countries and regions are one criterion: either);
    a rule naming none matches every lead, and may only be the last."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["DACH enterprise"])
    team: str = Field(max_length=64, description="The team that gets the leads it matches", examples=["dach"])
    countries: list[str] = Field(default=[], max_length=300, description="ISO 3166-1 alpha-2 codes")
    regions: list[Region] = Field(default=[], description="Sales regions (EMEA, NA, LATAM, APAC)")
    industries: list[str] = Field(default=[], max_length=100)
    size_min: int | None = Field(
        default=None, ge=1, le=SIZE_MAX, strict=True, description="Employees, at least"
    )
    size_max: int | None = Field(
        default=None, ge=1, le=SIZE_MAX, strict=True, description="Employees, at most"
    )
    sources: list[LeadSource] = Field(default=[])
    campaigns: list[str] = Field(default=[], max_length=100)

    @model_validator(mode="after")
    def _rule(self) -> AssignmentRuleModel:
        self.rule()  # the domain's checks: each value normalised, size_min <= size_max, a team
        return self

    def rule(self) -> AssignmentRule:
        return AssignmentRule.of(**self.model_dump())

    @classmethod
    def of(cls, rule: AssignmentRule) -> AssignmentRuleModel:
        return cls(
            name=rule.name,
            team=rule.team,
            countries=sorted(rule.countries),
            regions=sorted(rule.regions),
            industries=sorted(rule.industries),
            size_min=rule.size_min,
            size_max=rule.size_max,
            sources=sorted(rule.sources),
            campaigns=sorted(rule.campaigns),
        )


class AssignmentRulesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[AssignmentRuleModel] = Field(
        max_length=MAX_RULES, description="In order: the first rule that matches a lead names its team"
    )

    @model_validator(mode="after")
    def _rules(self) -> AssignmentRulesRequest:
        self.assignment_rules()  # unique names; a rule matching everything last
        return self

    def assignment_rules(self) -> AssignmentRules:
        return AssignmentRules.of([rule.rule() for rule in self.rules])


class AssignmentRulesVersionView(BaseModel):
    version: int = Field(
        description="0: no rules (every lead assigned by the settings' territories and rotation)"
    )
    took_effect_at: datetime
    actor: str = Field(description="Who put it in force (kariz for version 0)")
    rules: list[AssignmentRuleModel]

    @classmethod
    def of(cls, version: AssignmentRulesVersion) -> AssignmentRulesVersionView:
        return cls(
            version=version.number,
            took_effect_at=version.took_effect_at,
            actor=version.actor,
            rules=[AssignmentRuleModel.of(rule) for rule in version.rules.rules],
        )


class AssignmentRulesVersionRow(BaseModel):
    version: int
    took_effect_at: datetime
    actor: str
    rules: int = Field(description="How many rules it holds")
    teams: list[str] = Field(description="The teams its rules name")

    @classmethod
    def of(cls, version: AssignmentRulesVersion) -> AssignmentRulesVersionRow:
        rules = version.rules.rules
        return cls(
            version=version.number,
            took_effect_at=version.took_effect_at,
            actor=version.actor,
            rules=len(rules),
            teams=sorted({rule.team for rule in rules}),
        )


RULE_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorView, "description": "Not an admin"},
    409: {
        "model": ErrorView,
        "description": "If-Match names a version no longer in force (another admin replaced the rules "
        "first), or a concurrent replacement took the number; nothing was changed",
    },
    422: {"model": ErrorView, "description": "An invalid rule, named by its place and field"},
}


def router(units: UnitsOfWork[LeadsUnitOfWork]) -> APIRouter:
    routes = APIRouter(dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    @routes.get(
        "/reps",
        tags=["roster"],
        summary="The roster: every rep for an admin, their team's for a manager, by e-mail",
        responses={403: {"model": ErrorView, "description": "A rep or a machine"}},
    )
    async def list_reps(caller: Authenticated, limit: Limit = 50, offset: Offset = 0) -> Page[RepView]:
        found, total = await roster.reps(units, access_of(caller), limit=limit, offset=offset)
        return Page[RepView](items=[RepView.of(r) for r in found], total=total, limit=limit, offset=offset)

    @routes.get(
        "/reps/{email}",
        tags=["roster"],
        summary="One rep",
        responses={404: {"model": ErrorView, "description": "No such rep (in the manager's team)"}},
    )
    async def get_rep(email: RepEmail, caller: Authenticated) -> RepView:
        return RepView.of(await roster.rep(units, _address(email), access_of(caller)))

    @routes.put(
        "/reps/{email}",
        tags=["roster"],
        summary="Create or replace a rep; published as RepProfile (kariz.reps.v1)",
        description="An admin keeps any rep, a manager the reps of their own team (and cannot move one to "
        "another team). A rep who leaves is `active: false`, never deleted. Assignment rules give a team's "
        "new leads to its active reps who are not away and below capacity, by weight.",
        responses={
            201: {"model": RepView, "description": "A new rep"},
            403: {"model": ErrorView, "description": "A rep, or a manager changing another team"},
            404: {"model": ErrorView, "description": "A manager naming a rep of another team"},
            422: {"model": ErrorView, "description": "An invalid field, named"},
        },
    )
    async def put_rep(
        email: RepEmail, body: RepRequest, caller: Authenticated, response: Response
    ) -> RepView:
        access = access_of(caller)
        stored, created = await roster.put_rep(units, body.change(_address(email)), access, caller.actor)
        if created:
            response.status_code = 201
        return RepView.of(stored)

    @routes.get(
        "/assignment-rules",
        tags=["assignment rules"],
        summary="The assignment rules in force (their version in the ETag)",
        responses={403: {"model": ErrorView, "description": "A rep or a machine"}},
    )
    async def get_rules(caller: Authenticated, response: Response) -> AssignmentRulesVersionView:
        caller.require(Role.ADMIN, Role.MANAGER)
        in_force = await roster.current_assignment_rules(units)
        response.headers["ETag"] = version_etag(in_force.number)
        return AssignmentRulesVersionView.of(in_force)

    @routes.put(
        "/assignment-rules",
        tags=["assignment rules"],
        summary="Replace the whole ordered list of assignment rules: a new version",
        description="New leads are assigned by it at once on this replica, within "
        "KARIZ_ASSIGNMENT_RULES_REFRESH_S on the others. Leads already assigned keep their owner.",
        responses=RULE_ERRORS,
    )
    async def put_rules(
        body: AssignmentRulesRequest,
        caller: Authenticated,
        response: Response,
        if_match: Annotated[
            str | None,
            Header(
                pattern=IF_MATCH,
                description='The ETag of the version edited (from GET /assignment-rules, e.g. "3"): refused '
                "with 409 if another is in force by now. Without it, whatever is in force is replaced",
            ),
        ] = None,
    ) -> AssignmentRulesVersionView:
        caller.require(Role.ADMIN)
        version = await roster.replace_assignment_rules(
            units, body.assignment_rules(), caller.actor, edited_version(if_match)
        )
        response.headers["ETag"] = version_etag(version.number)
        return AssignmentRulesVersionView.of(version)

    @routes.get(
        "/assignment-rules/versions",
        tags=["assignment rules"],
        summary="The assignment rules' versions, newest first: who put each in force, when",
    )
    async def list_rule_versions(
        caller: Authenticated, limit: Limit = 50, offset: Offset = 0
    ) -> Page[AssignmentRulesVersionRow]:
        caller.require(Role.ADMIN, Role.MANAGER)
        versions, total = await roster.assignment_rule_versions(units, limit=limit, offset=offset)
        return Page[AssignmentRulesVersionRow](
            items=[AssignmentRulesVersionRow.of(v) for v in versions], total=total, limit=limit, offset=offset
        )

    @routes.get(
        "/assignment-rules/versions/{number}",
        tags=["assignment rules"],
        summary="One version of the assignment rules, whole",
        responses={
            404: {"model": ErrorView, "description": "No such version; the message names the one in force"}
        },
    )
    async def get_rule_version(number: VersionNumber, caller: Authenticated) -> AssignmentRulesVersionView:
        caller.require(Role.ADMIN, Role.MANAGER)
        return AssignmentRulesVersionView.of(await roster.assignment_rules_version(units, number))

    return routes


def _address(email: str) -> str:
    """The path's address as the roster keys it (422 naming ``email`` when it is none)."""
    try:
        return normalise_email(email)
    except ValueError as exc:
        raise RuleViolation(f"email: {exc}") from exc
