"""Accounts: one per company, known by its domain or, without one, by its name written the same way."""

from datetime import UTC, datetime

import pytest

from kariz_deals.domain import Account, normalise_domain, normalise_name
from kariz_shared.contracts.errors import RuleViolation

NOW = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("acme.com", "acme.com"),
        ("  WWW.Acme.COM ", "acme.com"),
        ("https://www.acme.com/about?x=1", "acme.com"),
        ("acme.com:443", "acme.com"),
        ("sales@acme.com", "acme.com"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_domain_normalisation(raw: str | None, clean: str | None) -> None:
    assert normalise_domain(raw) == clean


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Acme", "acme"),
        ("  ACME, Inc. ", "acme"),
        ("Acme GmbH", "acme"),
        ("Globex   Corporation", "globex"),
        ("Müller & Söhne AG", "müller söhne"),
        ("Inc.", "inc"),
    ],
)
def test_name_normalisation(raw: str, clean: str) -> None:
    assert normalise_name(raw) == clean


def test_account_for_a_company_keys_by_domain_else_by_name() -> None:
    with_domain = Account.for_company(account_id="A-1", name=" Acme  Inc ", domain="www.acme.com", at=NOW)
    assert (with_domain.name, with_domain.domain, with_domain.key) == (
        "Acme Inc",
        "acme.com",
        "domain:acme.com",
    )
    without = Account.for_company(account_id="A-2", name="Acme Inc.", domain=None, at=NOW)
    assert without.key == "name:acme"


def test_a_company_without_a_name_is_named_by_its_domain() -> None:
    account = Account.for_company(account_id="A-1", name="  ", domain="acme.com", at=NOW)
    assert account.name == "acme.com"


def test_a_company_without_name_or_domain_cannot_have_an_account() -> None:
    with pytest.raises(RuleViolation, match="name or a domain"):
        Account.for_company(account_id="A-1", name=" ", domain=" ", at=NOW)
