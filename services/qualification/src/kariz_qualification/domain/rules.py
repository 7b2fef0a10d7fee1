"""The scoring rule set and the pure functions that score a lead with it.

A rule set gives points for how well a lead fits (industry, company size, country, the contact's
seniority, the source) and for the answers of a qualification call (BANT), and the two thresholds
that turn a score into a decision. Every rule that applies to a lead adds one ``ScoreLine``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from kariz_shared.contracts.events import BantAnswers, Company, Contact, LeadSource, ScoreLine
from kariz_shared.contracts.normalisation import normalise_industry

# --- vocabulary -----------------------------------------------------------------------------------

Budget = Literal["confirmed", "planned", "none", "unknown"]
Authority = Literal["decision_maker", "influencer", "none", "unknown"]
Need = Literal["confirmed", "possible", "none", "unknown"]
Timeline = Literal["within_3_months", "within_6_months", "within_12_months", "later", "unknown"]
Seniority = Literal["c_level", "vp", "director", "manager", "individual"]

# Generous bounds: a typo such as 2000 for 20 should be refused, a penalty (negative points) allowed.
Points = Annotated[StrictInt, Field(ge=-100, le=100)]

SENIORITY_KEYWORDS: tuple[tuple[Seniority, frozenset[str]], ...] = (
    ("c_level", frozenset({"ceo", "cto", "cfo", "coo", "cio", "chief", "founder", "owner", "president"})),
    ("vp", frozenset({"vp"})),
    ("director", frozenset({"director", "head"})),
    ("manager", frozenset({"manager"})),
)
VICE_PRESIDENT = re.compile(r"\bvice[\s\-]+president\b")


def seniority_of(title: str | None) -> Seniority:
    """The seniority level a job title shows, by keyword; the most senior keyword wins.

    Keywords match whole words, so "Coordinator" is not a COO and "Headcount Analyst" not a head.
    """
    if not title:
        return "individual"
    # "Vice President" is a VP, not a president: take the phrase out before looking for keywords.
    text, vice_presidents = VICE_PRESIDENT.subn(" ", title.lower())
    words = set(re.findall(r"[a-z0-9]+", text))
    if vice_presidents:
        words.add("vp")
    for level, keywords in SENIORITY_KEYWORDS:
        if words & keywords:
            return level
    return "individual"


# --- the rule set ---------------------------------------------------------------------------------


class SizeBand(BaseModel):
    """Employees from ``min`` to ``max`` inclusive (no ``max``: and more) earn ``points``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: Annotated[StrictInt, Field(ge=0)]
    max: Annotated[StrictInt, Field(ge=0)] | None = None
    points: Points

    @model_validator(mode="after")
    def _max_not_below_min(self) -> SizeBand:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"size band {self.min}-{self.max}: max is below min")
        return self

    @property
    def label(self) -> str:
        return f"{self.min}+" if self.max is None else f"{self.min}-{self.max}"

    def covers(self, size: int) -> bool:
        return size >= self.min and (self.max is None or size <= self.max)


class BantPoints(BaseModel):
    """Points per answer of a qualification call; answers not listed earn nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget: dict[Budget, Points]
    authority: dict[Authority, Points]
    need: dict[Need, Points]
    timeline: dict[Timeline, Points]


class Thresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    qualify: Annotated[StrictInt, Field(ge=1, description="A score at or above this qualifies the lead")]
    disqualify_below: Annotated[
        StrictInt, Field(ge=0, description="A score below this disqualifies the lead")
    ]

    @model_validator(mode="after")
    def _room_between(self) -> Thresholds:
        if self.disqualify_below >= self.qualify:
            raise ValueError(
                f"thresholds: disqualify_below ({self.disqualify_below}) "
                f"must be below qualify ({self.qualify})"
            )
        return self


class RuleSet(BaseModel):
    """The whole scoring configuration. Validated as a whole: a rule set is replaced, never patched."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    industry: dict[str, Points] = Field(description="Points by industry (lower case, words joined by _)")
    company_size: list[SizeBand] = Field(description="Non-overlapping bands of employee counts")
    country: dict[str, Points] = Field(description="Points by ISO 3166-1 alpha-2 country code")
    seniority: dict[Seniority, Points] = Field(description="Points by seniority of the contact's title")
    source: dict[LeadSource, Points] = Field(description="Points by lead source")
    bant: BantPoints
    thresholds: Thresholds

    @field_validator("industry", mode="before")
    @classmethod
    def _industry_keys(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        result: dict[str, object] = {}
        for key, points in value.items():
            name = normalise_industry(str(key)) or str(key)
            if not re.fullmatch(r"[a-z0-9_&]{1,64}", name):
                raise ValueError(f"industry {key!r} is not a usable industry name")
            if name in result:
                raise ValueError(f"industry {name!r} is listed twice")
            result[name] = points
        return result

    @field_validator("country", mode="before")
    @classmethod
    def _country_keys(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        result: dict[str, object] = {}
        for key, points in value.items():
            code = str(key).strip().upper()
            if not re.fullmatch(r"[A-Z]{2}", code):
                raise ValueError(f"country {key!r} is not an ISO 3166-1 alpha-2 code")
            if code in result:
                raise ValueError(f"country {code!r} is listed twice")
            result[code] = points
        return result

    @field_validator("company_size")
    @classmethod
    def _bands_do_not_overlap(cls, bands: list[SizeBand]) -> list[SizeBand]:
        ordered = sorted(bands, key=lambda b: b.min)
        for lower, upper in itertools.pairwise(ordered):
            if lower.max is None or upper.min <= lower.max:
                raise ValueError(f"company_size bands {lower.label} and {upper.label} overlap")
        return ordered

    @model_validator(mode="after")
    def _qualify_is_reachable(self) -> RuleSet:
        best = self.highest_possible_score()
        if self.thresholds.qualify > best:
            raise ValueError(
                f"thresholds: qualify ({self.thresholds.qualify}) can never be reached; "
                f"the highest possible score with these rules is {best}"
            )
        return self

    def parts_changed_from(self, before: RuleSet) -> tuple[str, ...]:
        """The top-level parts (``industry``, ``bant``, ``thresholds``, ...) that differ from ``before``,
        in the order the rule set lists them."""
        return tuple(part for part in type(self).model_fields if getattr(self, part) != getattr(before, part))

    def highest_possible_score(self) -> int:
        def best(points: list[int]) -> int:
            # A lead can always miss a rule (unknown industry, no answer), which is worth 0.
            return max([0, *points])

        return (
            best(list(self.industry.values()))
            + best([b.points for b in self.company_size])
            + best(list(self.country.values()))
            + best(list(self.seniority.values()))
            + best(list(self.source.values()))
            + best(list(self.bant.budget.values()))
            + best(list(self.bant.authority.values()))
            + best(list(self.bant.need.values()))
            + best(list(self.bant.timeline.values()))
        )

    # --- scoring ----------------------------------------------------------------------------------

    def score_fit(self, company: Company, contact: Contact, source: LeadSource) -> list[ScoreLine]:
        """Lines for how well the lead fits: one per rule that matched something of the lead."""
        lines: list[ScoreLine] = []
        if company.industry:
            industry = normalise_industry(company.industry) or ""
            if industry in self.industry:
                lines.append(ScoreLine(rule="industry", matched=industry, points=self.industry[industry]))
        if company.size is not None:
            band = next((b for b in self.company_size if b.covers(company.size)), None)
            if band is not None:
                lines.append(ScoreLine(rule="company_size", matched=band.label, points=band.points))
        if company.country:
            country = company.country.strip().upper()
            if country in self.country:
                lines.append(ScoreLine(rule="country", matched=country, points=self.country[country]))
        level = seniority_of(contact.title)
        if level in self.seniority:
            lines.append(ScoreLine(rule="seniority", matched=level, points=self.seniority[level]))
        if source in self.source:
            lines.append(ScoreLine(rule="source", matched=source.value, points=self.source[source]))
        return lines

    def score_answers(self, answers: BantAnswers) -> list[ScoreLine]:
        """Lines for the qualification call's answers, rule names ``bant.<question>``."""
        tables: tuple[tuple[str, str, Mapping[Any, int]], ...] = (
            ("budget", answers.budget, self.bant.budget),
            ("authority", answers.authority, self.bant.authority),
            ("need", answers.need, self.bant.need),
            ("timeline", answers.timeline, self.bant.timeline),
        )
        return [
            ScoreLine(rule=f"bant.{question}", matched=answer, points=table[answer])
            for question, answer, table in tables
            if answer in table
        ]


DEFAULT_RULES = RuleSet(
    industry={"software": 20, "financial_services": 15, "manufacturing": 10, "healthcare": 10, "retail": 5},
    company_size=[
        SizeBand(min=1, max=9, points=0),
        SizeBand(min=10, max=49, points=5),
        SizeBand(min=50, max=199, points=10),
        SizeBand(min=200, max=999, points=20),
        SizeBand(min=1000, max=None, points=25),
    ],
    country={"DE": 10, "US": 10, "GB": 10, "FR": 8, "NL": 8},
    seniority={"c_level": 20, "vp": 15, "director": 12, "manager": 8, "individual": 2},
    source={
        LeadSource.REFERRAL: 15,
        LeadSource.PARTNER: 12,
        LeadSource.FREE_TRIAL: 10,
        LeadSource.INBOUND_CALL: 10,
        LeadSource.WEB_FORM: 8,
        LeadSource.EVENT: 6,
        LeadSource.TRADE_SHOW: 4,
        LeadSource.EMAIL_CAMPAIGN: 4,
        LeadSource.OUTBOUND: 2,
        LeadSource.PURCHASED_LIST: 0,
    },
    bant=BantPoints(
        budget={"confirmed": 15, "planned": 5},
        authority={"decision_maker": 15, "influencer": 5},
        need={"confirmed": 15, "possible": 5},
        timeline={"within_3_months": 15, "within_6_months": 10, "within_12_months": 5},
    ),
    thresholds=Thresholds(qualify=70, disqualify_below=15),
)
