"""How captured contact and company data is cleaned, so a lead from a trade-show scan and one from a web
form look the same, and every service means the same by the same words. Pure functions; a value that
cannot be made valid raises :class:`InvalidValue` with a message for a person to read. Every function
is idempotent: normalising twice changes nothing.
"""

from __future__ import annotations

import re

import pycountry

from kariz_shared.contracts.countries import ISO_COUNTRY_CODES
from kariz_shared.contracts.events import Company, Contact


class InvalidValue(ValueError):
    """A captured value that cannot be normalised into a valid one."""


# RFC 5321 limits; the local part allows the RFC 5322 "atext" characters with single inner dots.
_LOCAL_PART = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_TOP_LEVEL = re.compile(r"^([a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
_WHITESPACE = re.compile(r"\s+")
# Digits with the usual separators, an optional leading '+', and an optional extension ('x12', 'ext. 12').
_PHONE = re.compile(r"^\+?[0-9(][0-9 ()./-]*[0-9)]( ?(x|ext\.?) ?[0-9]{1,6})?$")

# Addresses anyone can open: their domain says nothing about the lead's company.
FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "ymail.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "gmx.de",
        "gmx.net",
        "gmx.at",
        "gmx.ch",
        "gmx.com",
        "web.de",
        "t-online.de",
        "freenet.de",
        "proton.me",
        "protonmail.com",
        "pm.me",
        "mail.com",
        "zoho.com",
        "yandex.com",
        "yandex.ru",
        "mail.ru",
        "qq.com",
        "163.com",
    }
)
# Providers that run the same service under many country domains (gmx.fr, yahoo.co.uk, hotmail.com.br).
FREE_MAIL_FAMILIES: frozenset[str] = frozenset({"gmx", "yahoo", "hotmail", "outlook", "live"})


def collapse_whitespace(value: str) -> str:
    """Trimmed, with every inner run of whitespace (tabs, newlines from a pasted form) one space."""
    return _WHITESPACE.sub(" ", value).strip()


def normalise_name(value: str, *, what: str = "name") -> str:
    cleaned = collapse_whitespace(value)
    if not cleaned:
        raise InvalidValue(f"{what} must not be blank")
    return cleaned


def normalise_optional_text(value: str | None) -> str | None:
    """Optional free text (phone, title, campaign): trimmed; blank means absent, as web forms send ''."""
    if value is None:
        return None
    cleaned = collapse_whitespace(value)
    return cleaned or None


def normalise_phone(value: str | None) -> str | None:
    phone = normalise_optional_text(value)
    if phone is None:
        return None
    if not _PHONE.match(phone.lower()) or sum(c.isdigit() for c in phone) < 5:
        raise InvalidValue(f"{phone!r} is not a phone number (digits, spaces, + ( ) - . / and an extension)")
    return phone


def is_domain_name(value: str) -> bool:
    labels = value.split(".")
    return (
        len(value) <= 253
        and len(labels) >= 2
        and all(_LABEL.match(label) for label in labels)
        and bool(_TOP_LEVEL.match(labels[-1]))
    )


def normalise_email(value: str) -> str:
    """Trimmed and lower-case; raises InvalidValue unless it is a plausible address (user@domain.tld)."""
    email = value.strip().lower()
    if not email:
        raise InvalidValue("e-mail address must not be blank")
    local, at, domain = email.rpartition("@")
    if not at or not local:
        raise InvalidValue(f"{value.strip()!r} is not an e-mail address: it needs the form name@company.com")
    if len(email) > 254 or len(local) > 64:
        raise InvalidValue("e-mail address is too long (at most 64 characters before the @, 254 in all)")
    if not _LOCAL_PART.match(local):
        raise InvalidValue(f"{value.strip()!r} is not an e-mail address: the part before the @ is invalid")
    if not is_domain_name(domain):
        raise InvalidValue(f"{value.strip()!r} is not an e-mail address: {domain!r} is not a domain name")
    return email


def duplicate_key(email: str) -> str:
    """What makes two captures the same lead: the same normalised e-mail address. Plus-addressing and
    dots are kept (ada+events@ is a different mailbox for all we know)."""
    return normalise_email(email)


def normalise_domain(value: str) -> str:
    """A company's web domain from whatever was typed: 'https://www.Acme.com/about' -> 'acme.com'."""
    domain = value.strip().lower()
    domain = _SCHEME.sub("", domain)
    domain = re.split(r"[/?#]", domain, maxsplit=1)[0]
    domain = domain.rsplit("@", 1)[-1]  # someone pasted an address
    domain = domain.split(":", 1)[0].rstrip(".")
    domain = domain.removeprefix("www.")
    if not is_domain_name(domain):
        raise InvalidValue(f"{value.strip()!r} is not a domain name (expected something like acme.com)")
    return domain


def is_free_mail(domain: str) -> bool:
    domain = domain.lower()
    if domain in FREE_MAIL_DOMAINS:
        return True
    family, _, suffix = domain.partition(".")
    if family not in FREE_MAIL_FAMILIES or not suffix:
        return False
    # Only a country suffix ('de', 'co.uk', 'com.br'), never a company's own sub-domain (outlook.acme.com).
    parts = suffix.split(".")
    return len(parts) == 1 or (len(parts) == 2 and parts[0] in ("co", "com"))


def domain_from_email(email: str) -> str | None:
    """The company domain an address tells us, or None for a free-mail address."""
    domain = normalise_email(email).rpartition("@")[2]
    if is_free_mail(domain):
        return None
    return normalise_domain(domain)


def normalise_country(value: str) -> str:
    """The ISO 3166-1 alpha-2 code of a country given by that code, its alpha-3 or numeric code, or its
    English name as ISO writes it ("Germany", "DEU", "Viet Nam"): trade-show files and partner feeds
    name countries the way people do."""
    code = value.strip().upper()
    if len(code) != 2 or not code.isalpha():
        try:
            code = pycountry.countries.lookup(value.strip()).alpha_2
        except LookupError:
            raise InvalidValue(
                f"{value.strip()!r} is not a country: use an ISO 3166-1 code, e.g. 'DE' or 'GB', or the "
                "country's English name"
            ) from None
    if code not in ISO_COUNTRY_CODES:
        raise InvalidValue(f"{code!r} is not an assigned ISO 3166-1 alpha-2 country code")
    return code


def normalise_industry(value: str) -> str | None:
    """One industry, one spelling in every service: ``"Financial Services"``, ``"financial-services"``
    and ``" financial  services"`` are all ``financial_services``."""
    cleaned = re.sub(r"[\s\-_]+", "_", value.strip().lower()).strip("_")
    return cleaned or None


def normalise_contact(contact: Contact) -> Contact:
    return Contact(
        first_name=normalise_name(contact.first_name, what="first name"),
        last_name=normalise_name(contact.last_name, what="last name"),
        email=normalise_email(contact.email),
        phone=normalise_phone(contact.phone),
        title=normalise_optional_text(contact.title),
    )


def normalise_company(company: Company, *, email: str) -> Company:
    """The company cleaned; its domain, when not given, taken from the contact's (non free-mail) address."""
    domain = normalise_domain(company.domain) if company.domain and company.domain.strip() else None
    country = normalise_country(company.country) if company.country and company.country.strip() else None
    if company.size is not None and company.size < 1:
        raise InvalidValue("company size is a number of employees: at least 1")
    return Company(
        name=normalise_name(company.name, what="company name"),
        domain=domain or domain_from_email(email),
        industry=normalise_industry(company.industry) if company.industry else None,
        size=company.size,
        country=country,
    )
