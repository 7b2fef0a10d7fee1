"""How deliveries and hand-overs are stored: the mapping between the domain's records and documents.

A delivery document's ``_id`` is its delivery key, so adding one twice leaves the first; a hand-over's
is its deal id, one per deal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import DESCENDING

from kariz_notifications.domain.model import (
    Attempt,
    Channel,
    ChatKind,
    ChatPost,
    Delivery,
    DeliveryRecord,
    DeliveryStatus,
    Email,
    Handover,
    HandoverRecord,
    HandoverStatus,
    WebhookPost,
)
from kariz_notifications.domain.queries import DeliveryCriteria

DELIVERIES = "deliveries"
HANDOVERS = "handovers"

Doc = dict[str, Any]
# Deliveries written in the same millisecond keep the order they were written in (ObjectId grows).
NEWEST_FIRST = [("created_at", DESCENDING), ("order", DESCENDING)]
HANDOVERS_NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]


def delivery_document(delivery: Delivery, at: datetime) -> Doc:
    """A new delivery, pending and due at ``at`` (or skipped, never due, with its reason)."""
    skipped = delivery.skipped is not None
    doc: Doc = {
        "_id": delivery.key,
        "channel": delivery.channel.value,
        "recipient": delivery.recipient,
        "event_type": delivery.event_type,
        "event_id": delivery.event_id,
        "subject": delivery.subject,
        "correlation_id": delivery.correlation_id,
        "message": _message_document(delivery.message),
        "rule": delivery.rule,
        "status": (DeliveryStatus.SKIPPED if skipped else DeliveryStatus.PENDING).value,
        "next_attempt_at": None if skipped else at,
        "created_at": at,
        "order": ObjectId(),
        "sent_at": None,
        "attempts": [],
        "claims": 0,
    }
    if skipped:
        doc["skipped"] = delivery.skipped
    if delivery.content_id is not None:
        doc["content_id"] = delivery.content_id
    if delivery.to_customer:
        doc["to_customer"] = True
    return doc


def _message_document(message: Email | WebhookPost | ChatPost) -> Doc:
    if isinstance(message, ChatPost):
        return {"destination": message.destination, "kind": message.kind.value, "body": message.body}
    if isinstance(message, Email):
        doc: Doc = {"to": message.to, "subject": message.subject, "body": message.body}
        if message.html is not None:
            doc["html"] = message.html
        if message.unsubscribe is not None:
            doc["unsubscribe"] = message.unsubscribe
        return doc
    return {"url": message.url, "subscriber": message.subscriber, "body": message.body}


def attempt_document(attempt: Attempt) -> Doc:
    doc: Doc = {"at": attempt.at, "outcome": attempt.outcome, "duration_ms": attempt.duration_ms}
    if attempt.error is not None:
        doc["error"] = attempt.error
    if attempt.status_code is not None:
        doc["status_code"] = attempt.status_code
    return doc


def delivery_record(doc: Doc) -> DeliveryRecord:
    channel = Channel(doc["channel"])
    m = doc["message"]
    message: Email | WebhookPost | ChatPost
    if channel is Channel.EMAIL:
        message = Email(
            to=m["to"],
            subject=m["subject"],
            body=m["body"],
            html=m.get("html"),
            unsubscribe=m.get("unsubscribe"),
        )
    elif channel is Channel.CHAT:
        message = ChatPost(destination=m["destination"], kind=ChatKind(m["kind"]), body=m["body"])
    else:
        message = WebhookPost(url=m["url"], subscriber=m["subscriber"], body=m["body"])
    delivery = Delivery(
        key=doc["_id"],
        channel=channel,
        recipient=doc["recipient"],
        event_type=doc["event_type"],
        event_id=doc["event_id"],
        subject=doc["subject"],
        correlation_id=doc["correlation_id"],
        message=message,
        rule=doc.get("rule", ""),
        skipped=doc.get("skipped"),
        content_id=doc.get("content_id"),
        to_customer=doc.get("to_customer", False),
    )
    attempts = tuple(
        Attempt(
            at=a["at"],
            succeeded=a["outcome"] == "sent",
            duration_ms=a["duration_ms"],
            error=a.get("error"),
            status_code=a.get("status_code"),
        )
        for a in doc.get("attempts", [])
    )
    return DeliveryRecord(
        delivery=delivery,
        status=DeliveryStatus(doc["status"]),
        attempts=attempts,
        created_at=doc["created_at"],
        next_attempt_at=doc.get("next_attempt_at"),
        sent_at=doc.get("sent_at"),
        claims=doc.get("claims", 0),
    )


def deliveries_query(where: DeliveryCriteria) -> Doc:
    # The stored field names are the criteria's.
    return dict(where.given())


def handover_document(handover: Handover, correlation_id: str, at: datetime) -> Doc:
    return {
        "deal_id": handover.deal_id,
        "lead_id": handover.lead_id,
        "account": {"id": handover.account_id, "name": handover.account_name},
        "owner": handover.owner,
        "amount": handover.amount,
        "currency": handover.currency,
        "won_at": handover.won_at,
        "status": handover.status.value,
        "correlation_id": correlation_id,
        "created_at": at,
    }


def handover_record(doc: Doc) -> HandoverRecord:
    account = doc["account"]
    handover = Handover(
        deal_id=doc["deal_id"],
        lead_id=doc["lead_id"],
        account_id=account["id"],
        account_name=account["name"],
        owner=doc["owner"],
        amount=doc["amount"],
        currency=doc["currency"],
        won_at=doc["won_at"],
        status=HandoverStatus(doc["status"]),
    )
    return HandoverRecord(handover=handover, created_at=doc["created_at"])
