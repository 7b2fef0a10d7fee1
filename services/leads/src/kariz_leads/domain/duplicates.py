"""Duplicate candidates: leads that may be the same person as another under a different e-mail address
(the address itself is the duplicate rule, see ``Lead.is_same_contact``: a second capture of it is a
touch, never a second lead).

A candidate shares at least one of these with the lead, each a reason with a score of its own (0-100):

- ``same_phone``: the same phone number in E.164 (parsed with the company's country as the region),
  score 80 (a switchboard number is shared by colleagues);
- ``same_name_same_company``: the same folded full name at the same folded company name (legal forms
  such as "Ltd" or "GmbH" left out), score 85;
- ``same_domain_similar_name``: the same company domain and a similar name (rapidfuzz's token sort
  ratio of the folded full names, at least 85: "Ada Lovelace" and "Lovelace, Ada" are 100, a typo
  about 95), scored 0.9 times the similarity.

A candidate's score combines its reasons as independent evidence, ``100 * (1 - prod(1 - s / 100))``,
rounded down: two reasons of 80 and 85 make 97. Candidates are ranked best first (then newest).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import phonenumbers
from rapidfuzz import fuzz

from kariz_leads.domain.lead import Lead
from kariz_leads.domain.search import words
from kariz_shared.contracts.events import Company, Contact

#: At most this many candidates are answered.
MAX_CANDIDATES = 50
#: Leads read per reason: the newest with the lead's phone, name at its company, or domain.
PER_REASON = 50
#: A domain may be a big company's with thousands of leads: its newest this many are compared by name.
DOMAIN_SCAN = 200
SIMILAR_NAME = 85
PHONE_SCORE = 80
NAME_AT_COMPANY_SCORE = 85
DOMAIN_NAME_WEIGHT = 0.9

# Legal forms, left out of the company key so "Globex Ltd" and "Globex" are one company.
LEGAL_FORMS = frozenset(
    "ab ag as asa bv co company corp corporation cv gmbh inc incorporated kg kk limited llc llp ltd "
    "nv oy oyj plc pte pty sa sarl sas se spa srl ug".split()
)


class DuplicateReason(StrEnum):
    SAME_PHONE = "same_phone"
    SAME_NAME_SAME_COMPANY = "same_name_same_company"
    SAME_DOMAIN_SIMILAR_NAME = "same_domain_similar_name"


def phone_key(phone: str | None, country: str | None) -> str | None:
    """The number in E.164 ("+442079460958"), read with ``country`` as the region for a national
    number; None when there is none or it cannot be parsed as a possible number."""
    if not phone:
        return None
    try:
        number = phonenumbers.parse(phone, country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def name_key(contact: Contact) -> str:
    """The folded full name, "first last" ("José García" -> "jose garcia")."""
    return " ".join([*words(contact.first_name), *words(contact.last_name)])


def company_key(company: Company) -> str:
    """The folded company name without legal forms ("Globex GmbH & Co. KG" -> "globex")."""
    all_words = words(company.name)
    kept = [w for w in all_words if w not in LEGAL_FORMS]
    return " ".join(kept or all_words)


@dataclass(frozen=True)
class LookupKeys:
    """What a lead's duplicate candidates are found by, stored (and indexed) with the lead."""

    phone: str | None
    name: str
    company: str

    @classmethod
    def of(cls, lead: Lead) -> LookupKeys:
        return cls(
            phone=phone_key(lead.contact.phone, lead.company.country),
            name=name_key(lead.contact),
            company=company_key(lead.company),
        )


@dataclass(frozen=True)
class Evidence:
    reason: DuplicateReason
    score: int


@dataclass(frozen=True)
class DuplicateCandidate:
    lead: Lead
    score: int
    reasons: tuple[Evidence, ...]


def name_similarity(a: Contact, b: Contact) -> float:
    """0-100: how alike two full names are, folded, word order aside."""
    return float(fuzz.token_sort_ratio(name_key(a), name_key(b)))


def evidence(lead: Lead, other: Lead) -> tuple[Evidence, ...]:
    """Why ``other`` may be ``lead`` again (nothing: it is not a candidate)."""
    found: list[Evidence] = []
    mine, theirs = LookupKeys.of(lead), LookupKeys.of(other)
    if mine.phone is not None and mine.phone == theirs.phone:
        found.append(Evidence(DuplicateReason.SAME_PHONE, PHONE_SCORE))
    if mine.name and mine.name == theirs.name and mine.company and mine.company == theirs.company:
        found.append(Evidence(DuplicateReason.SAME_NAME_SAME_COMPANY, NAME_AT_COMPANY_SCORE))
    if lead.company.domain and lead.company.domain == other.company.domain:
        similarity = name_similarity(lead.contact, other.contact)
        if similarity >= SIMILAR_NAME:
            score = math.floor(DOMAIN_NAME_WEIGHT * similarity)
            found.append(Evidence(DuplicateReason.SAME_DOMAIN_SIMILAR_NAME, score))
    return tuple(found)


def combined(scores: list[int]) -> int:
    """Independent evidence together: ``100 * (1 - prod(1 - s / 100))``, rounded down, in integers
    (80 and 85 make 97)."""
    if not scores:
        return 0
    doubt = math.prod(100 - s for s in scores)
    return 100 - -(-doubt // 100 ** (len(scores) - 1))


def rank_duplicates(lead: Lead, others: Iterable[Lead], *, limit: int) -> list[DuplicateCandidate]:
    """The candidates among ``others`` (the lead itself left out), best first, then newest, at most
    ``limit``."""
    candidates: dict[str, DuplicateCandidate] = {}
    for other in others:
        if other.id == lead.id or other.id in candidates:
            continue
        reasons = evidence(lead, other)
        if reasons:
            score = combined([r.score for r in reasons])
            candidates[other.id] = DuplicateCandidate(other, score, reasons)
    ranked = sorted(candidates.values(), key=lambda c: (c.score, c.lead.created_at, c.lead.id), reverse=True)
    return ranked[:limit]
