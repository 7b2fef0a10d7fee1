"""Chat posts: the delivery's JSON body to a Slack incoming webhook or a Teams workflow webhook. Their
URLs are credentials (whoever has one may post): looked up in the settings at send time, never logged."""

from __future__ import annotations

from collections.abc import Callable

from kariz_notifications.adapters.http_post import Poster
from kariz_notifications.domain.model import ChatPost, Delivery, SendResult


class ChatPoster(Poster):
    def __init__(self, url_for: Callable[[str], str | None], timeout_s: float) -> None:
        super().__init__(timeout_s)
        self.url_for = url_for

    async def send(self, delivery: Delivery) -> SendResult:
        if not isinstance(delivery.message, ChatPost):
            raise TypeError(f"delivery {delivery.key} is not a chat post")
        post = delivery.message
        url = self.url_for(post.destination)
        if url is None:
            return SendResult(ok=False, error=f"chat {post.destination!r} is not configured any more")
        return await self.post(
            url,
            post.body.encode(),
            {"Content-Type": "application/json", "User-Agent": "kariz-notifications"},
        )
