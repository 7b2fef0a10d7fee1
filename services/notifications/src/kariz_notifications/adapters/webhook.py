"""Signed webhooks: a POST of the delivery's JSON body with Kariz's HMAC signature headers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import httpx

from kariz_notifications.adapters.email import describe
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


class WebhookPoster:
    def __init__(
        self,
        secret_for: Callable[[str], str | Sequence[str] | None],
        timeout_s: float,
        managed_secret: Callable[[str], Awaitable[str | None]] | None = None,
    ) -> None:
        # The secret is looked up at send time: it is never written to the delivery log. A managed
        # subscription's (``sub-<id>``) is read from its store.
        self.secret_for = secret_for
        self.managed_secret = managed_secret
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False)
        return self._client

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
        try:
            # httpx's timeout bounds each read; this bounds the whole exchange.
            async with asyncio.timeout(self.timeout_s):
                response = await self._http().post(
                    post.url, content=body, headers=headers_for(delivery, secret, body)
                )
        except (TimeoutError, httpx.TimeoutException):
            return SendResult(ok=False, error=f"no answer within {self.timeout_s:g} s")
        except httpx.HTTPError as exc:
            return SendResult(ok=False, error=describe(exc))
        if response.is_success:
            return SendResult(ok=True, status_code=response.status_code)
        error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        if response.text:
            error += f": {response.text[:200]}"
        return SendResult(ok=False, error=error, status_code=response.status_code)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
