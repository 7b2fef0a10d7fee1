"""Kafka event handlers: each turns a consumed event into a use case of the service layer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from kariz_deals import metrics, service_layer
from kariz_deals.settings import DealsSettings
from kariz_shared.contracts.errors import RejectedEvent, RuleViolation
from kariz_shared.contracts.events import LeadQualified
from kariz_shared.persistence.store import Transaction

log = logging.getLogger(__name__)


def on_lead_qualified(settings: DealsSettings) -> Callable[[LeadQualified, Transaction], Awaitable[None]]:
    async def handle(event: LeadQualified, tx: Transaction) -> None:
        try:
            deal = await service_layer.open_deal(
                tx, event, currency=settings.deal_currency, at=datetime.now(UTC)
            )
        except RuleViolation as exc:
            # The event itself is unusable (no company, bad amount): retrying cannot help.
            raise RejectedEvent(str(exc)) from exc
        if deal is None:
            log.info("lead already has a deal; nothing to open", extra={"lead_id": event.lead_id})
            return
        tx.after_commit(metrics.deals_opened.inc)
        extra = {"deal_id": deal.id, "lead_id": deal.lead_id, "account_id": deal.account.id}
        log.info("opening a deal", extra=extra)

    return handle
