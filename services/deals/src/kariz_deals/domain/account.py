"""Accounts: the customer companies deals are opened with. One account per company, found again by
its web domain when known, else by its name written the same way."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from kariz_shared.contracts.errors import RuleViolation

# Legal forms say nothing about which company it is: "Acme Inc." and "ACME" are one account.
LEGAL_FORMS = frozenset(
    {
        "inc",
        "incorporated",
        "ltd",
        "limited",
        "llc",
        "llp",
        "plc",
        "corp",
        "corporation",
        "co",
        "company",
        "gmbh",
        "ag",
        "kg",
        "sa",
        "sas",
        "sarl",
        "srl",
        "spa",
        "bv",
        "nv",
        "ab",
        "as",
        "oy",
        "pty",
        "sl",
    }
)


def normalise_domain(raw: str | None) -> str | None:
    """``https://www.Acme.com/about`` -> ``acme.com``; None when nothing usable is left."""
    if raw is None:
        return None
    domain = raw.strip().lower()
    domain = re.sub(r"^[a-z][a-z0-9+.-]*://", "", domain)
    domain = domain.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    domain = domain.rsplit("@", 1)[-1].split(":", 1)[0].strip(".")
    domain = domain.removeprefix("www.")
    return domain or None


def normalise_name(raw: str) -> str:
    """``"  ACME, Inc. "`` -> ``acme``: case, punctuation, spacing and legal form do not count."""
    words = re.sub(r"[^\w]+", " ", raw.casefold()).split()
    significant = [w for w in words if w not in LEGAL_FORMS]
    return " ".join(significant or words)


def new_account_id() -> str:
    return f"A-{uuid.uuid4().hex}"


def account_key(domain: str | None, name_key: str) -> str:
    return f"domain:{domain}" if domain else f"name:{name_key}"


@dataclass(frozen=True)
class Account:
    id: str
    name: str
    domain: str | None
    name_key: str
    created_at: datetime
    industry: str | None = None
    size: int | None = None
    country: str | None = None

    @property
    def key(self) -> str:
        return account_key(self.domain, self.name_key)

    @classmethod
    def for_company(
        cls,
        *,
        account_id: str,
        name: str,
        domain: str | None,
        at: datetime,
        industry: str | None = None,
        size: int | None = None,
        country: str | None = None,
    ) -> Account:
        clean_domain = normalise_domain(domain)
        clean_name = " ".join(name.split()) or (clean_domain or "")
        if not clean_name:
            raise RuleViolation("a company needs a name or a domain to open an account")
        return cls(
            id=account_id,
            name=clean_name,
            domain=clean_domain,
            name_key=normalise_name(clean_name),
            created_at=at,
            industry=industry,
            size=size,
            country=country,
        )
