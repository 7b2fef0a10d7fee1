"""The subscriptions table: which consumed event goes to which handler.

Each entry runs as ``handle(uow, event)`` in the consumer's batch transaction, once per event id
(bootstrap wraps it with ``MongoUnitsOfWork.handler``).
"""

from __future__ import annotations

from kariz_deals.domain import Pipeline
from kariz_deals.service_layer import handlers, objections, pipelines, quotes
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_shared.contracts.errors import RejectedEvent, RuleViolation
from kariz_shared.contracts.events import (
    ActivityLogged,
    DealLost,
    DealWon,
    LeadQualified,
    LeadsMerged,
    QuoteExpired,
)
from kariz_shared.persistence.unit_of_work import Subscriptions


def subscriptions(*, pipeline: Pipeline, currency: str) -> Subscriptions[DealsUnitOfWork]:
    """What deals consumes; new deals are opened in ``pipeline``, priced in ``currency``."""

    async def on_lead_qualified(uow: DealsUnitOfWork, event: LeadQualified) -> None:
        try:
            # Looked up on each event, not bound at build: a test may replace it in a running service
            # (tests/test_poison_messages.py makes it fail for chosen events).
            await handlers.open_deal_for(uow, event, pipeline=pipeline, currency=currency)
        except RuleViolation as exc:
            # The event itself is unusable (no company, bad amount): retrying cannot help.
            raise RejectedEvent(str(exc)) from exc

    async def on_leads_merged(uow: DealsUnitOfWork, event: LeadsMerged) -> None:
        await handlers.follow_merge(uow, event)

    async def on_activity_logged(uow: DealsUnitOfWork, event: ActivityLogged) -> None:
        # A deal's stall clock starts again; a won deal's first contact after the win is kept.
        await pipelines.activity_logged(uow, event)

    async def on_quote_expired(uow: DealsUnitOfWork, event: QuoteExpired) -> None:
        # Its own quote's expiry timer fired: a quote still sent is marked expired.
        await quotes.expire_quote(uow, event)

    async def on_deal_closed(uow: DealsUnitOfWork, event: DealWon | DealLost) -> None:
        # Its own events: the library answers given on the deal count its outcome.
        await objections.count_outcome(uow, event)

    return {
        LeadQualified: on_lead_qualified,
        LeadsMerged: on_leads_merged,
        ActivityLogged: on_activity_logged,
        QuoteExpired: on_quote_expired,
        DealWon: on_deal_closed,
        DealLost: on_deal_closed,
    }
