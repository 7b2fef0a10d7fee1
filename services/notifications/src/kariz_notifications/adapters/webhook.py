"""Signed webhooks: a POST of the delivery's JSON body with Kariz's HMAC signature headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from kariz_notifications.adapters.http_post import Poster
from kariz_notifications.domain.model import Delivery, SendResult, WebhookPost
from kariz_notifications.domain.subscriptions import PREFIX
from kariz_shared.contracts import webhooks
from kariz_shared.contracts.events import EVENTS


def headers_for(delivery: Delivery, secrets: str | Sequence[str], body: bytes) -> dict[str, str]:
    event_cls = EVENTS.get(delivery.event_type)
    return {
        **webhooks.sign(secrets, body, delivery_id=delivery.key),
        webhooks.EVENT_ID_HEADER: delivery.event_id,
        webhooks.EVENT_TYPE_HEADER: event_cls.ce_type() if event_cls else delivery.event_type,
        "Content-Type": "application/json",
        "User-Agent": "kariz-notifications",
    }


class WebhookPoster(Poster):
    def __init__(
        self,
        secret_for: Callable[[str], str | Sequence[str] | None],
        timeout_s: float,
        managed_secret: Callable[[str], Awaitable[str | Sequence[str] | None]] | None = None,
    ) -> None:
        # The secret is looked up at send time: it is never written to the delivery log. A managed
        # subscription's (``sub-<id>``) are read from its store: the previous one too while a rotation's
        # grace lasts.
        super().__init__(timeout_s)
        self.secret_for = secret_for
        self.managed_secret = managed_secret

    async def send(self, delivery: Delivery) -> SendResult:
        if not isinstance(delivery.message, WebhookPost):
            raise TypeError(f"delivery {delivery.key} is not a webhook")
        post = delivery.message
        secret = self.secret_for(post.subscriber)
        if secret is None and self.managed_secret is not None and post.subscriber.startswith(PREFIX):
            secret = await self.managed_secret(post.subscriber.removeprefix(PREFIX))
        if secret is None:
            return SendResult(
                ok=False, error=f"webhook subscriber {post.subscriber!r} is not configured any more"
            )
        body = post.body.encode()
        return await self.post(post.url, body, headers_for(delivery, secret, body))
