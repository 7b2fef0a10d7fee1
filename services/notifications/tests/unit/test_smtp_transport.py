"""E-mail to a real local SMTP server (aiosmtpd) the way production sends it: STARTTLS or implicit TLS
against a certificate made for the test, AUTH, and a deadline that ends a conversation with a server
that stops answering. No broker and no database."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from kariz_devkit.embedded import free_port
from kariz_notifications.adapters.email import SmtpLogin, SmtpMailer, SmtpTlsMode
from kariz_notifications.domain.model import Audience, Delivery, EventContext
from kariz_notifications.domain.rules import plan
from kariz_shared.runtime.clock import SystemClock

HOST = "127.0.0.1"
SENDER = "kariz@kariz.example"
LOGIN = SmtpLogin("kariz-notifications", SecretStr("the-right-password"))
# Long, so that only the deadline can end a conversation with a silent server within a test.
STEP_TIMEOUT_S = 60.0


@dataclass
class Certificate:
    """A self-signed certificate for 127.0.0.1: what the server presents, and the CA file that trusts it."""

    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    folder = tmp_path_factory.mktemp("smtp-tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kariz test smtp")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    found = Certificate(folder / "cert.pem", folder / "key.pem")
    found.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    found.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return found


@dataclass
class Received:
    to: list[str]
    authenticated: bool
    encrypted: bool


@dataclass
class Mailbox:
    """The server's side: what it accepted, and whether the sender had signed in over TLS."""

    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        encrypted = server.transport.get_extra_info("ssl_object") is not None
        self.received.append(Received(list(envelope.rcpt_tos), bool(session.authenticated), encrypted))
        return "250 OK"


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    valid = isinstance(auth_data, LoginPassword) and (
        auth_data.login.decode(),
        auth_data.password.decode(),
    ) == (LOGIN.username, LOGIN.password.get_secret_value())
    # handled=False: the server answers the refusal itself (535).
    return AuthResult(success=valid, handled=False)


@contextlib.contextmanager
def smtp_server(mailbox: Mailbox, **options: Any) -> Iterator[int]:
    controller = Controller(mailbox, hostname=HOST, port=free_port(), **options)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


def submission_server(mailbox: Mailbox, certificate: Certificate) -> contextlib.AbstractContextManager[int]:
    """Port 587 as a provider runs it: STARTTLS first, then AUTH (only over TLS), then mail."""
    return smtp_server(
        mailbox,
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=True,
    )


def mailer(
    port: int,
    *,
    tls_mode: SmtpTlsMode,
    ca_file: Path | None = None,
    login: SmtpLogin | None = LOGIN,
    deadline_s: float = 30.0,
) -> SmtpMailer:
    return SmtpMailer(
        HOST,
        port,
        SENDER,
        STEP_TIMEOUT_S,
        SystemClock(),
        deadline_s=deadline_s,
        tls_mode=tls_mode,
        ca_file=str(ca_file or ""),
        login=login,
    )


def a_delivery(sample: Any) -> Delivery:
    [delivery] = plan(
        sample.deal_lost(), EventContext(event_id="evt-1", correlation_id="c-1"), Audience()
    ).deliveries
    return delivery


async def test_starttls_then_auth_delivers_the_mail(certificate: Certificate, sample: Any) -> None:
    mailbox = Mailbox()
    with submission_server(mailbox, certificate) as port:
        result = await mailer(port, tls_mode="starttls", ca_file=certificate.cert_file).send(
            a_delivery(sample)
        )
    assert result.ok, result.error
    assert mailbox.received == [Received(["rep@kariz.test"], authenticated=True, encrypted=True)]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_implicit_tls_then_auth_delivers_the_mail(certificate: Certificate, sample: Any) -> None:
    mailbox = Mailbox()
    with smtp_server(
        mailbox,
        ssl_context=certificate.server_context(),
        authenticator=authenticate,
        auth_required=True,
        # aiosmtpd counts only STARTTLS as TLS; this connection is TLS from its first byte.
        auth_require_tls=False,
    ) as port:
        result = await mailer(port, tls_mode="implicit", ca_file=certificate.cert_file).send(
            a_delivery(sample)
        )
    assert result.ok, result.error
    assert mailbox.received == [Received(["rep@kariz.test"], authenticated=True, encrypted=True)]


async def test_a_wrong_password_is_a_failed_attempt_with_the_servers_code(
    certificate: Certificate, sample: Any
) -> None:
    mailbox = Mailbox()
    wrong = SmtpLogin(LOGIN.username, SecretStr("not-the-password"))
    with submission_server(mailbox, certificate) as port:
        result = await mailer(port, tls_mode="starttls", ca_file=certificate.cert_file, login=wrong).send(
            a_delivery(sample)
        )
    # Like any refusal, a failed attempt with the SMTP code: the delivery is retried, then given up.
    assert not result.ok
    assert result.status_code == 535
    assert result.error is not None and result.error.startswith("SMTP 535")
    assert mailbox.received == []


async def test_a_certificate_the_mailer_does_not_trust_fails_before_anything_is_said(
    certificate: Certificate, sample: Any
) -> None:
    mailbox = Mailbox()
    with submission_server(mailbox, certificate) as port:
        # No CA file: the system's CAs, which never signed the test's certificate.
        result = await mailer(port, tls_mode="starttls").send(a_delivery(sample))
    assert not result.ok
    assert result.error is not None and "CERTIFICATE_VERIFY_FAILED" in result.error
    assert mailbox.received == []


async def test_a_server_without_starttls_gets_nothing_in_the_clear(sample: Any) -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        result = await mailer(port, tls_mode="starttls").send(a_delivery(sample))
    assert not result.ok
    assert result.error is not None and "STARTTLS" in result.error
    assert mailbox.received == []


@dataclass
class Stalling:
    """A server that accepts and then never answers (or greets, then never answers): only the deadline
    ends the conversation. ``hung_up`` is set once the mailer closed its side."""

    greets: bool
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.greets:
            writer.write(b"220 kariz.test ESMTP\r\n")
            await writer.drain()
        with contextlib.suppress(ConnectionError):
            while await reader.read(1024):
                pass  # EHLO and the rest: read, never answered
        self.hung_up.set()
        writer.close()


@contextlib.asynccontextmanager
async def stalling_server(stalling: Stalling) -> AsyncIterator[int]:
    port = free_port()
    server = await asyncio.start_server(stalling.serve, HOST, port)
    try:
        yield port
    finally:
        server.close()


@pytest.mark.parametrize("greets", [False, True], ids=["silent", "greets-then-silent"])
@pytest.mark.parametrize("tls_mode", ["none", "starttls"])
async def test_the_deadline_ends_a_conversation_with_a_server_that_stops_answering(
    greets: bool, tls_mode: SmtpTlsMode, sample: Any
) -> None:
    stalling = Stalling(greets=greets)
    async with stalling_server(stalling) as port:
        result = await mailer(port, tls_mode=tls_mode, login=None, deadline_s=0.2).send(a_delivery(sample))
        assert not result.ok
        assert result.error == "SMTP: not done within the send's deadline of 0.2 s"
        # The conversation was cut, not left waiting out its step timeout: the server sees it hang up.
        await asyncio.wait_for(stalling.hung_up.wait(), timeout=STEP_TIMEOUT_S / 2)
