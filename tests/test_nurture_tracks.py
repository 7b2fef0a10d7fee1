"""Nurture tracks against the real broker and database, qualification and leads in-process: a lead in
nurture gets its track's steps as a timer worker's clock passes their due times (``NurtureStepDue``
through the outbox, each arming the next), the leads service opens a task step as a follow-up for the
owner (once), a content step opens nothing there, and an unsubscribe stops the track."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from kariz_devkit.testing import Backends, eventually, publish, reading, running, unique
from kariz_leads.bootstrap import build as build_leads
from kariz_leads.settings import LeadsSettings
from kariz_qualification.bootstrap import build as build_qualification
from kariz_qualification.domain.rules import DEFAULT_RULES
from kariz_qualification.settings import QualificationSettings
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import ContactUnsubscribed, NurtureStepDue
from kariz_shared.messaging.timers import TimerWorker
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.service import Service
from kariz_shared.system import source_of

pytestmark = pytest.mark.integration

REP = "alex@kariz.example"
TRACK = {
    "steps": [
        {"kind": "task", "after_days": 2, "title": "Call to see where they stand", "task_kind": "call_back"},
        {"kind": "content", "after_days": 5, "title": "The case study", "content_tags": ["case-study"]},
        {"kind": "task", "after_days": 7, "title": "Offer a demo", "task_kind": "demo"},
    ]
}


@dataclass
class Up:
    service: Service
    http: httpx.AsyncClient


@contextlib.asynccontextmanager
async def services(
    backends: Backends, settings_for: Callable[..., Any], token: str
) -> AsyncIterator[tuple[Up, Up]]:
    bootstrap = backends.kafka_bootstrap
    leads_settings = settings_for(
        LeadsSettings, service_name="leads", reps=[REP], kafka_bootstrap_servers=bootstrap
    )
    qualification_settings = settings_for(
        QualificationSettings, service_name="qualification", kafka_bootstrap_servers=bootstrap
    )
    leads, qualification = build_leads(leads_settings), build_qualification(qualification_settings)
    async with running(leads, token=token) as leads_http, running(qualification, token=token) as q_http:
        yield Up(leads, leads_http), Up(qualification, q_http)


def due_at(step: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(step["due_at"].replace("Z", "+00:00"))


async def fire_timers_at(up: Up, at: datetime) -> int:
    """A timer worker whose clock reached ``at`` (the service's own runs on the real clock): how many
    timers it fired."""
    worker = TimerWorker(up.service.store, FakeClock(at), up.service.settings)
    fired = 0
    while (claimed := await worker.fire_due()) > 0:
        fired += claimed
    return fired


async def test_a_nurtured_lead_gets_its_steps_the_task_step_is_a_follow_up_and_an_unsubscribe_stops_it(
    stack_backends: Backends, settings_for: Callable[..., Any], admin_token: str
) -> None:
    # A broker of the module's own: on the session's, the services' new consumer groups would first
    # read every earlier test's records (minutes late in a full run, past every wait below).
    backends = stack_backends
    async with services(backends, settings_for, admin_token) as (leads, qualification):
        rules = {
            **DEFAULT_RULES.model_dump(mode="json"),
            "nurture": {"tracks": {"warm-up": TRACK}, "default_track": "warm-up"},
        }
        saved = await qualification.http.put("/rules", json=rules)
        assert saved.status_code == 200, saved.text

        # software 20 + 10-49 5 + web_form 8 = 33: nurtured.
        body = {
            "contact": {
                "first_name": "Ada",
                "last_name": "Lovelace",
                "email": f"{unique('ada')}@nurture.example",
            },
            "company": {"name": "Nurture Test GmbH", "industry": "software", "size": 40},
            "source": "web_form",
        }
        captured = await leads.http.post("/leads", json=body)
        assert captured.status_code == 201, captured.text
        lead = captured.json()["id"]

        async def nurture() -> dict[str, Any]:
            answer = await qualification.http.get(f"/leads/{lead}/qualification")
            return answer.json()["nurture"] if answer.status_code == 200 else None

        first = (await eventually(nurture))["next_step"]
        assert (first["step"], first["kind"]) == (0, "task")

        async with reading(backends.kafka_bootstrap, NurtureStepDue.topic()) as steps:
            # The task step: the leads service opens the owner's follow-up; qualification arms step 1.
            # At least the lead's step: the session's database may hold other tests' due timers too.
            assert await fire_timers_at(qualification, due_at(first)) >= 1
            [record] = await steps.wait_for(lambda r: r.key == lead)
            event = NurtureStepDue.model_validate(record.body)
            assert (event.step_id, event.kind, event.track) == (f"{lead}:warm-up:0", "task", "warm-up")
            assert record.headers["ce_correlationid"] == captured.json()["correlation_id"]

            async def follow_up() -> Any:
                answer = await leads.http.get(f"/tasks/{event.step_id}")
                return answer.json() if answer.status_code == 200 else None

            task = await eventually(follow_up)
            assert (task["lead_id"], task["assignee"], task["kind"], task["title"]) == (
                lead,
                REP,
                "call_back",
                "Call to see where they stand",
            )
            second = (await eventually(lambda: _at_step(nurture, 1)))["next_step"]
            assert second["kind"] == "content"

            # The content step is notifications' to send: no follow-up; qualification arms step 2.
            await fire_timers_at(qualification, due_at(second))
            third = (await eventually(lambda: _at_step(nurture, 2)))["next_step"]
            assert third["kind"] == "task"
            assert (await leads.http.get(f"/tasks/{lead}:warm-up:1")).status_code == 404

        unsubscribed = ContactUnsubscribed(
            lead_id=lead, email=body["contact"]["email"], unsubscribed_at=due_at(second)
        )
        await publish(
            backends.kafka_bootstrap,
            Envelope(
                event=unsubscribed, source=source_of(ContactUnsubscribed), correlation_id=unique("corr")
            ),
        )

        async def stopped() -> Any:
            shown = await nurture()
            return shown if shown["status"] == "stopped" else None

        shown = await eventually(stopped)
        assert (shown["stop_reason"], shown["taken"], shown["next_step"]) == ("unsubscribed", 2, None)
        assert (
            await qualification.service.store.db.timers.find_one(
                {"_id": f"qualification:nurture-step:{lead}"}
            )
            is None
        )
        # Long past the third step's due time, nothing of the lead's is left to fire: its timer is gone
        # (above) and a worker that runs then arms nothing new for it.
        await fire_timers_at(qualification, due_at(third) + timedelta(days=30))
        assert (await nurture())["status"] == "stopped"
        assert (
            await qualification.service.store.db.timers.find_one(
                {"_id": f"qualification:nurture-step:{lead}"}
            )
            is None
        )

        metrics = (await qualification.http.get("/metrics")).text
        assert 'kariz_qualification_nurture_steps_fired_total{kind="task",track="warm-up"}' in metrics
        assert 'kariz_qualification_nurture_stops_total{reason="unsubscribed"}' in metrics


async def _at_step(nurture: Callable[[], Any], step: int) -> Any:
    shown = await nurture()
    return shown if shown["next_step"] is not None and shown["next_step"]["step"] == step else None
