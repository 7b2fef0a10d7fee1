"""HTTP API: the delivery log and the hand-overs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from kariz_notifications import service_layer
from kariz_notifications.adapters.repository import DeliveryFilter
from kariz_notifications.domain.model import (
    Attempt,
    Channel,
    DeliveryRecord,
    DeliveryStatus,
    Email,
    EventType,
    Handover,
    HandoverStatus,
)
from kariz_shared.persistence.store import Store
from kariz_shared.runtime.http import Limit, Offset, Page


class AttemptOut(BaseModel):
    at: datetime
    outcome: str = Field(description="sent | failed")
    error: str | None = None
    status_code: int | None = Field(default=None, description="HTTP status (webhook) or SMTP reply code")
    duration_ms: int

    @classmethod
    def of(cls, a: Attempt) -> AttemptOut:
        return cls(
            at=a.at, outcome=a.outcome, error=a.error, status_code=a.status_code, duration_ms=a.duration_ms
        )


class NotificationOut(BaseModel):
    id: str = Field(description="The delivery key: <event id>:<channel>:<recipient>")
    channel: Channel
    recipient: str = Field(description="An e-mail address, or a webhook subscriber's name")
    event_type: str
    event_id: str
    subject: str = Field(description="The id of the lead or deal the event is about")
    status: DeliveryStatus
    attempts: list[AttemptOut]
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None
    claims: int = Field(
        description="Times a sender took it; more than attempts means a sender died mid-send and it was "
        "sent again with the same delivery id"
    )

    @classmethod
    def of(cls, r: DeliveryRecord) -> NotificationOut:
        d = r.delivery
        return cls(
            id=d.key,
            channel=d.channel,
            recipient=d.recipient,
            event_type=d.event_type,
            event_id=d.event_id,
            subject=d.subject,
            status=r.status,
            attempts=[AttemptOut.of(a) for a in r.attempts],
            created_at=r.created_at,
            sent_at=r.sent_at,
            next_attempt_at=r.next_attempt_at,
            claims=r.claims,
        )


class EmailOut(BaseModel):
    to: str
    subject: str
    body: str


class WebhookOut(BaseModel):
    url: str
    subscriber: str
    body: str = Field(description="The JSON text that was (or will be) signed and posted")


class NotificationDetail(NotificationOut):
    correlation_id: str
    email: EmailOut | None = None
    webhook: WebhookOut | None = None

    @classmethod
    def detail(cls, r: DeliveryRecord) -> NotificationDetail:
        m = r.delivery.message
        return cls(
            **NotificationOut.of(r).model_dump(),
            correlation_id=r.delivery.correlation_id,
            email=EmailOut(to=m.to, subject=m.subject, body=m.body) if isinstance(m, Email) else None,
            webhook=None
            if isinstance(m, Email)
            else WebhookOut(url=m.url, subscriber=m.subscriber, body=m.body),
        )


class AccountOut(BaseModel):
    id: str
    name: str


class HandoverOut(BaseModel):
    deal_id: str
    lead_id: str
    account: AccountOut
    owner: str
    amount: Decimal
    currency: str
    won_at: datetime
    status: HandoverStatus
    created_at: datetime

    @classmethod
    def of(cls, h: Handover, created_at: datetime) -> HandoverOut:
        return cls(
            deal_id=h.deal_id,
            lead_id=h.lead_id,
            account=AccountOut(id=h.account_id, name=h.account_name),
            owner=h.owner,
            amount=h.amount,
            currency=h.currency,
            won_at=h.won_at,
            status=h.status,
            created_at=created_at,
        )


Text = Annotated[str | None, Query(min_length=1, max_length=320)]


def router(store: Store) -> APIRouter:
    api = APIRouter(tags=["notifications"])

    @api.get("/notifications", summary="The delivery log, newest first")
    async def list_notifications(
        status: DeliveryStatus | None = None,
        channel: Channel | None = None,
        event_type: EventType | None = None,
        recipient: Text = None,
        subject: Text = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[NotificationOut]:
        where = DeliveryFilter(
            status=status,
            channel=channel,
            event_type=event_type.value if event_type else None,
            recipient=recipient,
            subject=subject,
        )
        records, total = await service_layer.delivery_log(store, where, limit=limit, offset=offset)
        return Page(items=[NotificationOut.of(r) for r in records], total=total, limit=limit, offset=offset)

    @api.get(
        "/notifications/{delivery_id}",
        summary="One delivery with its message and every attempt",
        responses={404: {"description": "No such delivery"}},
    )
    async def get_notification(delivery_id: Annotated[str, Path(min_length=1)]) -> NotificationDetail:
        return NotificationDetail.detail(await service_layer.delivery(store, delivery_id))

    @api.get("/handovers", summary="Post-sale hand-overs to onboarding and support, newest first")
    async def list_handovers(
        status: HandoverStatus | None = None, limit: Limit = 50, offset: Offset = 0
    ) -> Page[HandoverOut]:
        found, total = await service_layer.handovers(store, status=status, limit=limit, offset=offset)
        return Page(items=[HandoverOut.of(h, at) for h, at in found], total=total, limit=limit, offset=offset)

    return api
