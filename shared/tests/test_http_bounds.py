"""Bad input at the HTTP edge gets a clear 4xx and touches nothing: bodies over the limit (413, whether
they declare their length or stream), offsets beyond int64's reach (422), correlation ids that are not
short printable text (400); and the request metrics name only known methods."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pydantic import BaseModel

from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.http import BODY_MAX_BYTES, OFFSET_MAX, Offset
from kariz_shared.runtime.metrics import http_requests


class Note(BaseModel):
    text: str


@pytest_asyncio.fixture
async def api() -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    app = FastAPI()
    shared_http.install(app, "bounds")
    stored: list[str] = []

    @app.post("/notes")
    async def add(note: Note) -> dict[str, int]:
        stored.append(note.text)
        return {"stored": len(stored)}

    @app.get("/notes")
    async def page(offset: Offset = 0) -> dict[str, int]:
        return {"offset": offset}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        yield client, stored


async def test_a_body_over_the_limit_is_413_and_nothing_is_stored(
    api: tuple[httpx.AsyncClient, list[str]],
) -> None:
    client, stored = api
    big = b'{"text": "' + b"x" * BODY_MAX_BYTES + b'"}'
    declared = await client.post("/notes", content=big, headers={"content-type": "application/json"})
    assert declared.status_code == 413 and declared.json()["error"] == "too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    streamed = await client.post("/notes", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413 and "over" in streamed.json()["message"]
    assert stored == []
    assert (await client.post("/notes", json={"text": "fits"})).json() == {"stored": 1}


async def test_an_offset_past_the_bound_is_422_naming_it(api: tuple[httpx.AsyncClient, list[str]]) -> None:
    client, _ = api
    answer = await client.get("/notes", params={"offset": "9892863607416534582969187809886208"})
    assert answer.status_code == 422 and answer.json()["fields"][0]["field"] == "offset"
    assert (await client.get("/notes", params={"offset": OFFSET_MAX})).json() == {"offset": OFFSET_MAX}


@pytest.mark.parametrize("sent", ["has space", "x" * 129, "tab\there", "naïve"])
async def test_a_correlation_id_that_is_not_short_printable_text_is_400(
    api: tuple[httpx.AsyncClient, list[str]], sent: str
) -> None:
    client, stored = api
    answer = await client.post("/notes", json={"text": "t"}, headers={"X-Correlation-Id": sent.encode()})
    assert answer.status_code == 400 and "X-Correlation-Id" in answer.json()["message"]
    assert stored == []


async def test_an_unknown_method_is_counted_as_other(api: tuple[httpx.AsyncClient, list[str]]) -> None:
    client, _ = api
    await client.request("BREW", "/notes")
    counted = {
        sample.labels["method"]
        for metric in http_requests.collect()
        for sample in metric.samples
        if sample.labels.get("service") == "bounds" and sample.name.endswith("_total")
    }
    assert "other" in counted and "BREW" not in counted
