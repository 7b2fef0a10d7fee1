"""What goes on the wire: the e-mail's headers and the webhook's signed headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kariz_notifications.adapters.email import compose, message_id
from kariz_notifications.adapters.webhook import headers_for
from kariz_notifications.domain.model import Audience, Channel, EventContext, Subscriber
from kariz_notifications.domain.rules import plan
from kariz_shared.contracts import webhooks

CTX = EventContext(event_id="evt-42", correlation_id="corr-42")
NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def test_email_carries_stable_message_id_and_delivery_id(sample) -> None:  # type: ignore[no-untyped-def]
    [delivery] = plan(sample.deal_lost(), CTX, Audience()).deliveries
    msg = compose(delivery, "kariz@kariz.example", NOW)
    again = compose(delivery, "kariz@kariz.example", NOW + timedelta(minutes=5))
    assert (
        msg["Message-ID"]
        == again["Message-ID"]
        == message_id("evt-42:email:rep@kariz.test", "kariz@kariz.example")
    )
    assert msg["Message-ID"].endswith("@kariz.example>")
    assert msg["X-Kariz-Delivery-Id"] == "evt-42:email:rep@kariz.test"
    assert msg["X-Kariz-Event-Id"] == "evt-42"
    assert msg["X-Kariz-Event-Type"] == "kariz.deal-lost.v1"
    assert (msg["From"], msg["To"]) == ("kariz@kariz.example", "rep@kariz.test")
    assert msg["Subject"] == "Deal lost: Initech (chose a competitor)"
    # Dated by the clock the mailer is given, not the machine's.
    assert msg["Date"] == "Fri, 14 Mar 2025 09:30:00 +0000"
    assert "Reason:    chose a competitor" in msg.get_content()


def test_different_deliveries_have_different_message_ids() -> None:
    assert message_id("e:email:a@x.io", "k@k.io") != message_id("e:email:b@x.io", "k@k.io")


def test_webhook_headers_sign_the_exact_body(sample) -> None:  # type: ignore[no-untyped-def]
    audit = Subscriber("audit", "https://audit.example/in", frozenset({"*"}))
    [hook] = [
        d
        for d in plan(sample.deal_won(), CTX, Audience(subscribers=(audit,))).deliveries
        if d.channel is Channel.WEBHOOK
    ]
    body = hook.message.body.encode()
    headers = headers_for(hook, "topsecret", body)
    assert webhooks.verify("topsecret", body, headers)
    assert not webhooks.verify("wrong", body, headers)
    assert not webhooks.verify("topsecret", body + b" ", headers)
    # The delivery id is signed: the same body and signature under another id do not verify.
    assert not webhooks.verify("topsecret", body, {**headers, "X-Kariz-Delivery-Id": "evt-43:webhook:audit"})
    # A subscriber still checking the first version finds a v1 signature of the same secret.
    v1 = [p for p in headers["X-Kariz-Signature"].split(", ") if p.startswith("v1=")]
    assert v1 == [webhooks.signature("topsecret", int(headers["X-Kariz-Timestamp"]), body)]
    # During a rotation the new and the previous secret both verify.
    rotating = headers_for(hook, ["new-secret", "old-secret"], body)
    assert webhooks.verify("new-secret", body, rotating) and webhooks.verify("old-secret", body, rotating)
    assert not webhooks.verify("topsecret", body, rotating)
    assert headers["X-Kariz-Delivery-Id"] == "evt-42:webhook:audit"
    assert headers["X-Kariz-Event-Id"] == "evt-42"
    assert headers["X-Kariz-Event-Type"] == "kariz.deal-won.v1"
    assert headers["Content-Type"] == "application/json"
