"""The scoring rule set and the pure functions that score a lead with it.

A rule set gives points for how well a lead fits (industry, company size, country, the contact's
seniority, the source) and for the answers of a qualification checklist (BANT, MEDDIC, MEDDPICC), the
verdict rules of each checklist (required items, hard "no"s), which methodology a segment of companies
is qualified with, and the two thresholds that turn a score into a decision. Every rule that applies to
a lead adds one ``ScoreLine``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from kariz_qualification.domain.engagement import EngagementRules

# BANT's answers (Budget, Authority, Need, Timeline) are the methodologies' vocabulary, re-exported.
from kariz_qualification.domain.methodologies import (
    METHODOLOGIES,
    ChecklistReview,
    MethodologyName,
    is_answered,
    value_key,
)
from kariz_qualification.domain.methodologies import Authority as Authority
from kariz_qualification.domain.methodologies import Budget as Budget
from kariz_qualification.domain.methodologies import Need as Need
from kariz_qualification.domain.methodologies import Timeline as Timeline
from kariz_qualification.domain.nurture import NurtureRules, NurtureTrack, TrackName
from kariz_qualification.domain.outcomes import CalibrationRules
from kariz_shared.contracts.events import (
    BantAnswers,
    ChecklistAnswer,
    Company,
    Contact,
    LeadSource,
    ScoreLine,
)
from kariz_shared.contracts.normalisation import normalise_industry

# --- vocabulary -----------------------------------------------------------------------------------

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


class ItemRule(BaseModel):
    """What one checklist item's answers are worth and how they bear on the verdict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    points: dict[str, Points] = Field(
        default_factory=dict,
        description="Points by answer (yes_no: yes/no/unknown; choice: the choice; amount, person, text: "
        "'answered' for any answer); answers not listed earn nothing",
    )
    required: bool = Field(
        default=False,
        description="The lead cannot qualify until this item is answered (unknown is no answer)",
    )
    disqualify: list[str] = Field(
        default_factory=list, description="Answers that disqualify the lead whatever its score (a hard no)"
    )
    reason: str | None = Field(
        default=None, max_length=200, description="The disqualification reason (default: '<item>: <answer>')"
    )


class ChecklistRules(BaseModel):
    """A methodology's points and verdict rules, by item (items not listed earn nothing, are optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: dict[str, ItemRule] = Field(default_factory=dict)

    def best(self) -> int:
        return sum(max([0, *rule.points.values()]) for rule in self.items.values())


class ExistingCustomerRules(BaseModel):
    """How a lead of a won account (an upsell or cross-sell) is qualified: its fit is known, so its score
    decides nothing; the items of its checklist listed here (need and timeline, by default) must be
    answered first, and a hard no still disqualifies it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    required: dict[MethodologyName, list[str]] = Field(
        default_factory=lambda: {
            "bant": ["need", "timeline"],
            "meddic": ["identify_pain", "decision_process"],
            "meddpicc": ["identify_pain", "decision_process"],
        },
        description="By methodology, the items an existing customer's lead must have answered before it "
        "qualifies (a methodology not listed, or an empty list: it qualifies at once)",
    )

    @model_validator(mode="after")
    def _items_exist(self) -> ExistingCustomerRules:
        for name, keys in self.required.items():
            catalogue = METHODOLOGIES[name]
            for key in keys:
                if catalogue.item(key) is None:
                    raise ValueError(
                        f"existing_customers.required.{name}: {key!r} is not an item of {name} "
                        f"({', '.join(catalogue.keys)})"
                    )
        return self


class Segment(BaseModel):
    """Companies qualified with ``methodology``: all of the given conditions hold (none given: any)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=64)]
    methodology: MethodologyName
    min_size: Annotated[StrictInt, Field(ge=0)] | None = Field(default=None, description="Employees at least")
    max_size: Annotated[StrictInt, Field(ge=0)] | None = Field(default=None, description="Employees at most")
    industries: list[str] = Field(default_factory=list, description="Any of these industries")
    countries: list[str] = Field(default_factory=list, description="Any of these ISO 3166-1 alpha-2 codes")
    nurture_track: TrackName | None = Field(
        default=None, description="The nurture track of its nurtured leads (none: nurture.default_track)"
    )

    @field_validator("industries")
    @classmethod
    def _industry_names(cls, value: list[str]) -> list[str]:
        return [normalise_industry(name) or name for name in value]

    @field_validator("countries")
    @classmethod
    def _country_codes(cls, value: list[str]) -> list[str]:
        codes = [code.strip().upper() for code in value]
        for code in codes:
            if not re.fullmatch(r"[A-Z]{2}", code):
                raise ValueError(f"country {code!r} is not an ISO 3166-1 alpha-2 code")
        return codes

    def matches(self, company: Company) -> bool:
        if self.min_size is not None or self.max_size is not None:
            # A company of unknown size is in no size-bounded segment.
            if company.size is None:
                return False
            if self.min_size is not None and company.size < self.min_size:
                return False
            if self.max_size is not None and company.size > self.max_size:
                return False
        if self.industries and (normalise_industry(company.industry or "") or "") not in self.industries:
            return False
        return not self.countries or (company.country or "").strip().upper() in self.countries


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
    # Both optional: a rule set stored before methodologies were kept loads with the defaults and no
    # segment, so every lead is qualified with BANT as before.
    methodologies: dict[Literal["meddic", "meddpicc"], ChecklistRules] = Field(
        default_factory=lambda: dict(DEFAULT_CHECKLISTS),
        description="Points and verdict rules of MEDDIC and MEDDPICC, by item (BANT's are bant, "
        "its hard no's are no need and no budget)",
    )
    segments: list[Segment] = Field(
        default_factory=list,
        description="Which methodology a company is qualified with: the first segment it matches; none: BANT",
    )
    # Optional too: a rule set stored before engagement was scored loads with the defaults.
    engagement: EngagementRules = Field(
        default_factory=EngagementRules,
        description="Points of engagement signals, their half-life and cap, and the score bands",
    )
    # Optional as well: a rule set stored before nurture tracks were kept loads with none (no nurture).
    nurture: NurtureRules = Field(
        default_factory=NurtureRules,
        description="Nurture tracks (cadences of content and task steps) and which one a nurtured lead gets",
    )
    # Optional as well: a rule set stored before upsell rules loads with the defaults.
    existing_customers: ExistingCustomerRules = Field(
        default_factory=ExistingCustomerRules,
        description="How a lead of an account with a won deal is qualified: the checklist items it needs "
        "(its fit is known)",
    )
    # Optional too: a rule set stored before outcomes were kept loads with the defaults.
    calibration: CalibrationRules = Field(
        default_factory=CalibrationRules,
        description="When the outcomes of qualified leads are enough to calibrate the score, how often "
        "it is calibrated again, and how many outcomes a suggested point needs",
    )

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
    def _checklists_name_their_items(self) -> RuleSet:
        for name, rules in self.methodologies.items():
            catalogue = METHODOLOGIES[name]
            for key, rule in rules.items.items():
                item = catalogue.item(key)
                if item is None:
                    raise ValueError(
                        f"methodologies.{name}.items: {key!r} is not an item of {name} "
                        f"({', '.join(catalogue.keys)})"
                    )
                for answer in [*rule.points, *rule.disqualify]:
                    if answer not in item.values:
                        raise ValueError(
                            f"methodologies.{name}.items.{key}: {answer!r} is not an answer of a {item.kind} "
                            f"item ({', '.join(item.values)})"
                        )
        for segment in self.segments:
            if segment.methodology != "bant" and segment.methodology not in self.methodologies:
                raise ValueError(
                    f"segments: {segment.name!r} uses {segment.methodology}, "
                    "which methodologies has no rules for"
                )
            if segment.nurture_track is not None and segment.nurture_track not in self.nurture.tracks:
                raise ValueError(
                    f"segments: {segment.name!r} names nurture track {segment.nurture_track!r}, "
                    f"which nurture.tracks has not ({', '.join(self.nurture.tracks) or 'none'})"
                )
        return self

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
            # A lead answers one methodology's checklist: the best of them.
            + max(self.checklist_rules(name).best() for name in ("bant", *self.methodologies))
            + self.engagement.max_points
        )

    # --- methodologies ------------------------------------------------------------------------------

    def segment_for(self, company: Company) -> Segment | None:
        return next((s for s in self.segments if s.matches(company)), None)

    def methodology_for(self, company: Company) -> MethodologyName:
        """The methodology a company is qualified with: its segment's, else BANT."""
        segment = self.segment_for(company)
        return "bant" if segment is None else segment.methodology

    def track_for(self, company: Company) -> tuple[str, NurtureTrack] | None:
        """The nurture track of a company's nurtured lead: its segment's, else the default; None: none."""
        segment = self.segment_for(company)
        name = segment.nurture_track if segment is not None and segment.nurture_track else None
        name = name or self.nurture.default_track
        return None if name is None else (name, self.nurture.tracks[name])

    def checklist_rules(self, name: str) -> ChecklistRules:
        """A methodology's rules. BANT's come from ``bant`` with today's hard no's (no need, then no
        budget: the order they are checked in) and no required item, so a strong fit still qualifies at
        capture; a methodology the rule set no longer has rules for scores nothing and requires nothing."""
        if name == "bant":
            return ChecklistRules(
                items={
                    "need": ItemRule(points=dict(self.bant.need), disqualify=["none"], reason="no need"),
                    "budget": ItemRule(
                        points=dict(self.bant.budget), disqualify=["none"], reason="no budget"
                    ),
                    "authority": ItemRule(points=dict(self.bant.authority)),
                    "timeline": ItemRule(points=dict(self.bant.timeline)),
                }
            )
        return self.methodologies.get(name, ChecklistRules())  # type: ignore[call-overload]

    def score_checklist(self, name: str, checklist: Mapping[str, ChecklistAnswer]) -> list[ScoreLine]:
        """Lines for a checklist's answers in the methodology's order, rules ``<methodology>.<item>``."""
        rules = self.checklist_rules(name).items
        lines: list[ScoreLine] = []
        for key in METHODOLOGIES[name].keys:
            answer, rule = checklist.get(key), rules.get(key)
            if answer is None or rule is None:
                continue
            matched = value_key(answer)
            if matched in rule.points:
                lines.append(ScoreLine(rule=f"{name}.{key}", matched=matched, points=rule.points[matched]))
        return lines

    def review(
        self, name: str, checklist: Mapping[str, ChecklistAnswer], *, existing_customer: bool = False
    ) -> ChecklistReview:
        """What the verdict rules say of a checklist: its first hard no, the required items missing (an
        existing customer's: ``existing_customers.required``, in place of the methodology's)."""
        rules = self.checklist_rules(name).items
        hard_no = None
        for key, rule in rules.items():
            answer = checklist.get(key)
            if answer is not None and rule.disqualify and value_key(answer) in rule.disqualify:
                hard_no = rule.reason or f"{key}: {value_key(answer)}"
                break
        keys = METHODOLOGIES[name].keys
        if existing_customer:
            wanted = set(self.existing_customers.required.get(name, []))
            required = tuple(k for k in keys if k in wanted)
        else:
            required = tuple(k for k in keys if k in rules and rules[k].required)
        return ChecklistReview(
            methodology=name,
            hard_no=hard_no,
            required=required,
            missing=tuple(k for k in required if not is_answered(checklist.get(k))),
            answered=tuple(k for k in keys if is_answered(checklist.get(k))),
            items=len(keys),
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
        # The BANT table as it was before checklists; ``score_checklist("bant", ...)`` agrees with it.
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


_MEDDIC_RULES = {
    "metrics": ItemRule(points={"answered": 10}, required=True),
    # No economic buyer identified: the lead cannot qualify (it stays in nurture until one is).
    "economic_buyer": ItemRule(points={"answered": 15}, required=True),
    "decision_criteria": ItemRule(points={"answered": 5}),
    "decision_process": ItemRule(points={"answered": 5}),
    "identify_pain": ItemRule(
        points={"confirmed": 15, "possible": 5}, required=True, disqualify=["none"], reason="no pain"
    ),
    "champion": ItemRule(points={"answered": 10}, required=True),
}
DEFAULT_CHECKLISTS: dict[Literal["meddic", "meddpicc"], ChecklistRules] = {
    "meddic": ChecklistRules(items=_MEDDIC_RULES),
    "meddpicc": ChecklistRules(
        items={
            **_MEDDIC_RULES,
            "paper_process": ItemRule(points={"yes": 5}),
            "competition": ItemRule(points={"none": 5, "identified": 2, "favoured_competitor": -5}),
        }
    ),
}

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
    # No segment by default: BANT for everyone until an admin adds one (e.g. MEDDIC from 1000 employees).
    segments=[],
)
