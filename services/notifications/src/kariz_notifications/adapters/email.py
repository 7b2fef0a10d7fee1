"""E-mail over SMTP with the standard library, off the event loop: STARTTLS or implicit TLS, AUTH, and a
deadline on the whole conversation."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import formatdate
from typing import Literal

from pydantic import SecretStr

from kariz_notifications.domain.model import Delivery, Email, SendResult
from kariz_shared.contracts.events import EVENTS
from kariz_shared.runtime.clock import Clock

DELIVERY_ID_HEADER = "X-Kariz-Delivery-Id"
# Long ids stay on one header line (SMTP allows 998 characters), so a receiver reads them back exactly.
MAIL_POLICY = policy.SMTP.clone(max_line_length=998)


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply


def describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def message_id(delivery_key: str, sender: str) -> str:
    """Stable per delivery, so a resend after a crash can be recognised as the same message."""
    digest = hashlib.sha256(delivery_key.encode()).hexdigest()[:40]
    return f"<{digest}@{sender.rsplit('@', 1)[-1]}>"


def compose(delivery: Delivery, sender: str, at: datetime) -> EmailMessage:
    """The message of an e-mail delivery, dated ``at``."""
    if not isinstance(delivery.message, Email):
        raise TypeError(f"delivery {delivery.key} is not an e-mail")
    mail = delivery.message
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["From"] = sender
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Date"] = formatdate(at.timestamp(), usegmt=True)
    msg["Message-ID"] = message_id(delivery.key, sender)
    msg[DELIVERY_ID_HEADER] = delivery.key
    msg["X-Kariz-Event-Id"] = delivery.event_id
    event_cls = EVENTS.get(delivery.event_type)
    msg["X-Kariz-Event-Type"] = event_cls.ce_type() if event_cls else delivery.event_type
    msg["X-Kariz-Correlation-Id"] = delivery.correlation_id
    msg.set_content(mail.body)
    if mail.unsubscribe is not None:
        # One click from the mail client (RFC 8058): a POST to the link, which is the credential.
        msg["List-Unsubscribe"] = f"<{mail.unsubscribe}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    if mail.html is not None:
        # multipart/alternative: a reader's client shows the HTML, or else the plain text.
        msg.add_alternative(mail.html, subtype="html")
    return msg


SmtpTlsMode = Literal["none", "starttls", "implicit"]


@dataclass(frozen=True)
class SmtpLogin:
    """The account Kariz submits its e-mail with (SMTP AUTH)."""

    username: str
    password: SecretStr


class DeadlinePassed(Exception):
    """The SMTP conversation did not end within the send's deadline."""


class _Conversation:
    """One SMTP conversation, in a worker thread, that the event loop can cut at the deadline: the socket
    is shut down, so a read blocked on a silent server returns at once, and no step starts after the cut.
    """

    def __init__(self, client: smtplib.SMTP) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._cut = False

    def step(self) -> smtplib.SMTP:
        """The client, for the next step; refused once the conversation was cut (a connect or a TLS
        handshake that finished after the deadline goes no further)."""
        with self._lock:
            if self._cut:
                raise DeadlinePassed("cut at the send's deadline")
        return self.client

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            sock = self.client.sock
        if sock is not None:
            # The plain socket's shutdown, also under TLS: it wakes the thread's blocked read.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class SmtpMailer:
    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        timeout_s: float,
        clock: Clock,
        *,
        deadline_s: float,
        tls_mode: SmtpTlsMode = "none",
        ca_file: str = "",
        login: SmtpLogin | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        # Each step's bound (connect, a command and its reply) ...
        self.timeout_s = timeout_s
        # ... and the whole conversation's, shorter than the delivery lease (the settings check it).
        self.deadline_s = deadline_s
        self.tls_mode = tls_mode
        self.login = login
        self.clock = clock
        # Checks the server's certificate and host name; built once, for every conversation.
        self.tls_context: ssl.SSLContext | None = (
            None if tls_mode == "none" else ssl.create_default_context(cafile=ca_file or None)
        )

    async def send(self, delivery: Delivery) -> SendResult:
        try:
            msg = compose(delivery, self.sender, self.clock.now())
            await self._converse(msg)
        except smtplib.SMTPResponseException as exc:
            return SendResult(
                ok=False, error=f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}", status_code=exc.smtp_code
            )
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (0, b""))
            return SendResult(
                ok=False, error=f"SMTP {code}: recipient refused: {_text(reply)}", status_code=code
            )
        except DeadlinePassed:
            return SendResult(
                ok=False, error=f"SMTP: not done within the send's deadline of {self.deadline_s:g} s"
            )
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            return SendResult(ok=False, error=describe(exc))
        return SendResult(ok=True)

    async def _converse(self, msg: EmailMessage) -> None:
        """The conversation in a thread, given up at the deadline (DeadlinePassed) or when the send is
        cancelled: then it is cut, and its thread ends at once on its own."""
        conversation = _Conversation(self._client())
        thread = asyncio.ensure_future(asyncio.to_thread(self._talk, conversation, msg))
        try:
            done, _ = await asyncio.wait({thread}, timeout=self.deadline_s)
        except asyncio.CancelledError:
            conversation.cut()
            raise
        if not done:
            conversation.cut()
            # What the cut thread raises belongs to a send already reported as failed.
            thread.add_done_callback(lambda ended: ended.cancelled() or ended.exception())
            raise DeadlinePassed
        thread.result()

    def _client(self) -> smtplib.SMTP:
        """Not connected yet: the conversation holds it before the first byte, so it can cut any step."""
        client = (
            smtplib.SMTP_SSL(timeout=self.timeout_s, context=self.tls_context)
            if self.tls_mode == "implicit"
            else smtplib.SMTP(timeout=self.timeout_s)
        )
        # The name TLS checks the server's certificate against; only a constructor that connects sets it.
        client._host = self.host  # type: ignore[attr-defined]
        return client

    def _talk(self, conversation: _Conversation, msg: EmailMessage) -> None:
        try:
            conversation.step().connect(self.host, self.port)
            conversation.step().ehlo()
            if self.tls_mode == "starttls":
                # Refused (SMTPNotSupportedError) by a server that offers no STARTTLS: never plaintext.
                conversation.step().starttls(context=self.tls_context)
                conversation.step().ehlo()
            if self.login is not None:
                conversation.step().login(self.login.username, self.login.password.get_secret_value())
            conversation.step().send_message(msg)
            # Accepted: a goodbye that goes wrong must not make the e-mail count as failed (and sent again).
            with contextlib.suppress(smtplib.SMTPException, OSError):
                conversation.step().quit()
        finally:
            conversation.client.close()

    async def aclose(self) -> None:
        """Nothing held open: each e-mail is its own SMTP conversation."""
