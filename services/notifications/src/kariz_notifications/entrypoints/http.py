"""The HTTP API: the delivery log and the hand-overs, with their response models."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from kariz_notifications.domain.model import (
    Attempt,
    Channel,
    ChatPost,
    DeliveryRecord,
    DeliveryStatus,
    Email,
    EventType,
    HandoverRecord,
    HandoverStatus,
    WebhookPost,
)
from kariz_notifications.domain.queries import DeliveryCriteria
from kariz_notifications.service_layer import views
from kariz_notifications.service_layer.views import NotificationsReads
from kariz_shared.contracts.identity import Role
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, requiring
from kariz_shared.runtime.http import Limit, Offset, Page


class AttemptView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    outcome: str = Field(description="sent | failed")
    error: str | None = None
    status_code: int | None = Field(default=None, description="HTTP status (webhook) or SMTP reply code")
    duration_ms: int

    @classmethod
    def of(cls, a: Attempt) -> AttemptView:
        return cls.model_validate(a)


class NotificationView(BaseModel):
    id: str = Field(description="The delivery key: <event id>:<channel>:<recipient>")
    channel: Channel
    recipient: str = Field(description="An e-mail address, or a webhook subscriber's name")
    event_type: str
    rule: str = Field(description="The rule that caused it, e.g. follow-up-due; subscription for a webhook")
    event_id: str
    subject: str = Field(description="The id of the lead or deal the event is about")
    status: DeliveryStatus
    attempts: list[AttemptView]
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None
    claims: int = Field(
        description="Times a sender took it; more than attempts means a sender died mid-send and it was "
        "sent again with the same delivery id"
    )
    skipped: str | None = Field(
        default=None,
        description="status skipped: why it was never sent (no_consent, consent_withdrawn, unsubscribed, "
        "no_contact, no_content...)",
    )
    content_id: str | None = Field(default=None, description="The library piece a content e-mail carries")

    @classmethod
    def of(cls, r: DeliveryRecord) -> NotificationView:
        d = r.delivery
        return cls(
            id=d.key,
            channel=d.channel,
            recipient=d.recipient,
            event_type=d.event_type,
            rule=d.rule,
            event_id=d.event_id,
            subject=d.subject,
            status=r.status,
            attempts=[AttemptView.of(a) for a in r.attempts],
            created_at=r.created_at,
            sent_at=r.sent_at,
            next_attempt_at=r.next_attempt_at,
            claims=r.claims,
            skipped=d.skipped,
            content_id=d.content_id,
        )


class EmailView(BaseModel):
    to: str
    subject: str
    body: str
    html: str | None = Field(default=None, description="The HTML part, if the rule's template has one")
    unsubscribe: str | None = Field(default=None, description="A content e-mail's unsubscribe link")


class WebhookView(BaseModel):
    url: str
    subscriber: str
    body: str = Field(description="The JSON text that was (or will be) signed and posted")


class ChatView(BaseModel):
    destination: str = Field(description="The chat channel of the settings")
    kind: str = Field(description="slack | teams")
    body: str = Field(description="The JSON text that was (or will be) posted")


class NotificationDetailView(NotificationView):
    correlation_id: str
    email: EmailView | None = None
    webhook: WebhookView | None = None
    chat: ChatView | None = None

    @classmethod
    def detail(cls, r: DeliveryRecord) -> NotificationDetailView:
        m = r.delivery.message
        return cls(
            **NotificationView.of(r).model_dump(),
            correlation_id=r.delivery.correlation_id,
            email=EmailView(to=m.to, subject=m.subject, body=m.body, html=m.html, unsubscribe=m.unsubscribe)
            if isinstance(m, Email)
            else None,
            webhook=WebhookView(url=m.url, subscriber=m.subscriber, body=m.body)
            if isinstance(m, WebhookPost)
            else None,
            chat=ChatView(destination=m.destination, kind=m.kind.value, body=m.body)
            if isinstance(m, ChatPost)
            else None,
        )


class AccountView(BaseModel):
    id: str
    name: str


class HandoverView(BaseModel):
    deal_id: str
    lead_id: str
    account: AccountView
    owner: str
    amount: Decimal
    currency: str
    won_at: datetime
    status: HandoverStatus
    created_at: datetime

    @classmethod
    def of(cls, record: HandoverRecord) -> HandoverView:
        h = record.handover
        return cls(
            deal_id=h.deal_id,
            lead_id=h.lead_id,
            account=AccountView(id=h.account_id, name=h.account_name),
            owner=h.owner,
            amount=h.amount,
            currency=h.currency,
            won_at=h.won_at,
            status=h.status,
            created_at=record.created_at,
        )


Text = Annotated[str | None, Query(min_length=1, max_length=320)]


def router(reads: NotificationsReads) -> APIRouter:
    # The delivery log names every recipient and message: a manager's or an admin's view.
    api = APIRouter(
        tags=["notifications"],
        dependencies=[Depends(requiring(Role.MANAGER, Role.ADMIN))],
        responses=SIGN_IN_ERRORS,
    )

    @api.get("/notifications", summary="The delivery log, newest first")
    async def list_notifications(
        status: DeliveryStatus | None = None,
        channel: Channel | None = None,
        event_type: EventType | None = None,
        recipient: Text = None,
        subject: Text = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[NotificationView]:
        where = DeliveryCriteria(
            status=status,
            channel=channel,
            event_type=event_type.value if event_type else None,
            recipient=recipient,
            subject=subject,
        )
        records, total = await views.delivery_log(reads, where, limit=limit, offset=offset)
        return Page(items=[NotificationView.of(r) for r in records], total=total, limit=limit, offset=offset)

    @api.get(
        "/notifications/{delivery_id}",
        summary="One delivery with its message and every attempt",
        responses={404: {"description": "No such delivery"}},
    )
    async def get_notification(delivery_id: Annotated[str, Path(min_length=1)]) -> NotificationDetailView:
        return NotificationDetailView.detail(await views.delivery(reads, delivery_id))

    @api.get("/handovers", summary="Post-sale hand-overs to onboarding and support, newest first")
    async def list_handovers(
        status: HandoverStatus | None = None, limit: Limit = 50, offset: Offset = 0
    ) -> Page[HandoverView]:
        found, total = await views.handovers(reads, status=status, limit=limit, offset=offset)
        return Page(items=[HandoverView.of(h) for h in found], total=total, limit=limit, offset=offset)

    return api
