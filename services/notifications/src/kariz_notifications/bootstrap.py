"""Wiring: settings, the service, its consumers, the delivery worker and the API."""

from __future__ import annotations

from datetime import timedelta

from kariz_notifications import api
from kariz_notifications.adapters.email import SmtpMailer
from kariz_notifications.adapters.repository import ensure_indexes
from kariz_notifications.adapters.webhook import WebhookPoster
from kariz_notifications.domain.model import NOTIFYING_EVENTS, Channel
from kariz_notifications.handlers import EventHandlers
from kariz_notifications.service_layer import DeliveryWorker, Sender
from kariz_notifications.settings import NotificationsSettings
from kariz_shared.service import Service


def build(settings: NotificationsSettings | None = None) -> Service:
    """The notifications service, ready to run. No I/O happens here."""
    settings = settings or NotificationsSettings()
    service = Service(
        settings,
        title="Kariz notifications",
        description=(
            "Turns sales events into messages: e-mails to owners, the sales team and onboarding, and signed "
            "webhooks to subscribers; every delivery and attempt is logged."
        ),
    )
    service.on_startup(ensure_indexes)
    senders: dict[Channel, Sender] = {
        Channel.EMAIL: SmtpMailer(
            settings.smtp_host, settings.smtp_port, settings.smtp_sender, settings.smtp_timeout_s
        ),
        Channel.WEBHOOK: WebhookPoster(settings.subscriber_secret, settings.webhook_timeout_s),
    }
    worker = DeliveryWorker(
        service.store,
        senders,
        max_attempts=settings.delivery_max_attempts,
        backoff_s=settings.delivery_backoff_s,
        poll_interval_s=settings.delivery_poll_interval_s,
        concurrency=settings.delivery_concurrency,
        batch=settings.delivery_batch,
        lease=timedelta(seconds=settings.delivery_lease_s),
    )
    service.add_worker("delivery", worker.run)
    handlers = EventHandlers(settings.audience(), on_recorded=worker.wake)
    for event_cls in NOTIFYING_EVENTS:
        service.subscribe(event_cls, handlers.notify)
    service.api.include_router(api.router(service.store))
    return service
