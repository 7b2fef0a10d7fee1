"""Wiring: settings, the service, its consumers, the delivery worker and the API."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from kariz_notifications.adapters.chat import ChatPoster
from kariz_notifications.adapters.email import SmtpLogin, SmtpMailer
from kariz_notifications.adapters.metrics import (
    PrometheusContentMetrics,
    PrometheusDeliveryMetrics,
    PrometheusSubscriptionMetrics,
)
from kariz_notifications.adapters.mongo.indexes import ensure_indexes
from kariz_notifications.adapters.mongo.repositories import MongoDeliveryQueue, MongoNotificationsReads
from kariz_notifications.adapters.mongo.rule_documents import seed_rule_set
from kariz_notifications.adapters.mongo.subscriptions import MongoSubscriptionSecrets
from kariz_notifications.adapters.mongo.unit_of_work import MongoNotificationsUnitOfWork
from kariz_notifications.adapters.webhook import WebhookPoster
from kariz_notifications.domain.model import Channel, Delivery
from kariz_notifications.domain.schedule import RetryPolicy
from kariz_notifications.entrypoints import content_http, http, kafka, rules_http, subscriptions_http
from kariz_notifications.entrypoints.workers import DeliveryWorker, ReplayWorker
from kariz_notifications.service_layer import subscriptions
from kariz_notifications.service_layer.handlers import Outcome, Sender
from kariz_notifications.service_layer.unit_of_work import Copies
from kariz_notifications.settings import NotificationsSettings
from kariz_shared import system
from kariz_shared.messaging.history import TopicHistory
from kariz_shared.persistence.store import Transaction
from kariz_shared.persistence.unit_of_work import MongoUnitsOfWork
from kariz_shared.runtime.clock import Clock
from kariz_shared.service import Service


def build(settings: NotificationsSettings | None = None, clock: Clock | None = None) -> Service:
    """The notifications service, ready to run. No I/O happens here."""
    settings = settings or NotificationsSettings()
    service = Service(
        settings,
        title="Kariz notifications",
        description=(
            "Turns sales events into messages: e-mails to owners, their managers, the sales team and "
            "onboarding (follow-up reminders, overdue responses, queued and reassigned leads, deal news), "
            "and signed webhooks to subscribers; every delivery and attempt is logged."
        ),
        publishes=system.service("notifications").publishes,
        clock=clock,
    )
    service.on_startup(ensure_indexes)
    # Integrators manage their own subscriptions with keys issued here (scope events:subscribe).
    service.accept_api_keys()
    service.on_startup(partial(seed_rule_set, clock=service.clock))
    senders: dict[Channel, Sender] = {
        Channel.EMAIL: SmtpMailer(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_sender,
            settings.smtp_timeout_s,
            service.clock,
            deadline_s=settings.smtp_deadline_s,
            tls_mode=settings.smtp_tls_mode,
            ca_file=settings.smtp_tls_ca_file,
            login=SmtpLogin(settings.smtp_username, settings.smtp_password)
            if settings.smtp_username
            else None,
        ),
        Channel.WEBHOOK: WebhookPoster(
            settings.subscriber_secrets,
            settings.webhook_timeout_s,
            MongoSubscriptionSecrets(service.store.db, service.clock).secret,
        ),
        Channel.CHAT: ChatPoster(settings.chat_url, settings.webhook_timeout_s),
    }
    audience = settings.audience()
    # Every consumed event is planned by the process's copies of the rules and subscriptions.
    copies = Copies.refreshed_every(timedelta(seconds=settings.rules_refresh_s))
    links = settings.unsubscribe_links()

    def unit_of_work(tx: Transaction, clock: Clock) -> MongoNotificationsUnitOfWork:
        # The service's live roster (kariz.reps.v1): managers and time zones as they are at each event.
        return MongoNotificationsUnitOfWork(tx, clock, audience, service.roster, copies, links)

    units = MongoUnitsOfWork(service.store, service.clock, unit_of_work)
    subscription_metrics = PrometheusSubscriptionMetrics()

    async def count_outcomes(outcomes: list[Outcome]) -> list[Delivery]:
        # Each managed subscription's health, and its suspension after persistent failure.
        return await subscriptions.count_deliveries(
            units,
            outcomes,
            suspend_after=settings.subscription_suspend_after,
            metrics=subscription_metrics,
        )

    worker = DeliveryWorker(
        MongoDeliveryQueue(service.store.db),
        senders,
        clock=service.clock,
        policy=RetryPolicy(settings.delivery_max_attempts, settings.delivery_backoff_s),
        metrics=PrometheusDeliveryMetrics(),
        poll_interval_s=settings.delivery_poll_interval_s,
        concurrency=settings.delivery_concurrency,
        batch=settings.delivery_batch,
        lease=timedelta(seconds=settings.delivery_lease_s),
        on_outcomes=count_outcomes,
    )
    service.add_worker("delivery", worker.run)
    # Replays of what the topics retain, to one subscription at a time.
    replays = ReplayWorker(
        units, TopicHistory(settings), worker.wake, poll_interval_s=settings.subscription_replay_poll_s
    )
    service.add_worker("replay", replays.run)
    service.subscribe_all(
        units, kafka.subscriptions(on_recorded=worker.wake, on_skipped=PrometheusContentMetrics().skipped)
    )
    service.api.include_router(http.router(MongoNotificationsReads(service.store.db)))
    service.api.include_router(rules_http.router(units))
    service.api.include_router(content_http.router(units))
    service.api.include_router(
        subscriptions_http.router(
            units,
            allow_http=settings.webhook_allow_http,
            secret_grace=timedelta(seconds=settings.subscription_secret_grace_s),
            on_replay=replays.wake,
        )
    )
    return service
