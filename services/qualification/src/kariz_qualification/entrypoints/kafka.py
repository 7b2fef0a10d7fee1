"""The subscriptions table: which consumed event goes to which handler.

Each entry runs as ``handle(uow, event)`` in the consumer's batch transaction, once per event id
(bootstrap wraps it with ``MongoUnitsOfWork.handler``).
"""

from __future__ import annotations

from kariz_qualification.service_layer import engagement, handlers, nurture, outcomes
from kariz_qualification.service_layer.unit_of_work import QualificationUnitOfWork
from kariz_shared.contracts.events import (
    ActivityLogged,
    ContactUnsubscribed,
    DealLost,
    DealWon,
    LeadCaptured,
    LeadEngagementDecayDue,
    LeadsMerged,
    LeadTouched,
    NurtureStepDue,
)
from kariz_shared.persistence.unit_of_work import Subscriptions


async def on_lead_captured(uow: QualificationUnitOfWork, event: LeadCaptured) -> None:
    # The handler is looked up on each event, not bound at build: a test may replace it in a running
    # service (tests/test_poison_messages.py makes it fail for chosen events).
    await handlers.capture_lead(uow, event)


async def on_leads_merged(uow: QualificationUnitOfWork, event: LeadsMerged) -> None:
    await handlers.follow_merge(uow, event)


async def on_activity_logged(uow: QualificationUnitOfWork, event: ActivityLogged) -> None:
    await engagement.engage_on_activity(uow, event)


async def on_lead_touched(uow: QualificationUnitOfWork, event: LeadTouched) -> None:
    await engagement.engage_on_touch(uow, event)


async def on_engagement_decay_due(uow: QualificationUnitOfWork, event: LeadEngagementDecayDue) -> None:
    await engagement.fade_engagement(uow, event)


async def on_deal_won(uow: QualificationUnitOfWork, event: DealWon) -> None:
    await handlers.record_won_account(uow, event)
    await outcomes.count_won(uow, event)


async def on_deal_lost(uow: QualificationUnitOfWork, event: DealLost) -> None:
    await outcomes.count_lost(uow, event)


async def on_nurture_step_due(uow: QualificationUnitOfWork, event: NurtureStepDue) -> None:
    await nurture.take_nurture_step(uow, event)


async def on_contact_unsubscribed(uow: QualificationUnitOfWork, event: ContactUnsubscribed) -> None:
    await nurture.stop_nurture_on_unsubscribe(uow, event)


SUBSCRIPTIONS: Subscriptions[QualificationUnitOfWork] = {
    LeadCaptured: on_lead_captured,
    LeadsMerged: on_leads_merged,
    ActivityLogged: on_activity_logged,
    LeadEngagementDecayDue: on_engagement_decay_due,
    LeadTouched: on_lead_touched,
    DealWon: on_deal_won,
    DealLost: on_deal_lost,
    NurtureStepDue: on_nurture_step_due,
    ContactUnsubscribed: on_contact_unsubscribed,
}
