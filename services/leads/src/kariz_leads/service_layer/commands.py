"""What a source, a rep or a partner's file asks of leads."""

from __future__ import annotations

from dataclasses import dataclass

from kariz_shared.contracts.events import Company, Contact, LeadPriority, LeadSource


@dataclass(frozen=True)
class CaptureLead:
    """A lead as a source hands it over, before normalisation."""

    contact: Contact
    company: Company
    source: LeadSource
    campaign: str | None = None
    consent: bool = False
    priority: LeadPriority = LeadPriority.NORMAL


@dataclass(frozen=True)
class ImportLeads:
    """Many leads at once (a trade-show list, a partner's nightly file): all of them stored, or none."""

    leads: tuple[CaptureLead, ...]


@dataclass(frozen=True)
class AssignLead:
    """A manager (within their team) or an admin hands a lead to another rep, saying why; its open
    follow-ups go with it unless ``keep_tasks``."""

    lead_id: str
    owner: str
    reason: str
    keep_tasks: bool = False
