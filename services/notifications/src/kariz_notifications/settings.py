"""Settings of the notifications service, read from ``KARIZ_<FIELD>``."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from kariz_notifications.domain.automation import TRIGGERS
from kariz_notifications.domain.model import ALL_EVENTS, Audience, ChatDestination, ChatKind, Subscriber
from kariz_notifications.domain.schedule import LEASE
from kariz_notifications.domain.unsubscribe import UnsubscribeLinks
from kariz_shared.contracts import webhooks
from kariz_shared.runtime.settings import ServiceSettings, read_password

ADDRESS = re.compile(r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$")
#: The events a subscriber may name: those a rule may (every public event but the roster, TaskRequested
#: and notifications' own timers).
SUBSCRIBABLE = TRIGGERS | {ALL_EVENTS}


def _address_list(value: Any) -> Any:
    """JSON (``["a@x", "b@x"]``) or comma-separated (``a@x, b@x``), from the environment or code."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


def _check_addresses(values: list[str]) -> list[str]:
    bad = [v for v in values if not ADDRESS.match(v)]
    if bad:
        raise ValueError(f"not e-mail addresses: {', '.join(bad)}")
    return values


class WebhookSubscriber(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The name is part of the delivery id, which is a path segment of GET /notifications/{id}.
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    url: str
    secret: SecretStr
    # While the subscriber moves to ``secret``, deliveries are signed with this one too (both verify).
    previous_secret: SecretStr | None = None
    events: list[str] = Field(min_length=1, description='Event names such as "DealWon", or "*" for all')

    @field_validator("secret", "previous_secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value().encode()) < webhooks.SECRET_MIN_BYTES:
            raise ValueError(f"a webhook secret must be at least {webhooks.SECRET_MIN_BYTES} bytes")
        return secret

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not re.match(r"^https?://[^\s/]+", url):
            raise ValueError(f"{url!r} is not an http(s) URL")
        return url

    @field_validator("events")
    @classmethod
    def _known_events(cls, events: list[str]) -> list[str]:
        unknown = sorted(set(events) - SUBSCRIBABLE)
        if unknown:
            known = sorted(SUBSCRIBABLE - {ALL_EVENTS})
            raise ValueError(f"unknown events {unknown}: choose from {known} or {ALL_EVENTS!r}")
        return events

    def as_subscriber(self) -> Subscriber:
        return Subscriber(name=self.name, url=self.url, events=frozenset(self.events))


class ChatWebhook(BaseModel):
    """A chat channel rules may post to: a Slack incoming webhook or a Teams workflow webhook."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    kind: ChatKind
    # Whoever has the URL may post to the channel: a secret like a subscriber's.
    url: SecretStr

    @field_validator("url")
    @classmethod
    def _https_url(cls, url: SecretStr) -> SecretStr:
        if not re.match(r"^https?://[^\s/]+", url.get_secret_value()):
            raise ValueError("a chat webhook's url must be an http(s) URL")
        return url


class NotificationsSettings(ServiceSettings):
    service_name: str = "notifications"
    http_port: int = 8004

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=8025, ge=1, le=65535)
    smtp_sender: str = "kariz@kariz.example"
    # Each send must end well within the delivery lease (delivery_lease_s). This bounds each step (connect,
    # each command and reply); smtp_deadline_s bounds the whole conversation, so a server that answers
    # every step just in time cannot stretch a send past the lease either.
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=20)
    smtp_deadline_s: float = Field(default=20.0, gt=0)
    # "starttls": upgrade the submission port (587) before anything else is said; "implicit": TLS from the
    # first byte (SMTPS, 465); "none" only for a relay on the same host or the dev sink. No fallback to
    # plaintext: a server that offers no STARTTLS fails the send.
    smtp_tls_mode: Literal["none", "starttls", "implicit"] = "none"
    # The CA the server's certificate is checked against; empty trusts the system's CAs.
    smtp_tls_ca_file: str = ""
    # AUTH (LOGIN or PLAIN, whichever the server offers) when a username is set; the password from
    # KARIZ_SMTP_PASSWORD or the file KARIZ_SMTP_PASSWORD_FILE names.
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_password_file: str = ""
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=20)

    team_emails: Annotated[list[str], NoDecode] = ["sales-team@kariz.example"]
    handover_emails: Annotated[list[str], NoDecode] = ["onboarding@kariz.example"]
    webhook_subscribers: list[WebhookSubscriber] = []
    chat_webhooks: list[ChatWebhook] = []
    # Subscribers' URLs must be https; plain http only where the receivers are local (dev, tests).
    webhook_allow_http: bool = False
    # A managed subscription whose last this many deliveries all failed (each after every retry) is
    # suspended, and its contact e-mailed; its owner resumes it.
    subscription_suspend_after: int = Field(default=10, ge=1, le=1000)
    # After POST /subscriptions/{id}/rotate-secret, deliveries carry the old secret's signatures too this
    # long, so the receiver switches without losing any.
    # How often the replay worker looks for a replay waiting (a request wakes it at once).
    subscription_replay_poll_s: float = Field(default=5.0, gt=0, le=600)
    subscription_secret_grace_s: float = Field(default=86400.0, ge=0, le=30 * 86400)
    # Each replica plans events by its copy of the rules and subscriptions, read again at most this
    # often: another replica's change counts within it, this one's at once.
    rules_refresh_s: float = Field(default=5.0, ge=0, le=3600)

    # Content e-mails (issue G) carry an unsubscribe link signed with this (HMAC-SHA256, at least 32
    # bytes): KARIZ_UNSUBSCRIBE_SECRET. Empty: no content goes (each is skipped, logged), since none may go
    # without a working link.
    unsubscribe_secret: SecretStr = SecretStr("")
    # Where a contact's mail client reaches /unsubscribe/{token} (the service's public address).
    unsubscribe_base_url: str = Field(default="http://127.0.0.1:8004", pattern=r"^https?://[^\s/]+\S*$")

    delivery_max_attempts: int = Field(default=6, ge=1, le=50)
    delivery_backoff_s: float = Field(default=1.0, gt=0, le=60)
    delivery_poll_interval_s: float = Field(default=0.2, gt=0, le=60)
    # Lanes per process, each claiming a batch of deliveries and sending them side by side: a slow
    # subscriber holds up its own lane only.
    delivery_concurrency: int = Field(default=4, ge=1, le=64)
    # Deliveries a lane claims with one look at the queue (each look reads every pending delivery on the
    # embedded database, so under a backlog one look per delivery costs more than the sending).
    delivery_batch: int = Field(default=10, ge=1, le=100)
    # A claimed delivery belongs to its sender this long; then another may take it over (the first died).
    delivery_lease_s: float = Field(default=LEASE.total_seconds(), gt=0, le=600)

    @model_validator(mode="after")
    def _sends_end_within_the_lease(self) -> NotificationsSettings:
        longest = max(self.smtp_timeout_s, self.webhook_timeout_s)
        if self.delivery_lease_s <= 1.5 * longest:
            raise ValueError(
                f"delivery_lease_s ({self.delivery_lease_s}) must exceed 1.5 times the longest send timeout "
                f"({longest}): a slow send must never outlive its lease"
            )
        if self.smtp_deadline_s >= self.delivery_lease_s:
            raise ValueError(
                f"smtp_deadline_s ({self.smtp_deadline_s}) must be shorter than delivery_lease_s "
                f"({self.delivery_lease_s}): an e-mail still being sent when its lease runs out is taken "
                "over by another sender and sent twice"
            )
        return self

    @model_validator(mode="after")
    def _smtp_login_over_tls(self) -> NotificationsSettings:
        self.smtp_password = read_password(self.smtp_password, self.smtp_password_file, "SMTP")
        if self.smtp_username and not self.smtp_password.get_secret_value():
            raise ValueError(
                "KARIZ_SMTP_USERNAME is set without KARIZ_SMTP_PASSWORD or KARIZ_SMTP_PASSWORD_FILE"
            )
        if self.smtp_username and self.smtp_tls_mode == "none":
            raise ValueError(
                "KARIZ_SMTP_USERNAME needs KARIZ_SMTP_TLS_MODE starttls or implicit: AUTH would send the "
                "password in the clear"
            )
        if self.smtp_tls_ca_file and self.smtp_tls_mode == "none":
            raise ValueError("KARIZ_SMTP_TLS_CA_FILE is set, but KARIZ_SMTP_TLS_MODE is none")
        return self

    @field_validator("team_emails", "handover_emails", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _address_list(value)

    @field_validator("team_emails", "handover_emails")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        return _check_addresses(values)

    @field_validator("smtp_sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return _check_addresses([value])[0]

    @model_validator(mode="after")
    def _unique_subscribers(self) -> NotificationsSettings:
        names = [s.name for s in self.webhook_subscribers]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"webhook subscriber names must be unique: {', '.join(repeated)}")
        plain = [s.name for s in self.webhook_subscribers if not s.url.startswith("https://")]
        plain += [c.name for c in self.chat_webhooks if not c.url.get_secret_value().startswith("https://")]
        if plain and not self.webhook_allow_http:
            raise ValueError(
                f"webhook subscribers {', '.join(plain)}: the url must be https (signed events travel "
                "in it); KARIZ_WEBHOOK_ALLOW_HTTP=true allows http for local receivers"
            )
        return self

    @model_validator(mode="after")
    def _unsubscribe_secret_long_enough(self) -> NotificationsSettings:
        secret = self.unsubscribe_secret.get_secret_value()
        if secret and len(secret.encode()) < webhooks.SECRET_MIN_BYTES:
            raise ValueError(
                f"KARIZ_UNSUBSCRIBE_SECRET must be at least {webhooks.SECRET_MIN_BYTES} bytes: a short one "
                "can be guessed, and with it every contact's unsubscribe link"
            )
        return self

    def unsubscribe_links(self) -> UnsubscribeLinks | None:
        secret = self.unsubscribe_secret.get_secret_value()
        return UnsubscribeLinks(secret, self.unsubscribe_base_url) if secret else None

    def audience(self) -> Audience:
        return Audience(
            team=tuple(self.team_emails),
            handover=tuple(self.handover_emails),
            subscribers=tuple(s.as_subscriber() for s in self.webhook_subscribers),
            chats=tuple(ChatDestination(c.name, c.kind) for c in self.chat_webhooks),
        )

    def chat_url(self, name: str) -> str | None:
        for c in self.chat_webhooks:
            if c.name == name:
                return c.url.get_secret_value()
        return None

    def subscriber_secrets(self, name: str) -> list[str] | None:
        """The secrets a subscriber's deliveries are signed with: the current one, then the previous."""
        for s in self.webhook_subscribers:
            if s.name == name:
                return [x.get_secret_value() for x in (s.secret, s.previous_secret) if x is not None]
        return None

    def subscriber_secret(self, name: str) -> str | None:
        for s in self.webhook_subscribers:
            if s.name == name:
                return s.secret.get_secret_value()
        return None
