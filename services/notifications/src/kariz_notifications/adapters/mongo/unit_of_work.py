"""The notifications unit of work on one MongoDB transaction."""

from __future__ import annotations

from kariz_notifications.adapters.mongo.content import MongoContacts, MongoContentLibrary
from kariz_notifications.adapters.mongo.repositories import MongoDeliveries, MongoHandovers
from kariz_notifications.adapters.mongo.rule_documents import MongoRuleSetVersions
from kariz_notifications.adapters.mongo.subscriptions import (
    MongoManagedSubscriptions,
    MongoReplays,
    MongoSubscriptionHealth,
)
from kariz_notifications.domain.model import Audience, Reps
from kariz_notifications.domain.unsubscribe import UnsubscribeLinks
from kariz_notifications.service_layer.unit_of_work import Copies, NotificationsUnitOfWork
from kariz_shared.persistence.store import Transaction
from kariz_shared.persistence.unit_of_work import MongoUnitOfWork
from kariz_shared.runtime.clock import Clock


class MongoNotificationsUnitOfWork(MongoUnitOfWork, NotificationsUnitOfWork):
    def __init__(
        self,
        tx: Transaction,
        clock: Clock,
        audience: Audience,
        reps: Reps,
        in_force: Copies | None = None,
        links: UnsubscribeLinks | None = None,
    ) -> None:
        super().__init__(tx, clock)
        self.deliveries = MongoDeliveries(tx)
        self.handovers = MongoHandovers(tx)
        self.rules = MongoRuleSetVersions(tx, clock, in_force.rules if in_force else None)
        self.subscriptions = MongoManagedSubscriptions(
            tx, clock, in_force.subscriptions if in_force else None
        )
        self.subscription_health = MongoSubscriptionHealth(tx)
        self.replays = MongoReplays(tx)
        self.contacts = MongoContacts(tx)
        self.content = MongoContentLibrary(tx)
        self.links = links
        self.audience = audience
        self.reps = reps
        # Made for each event of a consumed batch, once the transaction is set to that event.
        self.causation_id = tx.causation_id
        self.correlation_id = tx.correlation_id
