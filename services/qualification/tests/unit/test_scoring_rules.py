"""Each scoring rule of the default rule set, on its own."""

from __future__ import annotations

import pytest

from kariz_qualification.domain.rules import DEFAULT_RULES, seniority_of
from kariz_shared.contracts.events import BantAnswers, Company, Contact, LeadSource, ScoreLine


def company(**fields: object) -> Company:
    return Company.model_validate({"name": "Acme", **fields})


def contact(title: str | None = None) -> Contact:
    return Contact(first_name="Ada", last_name="Lovelace", email="ada@example.com", title=title)


def lines_for(
    *, title: str | None = None, source: LeadSource = LeadSource.OUTBOUND, **company_fields: object
) -> dict[str, ScoreLine]:
    lines = DEFAULT_RULES.score_fit(company(**company_fields), contact(title), source)
    assert len({line.rule for line in lines}) == len(lines), "one line per rule"
    return {line.rule: line for line in lines}


@pytest.mark.parametrize(
    ("industry", "matched", "points"),
    [
        ("software", "software", 20),
        ("Software", "software", 20),
        ("Financial Services", "financial_services", 15),
        ("financial-services", "financial_services", 15),
        ("manufacturing", "manufacturing", 10),
        ("healthcare", "healthcare", 10),
        ("retail", "retail", 5),
    ],
)
def test_industry_points_by_normalised_name(industry: str, matched: str, points: int) -> None:
    assert lines_for(industry=industry)["industry"] == ScoreLine(
        rule="industry", matched=matched, points=points
    )


@pytest.mark.parametrize("industry", ["mining", None])
def test_other_or_missing_industry_earns_nothing(industry: str | None) -> None:
    assert "industry" not in lines_for(industry=industry)


@pytest.mark.parametrize(
    ("size", "band", "points"),
    [
        (1, "1-9", 0),
        (9, "1-9", 0),
        (10, "10-49", 5),
        (49, "10-49", 5),
        (50, "50-199", 10),
        (199, "50-199", 10),
        (200, "200-999", 20),
        (999, "200-999", 20),
        (1000, "1000+", 25),
        (250_000, "1000+", 25),
    ],
)
def test_company_size_bands_include_both_edges(size: int, band: str, points: int) -> None:
    assert lines_for(size=size)["company_size"] == ScoreLine(rule="company_size", matched=band, points=points)


@pytest.mark.parametrize("size", [0, None])
def test_size_outside_every_band_or_unknown_earns_nothing(size: int | None) -> None:
    assert "company_size" not in lines_for(size=size)


@pytest.mark.parametrize(
    ("country", "matched", "points"),
    [("DE", "DE", 10), ("us", "US", 10), ("GB", "GB", 10), ("FR", "FR", 8), ("NL", "NL", 8)],
)
def test_country_points_by_iso_code(country: str, matched: str, points: int) -> None:
    assert lines_for(country=country)["country"] == ScoreLine(rule="country", matched=matched, points=points)


@pytest.mark.parametrize("country", ["BR", None])
def test_other_or_missing_country_earns_nothing(country: str | None) -> None:
    assert "country" not in lines_for(country=country)


@pytest.mark.parametrize(
    ("title", "level"),
    [
        ("CEO", "c_level"),
        ("Chief Revenue Officer", "c_level"),
        ("Co-Founder", "c_level"),
        ("Owner", "c_level"),
        ("CTO & VP Engineering", "c_level"),
        ("President", "c_level"),
        ("CFO", "c_level"),
        ("COO", "c_level"),
        ("CIO", "c_level"),
        ("VP Sales", "vp"),
        ("Vice President, Marketing", "vp"),
        ("Vice-President of Operations", "vp"),
        ("Director of IT", "director"),
        ("Head of Procurement", "director"),
        ("Managing Director", "director"),
        ("IT Manager", "manager"),
        ("Software Engineer", "individual"),
        ("Project Coordinator", "individual"),
        ("Headcount Analyst", "individual"),
        ("", "individual"),
        (None, "individual"),
    ],
)
def test_seniority_from_title_keywords(title: str | None, level: str) -> None:
    assert seniority_of(title) == level


@pytest.mark.parametrize(
    ("title", "points"),
    [("CEO", 20), ("VP Sales", 15), ("Head of IT", 12), ("Office Manager", 8), ("Analyst", 2), (None, 2)],
)
def test_seniority_points(title: str | None, points: int) -> None:
    line = lines_for(title=title)["seniority"]
    assert (line.matched, line.points) == (seniority_of(title), points)


@pytest.mark.parametrize(
    ("source", "points"),
    [
        (LeadSource.REFERRAL, 15),
        (LeadSource.PARTNER, 12),
        (LeadSource.FREE_TRIAL, 10),
        (LeadSource.INBOUND_CALL, 10),
        (LeadSource.WEB_FORM, 8),
        (LeadSource.EVENT, 6),
        (LeadSource.TRADE_SHOW, 4),
        (LeadSource.EMAIL_CAMPAIGN, 4),
        (LeadSource.OUTBOUND, 2),
        (LeadSource.PURCHASED_LIST, 0),
    ],
)
def test_source_points(source: LeadSource, points: int) -> None:
    assert lines_for(source=source)["source"] == ScoreLine(rule="source", matched=source.value, points=points)


def test_strong_fit_scores_eighty_with_one_line_per_rule() -> None:
    lines = DEFAULT_RULES.score_fit(
        company(industry="software", size=500, country="DE"), contact("VP Sales"), LeadSource.REFERRAL
    )
    assert lines == [
        ScoreLine(rule="industry", matched="software", points=20),
        ScoreLine(rule="company_size", matched="200-999", points=20),
        ScoreLine(rule="country", matched="DE", points=10),
        ScoreLine(rule="seniority", matched="vp", points=15),
        ScoreLine(rule="source", matched="referral", points=15),
    ]
    assert sum(line.points for line in lines) == 80


def answers(**fields: str) -> BantAnswers:
    defaults = {"budget": "unknown", "authority": "unknown", "need": "unknown", "timeline": "unknown"}
    return BantAnswers.model_validate({**defaults, **fields})


@pytest.mark.parametrize(
    ("question", "answer", "points"),
    [
        ("budget", "confirmed", 15),
        ("budget", "planned", 5),
        ("authority", "decision_maker", 15),
        ("authority", "influencer", 5),
        ("need", "confirmed", 15),
        ("need", "possible", 5),
        ("timeline", "within_3_months", 15),
        ("timeline", "within_6_months", 10),
        ("timeline", "within_12_months", 5),
    ],
)
def test_bant_answer_points(question: str, answer: str, points: int) -> None:
    assert DEFAULT_RULES.score_answers(answers(**{question: answer})) == [
        ScoreLine(rule=f"bant.{question}", matched=answer, points=points)
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"budget": "none", "authority": "none", "need": "none", "timeline": "later"},
    ],
)
def test_unknown_negative_or_late_answers_earn_nothing(fields: dict[str, str]) -> None:
    assert DEFAULT_RULES.score_answers(answers(**fields)) == []


def test_full_bant_adds_sixty() -> None:
    lines = DEFAULT_RULES.score_answers(
        answers(budget="confirmed", authority="decision_maker", need="confirmed", timeline="within_3_months")
    )
    assert [line.rule for line in lines] == ["bant.budget", "bant.authority", "bant.need", "bant.timeline"]
    assert sum(line.points for line in lines) == 60
