"""What notifications talks about: channels, deliveries and their messages, subscribers, hand-overs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from kariz_shared.contracts.events import (
    DealLost,
    DealWon,
    FollowUpDue,
    LeadQualified,
    LeadQueued,
    LeadReassigned,
    LeadResponseOverdue,
    RepProfile,
    StageChanged,
)

ALL_EVENTS = "*"
#: The rule a webhook delivery counts under: a subscription, not an e-mail rule.
SUBSCRIPTION = "subscription"


class EventType(StrEnum):
    """The events that turn into messages. A webhook subscriber may subscribe only to these (or to all)."""

    LEAD_QUALIFIED = LeadQualified.__name__
    STAGE_CHANGED = StageChanged.__name__
    DEAL_WON = DealWon.__name__
    DEAL_LOST = DealLost.__name__
    FOLLOW_UP_DUE = FollowUpDue.__name__
    LEAD_RESPONSE_OVERDUE = LeadResponseOverdue.__name__
    LEAD_QUEUED = LeadQueued.__name__
    LEAD_REASSIGNED = LeadReassigned.__name__


class Channel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"
    #: A Slack incoming webhook or a Microsoft Teams workflow webhook, in each one's message format.
    CHAT = "chat"


class ChatKind(StrEnum):
    SLACK = "slack"
    TEAMS = "teams"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    #: Never to be sent, kept so a user sees why (content to a contact without consent): ``skipped``.
    SKIPPED = "skipped"


class HandoverStatus(StrEnum):
    OPEN = "open"


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    body: str
    #: The HTML part (a runtime rule's template may have one), sent beside the plain text.
    html: str | None = None
    #: A content e-mail's unsubscribe link: also its List-Unsubscribe header (one click, RFC 8058).
    unsubscribe: str | None = None


@dataclass(frozen=True)
class WebhookPost:
    url: str
    subscriber: str
    #: The exact JSON text that is signed and sent, so every attempt carries the same bytes.
    body: str


@dataclass(frozen=True)
class ChatPost:
    """A message to a chat channel of the settings, by name: its URL (a credential) stays there."""

    destination: str
    kind: ChatKind
    #: The exact JSON text posted, in the format of ``kind``.
    body: str


@dataclass(frozen=True)
class ChatDestination:
    name: str
    kind: ChatKind


@dataclass(frozen=True)
class Subscriber:
    """A system that receives events by signed webhook. Its secret stays in the settings."""

    name: str
    url: str
    events: frozenset[str]

    def wants(self, event_type: str) -> bool:
        return ALL_EVENTS in self.events or event_type in self.events


@dataclass(frozen=True)
class Audience:
    """Who hears about what, besides the deal's or lead's owner."""

    team: tuple[str, ...] = ()
    handover: tuple[str, ...] = ()
    subscribers: tuple[Subscriber, ...] = ()
    #: The chat channels of the settings a rule's chat action may post to.
    chats: tuple[ChatDestination, ...] = ()


class Reps(Protocol):
    """The reps as the roster knows them now (``kariz_shared.contracts.identity.LiveRoster``, fed from
    kariz.reps.v1): whom a rule's roles (owner's manager, team's managers) name, and each recipient's
    time zone."""

    def profile(self, email: str) -> RepProfile | None: ...

    def manager_of(self, email: str) -> str | None: ...

    def members(self, team: str | None) -> frozenset[str]: ...


@dataclass(frozen=True)
class EventContext:
    """What the envelope says about an event that the event itself does not."""

    event_id: str
    correlation_id: str


@dataclass(frozen=True)
class Delivery:
    """One message for one recipient over one channel, caused by one event."""

    key: str
    channel: Channel
    recipient: str
    event_type: str
    event_id: str
    subject: str
    correlation_id: str
    message: Email | WebhookPost | ChatPost
    #: The rule that caused it (``SUBSCRIPTION`` for a webhook), for the metrics; empty in a delivery
    #: recorded before rules had names.
    rule: str = ""
    #: Why it is not to be sent (a content action's skip: no consent, unsubscribed...); None to send.
    skipped: str | None = None
    #: The library piece a content e-mail carries.
    content_id: str | None = None
    #: An e-mail to a customer's contact (a content action's), not to a user.
    to_customer: bool = False


@dataclass(frozen=True)
class Handover:
    """The post-sale hand-over of a won account to onboarding and support."""

    deal_id: str
    lead_id: str
    account_id: str
    account_name: str
    owner: str
    amount: Decimal
    currency: str
    won_at: datetime
    status: HandoverStatus = HandoverStatus.OPEN


@dataclass(frozen=True)
class HandoverRecord:
    """A hand-over as the log keeps it: when it was opened."""

    handover: Handover
    created_at: datetime


@dataclass(frozen=True)
class Attempt:
    at: datetime
    succeeded: bool
    duration_ms: int
    error: str | None = None
    status_code: int | None = None

    @property
    def outcome(self) -> str:
        return "sent" if self.succeeded else "failed"

    @classmethod
    def of(cls, result: SendResult, *, at: datetime, seconds: float) -> Attempt:
        """What the log keeps of a send that started at ``at`` and took ``seconds``."""
        return cls(
            at=at,
            succeeded=result.ok,
            duration_ms=round(seconds * 1000),
            error=result.error,
            status_code=result.status_code,
        )


@dataclass(frozen=True)
class SendResult:
    """What a channel reports back about one send."""

    ok: bool
    error: str | None = None
    status_code: int | None = None


@dataclass(frozen=True)
class DeliveryRecord:
    """A delivery as the log keeps it: the message plus where it stands and every attempt so far."""

    delivery: Delivery
    status: DeliveryStatus
    attempts: tuple[Attempt, ...]
    created_at: datetime
    next_attempt_at: datetime | None
    sent_at: datetime | None
    #: Times a sender took this delivery. More claims than attempts means a sender died mid-send: the
    #: recipient may have got it already, and gets it again with the same delivery id to drop it by.
    claims: int = 0

    @property
    def resumed_after_crash(self) -> bool:
        """Claimed now again after an earlier claim ended without a recorded attempt."""
        return self.claims - 1 > len(self.attempts)
