"""What a source, a rep or a partner's file asks of leads."""

from __future__ import annotations

from dataclasses import dataclass

from kariz_shared.contracts.events import Company, Contact, LeadSource


@dataclass(frozen=True)
class CaptureLead:
    """A lead as a source hands it over, before normalisation."""

    contact: Contact
    company: Company
    source: LeadSource
    campaign: str | None = None
    consent: bool = False


@dataclass(frozen=True)
class ImportLeads:
    """Many leads at once (a trade-show list, a partner's nightly file): all of them stored, or none."""

    leads: tuple[CaptureLead, ...]
