"""A real SMTP server and a real HTTP webhook receiver on free local ports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from kariz_devkit.embedded import free_port


@dataclass
class Inbox:
    """Every message the SMTP server accepted."""

    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=default_policy))  # type: ignore[arg-type]
        return "250 OK"

    def about(self, event_id: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["X-Kariz-Event-Id"] == event_id]


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook subscriber speaking just enough HTTP/1.1. ``/ok`` answers 200; ``/flaky`` answers 500 to
    the first two requests of each delivery, then 200; ``/silent`` reads the request and never answers."""

    port: int = 0
    requests: list[Request] = field(default_factory=list)
    flaky_failures: int = 2

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def about(self, event_id: str, path: str | None = None) -> list[Request]:
        return [
            r
            for r in self.requests
            if r.headers.get("x-kariz-event-id") == event_id and (path is None or r.path == path)
        ]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            _, path, _ = head[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in head[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Request(path, headers, body))
            if path == "/silent":
                # Until the sender gives up and hangs up.
                await asyncio.wait_for(reader.read(), timeout=30)
                return
            status, reason = 200, "OK"
            if path == "/flaky":
                delivery = headers.get("x-kariz-delivery-id")
                seen = sum(1 for r in self.requests if r.headers.get("x-kariz-delivery-id") == delivery)
                if seen <= self.flaky_failures:
                    status, reason = 500, "Internal Server Error"
            if path not in ("/ok", "/flaky"):
                status, reason = 404, "Not Found"
            text = b"" if status == 200 else reason.encode()
            length = len(text)
            lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {length}", "Connection: close", "", ""]
            writer.write("\r\n".join(lines).encode() + text)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()


@pytest.fixture(scope="module")
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    box.port = controller.port
    yield box
    controller.stop()


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver(port=free_port())
    server = await asyncio.start_server(rec.serve, "127.0.0.1", rec.port)
    yield rec
    server.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), timeout=2)
