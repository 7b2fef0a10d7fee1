"""A rep's working day against the real broker and database, through HTTP with real tokens: an activity
on the timeline and as ``ActivityLogged``; a follow-up's ``FollowUpDue`` from the timer worker once its
clock passes the due time, never for a completed one; ``TaskRequested`` consumed from Kafka, once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import Backends, bearer, eventually, publish, reading, unique
from kariz_leads.adapters.mongo.unit_of_work import MongoLeadsUnitOfWork
from kariz_leads.service_layer import activities
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import (
    ActivityLogged,
    FollowUpDue,
    TaskKind,
    TaskRequested,
    dead_letter_topic,
)
from kariz_shared.contracts.identity import Actor
from kariz_shared.messaging.timers import TimerWorker
from kariz_shared.persistence.unit_of_work import MongoUnitsOfWork
from kariz_shared.runtime.clock import FakeClock, SystemClock

from .conftest import Leads

pytestmark = pytest.mark.integration


async def a_lead_and_its_owner(
    leads: Leads, lead_body: Any, issuer: LocalIssuer
) -> tuple[dict[str, Any], dict[str, str]]:
    """A new lead (captured by the suite's admin) and the headers of its owner, a rep."""
    answer = await leads.http.post("/leads", json=lead_body())
    assert answer.status_code == 201, answer.text
    lead: dict[str, Any] = answer.json()
    return lead, bearer(issuer.token(lead["owner"], ["rep"]))


async def test_an_activity_is_on_the_timeline_and_published_and_the_lead_is_working(
    leads: Leads, lead_body: Any, issuer: LocalIssuer, backends: Backends
) -> None:
    lead, owner = await a_lead_and_its_owner(leads, lead_body, issuer)
    body = {
        "channel": "call",
        "outcome": "reached",
        "duration_s": 420,
        "note": "Budget is approved for Q3",
        "agreed": "A demo next week",
    }
    async with reading(backends.kafka_bootstrap, ActivityLogged.topic()) as reader:
        answer = await leads.http.post(f"/leads/{lead['id']}/activities", json=body, headers=owner)
        assert answer.status_code == 201, answer.text
        logged = answer.json()
        [record] = await reader.wait_for(lambda r: r.key == lead["id"])
    activity = logged["activity"]
    assert (logged["lead_status"], activity["reaching"], activity["logged_by"]) == (
        "working",
        True,
        lead["owner"],
    )
    event = ActivityLogged.model_validate(record.body)
    assert (event.activity_id, event.agreed, event.actor) == (
        activity["id"],
        "A demo next week",
        lead["owner"],
    )
    assert record.headers["ce_correlationid"] == lead["correlation_id"]
    assert record.headers["ce_actor"] == lead["owner"]
    assert await leads.db.outbox.count_documents({"key": lead["id"], "topic": ActivityLogged.topic()}) == 1
    metrics = (await leads.http.get("/metrics")).text
    assert 'kariz_leads_activities_total{channel="call",outcome="reached"}' in metrics

    timeline = (await leads.http.get(f"/leads/{lead['id']}/timeline", headers=owner)).json()
    assert [e["kind"] for e in timeline["items"]] == ["status_changed", "activity_logged", "captured"]
    assert timeline["items"][1]["details"]["note"] == "Budget is approved for Q3"
    assert timeline["items"][1]["by"] == lead["owner"]
    stored = (await leads.http.get(f"/leads/{lead['id']}", headers=owner)).json()
    assert (stored["status"], stored["attempt_count"], stored["attempts"]["call"]["count"]) == (
        "working",
        1,
        1,
    )
    assert stored["first_contact_at"] == activity["occurred_at"]
    # The first contact stopped the response SLA.
    assert await leads.db.timers.count_documents({"_id": f"lead:{lead['id']}:response"}) == 0
    listed = (await leads.http.get(f"/leads/{lead['id']}/activities", headers=owner)).json()
    assert [a["id"] for a in listed["items"]] == [activity["id"]]
    # Another rep does not see the lead, its activities or its timeline.
    stranger = bearer(issuer.token(unique("stranger") + "@kariz.example", ["rep"]))
    for path in ("activities", "timeline"):
        assert (await leads.http.get(f"/leads/{lead['id']}/{path}", headers=stranger)).status_code == 404
    refused = await leads.http.post(f"/leads/{lead['id']}/activities", json=body, headers=stranger)
    assert refused.status_code == 404
    future = {**body, "occurred_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    invalid = await leads.http.post(f"/leads/{lead['id']}/activities", json=future, headers=owner)
    assert invalid.status_code == 422 and "occurred_at" in invalid.text


async def test_a_follow_up_is_due_once_on_the_timer_worker_and_never_once_completed(
    leads: Leads, lead_body: Any, issuer: LocalIssuer, backends: Backends
) -> None:
    lead, owner = await a_lead_and_its_owner(leads, lead_body, issuer)
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    opened = []
    for title in ("Call back", "Send the deck"):
        answer = await leads.http.post(
            f"/leads/{lead['id']}/follow-ups",
            json={"kind": "call_back", "title": title, "due_at": due.isoformat()},
            headers=owner,
        )
        assert answer.status_code == 201, answer.text
        opened.append(answer.json())
    open_one, completed = opened
    assert open_one["assignee"] == lead["owner"]
    done = await leads.http.post(f"/tasks/{completed['id']}/complete", json={}, headers=owner)
    assert done.status_code == 200 and done.json()["status"] == "done", done.text
    again = await leads.http.post(f"/tasks/{completed['id']}/complete", headers=owner)
    assert again.status_code == 409

    mine = (await leads.http.get("/tasks", headers=owner)).json()
    assert [t["id"] for t in mine["items"]] == [open_one["id"]]
    stranger = bearer(issuer.token(unique("stranger") + "@kariz.example", ["rep"]))
    assert (await leads.http.get(f"/tasks/{open_one['id']}", headers=stranger)).status_code == 404
    assert (await leads.http.get("/tasks", headers=stranger)).json()["total"] == 0

    # A timer worker whose clock passed the due time (the service's own runs on the real clock).
    worker = TimerWorker(leads.service.store, FakeClock(due + timedelta(seconds=1)), leads.settings)
    async with reading(backends.kafka_bootstrap, FollowUpDue.topic()) as reader:
        while await worker.fire_due() >= worker.batch:
            pass
        [record] = await reader.wait_for(lambda r: r.key == lead["id"])
        await asyncio.sleep(1.0)  # time for a wrong second event to show up
        assert len(reader.of(FollowUpDue.topic(), lead["id"])) == 1
    event = FollowUpDue.model_validate(record.body)
    assert (event.task_id, event.assignee, event.due_at) == (open_one["id"], lead["owner"], due)
    assert record.headers["ce_correlationid"] == lead["correlation_id"]
    keys = [f"task:{t['id']}:due" for t in opened]
    assert await leads.db.timers.count_documents({"_id": {"$in": keys}}) == 0
    overdue = (await leads.http.get("/tasks", params={"overdue": "true"}, headers=owner)).json()
    # The service's clock has not reached the due time: not overdue yet.
    assert overdue["total"] == 0


async def test_a_task_requested_on_kafka_makes_one_follow_up_and_an_unknown_lead_is_dead_lettered(
    leads: Leads, lead_body: Any, issuer: LocalIssuer, backends: Backends
) -> None:
    lead, owner = await a_lead_and_its_owner(leads, lead_body, issuer)
    request_id, ghost = unique("req"), unique("L")

    def requested(lead_id: str, rid: str) -> Envelope[TaskRequested]:
        event = TaskRequested(
            request_id=rid,
            lead_id=lead_id,
            kind=TaskKind.SEND_MATERIAL,
            title="Send the catalogue",
            due_at=datetime.now(UTC) + timedelta(days=1),
            requested_at=datetime.now(UTC),
        )
        return Envelope(event=event, source="/kariz/notifications", correlation_id=lead["correlation_id"])

    async with reading(backends.kafka_bootstrap, dead_letter_topic(TaskRequested.topic())) as dlq:
        first, repeat = requested(lead["id"], request_id), requested(lead["id"], request_id)
        await publish(backends.kafka_bootstrap, first)
        await publish(backends.kafka_bootstrap, repeat)  # a repeat of the request in a new event
        await publish(backends.kafka_bootstrap, requested(ghost, unique("req")))
        [dead] = await dlq.wait_for(lambda r: r.key == ghost)

    async def the_task() -> dict[str, Any] | None:
        answer = await leads.http.get(f"/tasks/{request_id}", headers=owner)
        return answer.json() if answer.status_code == 200 else None

    task = await eventually(the_task)
    assert (task["assignee"], task["request_id"], task["created_by"]) == (
        lead["owner"],
        request_id,
        "/kariz/notifications",
    )
    assert dead.headers["dlq_reason"] == "rejected"

    async def handled(envelope: Envelope[TaskRequested]) -> bool:
        return await leads.db.processed_events.count_documents({"event_id": envelope.id}) == 1

    await eventually(lambda: handled(repeat))
    assert await leads.db.tasks.count_documents({"lead_id": lead["id"]}) == 1
    assert await leads.db.timers.count_documents({"_id": f"task:{request_id}:due"}) == 1


async def test_a_reassigned_leads_open_follow_ups_move_on_the_real_database(
    leads: Leads, lead_body: Any, issuer: LocalIssuer
) -> None:
    lead, owner = await a_lead_and_its_owner(leads, lead_body, issuer)
    due = datetime.now(UTC) + timedelta(hours=1)
    opened = [
        (
            await leads.http.post(
                f"/leads/{lead['id']}/follow-ups",
                json={"kind": "demo", "title": f"Demo {n}", "due_at": due.isoformat()},
                headers=owner,
            )
        ).json()
        for n in range(2)
    ]
    await leads.http.post(f"/tasks/{opened[1]['id']}/cancel", headers=owner)
    units = MongoUnitsOfWork(leads.service.store, SystemClock(), MongoLeadsUnitOfWork)
    new_owner = unique("next") + "@kariz.example"

    async def reassigned(uow: MongoLeadsUnitOfWork) -> list[str]:
        stored = await uow.leads.get(lead["id"])
        assert stored is not None
        stored.owner = new_owner  # as the reassignment's use case leaves it (not saved here)
        moved = await activities.move_open_follow_ups(
            uow, stored, lead["owner"], at=uow.clock.now(), by=Actor("maria@kariz.example")
        )
        return [t.id for t in moved]

    assert await units.run(reassigned, correlation_id=lead["correlation_id"]) == [opened[0]["id"]]
    stored = await leads.db.tasks.find_one({"_id": opened[0]["id"]})
    timer = await leads.db.timers.find_one({"_id": f"task:{opened[0]['id']}:due"})
    assert stored is not None and timer is not None
    assert (stored["assignee"], timer["event"]["assignee"]) == (new_owner, new_owner)
    assert (await leads.db.tasks.find_one({"_id": opened[1]["id"]}) or {})["assignee"] == lead["owner"]
