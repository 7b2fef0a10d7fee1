from datetime import UTC, datetime

import pytest

from kariz_shared.envelope import Envelope, InvalidEnvelope, decode
from kariz_shared.events import Company, Contact, LeadCaptured, LeadSource


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
    env = Envelope(event=captured(), source="/kariz/leads", correlation_id="c-1", causation_id="e-0")
    back = decode(env.topic, env.key.encode(), env.value(), env.headers())
    assert back.event == env.event
    assert (back.id, back.source, back.correlation_id, back.causation_id) == (
        env.id,
        "/kariz/leads",
        "c-1",
        "e-0",
    )
    assert env.topic == "kariz.lead-captured.v1"
    assert env.headers()["ce_subject"] == "L-1"


def test_unknown_fields_are_ignored() -> None:
    env = Envelope(event=captured(), source="/kariz/leads", correlation_id="c")
    value = env.value().replace(b'{"lead_id"', b'{"added_later":1,"lead_id"')
    assert decode(env.topic, b"L-1", value, env.headers()).event == env.event


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda t, k, v, h: (t, k, b"not json", h), "not JSON"),
        (lambda t, k, v, h: (t, k, b'{"lead_id": "L-1"}', h), "does not match LeadCaptured"),
        (lambda t, k, v, h: (t, k, v, {**h, "ce_type": "kariz.other.v1"}), "does not match topic"),
        (
            lambda t, k, v, h: (t, k, v, {x: y for x, y in h.items() if x != "ce_id"}),
            "missing CloudEvents headers: ce_id",
        ),
        (lambda t, k, v, h: (t, b"L-2", v, h), "not the aggregate id"),
        (lambda t, k, v, h: ("kariz.nope.v1", k, v, h), "no known Kariz event"),
    ],
)
def test_what_cannot_be_read_says_why(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    env = Envelope(event=captured(), source="/kariz/leads", correlation_id="c")
    with pytest.raises(InvalidEnvelope, match=reason):
        decode(*mutate(env.topic, env.key.encode(), env.value(), env.headers()))
