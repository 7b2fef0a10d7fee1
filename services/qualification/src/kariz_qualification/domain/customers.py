"""Existing customers: the accounts qualification has seen a deal won with (``DealWon``), so a new lead
of one of them is an upsell or cross-sell opportunity rather than a stranger to be scored on fit.

An account is known by its company as qualification holds it: its web domain (leads sets it from the
company's site or the contact's non-free-mail address), else its name case-folded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kariz_shared.contracts.events import Company, Event, LeadCaptured

#: Why a lead of a won account qualified (``LeadQualified.reason``).
EXISTING_CUSTOMER = "existing customer"


def account_key(company: Company) -> str:
    """The key an account's leads share: ``domain:<domain>``, else ``name:<name>``."""
    if company.domain:
        return f"domain:{company.domain.strip().lower()}"
    return f"name:{' '.join(company.name.casefold().split())}"


def account_key_of(event: Event) -> str | None:
    """For a batch read: the account key of a captured lead's company (None for other events)."""
    return account_key(event.company) if isinstance(event, LeadCaptured) else None


@dataclass(frozen=True)
class WonAccount:
    """An account with a won deal, as deals named it."""

    key: str
    account_id: str
    account_name: str
    won_at: datetime
    deal_id: str
