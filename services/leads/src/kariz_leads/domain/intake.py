"""What a capture hands over, cleaned by the one normalisation of Kariz
(:mod:`kariz_shared.contracts.normalisation`), with the field of a value that cannot be made valid
named: an import of a thousand lines must say which line and which field to fix."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import Company, Contact
from kariz_shared.contracts.normalisation import (
    InvalidValue,
    normalise_company,
    normalise_contact,
    normalise_optional_text,
)

# Valid in every field: a refused value is found by putting it, alone, into one of these.
_VALID_CONTACT = Contact(first_name="A", last_name="B", email="a@example.com")
_VALID_COMPANY = Company(name="A")

M = TypeVar("M", Contact, Company)


class InvalidField(InvalidValue):
    """A value that cannot be made valid, and where it is (``contact.email``)."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class InvalidImport(RuleViolation):
    """Some lines of an import break a rule; nothing of the import was stored."""

    def __init__(self, problems: Mapping[int, InvalidField]) -> None:
        #: By line (from 0): what is wrong with it.
        self.problems = dict(problems)
        super().__init__("; ".join(f"leads.{n}.{p}" for n, p in sorted(self.problems.items())))


def _culprit(part: str, given: M, valid: M, normalise: Callable[[M], object]) -> str:
    """The field of ``given`` that ``normalise`` refuses (``part`` itself if none does alone)."""
    for name in type(given).model_fields:
        try:
            normalise(valid.model_copy(update={name: getattr(given, name)}))
        except InvalidValue:
            return f"{part}.{name}"
    return part


@dataclass(frozen=True)
class LeadDetails:
    """A capture's contact, company and campaign, normalised."""

    contact: Contact
    company: Company
    campaign: str | None

    @property
    def email(self) -> str:
        return self.contact.email

    @classmethod
    def clean(cls, contact: Contact, company: Company, campaign: str | None) -> LeadDetails:
        """The normalised details, or ``InvalidField`` naming what cannot be made valid. The company's
        domain, when not given, comes from the contact's (non free-mail) address."""
        try:
            clean_contact = normalise_contact(contact)
        except InvalidValue as exc:
            raise InvalidField(
                _culprit("contact", contact, _VALID_CONTACT, normalise_contact), str(exc)
            ) from exc
        try:
            clean_company = normalise_company(company, email=clean_contact.email)
        except InvalidValue as exc:

            def alone(value: Company) -> Company:
                return normalise_company(value, email=_VALID_CONTACT.email)

            raise InvalidField(_culprit("company", company, _VALID_COMPANY, alone), str(exc)) from exc
        return cls(clean_contact, clean_company, normalise_optional_text(campaign))
