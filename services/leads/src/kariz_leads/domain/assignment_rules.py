"""Assignment rules: which team works a new lead. An ordered list, the first rule that matches the lead
wins; no rule matching leaves the lead to the territory and round-robin assignment of the settings.

A rule matches on what it names, each criterion it names holding: the company's geography (its country
among ``countries``, or in one of ``regions``: one criterion, either list will do), its industry, its
size within ``size_min``..``size_max``, the lead's source and its campaign. A rule naming nothing matches
every lead; it may only be the last (the rules after it could never match).

The list is kept in numbered versions (:mod:`kariz_shared.contracts.versions`): version 0 is no rules
at all, every replacement the next version, with its actor and time, never changed afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from kariz_leads.domain.intake import InvalidField
from kariz_leads.domain.regions import Region
from kariz_leads.domain.roster import team_name
from kariz_shared.contracts.events import Company, LeadSource
from kariz_shared.contracts.normalisation import InvalidValue, normalise_country, normalise_industry
from kariz_shared.contracts.versions import next_version

T = TypeVar("T")

#: How many rules a version holds at most (each capture walks them).
MAX_RULES = 200
#: Who put version 0 (no rules) in force: the service itself.
SEEDED_BY = "kariz"


@dataclass(frozen=True)
class AssignmentRule:
    name: str
    team: str
    countries: frozenset[str] = frozenset()
    regions: frozenset[Region] = frozenset()
    industries: frozenset[str] = frozenset()
    size_min: int | None = None
    size_max: int | None = None
    sources: frozenset[LeadSource] = frozenset()
    campaigns: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        *,
        name: str,
        team: str,
        countries: Sequence[str] = (),
        regions: Sequence[Region | str] = (),
        industries: Sequence[str] = (),
        size_min: int | None = None,
        size_max: int | None = None,
        sources: Sequence[LeadSource | str] = (),
        campaigns: Sequence[str] = (),
    ) -> AssignmentRule:
        """A rule as given, every value normalised as the leads' own are (``InvalidField`` naming it)."""
        if not name.strip():
            raise InvalidField("name", "a rule needs a name")
        for bound, size in (("size_min", size_min), ("size_max", size_max)):
            if size is not None and size < 1:
                raise InvalidField(bound, "a number of employees, at least 1")
        if size_min is not None and size_max is not None and size_min > size_max:
            raise InvalidField("size_min", f"{size_min} is above size_max {size_max}")
        return cls(
            name=name.strip(),
            team=team_name(team),
            countries=frozenset(_each("countries", countries, normalise_country)),
            regions=frozenset(_each("regions", regions, Region)),
            industries=frozenset(_each("industries", industries, _industry)),
            size_min=size_min,
            size_max=size_max,
            sources=frozenset(_each("sources", sources, LeadSource)),
            campaigns=frozenset(_each("campaigns", campaigns, _campaign)),
        )

    @property
    def matches_everything(self) -> bool:
        return not (
            self.countries
            or self.regions
            or self.industries
            or self.sources
            or self.campaigns
            or self.size_min is not None
            or self.size_max is not None
        )

    def matches(self, company: Company, source: LeadSource, campaign: str | None) -> bool:
        """Every criterion the rule names holds for the lead (a value the lead lacks matches none)."""
        if self.countries or self.regions:
            country = company.country
            if country is None or not (
                country in self.countries or any(country in region.countries for region in self.regions)
            ):
                return False
        if self.industries and company.industry not in self.industries:
            return False
        if self.size_min is not None or self.size_max is not None:
            size = company.size
            if size is None:
                return False
            if (self.size_min is not None and size < self.size_min) or (
                self.size_max is not None and size > self.size_max
            ):
                return False
        if self.sources and source not in self.sources:
            return False
        return not self.campaigns or campaign in self.campaigns


@dataclass(frozen=True)
class AssignmentRules:
    """The ordered rules of one version."""

    rules: tuple[AssignmentRule, ...] = ()

    @classmethod
    def of(cls, rules: Sequence[AssignmentRule]) -> AssignmentRules:
        """Refused (``InvalidField`` naming ``rules[n].<field>``): more than MAX_RULES, two rules of one
        name, a rule matching every lead before the last place."""
        if len(rules) > MAX_RULES:
            raise InvalidField("rules", f"at most {MAX_RULES} rules")
        seen: dict[str, int] = {}
        for n, rule in enumerate(rules):
            if rule.name.casefold() in seen:
                raise InvalidField(
                    f"rules[{n}].name",
                    f"{rule.name!r} is the name of rules[{seen[rule.name.casefold()]}] too",
                )
            seen[rule.name.casefold()] = n
            if rule.matches_everything and n != len(rules) - 1:
                raise InvalidField(
                    f"rules[{n}]",
                    f"rule {rule.name!r} names no criterion, so it matches every lead; only the last rule "
                    "may (the rules after it could never match)",
                )
        return cls(tuple(rules))

    def first_match(
        self, company: Company, source: LeadSource, campaign: str | None
    ) -> AssignmentRule | None:
        return next((rule for rule in self.rules if rule.matches(company, source, campaign)), None)


NO_RULES = AssignmentRules()


@dataclass(frozen=True)
class AssignmentRulesVersion:
    number: int
    rules: AssignmentRules
    took_effect_at: datetime
    actor: str

    @classmethod
    def seeded(cls, at: datetime) -> AssignmentRulesVersion:
        """Version 0: no rules, every lead assigned as the settings say."""
        return cls(number=0, rules=NO_RULES, took_effect_at=at, actor=SEEDED_BY)

    def replaced_by(
        self, rules: AssignmentRules, at: datetime, actor: str, *, edited: int | None = None
    ) -> AssignmentRulesVersion:
        """The version after this one; 409 when ``edited`` (If-Match) is not this one."""
        return AssignmentRulesVersion(
            number=next_version("the assignment rules", self.number, edited),
            rules=rules,
            took_effect_at=at,
            actor=actor,
        )


def _industry(value: str) -> str:
    industry = normalise_industry(value)
    if industry is None:
        raise InvalidValue("an industry needs a name")
    return industry


def _campaign(value: str) -> str:
    campaign = value.strip()
    if not campaign or len(campaign) > 200:
        raise InvalidValue("a campaign's name: 1..200 characters")
    return campaign


def _each(what: str, values: Sequence[Any], clean: Callable[[Any], T]) -> list[T]:
    out: list[T] = []
    for n, value in enumerate(values):
        try:
            out.append(clean(value))
        except ValueError as exc:
            raise InvalidField(f"{what}[{n}]", _reason(what, value, exc)) from exc
    return out


def _reason(what: str, value: object, exc: ValueError) -> str:
    if what == "regions":
        return f"{value!r} is not a region ({', '.join(r.value for r in Region)})"
    if what == "sources":
        return f"{value!r} is not a lead source ({', '.join(s.value for s in LeadSource)})"
    return str(exc)
