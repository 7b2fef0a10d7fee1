"""The webhook sender against a real HTTP receiver: what it reports for a subscriber that fails, never
answers, cannot be reached or is no longer configured (the worker turns each into a failed attempt)."""

from __future__ import annotations

import pytest

from kariz_devkit.embedded import free_port
from kariz_devkit.testing import unique
from kariz_notifications.adapters.webhook import WebhookPoster
from kariz_notifications.domain.model import Channel, Delivery, WebhookPost
from kariz_shared.contracts.webhooks import verify

pytestmark = pytest.mark.integration

SECRETS = {"hooks": "hooks-secret-at-least-32-bytes-long!!"}


def delivery(url: str, subscriber: str = "hooks") -> Delivery:
    event_id = unique("evt")
    return Delivery(
        key=f"{event_id}:webhook:{subscriber}",
        channel=Channel.WEBHOOK,
        recipient=subscriber,
        event_type="DealLost",
        event_id=event_id,
        subject="D-1",
        correlation_id="c",
        message=WebhookPost(url=url, subscriber=subscriber, body='{"id":"x"}'),
    )


async def test_what_the_sender_reports_of_each_subscriber(receiver) -> None:  # type: ignore[no-untyped-def]
    poster = WebhookPoster(SECRETS.get, timeout_s=5.0)
    # Short only where the wait is the point: this machine may be busy.
    impatient = WebhookPoster(SECRETS.get, timeout_s=0.3)
    try:
        ok = await poster.send(d := delivery(receiver.url("/ok")))
        assert (ok.ok, ok.status_code, ok.error) == (True, 200, None)
        [request] = receiver.about(d.event_id)
        assert verify(SECRETS["hooks"], request.body, request.headers)

        failing = await poster.send(delivery(receiver.url("/flaky")))
        assert (failing.ok, failing.status_code) == (False, 500)
        assert failing.error == "HTTP 500 Internal Server Error: Internal Server Error"

        silent = await impatient.send(d := delivery(receiver.url("/silent")))
        assert (silent.ok, silent.status_code, silent.error) == (False, None, "no answer within 0.3 s")
        assert len(receiver.about(d.event_id, "/silent")) == 1

        gone = await poster.send(delivery(f"http://127.0.0.1:{free_port()}/"))
        assert not gone.ok and gone.status_code is None and gone.error is not None
        assert "ConnectError" in gone.error

        unknown = await poster.send(delivery(receiver.url("/ok"), subscriber="left"))
        assert (unknown.ok, unknown.error) == (False, "webhook subscriber 'left' is not configured any more")
    finally:
        await poster.aclose()
        await impatient.aclose()
