"""The dev stack's webhook sink, which the quickstart relies on: it keeps signed deliveries and refuses
forged ones."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from kariz_devkit.devstack import WEBHOOK_SECRET, webhook_sink_app
from kariz_shared.contracts.webhooks import sign


async def test_sink_keeps_signed_deliveries_and_refuses_forged_ones(tmp_path: Path) -> None:
    app = webhook_sink_app(tmp_path)
    body = json.dumps({"type": "kariz.deal-won.v1", "data": {"deal_id": "D-1"}}).encode()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sink") as client:
        ok = await client.post("/webhooks/kariz", content=body, headers=sign(WEBHOOK_SECRET, body))
        forged = await client.post("/webhooks/kariz", content=body, headers=sign("wrong-secret", body))
        received = (await client.get("/webhooks/kariz")).json()
    assert ok.status_code == 200
    assert forged.status_code == 401
    assert [r["signature_valid"] for r in received] == [True, False]
    assert received[0]["body"]["data"]["deal_id"] == "D-1"
