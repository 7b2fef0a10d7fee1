"""The mail sink and the webhook sink: an SMTP server and a webhook subscriber that keep every delivery
notifications makes, repeats included, with whether each webhook's signature checked.

``make run`` (:mod:`kariz_devkit.devstack`) starts them on fixed ports with a ``folder``: each e-mail is
kept as an ``.eml`` file and each webhook as a JSON file, and a line for each is printed. The end-to-end,
fault and bench runs start them on free ports and read what they received from memory.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, NamedTuple

import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from kariz_devkit.embedded import free_port
from kariz_shared.contracts.webhooks import DELIVERY_ID_HEADER as DELIVERY_ID
from kariz_shared.contracts.webhooks import EVENT_TYPE_HEADER, verify

WEBHOOK_PATH = "/webhooks/kariz"


@dataclass
class Inbox:
    """An SMTP server's mailbox (an aiosmtpd handler): every message received, repeats included."""

    messages: list[EmailMessage] = field(default_factory=list)
    port: int = 0
    #: Where each message is also written as ``<ns>.eml``; None keeps them in memory only.
    folder: Path | None = None
    #: Print a line for each message (the dev stack's terminal).
    echo: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=default_policy)
        self.messages.append(message)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{time.time_ns()}.eml").write_bytes(envelope.content)
        if self.echo:
            print(f"  mail  -> {', '.join(envelope.rcpt_tos)}: {message['Subject']}", flush=True)
        return "250 Message accepted for delivery"

    def delivery_ids(self) -> Counter[str]:
        return Counter(str(m[DELIVERY_ID]) for m in self.messages)


class Delivery(NamedTuple):
    headers: dict[str, str]
    body: bytes
    signature_valid: bool


@dataclass
class Hooks:
    """A webhook subscriber: every POST received, with whether its signature checked against ``secret``.
    A delivery whose signature does not check is answered 401, as a real subscriber would."""

    secret: str
    received: list[Delivery] = field(default_factory=list)
    port: int = 0
    #: Where each delivery is also written as ``<ns>.json``; None keeps them in memory only.
    folder: Path | None = None
    echo: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def delivery_ids(self) -> Counter[str]:
        return Counter(d.headers[DELIVERY_ID.lower()] for d in self.received)

    def record(self, headers: dict[str, str], body: bytes) -> Delivery:
        delivery = Delivery(headers, body, verify(self.secret, body, headers))
        self.received.append(delivery)
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{time.time_ns()}.json").write_text(json.dumps(_as_json(delivery), indent=2))
        if self.echo:
            verdict = "ok" if delivery.signature_valid else "INVALID"
            print(f"  hook  <- {headers.get(EVENT_TYPE_HEADER.lower())} signature {verdict}", flush=True)
        return delivery

    def app(self) -> FastAPI:
        app = FastAPI(title="Kariz webhook sink")

        @app.post(WEBHOOK_PATH)
        async def receive(request: Request) -> JSONResponse:
            delivery = self.record(dict(request.headers), await request.body())
            valid = delivery.signature_valid
            return JSONResponse({"received": valid}, status_code=200 if valid else 401)

        @app.get(WEBHOOK_PATH)
        async def received() -> list[dict[str, Any]]:
            """Every delivery: from the folder (earlier runs' too) when there is one."""
            if self.folder is not None:
                return [json.loads(p.read_text()) for p in sorted(self.folder.glob("*.json"))]
            return [_as_json(d) for d in self.received]

        return app


def _as_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "signature_valid": delivery.signature_valid,
        "headers": delivery.headers,
        "body": json.loads(delivery.body or b"null"),
    }


class Sinks:
    """The SMTP server (its own thread) and the webhook subscriber (this event loop), on the ports given
    or on free ones; ``folder`` keeps every delivery under ``mail/`` and ``webhooks/``."""

    def __init__(
        self,
        secret: str = "kariz-sink-webhook-secret-0123456789",
        *,
        smtp_port: int = 0,
        webhook_port: int = 0,
        folder: Path | None = None,
        echo: bool = False,
    ) -> None:
        mail, hooks = (folder / "mail", folder / "webhooks") if folder else (None, None)
        self.inbox = Inbox(port=smtp_port or free_port(), folder=mail, echo=echo)
        self.hooks = Hooks(secret, port=webhook_port or free_port(), folder=hooks, echo=echo)
        self._smtp = Controller(self.inbox, hostname="127.0.0.1", port=self.inbox.port)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Sinks:
        self._smtp.start()
        self._server = uvicorn.Server(
            uvicorn.Config(self.hooks.app(), host="127.0.0.1", port=self.hooks.port, log_level="warning")
        )
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                raise RuntimeError(f"the webhook sink could not start on port {self.hooks.port}")
            await asyncio.sleep(0.05)
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._smtp.stop()

    def environment(self, events: list[str] | None = None, *, subscriber: str = "finance") -> dict[str, str]:
        """Notifications settings that send to these sinks: e-mail to the SMTP server, and webhooks to
        one subscriber named ``subscriber`` for ``events`` (every event when None)."""
        return {
            "KARIZ_SMTP_HOST": "127.0.0.1",
            "KARIZ_SMTP_PORT": str(self.inbox.port),
            "KARIZ_WEBHOOK_SUBSCRIBERS": json.dumps(
                [
                    {
                        "name": subscriber,
                        "url": self.hooks.url,
                        "secret": self.hooks.secret,
                        "events": events if events is not None else ["*"],
                    }
                ]
            ),
        }
