"""Signed webhooks: how Kariz signs what it POSTs, and how a subscriber checks it.

Headers on every delivery:
- ``X-Kariz-Timestamp``: Unix seconds when it was signed;
- ``X-Kariz-Delivery-Id``: one per (event, subscriber): the idempotency key a subscriber can dedupe on;
- ``X-Kariz-Signature``: one or more signatures, comma-separated:
  ``v2=<hex HMAC-SHA256(secret, "<timestamp>.<delivery id>.<body>")>`` (the delivery id is signed, so a
  captured body cannot be replayed under another id) and, for subscribers written against the first
  version, ``v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>``. While a subscriber's secret is being
  rotated, each version is there twice: once with the new secret and once with the previous one.
- ``X-Kariz-Event-Id`` and ``X-Kariz-Event-Type``;
- the Standard Webhooks headers (https://www.standardwebhooks.com), so its libraries verify a delivery
  as they do any sender's: ``webhook-id`` (the delivery id), ``webhook-timestamp`` and
  ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "<delivery id>.<timestamp>.<body>")>``, one
  entry per secret, space-separated (the new secret's first while a rotation lasts). The library's key
  is ``whsec_`` and the base64 of the secret's bytes (:func:`standard_secret`).
A subscriber recomputes the HMAC over the raw body and rejects timestamps older than a few minutes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence

TIMESTAMP_HEADER = "X-Kariz-Timestamp"
SIGNATURE_HEADER = "X-Kariz-Signature"
DELIVERY_ID_HEADER = "X-Kariz-Delivery-Id"
EVENT_ID_HEADER = "X-Kariz-Event-Id"
EVENT_TYPE_HEADER = "X-Kariz-Event-Type"
STANDARD_ID_HEADER = "webhook-id"
STANDARD_TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
#: How a Standard Webhooks library is handed a secret: this prefix and the base64 of its bytes.
STANDARD_SECRET_PREFIX = "whsec_"
#: A subscriber's secret is at least this long (bytes of its text): a short one can be guessed.
SECRET_MIN_BYTES = 32


def _mac(secret: str, material: bytes) -> str:
    return hmac.new(secret.encode(), material, hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The first version: over the timestamp and the body."""
    return f"v1={_mac(secret, f'{timestamp}.'.encode() + body)}"


def signature_v2(secret: str, timestamp: int, delivery_id: str, body: bytes) -> str:
    """Over the timestamp, the delivery id and the body."""
    return f"v2={_mac(secret, f'{timestamp}.{delivery_id}.'.encode() + body)}"


def standard_secret(secret: str) -> str:
    """``secret`` as a Standard Webhooks library takes it (``whsec_<base64>``)."""
    return STANDARD_SECRET_PREFIX + base64.b64encode(secret.encode()).decode()


def standard_signature(secret: str, timestamp: int, delivery_id: str, body: bytes) -> str:
    """One entry of ``webhook-signature``: over the delivery id, the timestamp and the body."""
    mac = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(mac).decode()}"


def sign(
    secrets: str | Sequence[str], body: bytes, *, delivery_id: str, timestamp: int | None = None
) -> dict[str, str]:
    """The timestamp and signature headers: each secret (the current one first, then the previous one
    while a rotation lasts) signs both versions."""
    ts = int(time.time()) if timestamp is None else timestamp
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    signatures = [signature_v2(k, ts, delivery_id, body) for k in keys] + [
        signature(k, ts, body) for k in keys
    ]
    return {
        TIMESTAMP_HEADER: str(ts),
        DELIVERY_ID_HEADER: delivery_id,
        SIGNATURE_HEADER: ", ".join(signatures),
        STANDARD_ID_HEADER: delivery_id,
        STANDARD_TIMESTAMP_HEADER: str(ts),
        STANDARD_SIGNATURE_HEADER: " ".join(standard_signature(k, ts, delivery_id, body) for k in keys),
    }


def verify(secret: str, body: bytes, headers: dict[str, str], *, tolerance_s: int = 300) -> bool:
    """True when one of the signatures is this secret's and the timestamp is recent. A delivery that
    carries v2 signatures is checked on them (its delivery id included); header names are
    case-insensitive."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        ts = int(lower[TIMESTAMP_HEADER.lower()])
        given = [part.strip() for part in lower[SIGNATURE_HEADER.lower()].split(",")]
    except (KeyError, ValueError):
        return False
    if abs(time.time() - ts) > tolerance_s:
        return False
    v2 = [g for g in given if g.startswith("v2=")]
    if v2:
        delivery_id = lower.get(DELIVERY_ID_HEADER.lower())
        if delivery_id is None:
            return False
        wanted = signature_v2(secret, ts, delivery_id, body)
        return any(hmac.compare_digest(g, wanted) for g in v2)
    wanted = signature(secret, ts, body)
    return any(hmac.compare_digest(g, wanted) for g in given)


def verify_standard(secret: str, body: bytes, headers: dict[str, str], *, tolerance_s: int = 300) -> bool:
    """The Standard Webhooks check: one ``v1,`` entry of ``webhook-signature`` is this secret's, over
    ``webhook-id``, ``webhook-timestamp`` (recent) and the body."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        ts = int(lower[STANDARD_TIMESTAMP_HEADER])
        delivery_id = lower[STANDARD_ID_HEADER]
        given = lower[STANDARD_SIGNATURE_HEADER].split()
    except (KeyError, ValueError):
        return False
    if abs(time.time() - ts) > tolerance_s:
        return False
    wanted = standard_signature(secret, ts, delivery_id, body)
    return any(hmac.compare_digest(g, wanted) for g in given)
