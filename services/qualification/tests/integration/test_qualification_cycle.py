"""Issue D's qualification cycle against the real broker and database: engagement qualifies a nurtured
lead once, old engagement fades by the lead's own decay timer, a disqualified lead re-opens on new
engagement after its cooling-off period, and a lead of a won account qualifies as an existing customer.

The service runs on a FakeClock (its timer worker and its use cases alike): business delays (days of
decay, the cooling-off period) are the clock moved, never waited through. (A MEDDIC lead held in nurture
until its required answers are in is test_qualification_service.py's.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from math import log2
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pymongo.asynchronous.database import AsyncDatabase

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import Backends, EventReader, bearer, eventually, publish, reading, running, unique
from kariz_qualification.bootstrap import build
from kariz_qualification.settings import QualificationSettings
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import (
    ActivityChannel,
    ActivityDirection,
    ActivityLogged,
    ActivityOutcome,
    Company,
    Contact,
    DealWon,
    Event,
    LeadCaptured,
    LeadDisqualified,
    LeadEngagementDecayDue,
    LeadQualified,
    LeadReopened,
    LeadScored,
    LeadSource,
    LeadTouched,
)
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.service import Service
from kariz_shared.system import source_of

pytestmark = pytest.mark.integration

OWNER = "rep@kariz.test"
#: The owner's team, whose manager may re-open their leads.
TEAM = "emea"
MANAGER = "mia@kariz.test"
QUALIFIED = LeadQualified.topic()
TOPICS = (
    QUALIFIED,
    LeadDisqualified.topic(),
    LeadReopened.topic(),
    LeadScored.topic(),
    LeadEngagementDecayDue.topic(),
)


def cold(lead_id: str, *, domain: str | None = None, company: str | None = None) -> LeadCaptured:
    """retail 5 + 10-49 5 + FR 8 + manager 8 + web_form 8 = 34: nurture, cold (below 40)."""
    return LeadCaptured(
        lead_id=lead_id,
        contact=Contact(
            first_name="Ada",
            last_name="Lovelace",
            email=f"{lead_id.lower()}@shop.example",
            title="IT Manager",
        ),
        company=Company(
            name=company or f"Shop {lead_id}", domain=domain, industry="retail", size=20, country="FR"
        ),
        source=LeadSource.WEB_FORM,
        owner=OWNER,
        assigned_by="round_robin",
        captured_at=datetime.now(UTC),
    )


class Cycle:
    """The running service, its fake clock, its HTTP client, its database and a reader of its topics."""

    def __init__(
        self,
        backends: Backends,
        service: Service,
        clock: FakeClock,
        http: httpx.AsyncClient,
        reader: EventReader,
        marketing: dict[str, str],
    ) -> None:
        self.backends = backends
        self.service = service
        self.clock = clock
        self.http = http
        self.reader = reader
        self.marketing = marketing
        self.db: AsyncDatabase[dict[str, Any]] = service.store.db

    async def feed(self, event: Event) -> None:
        """Publish ``event`` as its one producer would, and wait until the service handled it."""
        envelope = Envelope(event=event, source=source_of(type(event)), correlation_id=unique("corr"))
        await publish(self.backends.kafka_bootstrap, envelope)
        await eventually(lambda: self.db.processed_events.find_one({"event_id": envelope.id}))

    async def capture(self, event: LeadCaptured) -> None:
        await self.feed(event.model_copy(update={"captured_at": self.clock.now()}))

    async def engage(self, lead_id: str, kind: str) -> None:
        """A marketing system reports a signal that happened now (on the service's clock)."""
        body = {
            "kind": kind,
            "occurred_at": self.clock.now().isoformat(),
            "lead_id": lead_id,
            "engagement_id": unique("e"),
        }
        response = await self.http.post("/engagements", json=body, headers=self.marketing)
        assert (response.status_code, response.json()) == (200, {"recorded": True}), response.text

    async def view(self, lead_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/leads/{lead_id}/qualification")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def outbox(self, lead_id: str, topic: str) -> list[dict[str, Any]]:
        return await self.db.outbox.find({"key": lead_id, "topic": topic}).to_list()

    async def published(self, lead_id: str) -> None:
        """Wait until the relay published everything the lead's changes wrote to the outbox."""

        async def drained() -> bool:
            return await self.db.outbox.count_documents({"key": lead_id, "published_at": None}) == 0

        await eventually(drained)

    async def on_topic(self, topic: str, lead_id: str, count: int = 1) -> list[dict[str, Any]]:
        records = await self.reader.wait_for(lambda r: r.topic == topic and r.key == lead_id, count=count)
        return [record.body for record in records]

    async def timer(self, lead_id: str) -> dict[str, Any] | None:
        return await self.db.timers.find_one({"_id": f"qualification:engagement-decay:{lead_id}"})


@pytest.fixture(scope="module")
async def cycle(
    stack_backends: Backends, settings_for: Callable[..., Any], admin_token: str
) -> AsyncIterator[Cycle]:
    """One service for the module on a broker of its own (a new consumer group on the session's would
    first read every earlier test's records). Tests use their own leads and read the clock's time when
    they start: it only moves forward, and a move fires every lead's due timers."""
    backends = stack_backends
    clock = FakeClock(datetime.now(UTC))
    settings = settings_for(
        QualificationSettings,
        service_name="qualification",
        kafka_bootstrap_servers=backends.kafka_bootstrap,
        teams={TEAM: [OWNER]},
    )
    service = build(settings, clock=clock)
    async with reading(backends.kafka_bootstrap, *TOPICS) as reader:
        async with running(service, token=admin_token) as http:
            issued = await http.post(
                "/api-keys", json={"name": "marketing automation", "scopes": ["engagements:record"]}
            )
            assert issued.status_code == 201, issued.text
            marketing = {"X-Api-Key": issued.json()["key"], "Authorization": ""}
            yield Cycle(backends, service, clock, http, reader, marketing)


async def rules(cycle: Cycle) -> dict[str, Any]:
    result: dict[str, Any] = (await cycle.http.get("/rules")).json()
    return result


def decisions(outcome: str, reason: str) -> float:
    """The decisions metric's count for ``outcome`` by that kind of reason."""
    labels = {"outcome": outcome, "reason": reason}
    return REGISTRY.get_sample_value("kariz_qualification_decisions_total", labels) or 0.0


def faded(points: float, days: float, half_life_days: float) -> float:
    """What ``points`` are worth ``days`` later: the README's ``points * 0.5^(age / half_life)``."""
    return points * 0.5 ** (days / half_life_days)


async def test_engagement_qualifies_a_nurtured_lead_once_however_many_signals_follow(cycle: Cycle) -> None:
    lead = unique("L")
    by_engagement = decisions("qualified", "engagement")
    await cycle.capture(cold(lead))
    assert (await cycle.view(lead))["status"] == "nurture"

    # 34 + webinar 15 + webinar 15 = 64: warm, still under the qualify threshold (70).
    for kind in ("webinar_attended", "webinar_attended"):
        await cycle.engage(lead, kind)
    assert (await cycle.view(lead))["status"] == "nurture"
    assert await cycle.outbox(lead, QUALIFIED) == []

    # A download more: 72, over the threshold; qualified by engagement, the first decision.
    await cycle.engage(lead, "content_downloaded")
    [body] = await cycle.on_topic(QUALIFIED, lead)
    qualified = LeadQualified.model_validate(body)
    assert (qualified.score, qualified.threshold, qualified.reason, qualified.actor) == (
        72,
        70,
        "engagement",
        None,
    )
    assert (qualified.decision_number, qualified.existing_customer) == (1, False)
    assert qualified.qualified_at == cycle.clock.now()
    assert decisions("qualified", "engagement") == by_engagement + 1

    # More signals, by every path: the marketing API, a repeat capture (LeadTouched), a rep's call.
    for kind in ("webinar_attended", "email_clicked", "page_visited"):
        await cycle.engage(lead, kind)
    await cycle.feed(
        LeadTouched(lead_id=lead, source=LeadSource.WEB_FORM, touch_count=2, touched_at=cycle.clock.now())
    )
    await cycle.feed(
        ActivityLogged(
            activity_id=unique("act"),
            lead_id=lead,
            owner=OWNER,
            channel=ActivityChannel.CALL,
            direction=ActivityDirection.OUTBOUND,
            outcome=ActivityOutcome.REACHED,
            reaching=True,
            occurred_at=cycle.clock.now(),
            logged_at=cycle.clock.now(),
            actor=OWNER,
        )
    )

    view = await cycle.view(lead)
    # Kept (eight signals), but the decision stands: no rescoring, no second LeadQualified.
    assert view["current"]["signals"] == 8
    assert (view["status"], view["score"], [d["number"] for d in view["decisions"]]) == ("qualified", 72, [1])
    assert [s["trigger"] for s in view["scorings"]] == ["captured", "engagement", "engagement", "engagement"]
    # The outbox is all the relay publishes from: one LeadQualified there, and once it is out, on the topic.
    assert len(await cycle.outbox(lead, QUALIFIED)) == 1
    await cycle.published(lead)
    assert len(cycle.reader.of(QUALIFIED, lead)) == 1
    assert await cycle.timer(lead) is None, "a decided lead's decay timer is disarmed"
    assert decisions("qualified", "engagement") == by_engagement + 1


async def test_the_same_signals_sixty_days_old_count_for_little_faded_by_the_leads_timer(
    cycle: Cycle,
) -> None:
    engagement = (await rules(cycle))["engagement"]
    half_life, webinar = engagement["half_life_days"], engagement["points"]["webinar_attended"]
    lead = unique("L")
    await cycle.capture(cold(lead))
    started = cycle.clock.now()
    for kind in ("webinar_attended", "webinar_attended"):
        await cycle.engage(lead, kind)
    # The first webinar took it to warm (49: LeadScored), the second keeps it there (64: none).
    [warmed] = await cycle.on_topic(LeadScored.topic(), lead)
    assert (warmed["engagement"], warmed["band"], warmed["previous_band"]) == (webinar, "warm", "cold")
    assert (await cycle.view(lead))["score"] == 34 + 2 * webinar

    # Armed for when the faded webinars take 64 below warm's 40: their rounded points below 6, i.e.
    # 2 * webinar * 0.5^(t / half_life) < 5.5.
    timer = await cycle.timer(lead)
    assert timer is not None and timer["event"]["band"] == "warm"
    expected = started + timedelta(days=half_life * log2(2 * webinar / 5.5))
    assert abs(timer["due_at"].replace(tzinfo=UTC) - expected) <= timedelta(minutes=2)
    # Nothing rescores the lead until its timer is due: no scan.
    assert [s["trigger"] for s in (await cycle.view(lead))["scorings"]] == [
        "captured",
        "engagement",
        "engagement",
    ]

    # Sixty days pass on the service's clock: its timer worker fires the lead's timer, and the service
    # consumes its own LeadEngagementDecayDue and rescores the lead.
    now = cycle.clock.advance(timedelta(days=60))
    [due] = await cycle.on_topic(LeadEngagementDecayDue.topic(), lead)
    assert (due["band"], datetime.fromisoformat(due["due_at"])) == (
        "warm",
        timer["due_at"].replace(tzinfo=UTC),
    )
    [_, cooled] = await cycle.on_topic(LeadScored.topic(), lead, count=2)
    left = round(faded(2 * webinar, 60, half_life))
    assert left == 2, "two webinars are worth 2 points after 60 days of a 14-day half-life"
    assert (cooled["fit"], cooled["engagement"], cooled["band"], cooled["previous_band"]) == (
        34,
        left,
        "cold",
        "warm",
    )
    assert datetime.fromisoformat(cooled["scored_at"]) == now

    view = await cycle.view(lead)
    [decay] = [s for s in view["scorings"] if s["trigger"] == "decay"]
    assert (decay["score"], datetime.fromisoformat(decay["at"])) == (34 + left, now)
    assert await cycle.timer(lead) is None, "cold is the lowest band: nothing left to fade below"

    # The download that took a fresh lead to 72 (the test before) now makes 34 + 2 + 8 = 44: nurture.
    await cycle.engage(lead, "content_downloaded")
    view = await cycle.view(lead)
    assert (view["status"], view["score"], view["current"]["engagement"]["points"]) == ("nurture", 44, 10)
    assert await cycle.outbox(lead, QUALIFIED) == []


async def test_a_disqualified_lead_reopens_on_new_engagement_after_cooling_off_with_its_decisions_kept(
    cycle: Cycle, issuer: LocalIssuer
) -> None:
    engagement = (await rules(cycle))["engagement"]
    half_life, cooling_off = engagement["half_life_days"], engagement["reopen_after_days"]
    assert (engagement["reopen_points"], cooling_off) == (20, 30)
    lead = unique("L")
    await cycle.capture(cold(lead))
    rep = bearer(issuer.token(OWNER, ["rep"]))
    response = await cycle.http.post(f"/leads/{lead}/disqualify", json={"reason": "no budget"}, headers=rep)
    assert response.status_code == 200, response.text
    disqualified_at = cycle.clock.now()
    [first] = await cycle.on_topic(LeadDisqualified.topic(), lead)
    assert (first["decision_number"], first["actor"]) == (1, OWNER)

    # Still cooling off, though the engagement since is over the 20 that re-open: 30 points on day 10,
    # 30 faded to 11.7 plus 15 fresh on day 29.
    cycle.clock.advance(timedelta(days=10))
    for kind in ("webinar_attended", "webinar_attended"):
        await cycle.engage(lead, kind)
    cycle.clock.advance(timedelta(days=19))
    await cycle.engage(lead, "webinar_attended")
    assert (await cycle.view(lead))["status"] == "disqualified"
    assert await cycle.outbox(lead, LeadReopened.topic()) == []

    # Day 31: an e-mail opened (2) makes the engagement since the disqualification 26, decayed.
    now = cycle.clock.advance(timedelta(days=2))
    assert now - disqualified_at > timedelta(days=cooling_off)
    await cycle.engage(lead, "email_opened")
    webinars = round(faded(30, 21, half_life) + faded(15, 2, half_life))
    assert webinars + 2 == 26
    [reopened] = await cycle.on_topic(LeadReopened.topic(), lead)
    event = LeadReopened.model_validate(reopened)
    assert (event.decision_number, event.reopened_decision, event.actor) == (2, 1, None)
    assert event.reason == "engagement: 26 points since the disqualification"
    view = await cycle.view(lead)
    # Rescored at once: 34 + 26 = 60, warm, back in nurture.
    assert (view["status"], view["score"], view["current"]["band"]) == ("nurture", 60, "warm")

    # A webinar more: 34 + 41 capped at 40 = 74, qualified by engagement as the third decision.
    await cycle.engage(lead, "webinar_attended")
    [body] = await cycle.on_topic(QUALIFIED, lead)
    qualified = LeadQualified.model_validate(body)
    assert (qualified.decision_number, qualified.reason, qualified.score) == (3, "engagement", 74)
    view = await cycle.view(lead)
    assert [(d["number"], d["outcome"], d["by"], d["reason"]) for d in view["decisions"]] == [
        (1, "disqualified", OWNER, "no budget"),
        (2, "reopened", None, "engagement: 26 points since the disqualification"),
        (3, "qualified", None, "engagement"),
    ]


async def test_a_manager_reopens_a_disqualified_lead_and_a_rep_may_not(
    cycle: Cycle, issuer: LocalIssuer
) -> None:
    lead = unique("L")
    await cycle.capture(cold(lead))
    rep = bearer(issuer.token(OWNER, ["rep"]))
    manager = bearer(issuer.token(MANAGER, ["manager"], team=TEAM))
    assert (
        await cycle.http.post(f"/leads/{lead}/reopen", json={"reason": "x"}, headers=manager)
    ).status_code == 409
    response = await cycle.http.post(f"/leads/{lead}/disqualify", json={"reason": "not now"}, headers=rep)
    assert response.status_code == 200, response.text

    refused = await cycle.http.post(f"/leads/{lead}/reopen", json={"reason": "budget freed up"}, headers=rep)
    assert refused.status_code == 403 and (await cycle.view(lead))["status"] == "disqualified"
    response = await cycle.http.post(
        f"/leads/{lead}/reopen", json={"reason": "budget freed up"}, headers=manager
    )
    assert response.status_code == 200, response.text
    [body] = await cycle.on_topic(LeadReopened.topic(), lead)
    reopened = LeadReopened.model_validate(body)
    assert (reopened.decision_number, reopened.reopened_decision, reopened.actor) == (2, 1, MANAGER)
    view = await cycle.view(lead)
    assert view["status"] == "nurture"
    assert [(d["number"], d["outcome"], d["by"]) for d in view["decisions"]] == [
        (1, "disqualified", OWNER),
        (2, "reopened", MANAGER),
    ]


async def test_a_lead_of_a_won_account_qualifies_as_an_existing_customer(cycle: Cycle) -> None:
    domain = f"{unique('acme').lower()}.example"
    first = unique("L")
    # software 20 + 200-999 20 + DE 10 + VP 15 + referral 15 = 80: qualified, its deal won later.
    strong = cold(first, domain=domain, company="Acme GmbH")
    strong = strong.model_copy(
        update={
            "company": strong.company.model_copy(
                update={"industry": "software", "size": 500, "country": "DE"}
            ),
            "contact": strong.contact.model_copy(update={"title": "VP Sales"}),
            "source": LeadSource.REFERRAL,
        }
    )
    await cycle.capture(strong)
    assert LeadQualified.model_validate((await cycle.on_topic(QUALIFIED, first))[0]).score == 80
    account = unique("A")
    await cycle.feed(
        DealWon(
            deal_id=unique("D"),
            lead_id=first,
            account_id=account,
            account_name="Acme GmbH",
            owner=OWNER,
            amount=Decimal("48000"),
            cycle_seconds=86400.0,
            won_at=cycle.clock.now(),
        )
    )

    # A new lead of the same domain (the company written otherwise), with the same 34 points of fit
    # that leave a stranger in nurture, and a stranger for comparison.
    again, stranger = unique("L"), unique("L")
    await cycle.capture(cold(again, domain=domain.upper(), company="ACME"))
    await cycle.capture(cold(stranger, domain=f"{unique('other').lower()}.example"))

    # An upsell is judged by its own items (need and timeline by default), not by its fit: it waits.
    waiting = await cycle.view(again)
    assert waiting["status"] == "nurture"
    assert waiting["checklist"]["completeness"]["missing"] == ["need", "timeline"]
    answers = {"answers": {"need": "confirmed", "timeline": "within_3_months"}}
    answered = await cycle.http.put(f"/leads/{again}/checklist/bant", json=answers)
    assert answered.status_code == 200, answered.text

    [body] = await cycle.on_topic(QUALIFIED, again)
    qualified = LeadQualified.model_validate(body)
    assert (qualified.existing_customer, qualified.account_id, qualified.reason) == (
        True,
        account,
        "existing customer",
    )
    # 34 + need 15 + timeline 15: below the threshold (70), qualified as a customer all the same.
    assert (qualified.score, qualified.decision_number) == (64, 1)
    assert (await cycle.view(stranger))["status"] == "nurture"
    assert await cycle.outbox(stranger, QUALIFIED) == []
