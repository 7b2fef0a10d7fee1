"""Qualification methodologies in the domain: which methodology a segment uses, a checklist's score,
completeness, required items and hard no's, and the decision they lead to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from kariz_qualification.domain.lead import Lead, Verdict, decide
from kariz_qualification.domain.methodologies import METHODOLOGIES, Given, bant_checklist
from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet, Segment
from kariz_shared.contracts.errors import Conflict, RuleViolation
from kariz_shared.contracts.events import (
    BantAnswers,
    ChecklistAnswer,
    Company,
    Contact,
    LeadCaptured,
    LeadDisqualified,
    LeadQualified,
    LeadSource,
)

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REP = "rep@kariz.test"


def with_segments(*segments: dict[str, Any]) -> RuleSet:
    return RuleSet.model_validate({**DEFAULT_RULES.model_dump(mode="json"), "segments": list(segments)})


#: MEDDIC from 1000 employees, MEDDPICC for banks of any size, BANT for everyone else.
RULES = with_segments(
    {"name": "enterprise", "methodology": "meddic", "min_size": 1000},
    {"name": "banks", "methodology": "meddpicc", "industries": ["Financial Services"]},
)


def company(**fields: Any) -> Company:
    return Company(**{"name": "Acme", **fields})


def captured(size: int = 5000, industry: str = "software", title: str = "VP Sales") -> LeadCaptured:
    """software 20 + 1000+ 25 + DE 10 + VP 15 + referral 15 = 85: qualifies on fit alone under BANT."""
    return LeadCaptured(
        lead_id="L-1",
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@example.com", title=title),
        company=Company(name="Acme", industry=industry, size=size, country="DE"),
        source=LeadSource.REFERRAL,
        owner=REP,
        assigned_by="round_robin",
        captured_at=AT,
    )


def answered(item: str, kind: Any, value: str | None = None, **fields: Any) -> ChecklistAnswer:
    return Given(kind, value=value, **fields).recorded(item, REP, AT)


def checklist(*answers: ChecklistAnswer) -> dict[str, ChecklistAnswer]:
    return {a.item: a for a in answers}


REQUIRED_MEDDIC = {
    "metrics": Given("text", value="quotes out in 1 day instead of 3"),
    "economic_buyer": Given("person", value="Grace Hopper", title="CFO"),
    "identify_pain": Given("choice", value="confirmed"),
    "champion": Given("person", value="Lin (Head of Sales Ops)"),
}


# --- segments -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("of", "expected"),
    [
        (company(size=5000, industry="software"), "meddic"),
        (company(size=1000), "meddic"),
        (company(size=999), "bant"),
        (company(size=None), "bant"),  # unknown size: in no size-bounded segment
        (company(size=50, industry="financial services"), "meddpicc"),
        # Both segments match: the first listed wins.
        (company(size=5000, industry="Financial Services"), "meddic"),
        (company(), "bant"),
    ],
)
def test_a_segment_says_which_methodology_a_company_is_qualified_with(of: Company, expected: str) -> None:
    assert RULES.methodology_for(of) == expected


def test_a_segment_may_name_countries_and_a_size_range() -> None:
    rules = with_segments(
        {
            "name": "dach mid",
            "methodology": "meddic",
            "min_size": 200,
            "max_size": 999,
            "countries": ["de", "AT"],
        }
    )
    assert rules.segments[0].countries == ["DE", "AT"]
    assert rules.methodology_for(company(size=300, country="AT")) == "meddic"
    assert rules.methodology_for(company(size=300, country="FR")) == "bant"
    assert rules.methodology_for(company(size=1000, country="DE")) == "bant"


def test_a_rule_set_from_before_methodologies_loads_and_is_bant_for_everyone() -> None:
    old = DEFAULT_RULES.model_dump(mode="json")
    del old["methodologies"], old["segments"]
    rules = RuleSet.model_validate(old)
    assert rules == DEFAULT_RULES
    assert rules.segments == [] and set(rules.methodologies) == {"meddic", "meddpicc"}
    assert rules.methodology_for(company(size=100_000, industry="software")) == "bant"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"segments": [{"name": "x", "methodology": "spin"}]}, "segments.0.methodology"),
        ({"segments": [{"name": "x", "methodology": "meddic", "countries": ["Germany"]}]}, "alpha-2"),
        (
            {
                "methodologies": {"meddpicc": DEFAULT_RULES.methodologies["meddpicc"].model_dump()},
                "segments": [{"name": "x", "methodology": "meddic"}],
            },
            "'x' uses meddic, which methodologies has no rules for",
        ),
        ({"methodologies": {"meddic": {"items": {"champoin": {}}}}}, "'champoin' is not an item of meddic"),
        (
            {"methodologies": {"meddic": {"items": {"identify_pain": {"points": {"huge": 5}}}}}},
            "'huge' is not an answer of a choice item",
        ),
        (
            {"methodologies": {"meddic": {"items": {"champion": {"disqualify": ["none"]}}}}},
            "'none' is not an answer of a person item",
        ),
        ({"methodologies": {"meddic": {"items": {"metrics": {"points": {"answered": 500}}}}}}, "100"),
    ],
)
def test_invalid_methodology_rules_are_refused_naming_what(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RuleSet.model_validate({**DEFAULT_RULES.model_dump(mode="json"), **change})


# --- score, completeness, verdict -----------------------------------------------------------------


def test_a_meddic_checklist_scores_its_answers_in_the_methodologys_order() -> None:
    answers = checklist(
        answered("champion", "person", "Lin"),
        answered("identify_pain", "choice", "possible"),
        answered("economic_buyer", "person", "Grace", title="CFO"),
        answered("decision_process", "text", "board in May"),
        answered("budget", "amount", amount=Decimal("250000"), currency="USD"),
    )
    lines = RULES.score_checklist("meddic", answers)
    assert [(line.rule, line.matched, line.points) for line in lines] == [
        ("meddic.economic_buyer", "answered", 15),
        ("meddic.decision_process", "answered", 5),
        ("meddic.identify_pain", "possible", 5),
        ("meddic.champion", "answered", 10),
    ], "the budget is an amount for the deal, worth no points by default"


def test_completeness_counts_answers_and_says_which_required_items_are_missing() -> None:
    answers = checklist(
        answered("economic_buyer", "person", "Grace"),
        answered("identify_pain", "choice", "unknown"),  # recorded, but not an answer yet
        answered("decision_criteria", "text", "price, SSO"),
    )
    review = RULES.review("meddic", answers)
    assert review.required == ("metrics", "economic_buyer", "identify_pain", "champion")
    assert review.missing == ("metrics", "identify_pain", "champion")
    assert review.hard_no is None
    done = review.completeness()
    assert (done.answered, done.items, done.required, done.required_answered) == (2, 7, 4, 1)
    assert done.missing == ["metrics", "identify_pain", "champion"]


@pytest.mark.parametrize(
    ("methodology", "answers", "hard_no"),
    [
        ("meddic", checklist(answered("identify_pain", "choice", "none")), "no pain"),
        ("bant", checklist(answered("budget", "choice", "none")), "no budget"),
        (
            "bant",
            checklist(answered("need", "choice", "none"), answered("budget", "choice", "none")),
            "no need",
        ),
        ("bant", checklist(answered("authority", "choice", "none")), None),
        ("meddpicc", checklist(answered("competition", "choice", "favoured_competitor")), None),
    ],
)
def test_hard_nos(methodology: str, answers: dict[str, ChecklistAnswer], hard_no: str | None) -> None:
    assert RULES.review(methodology, answers).hard_no == hard_no


def test_a_hard_no_disqualifies_and_missing_required_items_keep_a_high_score_in_nurture() -> None:
    thresholds = RULES.thresholds
    missing = RULES.review("meddic", checklist(answered("economic_buyer", "person", "Grace")))
    assert decide(150, thresholds, missing) == Verdict(
        "nurture", "meddic answers missing: metrics, identify_pain, champion"
    )
    # A poor fit is still disqualified by its score, missing answers or not.
    assert decide(3, thresholds, missing).status == "disqualified"
    no_pain = RULES.review("meddic", checklist(answered("identify_pain", "choice", "none")))
    assert decide(150, thresholds, no_pain) == Verdict("disqualified", "no pain")
    complete = RULES.review("meddic", {k: g.recorded(k, REP, AT) for k, g in REQUIRED_MEDDIC.items()})
    assert complete.complete and decide(70, thresholds, complete) == Verdict("qualified")
    assert decide(69, thresholds, complete) == Verdict("nurture")


def test_a_custom_rule_can_require_a_yes_and_disqualify_on_a_no() -> None:
    body = DEFAULT_RULES.model_dump(mode="json")
    body["methodologies"]["meddpicc"]["items"]["paper_process"] = {
        "points": {"yes": 5},
        "required": True,
        "disqualify": ["no"],
        "reason": "no way to sign",
    }
    rules = RuleSet.model_validate(body)
    assert rules.review("meddpicc", {}).missing[-1] == "paper_process"
    unknown = rules.review("meddpicc", checklist(answered("paper_process", "yes_no", "unknown")))
    assert "paper_process" in unknown.missing and unknown.hard_no is None
    assert rules.review("meddpicc", checklist(answered("paper_process", "yes_no", "no"))).hard_no == (
        "no way to sign"
    )


# --- the lead -------------------------------------------------------------------------------------


def test_a_meddic_lead_is_not_qualified_by_fit_alone_then_qualifies_when_the_required_answers_are_in() -> (
    None
):
    lead = Lead.capture(captured(), "corr", RULES, AT, rules_version=1)
    assert (lead.methodology, lead.score, lead.status, lead.pull_events()) == ("meddic", 85, "nurture", [])
    assert Lead.capture(captured(size=500), "corr", RULES, AT).status == "qualified", "BANT: fit alone"

    later = AT + timedelta(days=2)
    lead.record_checklist(
        "meddic",
        {
            "economic_buyer": REQUIRED_MEDDIC["economic_buyer"],
            "budget": Given("amount", amount=Decimal("250000"), currency="USD"),
        },
        RULES,
        later,
        by=REP,
    )
    assert (lead.status, lead.score, lead.pull_events()) == ("nurture", 100, [])
    done = later + timedelta(days=1)
    rest = {k: g for k, g in REQUIRED_MEDDIC.items() if k != "economic_buyer"}
    scoring = lead.record_checklist("meddic", rest, RULES, done, by="lee@kariz.test")

    assert (scoring.trigger, lead.status, lead.score) == ("checklist", "qualified", 135)
    [event] = lead.pull_events()
    assert isinstance(event, LeadQualified)
    assert (event.budget_amount, event.budget_currency, event.answers, event.actor) == (
        Decimal("250000"),
        "USD",
        None,
        "lee@kariz.test",
    )
    assert event.checklist is not None and event.checklist.methodology == "meddic"
    # Each answer says who gave it and when: the first two two days in, the rest a day later.
    assert [(a.item, a.answered_by, a.answered_at) for a in event.checklist.answers] == [
        ("metrics", "lee@kariz.test", done),
        ("economic_buyer", REP, later),
        ("identify_pain", "lee@kariz.test", done),
        ("champion", "lee@kariz.test", done),
        ("budget", REP, later),
    ]
    assert event.checklist.completeness.missing == []
    assert (event.checklist.completeness.required_answered, event.checklist.completeness.answered) == (4, 5)


def test_a_hard_no_on_the_checklist_disqualifies_with_the_checklist_in_the_event() -> None:
    lead = Lead.capture(captured(), "corr", RULES, AT)
    lead.record_checklist("meddic", {"identify_pain": Given("choice", value="none")}, RULES, AT, by=REP)
    [event] = lead.pull_events()
    assert isinstance(event, LeadDisqualified) and event.reason == "no pain"
    assert event.checklist is not None and [a.item for a in event.checklist.answers] == ["identify_pain"]


def test_a_lead_answers_its_own_methodologys_checklist_only() -> None:
    lead = Lead.capture(captured(), "corr", RULES, AT)
    with pytest.raises(RuleViolation, match="qualified with meddic"):
        lead.record_checklist("bant", {"need": Given("choice", value="confirmed")}, RULES, AT, by=REP)
    with pytest.raises(RuleViolation, match="qualified with meddic"):
        lead.record_answers(
            BantAnswers(budget="confirmed", authority="none", need="confirmed", timeline="later"), RULES, AT
        )
    with pytest.raises(RuleViolation, match=r"answers\.decision_maker: not a person item of meddic"):
        lead.record_checklist("meddic", {"decision_maker": Given("person", value="Grace")}, RULES, AT)
    with pytest.raises(RuleViolation, match="'maybe' is not one of"):
        lead.record_checklist("meddic", {"identify_pain": Given("choice", value="maybe")}, RULES, AT)
    assert lead.checklist == {} and lead.scorings[1:] == []


def test_a_bant_checklist_answered_in_parts_is_the_v1_bant_answers_too() -> None:
    # manufacturing 10 + 50-199 10 + DE 10 + manager 8 + referral 15 = 53: nurture.
    lead = Lead.capture(captured(size=60, industry="manufacturing", title="IT Manager"), "corr", RULES, AT)
    assert (lead.methodology, lead.status, lead.score) == ("bant", "nurture", 53)
    lead.record_checklist(
        "bant",
        {
            "need": Given("choice", value="confirmed"),
            "budget_amount": Given("amount", amount=Decimal("9000")),
        },
        RULES,
        AT,
        by=REP,
    )
    assert (lead.status, lead.score) == ("nurture", 68)
    assert lead.answers == BantAnswers(
        budget="unknown",
        budget_amount=Decimal("9000"),
        authority="unknown",
        need="confirmed",
        timeline="unknown",
    )
    assert [line.rule for line in lead.breakdown][-1:] == ["bant.need"]
    lead.record_checklist("bant", {"budget": Given("choice", value="planned")}, RULES, AT, by=REP)
    assert (lead.status, lead.score) == ("qualified", 73)
    [event] = lead.pull_events()
    assert isinstance(event, LeadQualified)
    assert event.answers is not None and (event.answers.budget, event.answers.need) == (
        "planned",
        "confirmed",
    )
    assert event.budget_amount == Decimal("9000") and event.budget_currency is None
    with pytest.raises(Conflict, match="decision is final"):
        lead.record_checklist("bant", {"timeline": Given("choice", value="later")}, RULES, AT, by=REP)


def test_answers_stored_before_checklists_become_the_bant_checklist() -> None:
    answers = BantAnswers(
        budget="planned", authority="influencer", need="possible", timeline="later", pain="slow"
    )
    lead = Lead.capture(captured(size=60), "corr", DEFAULT_RULES, AT)
    old = Lead(
        lead_id=lead.lead_id,
        owner=lead.owner,
        contact=lead.contact,
        company=lead.company,
        source=lead.source,
        campaign=None,
        correlation_id="corr",
        captured_at=AT,
        answers=answers,
        scorings=lead.scorings,
    )
    assert old.methodology == "bant"
    assert old.checklist == bant_checklist(answers, None, AT)
    assert list(old.checklist) == ["budget", "authority", "need", "pain", "timeline"]
    assert DEFAULT_RULES.score_checklist("bant", old.checklist) == DEFAULT_RULES.score_answers(answers)


def test_the_catalogue() -> None:
    assert set(METHODOLOGIES) == {"bant", "meddic", "meddpicc"}
    assert METHODOLOGIES["meddpicc"].keys[-2:] == ("paper_process", "competition")
    assert METHODOLOGIES["meddic"].keys == METHODOLOGIES["meddpicc"].keys[:-2]
    assert {i.kind for m in METHODOLOGIES.values() for i in m.items} == {
        "yes_no",
        "choice",
        "amount",
        "person",
        "text",
    }
    assert Segment(name="x", methodology="meddic", industries=["Financial Services"]).industries == [
        "financial_services"
    ]
