"""Signed webhooks: how Kariz signs what it POSTs, and how a subscriber checks it.

Headers on every delivery:
- ``X-Kariz-Timestamp``: Unix seconds when it was signed;
- ``X-Kariz-Signature``: ``v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``;
- ``X-Kariz-Delivery-Id``: one per (event, subscriber): the idempotency key a subscriber can dedupe on;
- ``X-Kariz-Event-Id`` and ``X-Kariz-Event-Type``.
A subscriber recomputes the HMAC over the raw body and rejects timestamps older than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Kariz-Timestamp"
SIGNATURE_HEADER = "X-Kariz-Signature"
DELIVERY_ID_HEADER = "X-Kariz-Delivery-Id"
EVENT_ID_HEADER = "X-Kariz-Event-Id"
EVENT_TYPE_HEADER = "X-Kariz-Event-Type"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: signature(secret, ts, body)}


def verify(secret: str, body: bytes, headers: dict[str, str], *, tolerance_s: int = 300) -> bool:
    """True when the signature matches and the timestamp is recent. Header names are case-insensitive."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        ts = int(lower[TIMESTAMP_HEADER.lower()])
        given = lower[SIGNATURE_HEADER.lower()]
    except (KeyError, ValueError):
        return False
    if abs(time.time() - ts) > tolerance_s:
        return False
    return hmac.compare_digest(given, signature(secret, ts, body))
