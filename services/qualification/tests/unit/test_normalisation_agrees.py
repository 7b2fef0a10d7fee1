"""Leads and qualification mean the same by the same industry: leads normalises a captured company with
the shared ``normalise_company``, and the rule set, keyed however an admin spelled it, gives that lead
its industry's points."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kariz_qualification.adapters.in_memory import InMemoryQualificationUnitOfWork
from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet
from kariz_qualification.service_layer import handlers, views
from kariz_shared.contracts.events import Company, Contact, LeadCaptured, LeadSource, ScoreLine
from kariz_shared.contracts.normalisation import normalise_company, normalise_industry
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork

SPELLINGS = [
    "Financial Services",
    "financial services",
    "FINANCIAL SERVICES",
    "financial-services",
    "Financial_Services",
    "  financial   services ",
    "financial - services",
    "financial_services",
]


def captured_as_leads_would(industry: str) -> LeadCaptured:
    """The event leads publishes: its company cleaned by the shared normaliser, as leads does at capture."""
    email = "ada@bank.example"
    company = normalise_company(Company(name="Bank", industry=industry, size=5, country="BR"), email=email)
    return LeadCaptured(
        lead_id="L-1",
        contact=Contact(first_name="Ada", last_name="Lovelace", email=email),
        company=company,
        source=LeadSource.OUTBOUND,
        owner="rep@kariz.test",
        assigned_by="round_robin",
        captured_at=datetime(2026, 1, 5, 8, 0, tzinfo=UTC),
    )


async def industry_line(rules: RuleSet, event: LeadCaptured) -> ScoreLine | None:
    units = InMemoryUnitsOfWork(InMemoryQualificationUnitOfWork(rules=rules))
    await units.handle(handlers.capture_lead, event)
    lead = await views.qualification_of(units, event.lead_id)
    return next((line for line in lead.breakdown if line.rule == "industry"), None)


@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_a_lead_normalised_by_leads_scores_its_industry_points(spelling: str) -> None:
    event = captured_as_leads_would(spelling)
    assert event.company.industry == "financial_services"
    line = await industry_line(DEFAULT_RULES, event)
    assert line == ScoreLine(rule="industry", matched="financial_services", points=15)


@pytest.mark.parametrize("key", ["Financial Services", "financial-services", " FINANCIAL_services "])
@pytest.mark.parametrize("spelling", SPELLINGS)
async def test_a_rule_keyed_in_any_spelling_matches_any_captured_spelling(key: str, spelling: str) -> None:
    body = DEFAULT_RULES.model_dump(mode="json")
    rules = RuleSet.model_validate({**body, "industry": {key: 25}})
    assert rules.industry == {"financial_services": 25}
    line = await industry_line(rules, captured_as_leads_would(spelling))
    assert line == ScoreLine(rule="industry", matched="financial_services", points=25)


def test_the_rule_set_keys_are_the_shared_normal_form() -> None:
    assert all(normalise_industry(key) == key for key in DEFAULT_RULES.industry)


async def test_an_industry_the_rules_do_not_list_earns_nothing() -> None:
    assert await industry_line(DEFAULT_RULES, captured_as_leads_would("Financial Planning")) is None
