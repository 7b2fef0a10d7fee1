"""Normalisation of captured contact and company data: e-mail, names, domain, free mail, country."""

from __future__ import annotations

import pytest

from kariz_shared.contracts.events import Company, Contact
from kariz_shared.contracts.normalisation import (
    InvalidValue,
    domain_from_email,
    is_free_mail,
    normalise_company,
    normalise_contact,
    normalise_country,
    normalise_domain,
    normalise_email,
    normalise_industry,
    normalise_name,
    normalise_phone,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ada.Lovelace@Analytical.Example \n", "ada.lovelace@analytical.example"),
        ("ADA+events@ACME.CO.UK", "ada+events@acme.co.uk"),
        ("o'neil@sub.acme-corp.io", "o'neil@sub.acme-corp.io"),
    ],
)
def test_email_is_trimmed_and_lower_case(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "blank"),
        ("   ", "blank"),
        ("ada.example.com", "name@company.com"),
        ("@example.com", "name@company.com"),
        ("ada@", "not a domain name"),
        ("ada@localhost", "not a domain name"),
        ("ada@exa mple.com", "not a domain name"),
        ("ada@example.c", "not a domain name"),
        ("ada@-example.com", "not a domain name"),
        ("ada..lovelace@example.com", "before the @ is invalid"),
        (".ada@example.com", "before the @ is invalid"),
        ("ada lovelace@example.com", "before the @ is invalid"),
        ("a" * 65 + "@example.com", "too long"),
    ],
)
def test_invalid_email_is_refused_with_the_reason(raw: str, why: str) -> None:
    with pytest.raises(InvalidValue, match=why):
        normalise_email(raw)


def test_names_are_trimmed_and_inner_whitespace_collapsed() -> None:
    assert normalise_name("  Mary \t  Ann\n") == "Mary Ann"
    with pytest.raises(InvalidValue, match="first name must not be blank"):
        normalise_name(" \t ", what="first name")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("acme.com", "acme.com"),
        ("  WWW.Acme.COM ", "acme.com"),
        ("https://www.acme.com/about?x=1", "acme.com"),
        ("http://shop.acme.de:8080/", "shop.acme.de"),
        ("acme.com.", "acme.com"),
        ("wwwacme.com", "wwwacme.com"),
    ],
)
def test_domain_loses_scheme_www_and_path(raw: str, expected: str) -> None:
    assert normalise_domain(raw) == expected


@pytest.mark.parametrize("raw", ["acme", "https://", "acme..com", "ac me.com"])
def test_a_domain_that_is_not_one_is_refused(raw: str) -> None:
    with pytest.raises(InvalidValue, match="not a domain name"):
        normalise_domain(raw)


@pytest.mark.parametrize(
    "domain",
    [
        "gmail.com",
        "outlook.com",
        "hotmail.com",
        "yahoo.com",
        "icloud.com",
        "web.de",
        "proton.me",
        "gmx.de",
        "gmx.net",
        "gmx.fr",
        "yahoo.co.uk",
        "hotmail.com.br",
        "GMail.com",
    ],
)
def test_free_mail_providers_are_recognised(domain: str) -> None:
    assert is_free_mail(domain)


@pytest.mark.parametrize(
    "domain", ["acme.com", "outlook.acme.com", "gmxtools.de", "mygmail.com", "yahoo.acme.io"]
)
def test_company_domains_are_not_free_mail(domain: str) -> None:
    assert not is_free_mail(domain)


def test_company_domain_comes_from_the_email_unless_free_mail() -> None:
    assert domain_from_email("Ada@Analytical.Example") == "analytical.example"
    assert domain_from_email("ada@gmail.com") is None
    assert domain_from_email("ada@gmx.at") is None


@pytest.mark.parametrize(("raw", "expected"), [("de", "DE"), (" gb ", "GB"), ("Us", "US")])
def test_country_is_an_upper_case_iso_code(raw: str, expected: str) -> None:
    assert normalise_country(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Germany", "DE"), (" united kingdom ", "GB"), ("DEU", "DE"), ("Viet Nam", "VN"), ("276", "DE")],
)
def test_a_country_named_or_given_by_another_iso_code_is_its_alpha_2_code(raw: str, expected: str) -> None:
    assert normalise_country(raw) == expected


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("Germania", "not a country"),
        ("D", "not a country"),
        ("D1", "not a country"),
        ("UK", "not an assigned"),
        ("XX", "not an assigned"),
    ],
)
def test_country_must_be_an_assigned_iso_code(raw: str, why: str) -> None:
    with pytest.raises(InvalidValue, match=why):
        normalise_country(raw)


def test_industry_is_trimmed_lower_case() -> None:
    assert normalise_industry("  Financial   Services ") == "financial_services"
    assert (
        normalise_industry("financial-services")
        == normalise_industry("Financial_Services")
        == "financial_services"
    )
    assert normalise_industry("   ") is None


@pytest.mark.parametrize(
    "raw", ["+49 (30) 1234567", "(030) 123-4567", "+1 555.123.4567 ext. 12", "0171/1234567"]
)
def test_phone_numbers_in_common_formats_are_kept(raw: str) -> None:
    assert normalise_phone(f"  {raw} ") == raw


@pytest.mark.parametrize("raw", ["call me", "12", "+49 abc 123456"])
def test_phone_that_is_not_a_number_is_refused(raw: str) -> None:
    with pytest.raises(InvalidValue, match="not a phone number"):
        normalise_phone(raw)


def test_blank_optional_values_mean_absent() -> None:
    assert normalise_phone("   ") is None
    contact = normalise_contact(
        Contact(first_name="Ada", last_name="L", email="a@acme.com", phone="", title=" ")
    )
    assert (contact.phone, contact.title) == (None, None)


def test_contact_and_company_together() -> None:
    contact = normalise_contact(
        Contact(
            first_name=" Ada ", last_name=" King  Lovelace ", email=" ADA@Analytical.Example", title=" CTO "
        )
    )
    company = normalise_company(
        Company(name="  Analytical   Engines ", industry=" Software ", size=40, country="gb"),
        email=contact.email,
    )
    assert contact == Contact(
        first_name="Ada", last_name="King Lovelace", email="ada@analytical.example", title="CTO"
    )
    assert company == Company(
        name="Analytical Engines", domain="analytical.example", industry="software", size=40, country="GB"
    )


def test_a_given_company_domain_wins_over_the_email() -> None:
    company = normalise_company(
        Company(name="Acme", domain="https://www.Acme.io/"), email="ada@acme-mail.com"
    )
    assert company.domain == "acme.io"


def test_free_mail_leaves_the_company_domain_empty() -> None:
    assert normalise_company(Company(name="Acme"), email="ada@gmail.com").domain is None


def test_normalising_twice_changes_nothing() -> None:
    contact = normalise_contact(
        Contact(first_name=" A  b ", last_name="C", email=" X@Acme.COM", phone=" +1 5551234 ")
    )
    company = normalise_company(
        Company(name=" Acme ", domain="WWW.acme.com", country="de"), email=contact.email
    )
    assert normalise_contact(contact) == contact
    assert normalise_company(company, email=contact.email) == company


def test_company_size_is_at_least_one_employee() -> None:
    with pytest.raises(InvalidValue, match="at least 1"):
        normalise_company(Company(name="Acme", size=0), email="a@acme.com")
