"""A route may take a larger body than the others (an upload) through the one body-limit middleware:
the allowance is by exact path, and past it the answer is the same 413, declared or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from fastapi import FastAPI, Request

from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.http import BODY_MAX_BYTES

ALLOWED = 3 * 1024 * 1024


@pytest_asyncio.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    shared_http.install(app, "allowance")
    shared_http.allow_body(app, "/uploads", ALLOWED)

    @app.post("/uploads")
    async def upload(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.post("/notes")
    async def note(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def streamed(size: int) -> AsyncIterator[bytes]:
    step = 256 * 1024
    for start in range(0, size, step):
        yield b"x" * min(step, size - start)


async def test_the_allowed_path_takes_more_than_the_default_and_no_more_than_its_allowance(
    client: httpx.AsyncClient,
) -> None:
    body = b"x" * (BODY_MAX_BYTES + 1024)
    assert (await client.post("/uploads", content=body)).json() == {"bytes": len(body)}
    refused = await client.post("/notes", content=body)
    assert refused.status_code == 413 and str(BODY_MAX_BYTES) in refused.json()["message"]
    over = b"x" * (ALLOWED + 1)
    declared = await client.post("/uploads", content=over)
    assert declared.status_code == 413 and str(ALLOWED) in declared.json()["message"]
    by_stream = await client.post("/uploads", content=streamed(ALLOWED + 1))
    assert by_stream.status_code == 413 and by_stream.json()["error"] == "too_large"
    assert (await client.post("/uploads/other", content=body)).status_code in (404, 413)
