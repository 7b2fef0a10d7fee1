"""E-mail over SMTP with the standard library, off the event loop."""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import formatdate

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
    return msg


class SmtpMailer:
    def __init__(self, host: str, port: int, sender: str, timeout_s: float, clock: Clock) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.timeout_s = timeout_s
        self.clock = clock

    async def send(self, delivery: Delivery) -> SendResult:
        try:
            msg = compose(delivery, self.sender, self.clock.now())
            await asyncio.to_thread(self._send, msg)
        except smtplib.SMTPResponseException as exc:
            return SendResult(
                ok=False, error=f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}", status_code=exc.smtp_code
            )
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (0, b""))
            return SendResult(
                ok=False, error=f"SMTP {code}: recipient refused: {_text(reply)}", status_code=code
            )
        except (smtplib.SMTPException, OSError, ValueError) as exc:
            return SendResult(ok=False, error=describe(exc))
        return SendResult(ok=True)

    def _send(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            smtp.send_message(msg)

    async def aclose(self) -> None:
        """Nothing held open: each e-mail is its own SMTP conversation."""
