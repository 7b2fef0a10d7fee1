"""Duplicate candidates beyond the e-mail address: phone in E.164, the same name at the same company, the
same domain and a similar name; scored, ranked, bounded, and only among the leads the caller sees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kariz_leads.adapters.in_memory import InMemoryLeadsUnitOfWork
from kariz_leads.domain import AssignedBy, Assignment, Lead
from kariz_leads.domain.duplicates import (
    DuplicateReason,
    LookupKeys,
    combined,
    company_key,
    name_key,
    phone_key,
    rank_duplicates,
)
from kariz_leads.service_layer import views
from kariz_shared.contracts.errors import NotFound
from kariz_shared.contracts.events import Company, Contact, LeadSource
from kariz_shared.contracts.identity import EVERYONE, Actor, Owners
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
ALEX, SAM = "alex@kariz.example", "sam@kariz.example"


def a_lead(
    n: int,
    first: str = "Ada",
    last: str = "Lovelace",
    *,
    email: str | None = None,
    phone: str | None = None,
    company: str = "Analytical Engines",
    domain: str | None = None,
    country: str | None = "GB",
    owner: str = ALEX,
) -> Lead:
    lead = Lead.capture(
        lead_id=f"L-{n:04d}",
        contact=Contact(
            first_name=first, last_name=last, email=email or f"x{n}@mail{n}.example", phone=phone
        ),
        company=Company(name=company, domain=domain, country=country),
        source=LeadSource.WEB_FORM,
        campaign=None,
        consent=True,
        assignment=Assignment(owner, AssignedBy.ROUND_ROBIN),
        correlation_id=f"corr-{n}",
        at=T0 + timedelta(minutes=n),
        by=Actor(owner),
    )
    lead.pull_events()
    return lead


def reasons(candidate: Any) -> set[DuplicateReason]:
    return {e.reason for e in candidate.reasons}


@pytest.mark.parametrize(
    ("phone", "country", "e164"),
    [
        ("+44 20 7946 0958", None, "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("(030) 123-4567", "DE", "+49301234567"),
        ("0049 30 1234567", "DE", "+49301234567"),
        ("+1 415 555 0132 ext. 12", "DE", "+14155550132"),  # an international number keeps its country
        ("020 7946 0958", None, None),  # a national number without a country cannot be read
        ("12", "GB", None),
        (None, "GB", None),
    ],
)
def test_phone_numbers_are_keyed_in_e164_with_the_lead_country_as_region(
    phone: str | None, country: str | None, e164: str | None
) -> None:
    assert phone_key(phone, country) == e164


def test_names_and_companies_are_keyed_folded_without_legal_forms() -> None:
    assert name_key(Contact(first_name="José", last_name="García", email="j@x.example")) == "jose garcia"
    assert company_key(Company(name="Globex GmbH & Co. KG")) == "globex"
    assert company_key(Company(name="GLOBEX Ltd.")) == "globex"
    assert company_key(Company(name="Ltd")) == "ltd"  # nothing but a legal form: kept


def test_scores_combine_as_independent_evidence() -> None:
    assert combined([80]) == 80
    assert combined([80, 85]) == 97
    assert combined([80, 85, 90]) == 99
    assert combined([]) == 0


def test_candidates_by_phone_name_at_company_and_similar_name_at_domain_best_first() -> None:
    lead = a_lead(1, phone="+44 20 7946 0958", domain="analytical.example")
    same_phone = a_lead(2, "Charles", "Babbage", phone="020 7946 0958", company="Difference Ltd")
    same_name_at_company = a_lead(3, "ADA", "lovelace", company="Analytical Engines Ltd")
    similar_at_domain = a_lead(4, "Lovelace,", "Ada", company="AE", domain="analytical.example")
    typo_at_domain = a_lead(5, "Ada", "Lovelance", company="AE", domain="analytical.example")
    other_at_domain = a_lead(6, "Grace", "Hopper", company="AE", domain="analytical.example")
    everything = a_lead(7, "Ada", "Lovelace", phone="+442079460958", domain="analytical.example")
    ranked = rank_duplicates(
        lead,
        [
            lead,
            same_phone,
            same_name_at_company,
            similar_at_domain,
            typo_at_domain,
            other_at_domain,
            everything,
        ],
        limit=20,
    )
    by_id = {c.lead.id: c for c in ranked}
    assert set(by_id) == {"L-0002", "L-0003", "L-0004", "L-0005", "L-0007"}  # not itself, not Grace
    assert reasons(by_id["L-0002"]) == {DuplicateReason.SAME_PHONE}
    assert by_id["L-0002"].score == 80
    assert reasons(by_id["L-0003"]) == {DuplicateReason.SAME_NAME_SAME_COMPANY}
    assert by_id["L-0003"].score == 85
    assert reasons(by_id["L-0004"]) == {DuplicateReason.SAME_DOMAIN_SIMILAR_NAME}
    assert by_id["L-0004"].score == 90  # word order aside: a similarity of 100
    assert 77 <= by_id["L-0005"].score < 90
    assert reasons(by_id["L-0007"]) == set(DuplicateReason)
    assert by_id["L-0007"].score == 99
    assert by_id["L-0005"].score == 86  # a typo: a similarity of 96
    assert [c.lead.id for c in ranked] == ["L-0007", "L-0004", "L-0005", "L-0003", "L-0002"]
    assert [c.lead.id for c in rank_duplicates(lead, ranked_leads(ranked), limit=2)] == ["L-0007", "L-0004"]


def ranked_leads(ranked: list[Any]) -> list[Lead]:
    return [c.lead for c in ranked]


def test_a_lead_with_no_phone_domain_or_company_match_has_no_candidates() -> None:
    lead = a_lead(1, domain=None)
    assert rank_duplicates(lead, [a_lead(2, "Grace", "Hopper", company="Globex")], limit=20) == []
    assert LookupKeys.of(lead).phone is None


async def units_with(*leads: Lead) -> InMemoryUnitsOfWork[InMemoryLeadsUnitOfWork]:
    units = InMemoryUnitsOfWork(InMemoryLeadsUnitOfWork(FakeClock(T0)))

    async def work(uow: InMemoryLeadsUnitOfWork) -> None:
        await uow.leads.add_all(list(leads))

    await units.run(work)
    return units


async def test_only_leads_the_caller_sees_are_candidates_and_a_lead_out_of_reach_is_not_found() -> None:
    units = await units_with(
        a_lead(1, phone="+44 20 7946 0958", owner=ALEX),
        a_lead(2, "Charles", "Babbage", phone="+44 20 7946 0958", owner=ALEX),
        a_lead(3, "Ada", "Lovelace", owner=SAM),
    )
    everyone = await views.duplicate_candidates(units, "L-0001", EVERYONE, limit=20)
    assert [c.lead.id for c in everyone] == ["L-0003", "L-0002"]
    alex = Owners(frozenset({ALEX}))
    assert [c.lead.id for c in await views.duplicate_candidates(units, "L-0001", alex, limit=20)] == [
        "L-0002"
    ]
    with pytest.raises(NotFound, match="no lead with id 'L-0003'"):
        await views.duplicate_candidates(units, "L-0003", alex, limit=20)
    with pytest.raises(NotFound):
        await views.duplicate_candidates(units, "L-9999", EVERYONE, limit=20)
