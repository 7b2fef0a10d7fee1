"""Kafka event handlers: qualification's verdict on a lead becomes the lead's status."""

from __future__ import annotations

from kariz_leads import services
from kariz_shared.contracts.errors import NotFound, RejectedEvent
from kariz_shared.contracts.events import LeadDisqualified, LeadQualified
from kariz_shared.persistence.store import Transaction


async def on_lead_qualified(event: LeadQualified, tx: Transaction) -> None:
    try:
        await services.record_qualified(tx, event)
    except NotFound as exc:
        # Qualification only knows leads this service published, so this can never be applied.
        raise RejectedEvent(f"LeadQualified for a lead leads never captured: {exc}") from exc


async def on_lead_disqualified(event: LeadDisqualified, tx: Transaction) -> None:
    try:
        await services.record_disqualified(tx, event)
    except NotFound as exc:
        raise RejectedEvent(f"LeadDisqualified for a lead leads never captured: {exc}") from exc
