"""Content and consent against the real broker and database and a real SMTP server: a content action to
a contact without consent is skipped and logged, with consent it is sent with its unsubscribe link, and
following the link publishes ContactUnsubscribed and stops further content to that contact."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from kariz_devkit.testing import Backends, eventually, publish, reading, running, unique
from kariz_notifications.bootstrap import build
from kariz_notifications.settings import NotificationsSettings
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import (
    Company,
    Contact,
    ContactUnsubscribed,
    Event,
    LeadCaptured,
    LeadSource,
    StageChanged,
)
from kariz_shared.service import Service

pytestmark = pytest.mark.integration

BASE_URL = "http://kariz.test"


@dataclass
class Running:
    http: httpx.AsyncClient
    service: Service

    async def deliveries(self, subject: str) -> list[dict[str, Any]]:
        response = await self.http.get("/notifications", params={"subject": subject})
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items


@pytest.fixture(scope="module")
async def notifications(
    settings_for: Callable[..., Any], inbox: Any, admin_token: str
) -> AsyncIterator[Running]:
    settings: NotificationsSettings = settings_for(
        NotificationsSettings,
        service_name="notifications",
        smtp_port=inbox.port,
        unsubscribe_secret="unsubscribe-secret-of-the-integration-test",
        # The link points at the service itself: the test follows it through its API.
        unsubscribe_base_url=BASE_URL,
        delivery_poll_interval_s=2.0,
    )
    service = build(settings)
    async with running(service, token=admin_token) as http:
        yield Running(http, service)


def envelope(event: Event, source: str) -> Envelope[Event]:
    return Envelope(event=event, source=source, correlation_id=unique("corr"))


def captured(lead_id: str, email: str, *, consent: bool) -> LeadCaptured:
    return LeadCaptured(
        lead_id=lead_id,
        contact=Contact(first_name="Ada", last_name="Lovelace", email=email),
        company=Company(name="Analytical"),
        source=LeadSource.WEB_FORM,
        consent=consent,
        owner="rep@kariz.test",
        assigned_by="round_robin",
        captured_at=datetime.now(UTC),
    )


def to_demo(deal_id: str, lead_id: str) -> StageChanged:
    return StageChanged(
        deal_id=deal_id,
        lead_id=lead_id,
        owner="rep@kariz.test",
        pipeline="new-business",
        from_stage="discovery",
        to_stage="demo",
        direction="forward",
        seconds_in_from_stage=3600,
        changed_at=datetime.now(UTC),
    )


async def test_content_goes_only_with_consent_and_stops_after_the_unsubscribe_link(  # type: ignore[no-untyped-def]
    notifications: Running, backends: Backends, inbox, caplog: pytest.LogCaptureFixture
) -> None:
    svc = notifications
    piece = {
        "id": unique("case").replace("_", "-").lower(),
        "title": "How Acme cut quoting time in half",
        "link": "https://kariz.example/case-studies/acme",
        "tags": ["case-study"],
    }
    assert (await svc.http.post("/content", json=piece)).status_code == 201
    rule = {
        "id": unique("demo").replace("_", "-").lower(),
        "trigger": "StageChanged",
        "conditions": [{"field": "to_stage", "op": "equals", "value": "demo"}],
        "actions": [{"kind": "content", "content_id": piece["id"]}],
    }
    assert (await svc.http.post("/rules", json=rule)).status_code == 201, "rule"

    silent, willing = unique("L"), unique("L")
    silent_mail, willing_mail = f"{silent}@customer.example", f"{willing}@customer.example"
    await publish(
        backends.kafka_bootstrap, envelope(captured(silent, silent_mail, consent=False), "/kariz/leads")
    )
    await publish(
        backends.kafka_bootstrap, envelope(captured(willing, willing_mail, consent=True), "/kariz/leads")
    )
    await eventually(lambda: _contact(svc, willing), timeout=30)
    await eventually(lambda: _contact(svc, silent), timeout=30)

    caplog.set_level(logging.WARNING)
    deal_silent, deal_willing = unique("D"), unique("D")
    await publish(backends.kafka_bootstrap, envelope(to_demo(deal_silent, silent), "/kariz/deals"))
    await publish(backends.kafka_bootstrap, envelope(to_demo(deal_willing, willing), "/kariz/deals"))

    # Without consent: kept as skipped, with its reason, never sent; and logged.
    [skipped] = await eventually(lambda: _with_status(svc, deal_silent, "skipped"), timeout=30)
    assert (skipped["recipient"], skipped["skipped"], skipped["attempts"]) == (silent_mail, "no_consent", [])
    assert any("content skipped" in r.getMessage() and silent in r.getMessage() for r in caplog.records)

    # With consent: sent over SMTP, the link in both parts and as List-Unsubscribe.
    [sent] = await eventually(lambda: _with_status(svc, deal_willing, "sent"), timeout=30)
    assert sent["content_id"] == piece["id"]
    [mail] = [m for m in inbox.messages if str(m["To"]) == willing_mail]
    link = str(mail["List-Unsubscribe"]).strip("<>")
    assert link.startswith(f"{BASE_URL}/unsubscribe/") and mail["List-Unsubscribe-Post"]
    assert link in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert link in mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert not [m for m in inbox.messages if str(m["To"]) == silent_mail]

    async with reading(backends.kafka_bootstrap, ContactUnsubscribed.topic()) as topic:
        # The contact has no credential: the token in the link is all it takes.
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=svc.service.api), base_url=BASE_URL
        ) as anyone:
            path = link.removeprefix(BASE_URL)
            assert (await anyone.post(path)).status_code == 200
            assert "already" in (await anyone.post(path)).text  # once only
            forged = await anyone.post(path[:-4] + "AAAA")
            assert forged.status_code == 422 and forged.json()["message"].startswith("token:")
        [record] = await topic.wait_for(lambda r: r.key == willing, timeout=30)
        assert record.body["email"] == willing_mail and record.body["content_id"] == piece["id"]
        assert record.headers["ce_type"] == ContactUnsubscribed.ce_type()

        # After it, no content goes to that contact.
        later = unique("D")
        await publish(backends.kafka_bootstrap, envelope(to_demo(later, willing), "/kariz/deals"))
        [after] = await eventually(lambda: _with_status(svc, later, "skipped"), timeout=30)
        assert after["skipped"] == "unsubscribed"
        assert len(topic.of(ContactUnsubscribed.topic(), willing)) == 1
    assert len([m for m in inbox.messages if str(m["To"]) == willing_mail]) == 1


async def _contact(svc: Running, lead_id: str) -> bool:
    return (await svc.http.get(f"/contacts/{lead_id}")).status_code == 200


async def _with_status(svc: Running, subject: str, status: str) -> list[dict[str, Any]] | None:
    found = [d for d in await svc.deliveries(subject) if d["status"] == status]
    return found or None
