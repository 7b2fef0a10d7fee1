"""The mail and webhook sinks (what `make run` and the end-to-end tests read notifications from): each
delivery kept in memory and, with a folder, on disk; a webhook whose signature does not check is
answered 401."""

from __future__ import annotations

import asyncio
import json
import smtplib
from email.message import EmailMessage
from pathlib import Path

import httpx

from kariz_devkit.sinks import Sinks
from kariz_shared.contracts.webhooks import DELIVERY_ID_HEADER, EVENT_TYPE_HEADER, sign

SECRET = "sink-test-secret-of-at-least-32-bytes"


def _send_mail(port: int) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "kariz@kariz.test", "ana@kariz.test", "Deal won"
    message[DELIVERY_ID_HEADER] = "d-1"
    message.set_content("Globex signed.")
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(message)


async def test_the_sinks_keep_every_delivery_and_check_each_signature(tmp_path: Path) -> None:
    sinks = await Sinks(SECRET, folder=tmp_path, echo=True).start()
    try:
        env = sinks.environment(["DealWon"], subscriber="finance")
        [subscriber] = json.loads(env["KARIZ_WEBHOOK_SUBSCRIBERS"])
        assert subscriber == {
            "name": "finance",
            "url": sinks.hooks.url,
            "secret": SECRET,
            "events": ["DealWon"],
        }
        assert env["KARIZ_SMTP_PORT"] == str(sinks.inbox.port)

        await asyncio.to_thread(_send_mail, sinks.inbox.port)
        body = json.dumps({"subject": "deal-1"}).encode()
        headers = {**sign(SECRET, body, delivery_id="h-1"), EVENT_TYPE_HEADER: "DealWon"}
        async with httpx.AsyncClient(timeout=10) as http:
            good = await http.post(sinks.hooks.url, content=body, headers=headers)
            forged = await http.post(
                sinks.hooks.url, content=body, headers={**headers, **sign("guess", body, delivery_id="h-1")}
            )
            listed = (await http.get(sinks.hooks.url)).json()
    finally:
        await sinks.stop()

    assert [str(m["Subject"]) for m in sinks.inbox.messages] == ["Deal won"]
    assert sinks.inbox.delivery_ids() == {"d-1": 1}
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1
    assert (good.status_code, forged.status_code) == (200, 401)
    assert [d.signature_valid for d in sinks.hooks.received] == [True, False]
    assert [d["signature_valid"] for d in listed] == [True, False]
    assert listed[0]["body"] == {"subject": "deal-1"}
    assert len(list((tmp_path / "webhooks").glob("*.json"))) == 2
    headers_seen, _, signed = sinks.hooks.received[0]  # as the fault test unpacks a delivery
    assert (
        signed and sinks.hooks.delivery_ids()["h-1"] == 2 and headers_seen["x-kariz-event-type"] == "DealWon"
    )
