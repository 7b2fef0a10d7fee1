"""The qualification service in-process against the real broker and database: LeadCaptured in,
LeadQualified / LeadDisqualified out through the outbox, and the HTTP API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pymongo.asynchronous.database import AsyncDatabase

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import Backends, EventReader, bearer, eventually, publish, reading, running, unique
from kariz_qualification.bootstrap import build
from kariz_qualification.domain.rules import DEFAULT_RULES
from kariz_qualification.settings import QualificationSettings
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import (
    Company,
    Contact,
    LeadCaptured,
    LeadDisqualified,
    LeadQualified,
    LeadScored,
    LeadSource,
)
from kariz_shared.service import Service

pytestmark = pytest.mark.integration

QUALIFIED = LeadQualified.topic()
DISQUALIFIED = LeadDisqualified.topic()
FULL_BANT = {
    "budget": "confirmed",
    "authority": "decision_maker",
    "need": "confirmed",
    "timeline": "within_3_months",
}


def captured(
    lead_id: str,
    *,
    industry: str = "software",
    size: int = 500,
    country: str = "DE",
    title: str | None = "VP Sales",
    source: LeadSource = LeadSource.REFERRAL,
) -> LeadCaptured:
    """Strong fit by default: software 20 + 200-999 20 + DE 10 + VP 15 + referral 15 = 80."""
    return LeadCaptured(
        lead_id=lead_id,
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@example.com", title=title),
        company=Company(name=f"Acme {lead_id}", industry=industry, size=size, country=country),
        source=source,
        owner="rep@kariz.test",
        assigned_by="round_robin",
        captured_at=datetime.now(UTC),
    )


def middling(lead_id: str) -> LeadCaptured:
    """manufacturing 10 + 50-199 10 + FR 8 + manager 8 + web_form 8 = 44: nurture."""
    return captured(
        lead_id,
        industry="manufacturing",
        size=60,
        country="FR",
        title="IT Manager",
        source=LeadSource.WEB_FORM,
    )


def from_leads(event: LeadCaptured) -> Envelope[LeadCaptured]:
    return Envelope(event=event, source="/kariz/leads", correlation_id=f"corr-{event.lead_id}")


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Harness:
    """One running service with its HTTP client, database and a reader of its output topics."""

    def __init__(
        self, backends: Backends, service: Service, http: httpx.AsyncClient, reader: EventReader
    ) -> None:
        self.backends = backends
        self.service = service
        self.http = http
        self.reader = reader
        self.db: AsyncDatabase[dict[str, Any]] = service.store.db

    async def feed(self, envelope: Envelope[LeadCaptured]) -> None:
        await publish(self.backends.kafka_bootstrap, envelope)

    async def handled(self, envelope: Envelope[LeadCaptured]) -> None:
        """Wait until the service handled this very event (its handle-once marker is written)."""
        await eventually(lambda: self.db.processed_events.find_one({"event_id": envelope.id}))

    async def lead(self, lead_id: str) -> dict[str, Any]:
        doc = await self.db.leads.find_one({"_id": lead_id})
        assert doc is not None, f"lead {lead_id} not stored"
        return doc

    async def outbox(self, lead_id: str) -> list[dict[str, Any]]:
        return await self.db.outbox.find({"key": lead_id}).to_list()

    async def decision_event(self, lead_id: str) -> Any:
        [record] = await self.reader.wait_for(lambda r: r.key == lead_id)
        return record


@pytest.fixture(scope="module")
async def harness(
    backends: Backends, settings_for: Callable[..., Any], admin_token: str
) -> AsyncIterator[Harness]:
    """One service for the module: joining the consumer group takes seconds on the embedded broker.
    Tests use their own lead ids; the one that edits the rule set restores the defaults."""
    settings = settings_for(QualificationSettings, service_name="qualification")
    service = build(settings)
    async with reading(backends.kafka_bootstrap, QUALIFIED, DISQUALIFIED) as reader:
        async with running(service, token=admin_token) as http:
            yield Harness(backends, service, http, reader)


async def test_strong_lead_qualifies_at_capture_exactly_once(harness: Harness) -> None:
    lead = unique("L")
    env = from_leads(captured(lead))
    # The same envelope twice (a redelivery), then the same lead re-published under a new event id.
    again = Envelope(event=env.event, source="/kariz/leads", correlation_id=env.correlation_id)
    for envelope in (env, env, again):
        await harness.feed(envelope)

    record = await harness.decision_event(lead)
    await harness.handled(again)  # same key, same partition: everything before it was handled too

    assert record.topic == QUALIFIED and record.key == lead
    assert record.headers["ce_source"] == "/kariz/qualification"
    assert record.headers["ce_type"] == "kariz.lead-qualified.v1"
    assert record.headers["ce_correlationid"] == env.correlation_id
    assert record.headers["ce_causationid"] == env.id
    assert record.headers["ce_subject"] == lead
    body = LeadQualified.model_validate(record.body)
    assert (body.score, body.threshold, body.owner, body.answers) == (80, 70, "rep@kariz.test", None)
    assert [(line.rule, line.matched, line.points) for line in body.breakdown] == [
        ("industry", "software", 20),
        ("company_size", "200-999", 20),
        ("country", "DE", 10),
        ("seniority", "vp", 15),
        ("source", "referral", 15),
    ]

    assert len(await harness.outbox(lead)) == 1
    assert len(harness.reader.of(QUALIFIED, lead)) + len(harness.reader.of(DISQUALIFIED, lead)) == 1
    doc = await harness.lead(lead)
    assert (doc["status"], doc["score"], doc["correlation_id"]) == ("qualified", 80, env.correlation_id)
    assert doc["decision"]["at"] == body.qualified_at

    view = (await harness.http.get(f"/leads/{lead}/qualification")).json()
    assert (view["status"], view["score"], view["decision"]["outcome"]) == ("qualified", 80, "qualified")
    assert [s["trigger"] for s in view["scorings"]] == ["captured"]


async def test_middling_lead_is_nurtured_until_its_answers_qualify_it(harness: Harness) -> None:
    lead = unique("L")
    env = from_leads(middling(lead))
    await harness.feed(env)
    await harness.handled(env)

    view = (await harness.http.get(f"/leads/{lead}/qualification")).json()
    assert (view["status"], view["score"], view["decision"], view["answers"]) == ("nurture", 44, None, None)
    assert await harness.outbox(lead) == []
    queue = (await harness.http.get("/leads", params={"status": "nurture", "owner": "rep@kariz.test"})).json()
    assert lead in {item["lead_id"] for item in queue["items"]}

    # Bad bodies: 422 with what is wrong, and nothing stored.
    before = await harness.lead(lead)
    for bad, field in [
        ({**FULL_BANT, "budget": "maybe"}, "budget"),
        ({**FULL_BANT, "timeline": "someday"}, "timeline"),
        ({**FULL_BANT, "budget_amount": "-1"}, "budget_amount"),
        ({k: v for k, v in FULL_BANT.items() if k != "need"}, "need"),
        ({**FULL_BANT, "budjet": "confirmed"}, "budjet"),
    ]:
        response = await harness.http.put(f"/leads/{lead}/bant", json=bad)
        assert response.status_code == 422, bad
        assert response.json()["error"] == "invalid_request"
        assert field in response.json()["message"]
    assert await harness.lead(lead) == before

    scored_with_bant = sample("kariz_qualification_score_count", {"trigger": "bant"})
    response = await harness.http.put(
        f"/leads/{lead}/bant",
        json={**FULL_BANT, "budget_amount": "50000", "decision_maker": "Grace (CFO)"},
        headers={"X-Correlation-Id": "a-new-request"},
    )
    assert response.status_code == 200, response.text
    view = response.json()
    assert (view["status"], view["score"], view["decision"]["outcome"]) == ("qualified", 104, "qualified")
    assert [s["trigger"] for s in view["scorings"]] == ["captured", "bant"]
    assert sample("kariz_qualification_score_count", {"trigger": "bant"}) == scored_with_bant + 1

    record = await harness.decision_event(lead)
    assert record.topic == QUALIFIED
    # The lead's own story, not the HTTP request's: the correlation id stored at capture.
    assert record.headers["ce_correlationid"] == env.correlation_id
    assert "ce_causationid" not in record.headers
    body = LeadQualified.model_validate(record.body)
    assert body.score == 104 and body.answers is not None
    assert (body.answers.budget_amount, body.answers.decision_maker) == (Decimal("50000"), "Grace (CFO)")
    assert [line.rule for line in body.breakdown][-4:] == [
        "bant.budget",
        "bant.authority",
        "bant.need",
        "bant.timeline",
    ]
    assert (await harness.lead(lead))["answers"]["budget_amount"] == Decimal("50000")

    # Final: no second decision, nothing changed.
    decided = await harness.lead(lead)
    again = await harness.http.put(f"/leads/{lead}/bant", json={**FULL_BANT, "need": "none"})
    assert again.status_code == 409 and "decision is final" in again.json()["message"]
    manual = await harness.http.post(f"/leads/{lead}/disqualify", json={"reason": "changed our mind"})
    assert manual.status_code == 409
    assert await harness.lead(lead) == decided
    assert len(await harness.outbox(lead)) == 1


async def test_a_meddic_lead_qualifies_once_its_checklist_is_answered_over_http(harness: Harness) -> None:
    # MEDDIC for Dutch enterprises (no other test here captures in NL); the defaults are restored after.
    rules = {
        **DEFAULT_RULES.model_dump(mode="json"),
        "segments": [
            {"name": "nl enterprise", "methodology": "meddic", "min_size": 1000, "countries": ["NL"]}
        ],
    }
    assert (await harness.http.put("/rules", json=rules)).status_code == 200
    try:
        lead = unique("L")
        # software 20 + 1000+ 25 + NL 8 + VP 15 + referral 15 = 83: BANT would qualify it at capture.
        env = from_leads(captured(lead, size=5000, country="NL"))
        await harness.feed(env)
        await harness.handled(env)
        view = (await harness.http.get(f"/leads/{lead}/qualification")).json()
        assert (view["status"], view["methodology"], view["score"]) == ("nurture", "meddic", 83)
        assert view["checklist"]["completeness"]["missing"] == [
            "metrics",
            "economic_buyer",
            "identify_pain",
            "champion",
        ]

        first = await harness.http.put(
            f"/leads/{lead}/checklist/meddic",
            json={
                "answers": {
                    "economic_buyer": {"name": "Grace Hopper", "title": "CFO"},
                    "metrics": "2 days saved",
                }
            },
        )
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "nurture" and await harness.outbox(lead) == []
        wrong = await harness.http.put(f"/leads/{lead}/checklist/meddic", json={"answers": {"champion": 7}})
        assert wrong.status_code == 422 and "answers.champion" in wrong.json()["message"]

        done = await harness.http.put(
            f"/leads/{lead}/checklist/meddic",
            json={
                "answers": {
                    "identify_pain": "confirmed",
                    "champion": {"name": "Lin"},
                    "budget": {"amount": "250000", "currency": "EUR"},
                }
            },
        )
        assert done.status_code == 200, done.text
        assert (done.json()["status"], done.json()["score"]) == ("qualified", 133)
    finally:
        restored = await harness.http.put("/rules", json=DEFAULT_RULES.model_dump(mode="json"))
        assert restored.status_code == 200

    record = await harness.decision_event(lead)
    assert record.topic == QUALIFIED and record.headers["ce_correlationid"] == env.correlation_id
    body = LeadQualified.model_validate(record.body)
    assert (body.budget_amount, body.budget_currency, body.answers) == (Decimal("250000"), "EUR", None)
    assert body.checklist is not None and body.checklist.methodology == "meddic"
    assert [(a.item, a.answered_by) for a in body.checklist.answers] == [
        ("metrics", "admin@kariz.test"),
        ("economic_buyer", "admin@kariz.test"),
        ("identify_pain", "admin@kariz.test"),
        ("champion", "admin@kariz.test"),
        ("budget", "admin@kariz.test"),
    ]
    assert body.checklist.completeness.missing == [] and body.checklist.completeness.required_answered == 4
    assert len(await harness.outbox(lead)) == 1


async def test_a_rep_disqualifies_by_hand_and_an_unknown_lead_is_not_found(harness: Harness) -> None:
    lead = unique("L")
    env = from_leads(middling(lead))
    await harness.feed(env)
    await harness.handled(env)

    blank = await harness.http.post(f"/leads/{lead}/disqualify", json={"reason": "   "})
    assert blank.status_code == 422 and "reason" in blank.json()["message"]
    assert (await harness.lead(lead))["status"] == "nurture"
    response = await harness.http.post(f"/leads/{lead}/disqualify", json={"reason": "went with a competitor"})
    assert response.status_code == 200
    assert response.json()["decision"] | {"at": None} == {
        "outcome": "disqualified",
        "reason": "went with a competitor",
        "at": None,
        "threshold": None,
        "manual": True,
        "by": "admin@kariz.test",
    }
    record = await harness.decision_event(lead)
    assert record.topic == DISQUALIFIED and record.headers["ce_correlationid"] == env.correlation_id
    decided = LeadDisqualified.model_validate(record.body)
    assert decided.reason == "went with a competitor"
    assert decided.actor == record.headers["ce_actor"] == "admin@kariz.test", "header and body name who"
    assert len(await harness.outbox(lead)) == 1

    unknown = unique("L")
    for response in [
        await harness.http.get(f"/leads/{unknown}/qualification"),
        await harness.http.put(f"/leads/{unknown}/bant", json=FULL_BANT),
        await harness.http.post(f"/leads/{unknown}/disqualify", json={"reason": "spam"}),
    ]:
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
        assert "LeadCaptured" in response.json()["message"]
    assert await harness.db.leads.find_one({"_id": unknown}) is None
    assert await harness.outbox(unknown) == []


async def test_rule_set_is_validated_and_replaced_whole(harness: Harness) -> None:
    try:
        await check_rule_set_changes(harness)
    finally:
        restored = await harness.http.put("/rules", json=DEFAULT_RULES.model_dump(mode="json"))
        assert restored.status_code == 200


async def check_rule_set_changes(harness: Harness) -> None:
    """Which scorings a new rule set changes is a rule of the use case (tests/unit/test_handlers.py);
    here, the route: validation, the versions stored, and If-Match."""
    read = await harness.http.get("/rules")
    rules, in_force = read.json(), int(read.headers["ETag"].strip('"'))
    assert rules == DEFAULT_RULES.model_dump(mode="json")

    stored = await harness.db.rule_set_versions.find({}).to_list()
    for bad, message in [
        (
            {**rules, "company_size": [{"min": 1, "max": 50, "points": 0}, {"min": 50, "points": 5}]},
            "overlap",
        ),
        ({**rules, "source": {**rules["source"], "carrier_pigeon": 5}}, "source.carrier_pigeon"),
        ({**rules, "industry": {"mining": 30.5}}, "valid integer"),
        ({**rules, "thresholds": {"qualify": 40, "disqualify_below": 50}}, "must be below qualify"),
        ({k: v for k, v in rules.items() if k != "bant"}, "bant"),
    ]:
        response = await harness.http.put("/rules", json=bad)
        assert response.status_code == 422, bad
        assert message in response.json()["message"]
    assert await harness.db.rule_set_versions.find({}).to_list() == stored

    changed = {**rules, "industry": {**rules["industry"], "Mining": 30}}
    response = await harness.http.put("/rules", json=changed, headers={"If-Match": read.headers["ETag"]})
    assert response.status_code == 200
    assert response.json()["industry"]["mining"] == 30
    assert response.headers["ETag"] == f'"{in_force + 1}"'
    again = await harness.http.get("/rules")
    assert (again.json(), again.headers["ETag"]) == (response.json(), response.headers["ETag"])
    doc = await harness.db.rule_set_versions.find_one({"_id": in_force + 1})
    assert doc is not None and doc["rules"]["industry"]["mining"] == 30
    assert (doc["actor"], doc["changed"]) == ("admin@kariz.test", ["industry"])

    stale = await harness.http.put("/rules", json=rules, headers={"If-Match": read.headers["ETag"]})
    assert stale.status_code == 409 and f"version {in_force + 1} is in force" in stale.json()["message"]
    listing = (await harness.http.get("/rules/versions", params={"limit": 2})).json()
    assert [row["version"] for row in listing["items"]] == [in_force + 1, in_force]
    assert listing["total"] == len(stored) + 1


async def test_a_lead_is_its_owners_the_queue_is_filtered_and_the_rule_set_is_an_admins(
    harness: Harness, issuer: LocalIssuer
) -> None:
    lead = unique("L")
    env = from_leads(middling(lead))  # owner rep@kariz.test, left in nurture
    await harness.feed(env)
    await harness.handled(env)
    owner = bearer(issuer.token("rep@kariz.test", ["rep"]))
    other = bearer(issuer.token("lee@kariz.test", ["rep"]))

    assert (await harness.http.get(f"/leads/{lead}/qualification", headers=owner)).status_code == 200
    hidden = await harness.http.get(f"/leads/{lead}/qualification", headers=other)
    absent = await harness.http.get("/leads/L-never-captured/qualification", headers=other)
    assert hidden.status_code == absent.status_code == 404
    # The same words as for a lead that does not exist: the answer does not confirm it is there.
    assert hidden.json()["message"] == absent.json()["message"].replace("L-never-captured", lead)
    refused = await harness.http.put(f"/leads/{lead}/bant", json=FULL_BANT, headers=other)
    assert refused.status_code == 404
    assert (await harness.lead(lead))["status"] == "nurture", "the refused call changed nothing"
    queue = (await harness.http.get("/leads", params={"owner": "rep@kariz.test"}, headers=other)).json()
    assert queue["total"] == 0 and queue["items"] == []
    mine = (await harness.http.get("/leads", headers=owner)).json()
    assert lead in {row["lead_id"] for row in mine["items"]}

    rules = (await harness.http.get("/rules", headers=owner)).json()
    edit = await harness.http.put("/rules", json=rules, headers=owner)
    assert edit.status_code == 403 and "admin" in edit.json()["message"]
    assert (await harness.http.get("/rules/versions", headers=owner)).status_code == 403
    assert (await harness.http.get("/rules", headers={"Authorization": ""})).status_code == 401


async def test_engagement_posted_by_a_marketing_key_qualifies_a_nurtured_lead_and_lead_scored_is_published(
    harness: Harness,
) -> None:
    lead = unique("L")
    email = f"{lead.lower()}@engaged.example"
    # retail 5 + 10-49 5 + FR 8 + manager 8 + web_form 8 = 34: nurtured, cold (below 40).
    event = captured(
        lead, industry="retail", size=20, country="FR", title="IT Manager", source=LeadSource.WEB_FORM
    )
    event = event.model_copy(update={"contact": event.contact.model_copy(update={"email": email})})
    env = from_leads(event)
    await harness.feed(env)
    await harness.handled(env)

    issued = await harness.http.post(
        "/api-keys", json={"name": "marketing automation", "scopes": ["engagements:record"]}
    )
    assert issued.status_code == 201, issued.text
    marketing = {"X-Api-Key": issued.json()["key"], "Authorization": ""}

    async with reading(harness.backends.kafka_bootstrap, LeadScored.topic()) as scored:
        now = datetime.now(UTC).isoformat()
        first = {"kind": "webinar_attended", "occurred_at": now, "email": email.upper()}
        response = await harness.http.post("/engagements", json=first, headers=marketing)
        assert (response.status_code, response.json()) == (200, {"recorded": True}), response.text
        [record] = await scored.wait_for(lambda r: r.key == lead)
        body = LeadScored.model_validate(record.body)
        assert (body.fit, body.engagement, body.total, body.band, body.previous_band) == (
            34,
            15,
            49,
            "warm",
            "cold",
        )
        assert record.headers["ce_correlationid"] == env.correlation_id
        # Warm now: the decay timer is armed for when the faded webinar takes it back below 40.
        timer = await harness.db.timers.find_one({"_id": f"qualification:engagement-decay:{lead}"})
        assert timer is not None and timer["event"]["band"] == "warm"

    for kind in ("webinar_attended", "content_downloaded"):
        body_ = {"kind": kind, "occurred_at": datetime.now(UTC).isoformat(), "lead_id": lead}
        assert (await harness.http.post("/engagements", json=body_, headers=marketing)).status_code == 200

    record = await harness.decision_event(lead)
    assert record.topic == QUALIFIED
    qualified = LeadQualified.model_validate(record.body)
    assert (qualified.score, qualified.reason, qualified.actor) == (72, "engagement", None)
    view = (await harness.http.get(f"/leads/{lead}/qualification")).json()
    assert (view["status"], view["decision"]["reason"]) == ("qualified", "engagement")
    assert (view["current"]["fit"]["points"], view["current"]["engagement"]["points"]) == (34, 38)
    # Decided: the decay timer is disarmed, and exactly one decision went out.
    assert await harness.db.timers.find_one({"_id": f"qualification:engagement-decay:{lead}"}) is None
    assert [doc["topic"] for doc in await harness.outbox(lead)].count(QUALIFIED) == 1
