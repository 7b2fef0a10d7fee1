"""The decision function and the finality of a lead's decision."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kariz_qualification.domain.lead import Lead, Verdict, decide
from kariz_qualification.domain.methodologies import bant_checklist
from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet, Thresholds
from kariz_shared.contracts.errors import Conflict
from kariz_shared.contracts.events import (
    BantAnswers,
    Company,
    Contact,
    LeadCaptured,
    LeadDisqualified,
    LeadQualified,
    LeadSource,
)

DEFAULT = Thresholds(qualify=70, disqualify_below=15)
AT = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def answers(**fields: str) -> BantAnswers:
    defaults = {"budget": "unknown", "authority": "unknown", "need": "unknown", "timeline": "unknown"}
    return BantAnswers.model_validate({**defaults, **fields})


FULL_BANT = answers(
    budget="confirmed", authority="decision_maker", need="confirmed", timeline="within_3_months"
)


@pytest.mark.parametrize(
    ("score", "given", "expected"),
    [
        (70, None, Verdict("qualified")),
        (150, answers(), Verdict("qualified")),
        (69, None, Verdict("nurture")),
        (15, None, Verdict("nurture")),
        (
            14,
            None,
            Verdict("disqualified", "fit score 14 is below the disqualification threshold 15"),
        ),
        (0, answers(), Verdict("disqualified", "fit score 0 is below the disqualification threshold 15")),
        (90, answers(need="none"), Verdict("disqualified", "no need")),
        (90, answers(budget="none"), Verdict("disqualified", "no budget")),
        (90, answers(need="none", budget="none"), Verdict("disqualified", "no need")),
        # Only need and budget disqualify by answer; no authority or a late timeline just earn nothing.
        (40, answers(authority="none", timeline="later"), Verdict("nurture")),
    ],
)
def test_decide(score: int, given: BantAnswers | None, expected: Verdict) -> None:
    review = None if given is None else DEFAULT_RULES.review("bant", bant_checklist(given, "rep", AT))
    assert decide(score, DEFAULT, review) == expected


def captured(
    lead_id: str = "L-1",
    *,
    industry: str = "software",
    size: int = 500,
    country: str = "DE",
    title: str | None = "VP Sales",
    source: LeadSource = LeadSource.REFERRAL,
) -> LeadCaptured:
    return LeadCaptured(
        lead_id=lead_id,
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@example.com", title=title),
        company=Company(name="Acme", industry=industry, size=size, country=country),
        source=source,
        owner="rep@kariz.test",
        assigned_by="round_robin",
        captured_at=AT,
    )


def middling() -> LeadCaptured:
    # manufacturing 10 + 50-199 10 + FR 8 + manager 8 + web_form 8 = 44: nurture.
    return captured(
        industry="manufacturing", size=60, country="FR", title="IT Manager", source=LeadSource.WEB_FORM
    )


def test_strong_fit_qualifies_at_capture_with_one_event() -> None:
    lead = Lead.capture(captured(), "corr-1", DEFAULT_RULES, AT)
    assert (lead.status, lead.score, lead.correlation_id) == ("qualified", 80, "corr-1")
    [event] = lead.pull_events()
    assert isinstance(event, LeadQualified)
    assert (event.score, event.threshold, event.qualified_at, event.answers) == (80, 70, AT, None)
    assert [line.rule for line in event.breakdown] == [
        "industry",
        "company_size",
        "country",
        "seniority",
        "source",
    ]


def test_middling_lead_is_nurtured_then_qualified_by_its_answers() -> None:
    lead = Lead.capture(middling(), "c", DEFAULT_RULES, AT)
    assert (lead.status, lead.score, lead.pull_events()) == ("nurture", 44, [])
    lead.record_answers(FULL_BANT, DEFAULT_RULES, AT)
    assert (lead.status, lead.score) == ("qualified", 104)
    assert [s.trigger for s in lead.scorings] == ["captured", "bant"]
    [event] = lead.pull_events()
    assert isinstance(event, LeadQualified) and event.answers == FULL_BANT


def test_answers_can_be_corrected_while_nurtured() -> None:
    lead = Lead.capture(middling(), "c", DEFAULT_RULES, AT)
    lead.record_answers(answers(need="possible"), DEFAULT_RULES, AT)
    lead.record_answers(answers(need="confirmed"), DEFAULT_RULES, AT)
    assert (lead.status, lead.score, len(lead.scorings), lead.pull_events()) == ("nurture", 59, 3, [])


def test_no_need_disqualifies_despite_a_high_score() -> None:
    lead = Lead.capture(middling(), "c", DEFAULT_RULES, AT)
    lead.record_answers(
        answers(budget="confirmed", authority="decision_maker", need="none"), DEFAULT_RULES, AT
    )
    [event] = lead.pull_events()
    assert isinstance(event, LeadDisqualified)
    assert (event.reason, event.score, event.disqualified_at) == ("no need", 74, AT)
    assert lead.decision is not None and not lead.decision.manual


def test_poor_fit_is_disqualified_at_capture() -> None:
    lead = Lead.capture(
        captured(industry="mining", size=3, country="BR", title=None, source=LeadSource.PURCHASED_LIST),
        "c",
        DEFAULT_RULES,
        AT,
    )
    assert lead.status == "disqualified"
    assert lead.decision is not None
    assert lead.decision.reason == "fit score 2 is below the disqualification threshold 15"


def test_manual_disqualification() -> None:
    lead = Lead.capture(middling(), "c", DEFAULT_RULES, AT)
    lead.disqualify("chose a competitor", AT)
    [event] = lead.pull_events()
    assert isinstance(event, LeadDisqualified) and event.reason == "chose a competitor" and event.score == 44
    assert lead.decision is not None and lead.decision.manual


@pytest.mark.parametrize(
    "second",
    [
        lambda lead: lead.record_answers(FULL_BANT, DEFAULT_RULES, AT),
        lambda lead: lead.rescore(DEFAULT_RULES, "bant", AT),
        lambda lead: lead.disqualify("changed my mind", AT),
    ],
    ids=["answers", "rescore", "disqualify"],
)
@pytest.mark.parametrize("first", ["qualified", "disqualified"])
def test_a_decision_is_final(first: str, second) -> None:  # type: ignore[no-untyped-def]
    lead = Lead.capture(captured() if first == "qualified" else middling(), "c", DEFAULT_RULES, AT)
    if first == "disqualified":
        lead.disqualify("no fit", AT)
    assert lead.status == first
    [_decided] = lead.pull_events()
    before = (lead.status, list(lead.scorings), lead.answers, lead.decision)
    with pytest.raises(Conflict, match=f"already {first}.*decision is final"):
        second(lead)
    assert (lead.status, list(lead.scorings), lead.answers, lead.decision) == before
    assert lead.pull_events() == [], "a refused change raises nothing"


def test_rule_changes_affect_later_scorings_only() -> None:
    lead = Lead.capture(middling(), "c", DEFAULT_RULES, AT)
    generous = RuleSet.model_validate(
        {**DEFAULT_RULES.model_dump(mode="json"), "industry": {"manufacturing": 40}}
    )
    lead.record_answers(answers(), generous, AT)
    assert [s.score for s in lead.scorings] == [44, 74]
    assert lead.status == "qualified"
    assert lead.decision is not None and lead.decision.threshold == 70
