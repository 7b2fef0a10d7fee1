from datetime import UTC, datetime

import pytest

from kariz_shared.contracts.deadletters import DeadLetterReason
from kariz_shared.contracts.envelope import Envelope, InvalidEnvelope, decode
from kariz_shared.contracts.events import Company, Contact, LeadCaptured, LeadSource


def captured(lead_id: str = "L-1") -> LeadCaptured:
    return LeadCaptured(
        lead_id=lead_id,
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@example.com"),
        company=Company(name="Analytical", domain="example.com", industry="software", size=50, country="GB"),
        source=LeadSource.WEB_FORM,
        owner="rep@kariz.test",
        assigned_by="round_robin",
        captured_at=datetime.now(UTC),
    )


def test_round_trip_keeps_every_attribute() -> None:
    env = Envelope(
        event=captured(),
        source="/kariz/leads",
        correlation_id="c-1",
        causation_id="e-0",
        actor="rep@kariz.test",
    )
    back = decode(env.topic, env.key.encode(), env.value(), env.headers())
    assert back.event == env.event
    assert (back.id, back.source, back.correlation_id, back.causation_id, back.actor) == (
        env.id,
        "/kariz/leads",
        "c-1",
        "e-0",
        "rep@kariz.test",
    )
    assert env.headers()["ce_actor"] == "rep@kariz.test"
    assert env.topic == "kariz.lead-captured.v1"
    assert env.headers()["ce_subject"] == "L-1"


def test_unknown_fields_are_ignored() -> None:
    env = Envelope(event=captured(), source="/kariz/leads", correlation_id="c")
    value = env.value().replace(b'{"lead_id"', b'{"added_later":1,"lead_id"')
    assert decode(env.topic, b"L-1", value, env.headers()).event == env.event


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k != name}


@pytest.mark.parametrize(
    ("mutate", "message", "reason"),
    [
        (lambda t, k, v, h: (t, k, b"not json", h), "not JSON", DeadLetterReason.NOT_JSON),
        (lambda t, k, v, h: (t, k, b"\xff\xfe{}", h), "not JSON", DeadLetterReason.NOT_JSON),
        (lambda t, k, v, h: (t, k, b"", h), "not JSON", DeadLetterReason.NOT_JSON),
        (
            lambda t, k, v, h: (t, k, b'{"lead_id": "L-1"}', h),
            "does not match LeadCaptured v1: contact: Field required",
            DeadLetterReason.INVALID_SCHEMA,
        ),
        (
            lambda t, k, v, h: (t, k, b"[1, 2]", h),
            "does not match LeadCaptured",
            DeadLetterReason.INVALID_SCHEMA,
        ),
        (
            lambda t, k, v, h: (t, k, v.replace(b'"web_form"', b'"carrier_pigeon"'), h),
            "source: Input should be",
            DeadLetterReason.INVALID_SCHEMA,
        ),
        (
            lambda t, k, v, h: (t, k, v, {**h, "ce_type": "kariz.lead-captured.v2"}),
            "another version of the event belongs on its own topic",
            DeadLetterReason.UNKNOWN_VERSION,
        ),
        (
            lambda t, k, v, h: (t, k, v, {**h, "ce_specversion": "2.0"}),
            "unsupported ce_specversion '2.0'",
            DeadLetterReason.UNKNOWN_VERSION,
        ),
        (
            lambda t, k, v, h: (t, k, v, {**h, "ce_type": "kariz.deal-won.v1"}),
            "does not match topic",
            DeadLetterReason.INVALID_ENVELOPE,
        ),
        (
            lambda t, k, v, h: (t, k, v, _without(h, "ce_id")),
            "missing CloudEvents headers: ce_id",
            DeadLetterReason.INVALID_ENVELOPE,
        ),
        (lambda t, k, v, h: (t, k, v, {}), "missing CloudEvents headers", DeadLetterReason.INVALID_ENVELOPE),
        (
            lambda t, k, v, h: (t, k, v, {**h, "ce_source": b"\xff"}),
            "a header is not UTF-8",
            DeadLetterReason.INVALID_ENVELOPE,
        ),
        (
            lambda t, k, v, h: (t, k, v, {**h, "ce_time": "yesterday"}),
            "not an RFC 3339 timestamp",
            DeadLetterReason.INVALID_ENVELOPE,
        ),
        (lambda t, k, v, h: (t, b"L-2", v, h), "not the aggregate id", DeadLetterReason.INVALID_ENVELOPE),
        (
            lambda t, k, v, h: ("kariz.nope.v1", k, v, h),
            "no known Kariz event",
            DeadLetterReason.INVALID_ENVELOPE,
        ),
    ],
)
def test_what_cannot_be_read_says_why_and_which_reason(mutate, message, reason) -> None:  # type: ignore[no-untyped-def]
    env = Envelope(event=captured(), source="/kariz/leads", correlation_id="c")
    with pytest.raises(InvalidEnvelope, match=message) as raised:
        decode(*mutate(env.topic, env.key.encode(), env.value(), env.headers()))
    assert raised.value.reason is reason
