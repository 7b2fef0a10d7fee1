"""Chat posts: the delivery's JSON body to a Slack incoming webhook or a Teams workflow webhook. Their
URLs are credentials (whoever has one may post): looked up in the settings at send time, never logged."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from kariz_notifications.adapters.email import describe
from kariz_notifications.domain.model import ChatPost, Delivery, SendResult


class ChatPoster:
    def __init__(self, url_for: Callable[[str], str | None], timeout_s: float) -> None:
        self.url_for = url_for
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False)
        return self._client

    async def send(self, delivery: Delivery) -> SendResult:
        if not isinstance(delivery.message, ChatPost):
            raise TypeError(f"delivery {delivery.key} is not a chat post")
        post = delivery.message
        url = self.url_for(post.destination)
        if url is None:
            return SendResult(ok=False, error=f"chat {post.destination!r} is not configured any more")
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self._http().post(
                    url,
                    content=post.body.encode(),
                    headers={"Content-Type": "application/json", "User-Agent": "kariz-notifications"},
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
