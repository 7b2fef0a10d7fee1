"""Capturing leads against the real broker and database: the event and its response timer, duplicates
and the race on the unique e-mail index, refused input, 404."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from kariz_devkit.testing import Backends, reading, unique
from kariz_leads.adapters.mongo.repositories import MongoLeadRepository
from kariz_shared.contracts.events import LeadCaptured, LeadResponseOverdue, LeadTouched
from kariz_shared.messaging.timers import TimerWorker
from kariz_shared.runtime.clock import FakeClock

pytestmark = pytest.mark.integration

TOPIC = LeadCaptured.topic()


async def test_capture_stores_the_normalised_lead_and_publishes_lead_captured(
    leads: Any, lead_body: Any, backends: Backends
) -> None:
    cid = unique("corr")
    name = unique("ada")
    body = lead_body(
        f"  {name.upper()}@Analytical.Example ",
        contact={"first_name": "  Ada ", "last_name": " King   Lovelace", "phone": " +44 20 7946 0958 "},
        company={"name": "  Analytical Engines ", "industry": " Software ", "country": "gb", "size": 40},
        source="trade_show",
        campaign=" cebit-2025 ",
    )
    async with reading(backends.kafka_bootstrap, TOPIC) as reader:
        response = await leads.http.post("/leads", json=body, headers={"X-Correlation-Id": cid})
        assert response.status_code == 201, response.text
        lead = response.json()
        [record] = await reader.wait_for(lambda r: r.key == lead["id"])
    metrics = (await leads.http.get("/metrics")).text

    email = f"{name}@analytical.example"
    assert lead["duplicate"] is False
    assert lead["contact"] == {
        "first_name": "Ada",
        "last_name": "King Lovelace",
        "email": email,
        "phone": "+44 20 7946 0958",
        "title": None,
    }
    assert lead["company"] == {
        "name": "Analytical Engines",
        "domain": "analytical.example",
        "industry": "software",
        "size": 40,
        "country": "GB",
    }
    assert (lead["source"], lead["campaign"], lead["consent"]) == ("trade_show", "cebit-2025", True)
    assert lead["assigned_by"] == "round_robin" and lead["owner"] in leads.settings.reps
    assert (lead["status"], lead["score"], lead["disqualification_reason"]) == ("new", None, None)
    assert lead["correlation_id"] == cid
    assert lead["touches"] == [{"source": "trade_show", "campaign": "cebit-2025", "at": lead["created_at"]}]

    assert record.headers["ce_id"]
    assert record.headers["ce_source"] == "/kariz/leads"
    assert record.headers["ce_type"] == "kariz.lead-captured.v1"
    assert record.headers["ce_specversion"] == "1.0"
    assert record.headers["ce_time"].endswith("Z")
    assert record.headers["ce_subject"] == lead["id"]
    assert record.headers["ce_correlationid"] == cid
    assert record.headers["ce_actor"] == "admin@kariz.test", "the signed-in caller made the change"
    assert record.headers["content-type"] == "application/json"
    event = LeadCaptured.model_validate(record.body)
    assert event.lead_id == lead["id"]
    assert event.contact.model_dump() == lead["contact"]
    assert event.company.model_dump() == lead["company"]
    assert (event.source, event.campaign, event.consent) == ("trade_show", "cebit-2025", True)
    assert (event.owner, event.assigned_by) == (lead["owner"], "round_robin")

    stored = await leads.db.leads.find_one({"_id": lead["id"]})
    assert stored is not None
    assert (stored["contact"]["email"], stored["correlation_id"], stored["status"]) == (email, cid, "new")
    assert 'kariz_leads_captured_total{source="trade_show"}' in metrics

    # The response timer was armed in the capture's transaction, due a response SLA after capture.
    timer = await leads.db.timers.find_one({"_id": f"lead:{lead['id']}:response"})
    assert timer is not None
    assert timer["due_at"] == stored["created_at"] + leads.settings.lead_response_sla
    assert (timer["topic"], timer["correlation_id"], timer["event"]["owner"]) == (
        LeadResponseOverdue.topic(),
        cid,
        lead["owner"],
    )


async def test_a_lead_still_new_when_its_sla_ran_out_is_published_as_overdue(
    leads: Any, lead_body: Any, backends: Backends
) -> None:
    lead = (await leads.http.post("/leads", json=lead_body())).json()
    due = datetime.fromisoformat(lead["created_at"]) + leads.settings.lead_response_sla
    # A timer worker whose clock reached the due time (the service's own runs on the real clock); only
    # timers due by then fire: those of this test's lead and of leads captured before it.
    worker = TimerWorker(leads.service.store, FakeClock(due), leads.settings)
    topic = LeadResponseOverdue.topic()
    async with reading(backends.kafka_bootstrap, topic) as reader:
        while await worker.fire_due() >= worker.batch:
            pass
        [record] = await reader.wait_for(lambda r: r.key == lead["id"])
        assert await worker.fire_due() == 0  # fired once: the timer is gone
    assert record.headers["ce_correlationid"] == lead["correlation_id"]
    overdue = LeadResponseOverdue.model_validate(record.body)
    assert (overdue.owner, overdue.source, overdue.due_at) == (lead["owner"], "web_form", due)
    assert await leads.db.timers.find_one({"_id": f"lead:{lead['id']}:response"}) is None


async def test_a_second_capture_of_the_same_address_is_a_touch_not_a_lead(
    leads: Any, lead_body: Any, backends: Backends
) -> None:
    name = unique("grace")
    http = leads.http
    async with reading(backends.kafka_bootstrap, TOPIC) as reader:
        first = await http.post("/leads", json=lead_body(f"{name}@navy.example", campaign="spring"))
        again = await http.post(
            "/leads",
            json=lead_body(f" {name.upper()}@Navy.Example", source="event", campaign="summit"),
            headers={"X-Correlation-Id": unique("other")},
        )
        await reader.wait_for(lambda r: r.key == first.json()["id"])
        shown = (await http.get(f"/leads/{first.json()['id']}")).json()
        # Two racing captures of a new address: the unique index makes one of them a touch.
        racer = f"{unique('race')}@navy.example"
        raced = await asyncio.gather(*(http.post("/leads", json=lead_body(racer)) for _ in range(2)))
        raced_id = next(r.json()["id"] for r in raced if r.status_code == 201)
        await reader.wait_for(lambda r: r.key == raced_id)
        await asyncio.sleep(1.0)  # time for a wrongly emitted second event to show up
    metrics = (await http.get("/metrics")).text

    assert first.status_code == 201
    assert again.status_code == 200, again.text
    lead, repeat = first.json(), again.json()
    assert repeat["duplicate"] is True
    assert repeat["id"] == lead["id"]
    assert (repeat["source"], repeat["campaign"], repeat["owner"]) == ("web_form", "spring", lead["owner"])
    assert repeat["correlation_id"] == lead["correlation_id"]
    assert [(t["source"], t["campaign"]) for t in repeat["touches"]] == [
        ("web_form", "spring"),
        ("event", "summit"),
    ]
    assert shown["touches"] == repeat["touches"]
    assert await leads.db.leads.count_documents({"contact.email": f"{name}@navy.example"}) == 1
    assert len(reader.of(TOPIC, lead["id"])) == 1
    assert await leads.db.outbox.count_documents({"key": lead["id"], "topic": TOPIC}) == 1
    assert await leads.db.outbox.count_documents({"key": lead["id"], "topic": LeadTouched.topic()}) == 1

    assert sorted(r.status_code for r in raced) == [200, 201]
    assert {r.json()["id"] for r in raced} == {raced_id}
    assert await leads.db.leads.count_documents({"contact.email": racer}) == 1
    assert len(reader.of(TOPIC, raced_id)) == 1
    assert await leads.db.outbox.count_documents({"key": raced_id, "topic": TOPIC}) == 1
    assert 'kariz_leads_duplicates_total{source="event"}' in metrics


INVALID = [
    ({"contact": {"email": "ada.example.com"}}, "contact.email", "not an e-mail address"),
    ({"contact": {"email": "ada@acme"}}, "contact.email", "not a domain name"),
    ({"source": "carrier_pigeon"}, "source", "'web_form'"),
    ({"contact": None}, "contact", "Field required"),
    ({"company": {"country": "Germania"}}, "company.country", "is not a country"),
    ({"company": {"country": "XX"}}, "company.country", "not an assigned"),
    ({"company": {"size": 0}}, "company.size", "greater than or equal to 1"),
    ({"company": {"size": 2**63}}, "company.size", "less than or equal to 100000000"),
    ({"company": {"domain": "not a domain"}}, "company.domain", "not a domain name"),
    ({"company": {"name": " "}}, "company.name", "must not be blank"),
    ({"contact": {"first_name": "   "}}, "contact.first_name", "must not be blank"),
    ({"contact": {"phone": "call me"}}, "contact.phone", "not a phone number"),
]


@pytest.mark.parametrize(("change", "field", "words"), INVALID, ids=[f"{f}-{w}" for _, f, w in INVALID])
async def test_invalid_input_is_refused_naming_the_field_and_nothing_is_stored(
    leads: Any, lead_body: Any, change: dict[str, Any], field: str, words: str
) -> None:
    email = f"{unique('bad')}@acme.example"
    body = lead_body(email, **{k: v for k, v in change.items() if v is not None})
    for key in [k for k, v in change.items() if v is None]:
        del body[key]
    outbox_before = await leads.db.outbox.count_documents({})
    response = await leads.http.post("/leads", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["error"] == "invalid_request"
    assert field in [f["field"] for f in error["fields"]]
    assert f"{field}: " in error["message"]
    assert words in error["message"]
    assert await leads.db.leads.count_documents({"contact.email": email}) == 0
    assert await leads.db.outbox.count_documents({}) == outbox_before


async def test_unknown_lead_is_404(leads: Any) -> None:
    response = await leads.http.get("/leads/no-such-lead")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "message": "no lead with id 'no-such-lead'"}


async def test_the_unique_index_turns_a_lost_race_into_a_touch(
    leads: Any, lead_body: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    email = f"{unique('late')}@navy.example"
    first = await leads.http.post("/leads", json=lead_body(email))
    assert first.status_code == 201
    # The duplicate check misses once, as when a concurrent capture commits between check and insert.
    real_lookup = MongoLeadRepository.with_emails
    misses = [True]

    async def stale_lookup(self: MongoLeadRepository, addresses: list[str]) -> Any:
        if misses and misses.pop():
            return {}
        return await real_lookup(self, addresses)

    monkeypatch.setattr(MongoLeadRepository, "with_emails", stale_lookup)
    outbox_before = await leads.db.outbox.count_documents({})
    second = await leads.http.post("/leads", json=lead_body(email, source="referral"))
    assert second.status_code == 200, second.text
    assert not misses
    assert second.json()["id"] == first.json()["id"]
    assert [t["source"] for t in second.json()["touches"]] == ["web_form", "referral"]
    assert await leads.db.leads.count_documents({"contact.email": email}) == 1
    # No second capture: the one event more is the touch's (LeadTouched).
    assert await leads.db.outbox.count_documents({}) == outbox_before + 1
    assert await leads.db.outbox.count_documents({"key": first.json()["id"], "topic": TOPIC}) == 1


async def test_the_database_keeps_the_recent_touches_and_counts_them_all(
    leads: Any, lead_body: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stored list is cut by the update itself ($push with $slice): two kept here, to see it cut.
    import kariz_leads.adapters.mongo.repositories as repositories

    monkeypatch.setattr(repositories, "RECENT_TOUCHES", 2)
    email = f"{unique('often')}@acme.example"
    for source in ("web_form", "event", "event", "partner"):
        answer = await leads.http.post("/leads", json=lead_body(email, source=source))
        assert answer.status_code in (200, 201), answer.text
    doc = await leads.db.leads.find_one({"contact.email": email})
    assert doc is not None
    assert [t["source"] for t in doc["touches"]] == ["event", "partner"]
    assert doc["touch_count"] == 4
    assert doc["touches_by_source"] == {"web_form": 1, "event": 2, "partner": 1}
    shown = (await leads.http.get(f"/leads/{doc['_id']}")).json()
    assert (shown["touch_count"], len(shown["touches"])) == (4, 2)
