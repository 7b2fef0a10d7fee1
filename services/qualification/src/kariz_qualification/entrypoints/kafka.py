"""The subscriptions table: which consumed event goes to which handler.

Each entry runs as ``handle(uow, event)`` in the consumer's batch transaction, once per event id
(bootstrap wraps it with ``MongoUnitsOfWork.handler``).
"""

from __future__ import annotations

from kariz_qualification.service_layer import handlers
from kariz_qualification.service_layer.unit_of_work import QualificationUnitOfWork
from kariz_shared.contracts.events import LeadCaptured, LeadsMerged
from kariz_shared.persistence.unit_of_work import Subscriptions


async def on_lead_captured(uow: QualificationUnitOfWork, event: LeadCaptured) -> None:
    # The handler is looked up on each event, not bound at build: a test may replace it in a running
    # service (tests/test_poison_messages.py makes it fail for chosen events).
    await handlers.capture_lead(uow, event)


async def on_leads_merged(uow: QualificationUnitOfWork, event: LeadsMerged) -> None:
    await handlers.follow_merge(uow, event)


SUBSCRIPTIONS: Subscriptions[QualificationUnitOfWork] = {
    LeadCaptured: on_lead_captured,
    LeadsMerged: on_leads_merged,
}
