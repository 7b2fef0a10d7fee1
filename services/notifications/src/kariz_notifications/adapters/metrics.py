"""Business metrics of notifications. Labels are bounded: the channel and the rule (the default rules'
names, ``subscription`` for webhooks), never a recipient."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter, Histogram

from kariz_notifications.domain.content import SkipReason
from kariz_notifications.domain.model import SUBSCRIPTION, Channel, Delivery
from kariz_notifications.domain.rules import DEFAULT_RULES

#: A delivery recorded before deliveries carried their rule.
UNNAMED = "unnamed"

sent_total = Counter(
    "kariz_notifications_sent_total", "Deliveries that reached their recipient", ["channel", "rule"]
)
failed_total = Counter(
    "kariz_notifications_failed_total",
    "Delivery attempts that failed (each retry counts)",
    ["channel", "rule"],
)
delivery_seconds = Histogram(
    "kariz_notifications_delivery_seconds",
    "Time of one delivery attempt (SMTP conversation or webhook POST)",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0),
)
resumed_total = Counter(
    "kariz_notifications_resumed_total",
    "Deliveries taken over after their sender died mid-send (the recipient may see them twice)",
    ["channel"],
)
gave_up_total = Counter(
    "kariz_notifications_gave_up_total",
    "Deliveries that failed for good after the last attempt",
    ["channel", "rule"],
)

content_total = Counter(
    "kariz_notifications_content_total",
    "E-mails to customers' contacts (content actions): sent, or skipped with the reason",
    ["outcome", "reason"],
)
#: The outcome "sent" has no reason.
SENT = "sent"
content_total.labels(SENT, "")
for _reason in SkipReason:
    content_total.labels("skipped", _reason.value)

# Every rule starts at 0 on its channel, so increase() and rates see the first delivery (or failure) too.
_LABELS = [(Channel.EMAIL.value, rule.name) for rule in DEFAULT_RULES] + [
    (Channel.WEBHOOK.value, SUBSCRIPTION)
]
for _channel, _rule in _LABELS:
    for _counter in (sent_total, failed_total, gave_up_total):
        _counter.labels(_channel, _rule)


subscriptions_suspended_total = Counter(
    "kariz_notifications_subscriptions_suspended_total",
    "Managed webhook subscriptions suspended after persistent failure",
)


class PrometheusSubscriptionMetrics:
    """``service_layer.subscriptions.SubscriptionMetrics`` as the counter above."""

    def suspended(self) -> None:
        subscriptions_suspended_total.inc()


class PrometheusDeliveryMetrics:
    """The sending's counts (``service_layer.handlers.DeliveryMetrics``) as the metrics above."""

    def resumed(self, channel: Channel) -> None:
        resumed_total.labels(channel.value).inc()

    def took(self, channel: Channel, seconds: float) -> None:
        delivery_seconds.labels(channel.value).observe(seconds)

    def sent(self, channel: Channel, rule: str) -> None:
        sent_total.labels(channel.value, rule or UNNAMED).inc()

    def failed(self, channel: Channel, rule: str, *, gave_up: bool) -> None:
        failed_total.labels(channel.value, rule or UNNAMED).inc()
        if gave_up:
            gave_up_total.labels(channel.value, rule or UNNAMED).inc()

    def customer_sent(self, rule: str) -> None:
        content_total.labels(SENT, "").inc()


class PrometheusContentMetrics:
    """Content skipped, counted once its unit committed (``entrypoints.kafka``'s ``on_skipped``)."""

    def skipped(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            if d.skipped is not None:
                content_total.labels("skipped", d.skipped).inc()
