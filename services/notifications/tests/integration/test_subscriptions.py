"""Subscriptions an integrator manages, against the real broker and database, a real webhook receiver
and a real SMTP server: a key with the scope events:subscribe (issued on notifications' /api-keys)
registers a filtered subscription that receives only the matching events, signed with its secret; a
subscription whose endpoint keeps failing is suspended and its key's contact told by e-mail; a debounced
one gets only the latest of a deal's quick moves, when its durable timer's window ends; a replay since a
time re-delivers exactly the matching events since then."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from kariz_devkit.testing import Backends, eventually, publish, running, unique
from kariz_notifications.bootstrap import build
from kariz_notifications.settings import NotificationsSettings
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import Event, StageChanged
from kariz_shared.contracts.webhooks import verify, verify_standard
from kariz_shared.messaging.timers import TimerWorker
from kariz_shared.persistence.store import TIMERS
from kariz_shared.runtime.clock import FakeClock

pytestmark = pytest.mark.integration


def moved(deal_id: str, pipeline: str) -> StageChanged:
    return StageChanged(
        deal_id=deal_id,
        lead_id=unique("L"),
        owner="rep@kariz.test",
        pipeline=pipeline,
        from_stage="discovery",
        to_stage="demo",
        direction="forward",
        seconds_in_from_stage=3600,
        amount=Decimal("60000"),
        changed_at=datetime.now(UTC),
    )


def envelope(event: Event) -> Envelope[Event]:
    return Envelope(event=event, source="/kariz/deals", correlation_id=unique("corr"))


async def test_an_integrators_filtered_subscription_and_a_failing_one_suspended(
    stack_backends: Backends, settings_for: Callable[..., Any], admin_token: str, receiver: Any, inbox: Any
) -> None:
    settings: NotificationsSettings = settings_for(
        NotificationsSettings,
        service_name="notifications",
        kafka_bootstrap_servers=stack_backends.kafka_bootstrap,
        smtp_port=inbox.port,
        webhook_allow_http=True,
        delivery_max_attempts=1,
        subscription_suspend_after=2,
    )
    service = build(settings)
    started = datetime.now(UTC)
    async with running(service, token=admin_token) as http:
        issued = await http.post(
            "/api-keys",
            json={"name": "CRM sync", "scopes": ["events:subscribe"], "on_behalf_of": "ops@partner.example"},
        )
        assert issued.status_code == 201, issued.text
        crm = {"X-Api-Key": issued.json()["key"], "Authorization": ""}
        filtered = await http.post(
            "/subscriptions",
            json={
                "url": receiver.url("/ok"),
                "events": ["StageChanged"],
                "filters": [{"field": "pipeline", "op": "equals", "value": "enterprise"}],
            },
            headers=crm,
        )
        assert filtered.status_code == 201, filtered.text
        failing = await http.post(
            "/subscriptions", json={"url": receiver.url("/gone"), "events": ["StageChanged"]}, headers=crm
        )
        assert failing.status_code == 201, failing.text
        failing_id = failing.json()["id"]
        assert (await http.get(f"/subscriptions/{failing_id}")).json()["created_by"].startswith("key:")

        matching, other = envelope(moved(unique("D"), "enterprise")), envelope(moved(unique("D"), "smb"))
        await publish(stack_backends.kafka_bootstrap, matching)
        await publish(stack_backends.kafka_bootstrap, other)

        [request] = await eventually(lambda: receiver.about(matching.id, "/ok"), timeout=60)
        assert verify(filtered.json()["secret"], request.body, request.headers)

        async def suspended() -> dict[str, Any] | None:
            shown: dict[str, Any] = (await http.get(f"/subscriptions/{failing_id}", headers=crm)).json()
            return shown if shown["state"] == "suspended" else None

        shown = await eventually(suspended, timeout=60)
        assert (shown["delivery"]["failed"], shown["delivery"]["delivered"]) == (2, 0)
        assert shown["delivery"]["last_error"].startswith("HTTP 404")
        # Both events reached the failing one, so both were planned: the other one never reached /ok.
        assert receiver.about(other.id, "/ok") == []
        assert len(receiver.about(other.id, "/gone")) == 1
        [mail] = await eventually(
            lambda: [m for m in inbox.messages if str(m["To"]) == "ops@partner.example"], timeout=60
        )
        assert f"sub-{failing_id}" in str(mail["Subject"])
        detail = (await http.get(f"/subscriptions/{filtered.json()['id']}", headers=crm)).json()
        assert (detail["state"], detail["delivery"]["delivered"]) == ("active", 1)

        # Debounced: three quick moves of one deal are one durable timer, whose window (an hour: the
        # service's own timer worker, on the real clock, never reaches it) ends on a fake clock.
        debounced = await http.post(
            "/subscriptions",
            json={"url": receiver.url("/ok"), "events": ["StageChanged"], "debounce_seconds": 3600},
            headers=crm,
        )
        assert debounced.status_code == 201, debounced.text
        deal = unique("D")
        moves = [envelope(moved(deal, "smb")) for _ in range(3)]
        for move in moves:
            await publish(stack_backends.kafka_bootstrap, move)
        timers = service.store.db[TIMERS]
        key = f"debounce:{debounced.json()['id']}:{deal}"

        async def collapsed() -> dict[str, Any] | None:
            doc: dict[str, Any] | None = await timers.find_one({"_id": key})
            return doc if doc is not None and doc["event"]["collapsed"] == 2 else None

        armed = await eventually(collapsed, timeout=60)
        assert armed["event"]["event_id"] == moves[-1].id
        assert all(receiver.about(m.id, "/ok") == [] for m in moves)
        worker = TimerWorker(service.store, FakeClock(armed["due_at"] + timedelta(seconds=1)), settings)
        while await worker.fire_due() >= worker.batch:
            pass
        [latest] = await eventually(lambda: receiver.about(moves[-1].id, "/ok"), timeout=60)
        assert verify(debounced.json()["secret"], latest.body, latest.headers)
        assert all(receiver.about(m.id, "/ok") == [] for m in moves[:-1])

        # Replay: what the topics retain since a time, matching the filters, as new deliveries carrying
        # the original event ids.
        midway = datetime.now(UTC)
        late = envelope(moved(unique("D"), "enterprise"))
        await publish(stack_backends.kafka_bootstrap, late)
        await eventually(lambda: receiver.about(late.id, "/ok"), timeout=60)
        replayed = await http.post(
            "/subscriptions",
            json={
                "url": receiver.url("/ok"),
                "events": ["StageChanged"],
                "filters": [{"field": "pipeline", "op": "equals", "value": "enterprise"}],
            },
            headers=crm,
        )
        replayed_id = replayed.json()["id"]

        async def replay_since(since: datetime) -> dict[str, Any]:
            asked = await http.post(
                f"/subscriptions/{replayed_id}/replay", json={"since": since.isoformat()}, headers=crm
            )
            assert asked.status_code == 202, asked.text

            async def done() -> dict[str, Any] | None:
                shown = (await http.get(f"/subscriptions/{replayed_id}", headers=crm)).json()
                last: dict[str, Any] = shown["last_replay"]
                return last if last["id"] == asked.json()["id"] and last["state"] == "done" else None

            return await eventually(done, timeout=60)

        def replayed_by(replay_id: str) -> list[Any]:
            suffix = f":replay-{replay_id}"
            return [r for r in receiver.requests if r.headers.get("x-kariz-delivery-id", "").endswith(suffix)]

        everything = await replay_since(started)
        assert (everything["read"], everything["matched"]) == (6, 2)  # six moves published, two enterprise
        got = await eventually(
            lambda: len(replayed_by(everything["id"])) == 2 and replayed_by(everything["id"])
        )
        assert {r.headers["x-kariz-event-id"] for r in got} == {matching.id, late.id}
        assert all(verify(replayed.json()["secret"], r.body, r.headers) for r in got)

        recent = await replay_since(midway)
        assert recent["matched"] == 1
        [again] = await eventually(lambda: replayed_by(recent["id"]))
        assert again.headers["x-kariz-event-id"] == late.id

        # A rotated secret: for the grace period each delivery verifies with either secret, by Kariz's
        # signatures and by the Standard Webhooks ones.
        rotated = await http.post(f"/subscriptions/{replayed_id}/rotate-secret", headers=crm)
        assert rotated.status_code == 200, rotated.text
        after = envelope(moved(unique("D"), "enterprise"))
        await publish(stack_backends.kafka_bootstrap, after)
        signed = await eventually(
            lambda: [
                r for r in receiver.about(after.id, "/ok") if f"sub-{replayed_id}" in r.headers["webhook-id"]
            ]
        )
        for secret in (rotated.json()["secret"], replayed.json()["secret"]):
            assert verify(secret, signed[0].body, signed[0].headers)
            assert verify_standard(secret, signed[0].body, signed[0].headers)
