"""A POST of a delivery's body to a URL, as a webhook and a chat post both send theirs: one client kept
for the process, the whole exchange bounded, and what went wrong said in the delivery log's words."""

from __future__ import annotations

import asyncio

import httpx

from kariz_notifications.adapters.email import describe
from kariz_notifications.domain.model import SendResult


class Poster:
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False)
        return self._client

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        try:
            # httpx's timeout bounds each read; this bounds the whole exchange.
            async with asyncio.timeout(self.timeout_s):
                response = await self._http().post(url, content=body, headers=headers)
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
