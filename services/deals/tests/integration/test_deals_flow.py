"""The deals service against the real broker and database: a qualified lead opens one deal, moves go
out as events with the lead's correlation id, the repositories' queries and batch reads, the pipeline
totals against a count over the deals. The rules themselves are tested in memory (tests/unit)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pymongo.monitoring
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from kariz_deals.adapters.in_memory import RecordingDealsMetrics
from kariz_deals.adapters.mongo import indexes, pipeline_totals
from kariz_deals.adapters.mongo.repositories import MongoDealReads
from kariz_deals.adapters.mongo.unit_of_work import MongoDealsUnitOfWork
from kariz_deals.bootstrap import build
from kariz_deals.domain import DEFAULT_PIPELINE
from kariz_deals.entrypoints import kafka
from kariz_deals.entrypoints.contracts import SIGNATURE_HEADER, e_sign_signature
from kariz_deals.settings import DealsSettings
from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import Backends, EventReader, bearer, eventually, publish, reading, running, unique
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import (
    ActivityChannel,
    ActivityDirection,
    ActivityLogged,
    ActivityOutcome,
    BantAnswers,
    Company,
    Contact,
    DealLost,
    DealOpened,
    DealStalled,
    DealWon,
    LeadQualified,
    LeadsMerged,
    LeadSource,
    ObjectionRecorded,
    QuoteAccepted,
    QuoteApprovalRequested,
    QuoteSent,
    ScoreLine,
    StageChanged,
    dead_letter_topic,
)
from kariz_shared.messaging.inbox import handle_once
from kariz_shared.messaging.timers import TimerWorker
from kariz_shared.persistence import store as store_module
from kariz_shared.persistence.store import Store, Transaction, connect
from kariz_shared.persistence.unit_of_work import MongoUnitsOfWork
from kariz_shared.runtime.clock import FakeClock, SystemClock
from kariz_shared.runtime.logging import correlation_id

pytestmark = pytest.mark.integration

DEAL_TOPICS = [cls.topic() for cls in (DealOpened, StageChanged, DealWon, DealLost)]
QUOTE_REP = "quote-rep@kariz.test"
E_SIGN_SECRET = "whsec-integration"


@dataclass
class Running:
    http: httpx.AsyncClient
    db: Any
    bootstrap: str
    group: str
    settings: DealsSettings


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def deals(
    backends: Backends, settings_for: Callable[..., Any], admin_token: str
) -> AsyncIterator[Running]:
    """One service for the module: joining the consumer group is the slow part of starting it. The
    tests keep apart by their own lead ids, deal ids and owners."""
    # The quote test's rep is in team emea, so its manager approves their discounts.
    settings = settings_for(
        DealsSettings, service_name="deals", teams={"emea": [QUOTE_REP]}, e_sign_webhook_secret=E_SIGN_SECRET
    )
    client = connect(settings)
    async with running(build(settings), token=admin_token) as http:
        group = settings.consumer_group(LeadQualified.kebab_name())
        yield Running(http, client[settings.database_name], backends.kafka_bootstrap, group, settings)
    await client.close()


def qualified(
    lead_id: str,
    *,
    owner: str = "rep@kariz.test",
    company: str = "Analytical Engines Ltd",
    domain: str | None = "analytical.example",
    budget: Decimal | None = None,
) -> LeadQualified:
    return LeadQualified(
        lead_id=lead_id,
        owner=owner,
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@analytical.example"),
        company=Company(name=company, domain=domain, industry="software", size=120, country="GB"),
        source=LeadSource.TRADE_SHOW,
        score=72,
        threshold=60,
        breakdown=[ScoreLine(rule="industry", matched="software", points=20)],
        answers=BantAnswers(
            budget="confirmed",
            budget_amount=budget,
            authority="decision_maker",
            need="confirmed",
            timeline="within_3_months",
        ),
        qualified_at=datetime.now(UTC),
    )


def from_qualification(event: LeadQualified, correlation_id: str) -> Envelope[Any]:
    return Envelope(event=event, source="/kariz/qualification", correlation_id=correlation_id)


async def deal_for(http: httpx.AsyncClient, lead_id: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        page = (await http.get("/deals", params={"lead_id": lead_id})).json()
        items: list[dict[str, Any]] = page["items"]
        return items[0] if items else None

    deal: dict[str, Any] = await eventually(found, timeout=30)
    return deal


async def move(http: httpx.AsyncClient, deal_id: str, **body: Any) -> httpx.Response:
    # A request correlation id of its own: events must still carry the deal's (the lead's) one.
    return await http.post(f"/deals/{deal_id}/stage", json=body, headers={"X-Correlation-Id": unique("http")})


async def snapshot(db: Any, deal_id: str) -> tuple[dict[str, Any] | None, int]:
    """The deal as stored and how many events it has in the outbox (every event goes through it)."""
    return await db.deals.find_one({"_id": deal_id}), await db.outbox.count_documents({"key": deal_id})


def bodies(reader: EventReader, topic: str, key: str) -> list[dict[str, Any]]:
    return [r.body for r in reader.of(topic, key)]


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_qualified_lead_opens_one_deal_that_moves_back_and_forth_to_won(deals: Running) -> None:
    http, db = deals.http, deals.db
    lead, corr = unique("L"), unique("corr")
    env = from_qualification(qualified(lead, budget=Decimal("12000")), corr)
    # The same lead qualified again under a new event id (e.g. re-sent by hand) must not open a second deal.
    again = from_qualification(qualified(lead, budget=Decimal("99")), unique("corr"))

    won_before = counted("kariz_deals_won_total")
    won_amount_before = counted("kariz_deals_won_amount_total")
    to_won_before = counted("kariz_deals_stage_transitions_total", from_stage="contract", to_stage="won")
    async with reading(deals.bootstrap, *DEAL_TOPICS) as reader:
        await publish(deals.bootstrap, env)
        await publish(deals.bootstrap, env)  # redelivery: same ce_id
        await publish(deals.bootstrap, again)
        deal = await deal_for(http, lead)
        deal_id = deal["id"]
        await eventually(lambda: db.processed_events.count_documents({"event_id": again.id}))

        [opened] = await reader.wait_for(lambda r: r.topic == DealOpened.topic() and r.key == deal_id)
        assert opened.headers["ce_source"] == "/kariz/deals"
        assert opened.headers["ce_type"] == "kariz.deal-opened.v1"
        assert opened.headers["ce_specversion"] == "1.0"
        assert opened.headers["ce_subject"] == deal_id
        assert opened.headers["ce_correlationid"] == corr
        assert opened.headers["ce_causationid"] == env.id
        assert opened.headers["content-type"] == "application/json"
        assert opened.headers["ce_id"] and opened.headers["ce_time"].endswith("Z")
        body = opened.body
        assert (body["lead_id"], body["owner"], body["pipeline"], body["stage"]) == (
            lead,
            "rep@kariz.test",
            "default",
            "qualification",
        )
        assert Decimal(body["amount"]) == Decimal("12000") and body["currency"] == "EUR"
        assert (
            body["account_name"] == "Analytical Engines Ltd" and body["account_id"] == deal["account"]["id"]
        )

        assert deal["stage"] == "qualification" and deal["correlation_id"] == corr
        assert Decimal(deal["amount"]) == Decimal("12000")
        assert Decimal(deal["weighted_amount"]) == Decimal("1200.00")
        assert (deal["probability"], deal["forecast_category"]) == (0.1, "pipeline")

        path = [
            ("discovery", {}),
            ("demo", {"note": "demo on Tuesday"}),
            ("proposal", {"amount": "15000.00"}),
            ("demo", {"note": "wants another demo for finance", "reason": "finance missed the demo"}),
            ("proposal", {}),
            ("negotiation", {}),
            ("contract", {}),
            ("won", {"note": "signed"}),
        ]
        for stage, extra in path:
            response = await move(http, deal_id, stage=stage, **extra)
            assert response.status_code == 200, response.text
            assert response.json()["stage"] == stage

        changes = await reader.wait_for(
            lambda r: r.topic == StageChanged.topic() and r.key == deal_id, count=len(path)
        )
        [won] = await reader.wait_for(lambda r: r.topic == DealWon.topic() and r.key == deal_id)

        # A closed deal stays closed: nothing stored, nothing emitted.
        before = await snapshot(db, deal_id)
        refused = await move(http, deal_id, stage="negotiation")
        assert refused.status_code == 409 and "closed" in refused.json()["message"]
        assert await snapshot(db, deal_id) == before

        final = (await http.get(f"/deals/{deal_id}")).json()
        account = (await http.get(f"/accounts/{deal['account']['id']}")).json()
        metrics = (await http.get("/metrics")).text
        await asyncio.sleep(1.0)  # time for any stray event to reach the reader
        assert len(reader.of(StageChanged.topic(), deal_id)) == len(path)

    transitions = [(c.body["from_stage"], c.body["to_stage"], c.body["direction"]) for c in changes]
    assert transitions == [
        ("qualification", "discovery", "forward"),
        ("discovery", "demo", "forward"),
        ("demo", "proposal", "forward"),
        ("proposal", "demo", "back"),
        ("demo", "proposal", "forward"),
        ("proposal", "negotiation", "forward"),
        ("negotiation", "contract", "forward"),
        ("contract", "won", "forward"),
    ]
    assert all(c.headers["ce_correlationid"] == corr for c in [*changes, won])
    assert all(c.headers["ce_type"] == "kariz.stage-changed.v1" for c in changes)
    assert changes[1].body["note"] == "demo on Tuesday"
    assert Decimal(changes[2].body["amount"]) == Decimal("15000.00")
    assert all(c.body["seconds_in_from_stage"] >= 0 for c in changes)
    assert won.headers["ce_type"] == "kariz.deal-won.v1" and won.headers["ce_subject"] == deal_id
    assert Decimal(won.body["amount"]) == Decimal("15000.00")
    assert won.body["account_id"] == deal["account"]["id"] and won.body["lead_id"] == lead
    assert 0 < won.body["cycle_seconds"] < 120

    assert final["stage"] == "won" and final["closed_at"] is not None
    assert (final["probability"], final["forecast_category"]) == (1.0, "closed")
    assert [h["stage"] for h in final["history"]] == ["qualification"] + [stage for stage, _ in path]
    assert (
        all(h["left_at"] is not None for h in final["history"][:-1])
        and final["history"][-1]["left_at"] is None
    )
    assert final["history"][-1]["note"] == "signed"
    assert account["domain"] == "analytical.example" and account["name"] == "Analytical Engines Ltd"
    assert 'kariz_deals_stage_transitions_total{from_stage="contract",to_stage="won"}' in metrics
    assert "kariz_deals_won_total" in metrics and "kariz_deals_opened_total" in metrics
    # Counted once per committed move; the refused move counts nothing.
    assert counted("kariz_deals_won_total") == won_before + 1
    assert counted("kariz_deals_won_amount_total") == won_amount_before + 15000
    to_won = counted("kariz_deals_stage_transitions_total", from_stage="contract", to_stage="won")
    assert to_won == to_won_before + 1

    # One deal for the lead, also in the database, backed by the unique index; StageChanged before DealWon.
    assert await db.deals.count_documents({"lead_id": lead}) == 1
    indexes = await db.deals.index_information()
    assert indexes["opened_for_unique"]["unique"] is True and "lead_id_unique" not in indexes
    last_two = await db.outbox.find({"key": deal_id}).sort("order", -1).limit(2).to_list()
    assert [doc["topic"] for doc in reversed(last_two)] == [StageChanged.topic(), DealWon.topic()]


async def test_accounts_lists_and_the_pipeline_through_mongodb(deals: Running, issuer: LocalIssuer) -> None:
    """The repositories' queries on MongoDB: accounts found again by their normalised domain (the batch
    read) and by their name (the oldest of that name), the list's filters and pages on its indexes, and
    the summary from the pipeline totals."""
    http = deals.http
    owner = f"{unique('rep')}@kariz.test"  # the topic is shared: count only this test's deals
    leads = {name: unique("L") for name in ("a", "b", "c", "d", "e", "f")}
    events = {
        "a": qualified(
            leads["a"], owner=owner, domain="www.Globex.example", company="Globex", budget=Decimal("1000")
        ),
        "b": qualified(leads["b"], owner=owner, domain="globex.example", company="Globex Corp"),
        "c": qualified(leads["c"], owner=owner, domain=None, company="Initech, Inc.", budget=Decimal("2000")),
        "d": qualified(leads["d"], owner=owner, domain=None, company="INITECH", budget=Decimal("5000.50")),
        "e": qualified(
            leads["e"], owner=owner, domain="hooli.example", company="Hooli", budget=Decimal("700")
        ),
        "f": qualified(leads["f"], owner=owner, domain="umbrella.example", company="Umbrella"),
    }
    for name, event in events.items():
        await publish(deals.bootstrap, from_qualification(event, unique(f"corr-{name}")))
    opened = {name: await deal_for(http, lead) for name, lead in leads.items()}

    assert opened["a"]["account"]["id"] == opened["b"]["account"]["id"]
    assert opened["c"]["account"]["id"] == opened["d"]["account"]["id"]
    assert len({d["account"]["id"] for d in opened.values()}) == 4
    globex = (await http.get(f"/accounts/{opened['a']['account']['id']}")).json()
    # Leads are keyed by lead id, so either may arrive first and name the account.
    assert globex["name"] in ("Globex", "Globex Corp") and globex["domain"] == "globex.example"

    # a stays in qualification (1000), b in discovery (no amount), c in proposal (3000),
    # d is won (5000.50), e is lost (700), f in contract (8000).
    steps = [
        ("b", {"stage": "discovery"}),
        ("c", {"stage": "proposal", "amount": "3000"}),
        ("d", {"stage": "won"}),
        ("e", {"stage": "lost", "reason": "no budget this year"}),
        ("f", {"stage": "contract", "amount": "8000"}),
    ]
    for name, body in steps:
        assert (await move(http, opened[name]["id"], **body)).status_code == 200

    by_stage = (await http.get("/deals", params={"owner": owner, "stage": "proposal"})).json()
    assert [d["lead_id"] for d in by_stage["items"]] == [leads["c"]]
    page = (await http.get("/deals", params={"owner": owner, "limit": 4, "offset": 4})).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (6, 4, 4, 2)
    summary = (await http.get("/pipeline", params={"owner": owner})).json()
    stages = (await http.get("/pipeline/stages")).json()
    default = (await http.get("/pipelines/default")).json()
    assert [s["name"] for s in default["stages"]] == [s["name"] for s in stages["stages"]]

    rows = {
        s["stage"]: (s["count"], Decimal(s["value"]), Decimal(s["weighted_value"])) for s in summary["stages"]
    }
    assert [s["stage"] for s in summary["stages"]] == [s["name"] for s in stages["stages"]]
    assert rows == {
        "qualification": (1, Decimal("1000"), Decimal("100.00")),
        "discovery": (1, Decimal("0"), Decimal("0.00")),
        "demo": (0, Decimal("0"), Decimal("0.00")),
        "proposal": (1, Decimal("3000"), Decimal("1800.00")),
        "negotiation": (0, Decimal("0"), Decimal("0.00")),
        "contract": (1, Decimal("8000"), Decimal("7200.00")),
        "won": (1, Decimal("5000.50"), Decimal("5000.50")),
        "lost": (1, Decimal("700"), Decimal("0.00")),
    }
    assert summary["open_count"] == 4
    assert Decimal(summary["open_value"]) == Decimal("12000")
    assert Decimal(summary["open_weighted_value"]) == Decimal("9100.00")
    assert Decimal(summary["won_value"]) == Decimal("5000.50") and summary["won_count"] == 1
    assert summary["currency"] == "EUR"
    # The owner's own token sees the same summary; another rep's sees none of these deals.
    mine = (await http.get("/pipeline", headers=bearer(issuer.token(owner, ["rep"])))).json()
    assert (mine["open_count"], mine["won_count"], mine["stages"]) == (4, 1, summary["stages"])
    other = await http.get("/pipeline", headers=bearer(issuer.token(f"{unique('rep')}@kariz.test", ["rep"])))
    assert (other.json()["open_count"], other.json()["won_count"]) == (0, 0)
    assert [(s["name"], s["probability"], s["forecast_category"]) for s in stages["stages"]][3] == (
        "proposal",
        0.6,
        "best_case",
    )


async def test_a_lead_without_company_name_or_domain_is_dead_lettered_with_the_reason(deals: Running) -> None:
    lead = unique("L")
    nameless = qualified(lead, company="  ", domain=None, budget=Decimal("10"))
    dlq = dead_letter_topic(LeadQualified.topic())
    async with reading(deals.bootstrap, dlq) as reader:
        await publish(deals.bootstrap, from_qualification(nameless, unique("corr")))
        # Other consumers of the topic (leads) may dead-letter the same record for their own reasons.
        [dead] = await reader.wait_for(
            lambda r: r.key == lead and r.headers["dlq_consumer_group"] == deals.group
        )
    assert "name or a domain" in dead.headers["dlq_error"]
    assert dead.headers["dlq_reason"] == "rejected"
    assert await deals.db.deals.count_documents({"lead_id": lead}) == 0
    assert await deals.db.accounts.count_documents({"name": ""}) == 0


async def test_a_merge_in_leads_moves_the_duplicates_deal_to_the_survivor_once(deals: Running) -> None:
    """``LeadsMerged`` through the broker: the duplicate's deal is the survivor's (also redelivered),
    and the duplicate's qualification sent again opens no second deal."""
    db = deals.db
    survivor, duplicate = unique("L"), unique("L")
    await publish(deals.bootstrap, from_qualification(qualified(duplicate), unique("corr")))
    deal = await deal_for(deals.http, duplicate)
    event = LeadsMerged(
        lead_id=survivor,
        merged_lead_id=duplicate,
        owner="rep@kariz.test",
        merged_owner="rep@kariz.test",
        merged_at=datetime.now(UTC),
        actor="maria@kariz.test",
    )
    merge = Envelope(event=event, source="/kariz/leads", correlation_id=unique("corr"))
    await publish(deals.bootstrap, merge)
    await publish(deals.bootstrap, merge)  # redelivery: same ce_id
    moved = await deal_for(deals.http, survivor)
    assert moved["id"] == deal["id"] and moved["stage"] == deal["stage"]
    stored = await db.deals.find_one({"_id": deal["id"]})
    assert stored is not None and (stored["lead_id"], stored["opened_for"]) == (survivor, duplicate)
    again = from_qualification(qualified(duplicate), unique("corr"))
    await publish(deals.bootstrap, again)
    await eventually(lambda: db.processed_events.count_documents({"event_id": again.id}))
    assert await db.deals.count_documents({"opened_for": duplicate}) == 1
    assert await db.deals.count_documents({"lead_id": {"$in": [survivor, duplicate]}}) == 1
    assert await db.lead_merges.find_one({"_id": duplicate}) is not None


async def test_deals_stored_before_merges_get_the_lead_they_were_opened_for(deals: Running) -> None:
    legacy = {"_id": unique("D"), "lead_id": unique("L"), "stage": "qualification"}
    await deals.db.deals.insert_one(legacy)
    store = Store(deals.settings)
    try:
        assert await indexes.backfill_opened_for(store) >= 1
        assert await indexes.backfill_opened_for(store) == 0
        stored = await deals.db.deals.find_one({"_id": legacy["_id"]})
        assert stored is not None and stored["opened_for"] == legacy["lead_id"]
    finally:
        await deals.db.deals.delete_one({"_id": legacy["_id"]})
        await store.close()


class CommandCounter(pymongo.monitoring.CommandListener):
    """The commands a client sent, by name and collection."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str]] = []

    def started(self, event: pymongo.monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self.commands.append((event.command_name, target if isinstance(target, str) else ""))

    def succeeded(self, event: pymongo.monitoring.CommandSucceededEvent) -> None: ...

    def failed(self, event: pymongo.monitoring.CommandFailedEvent) -> None: ...

    def count(self, name: str, collection: str) -> int:
        return self.commands.count((name, collection))


async def test_one_batch_reads_its_deals_and_accounts_once_and_writes_them_together(
    settings_for: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A consumed batch in one transaction: its leads' deals and its companies' accounts are read with
    one query each, the new ones written with one insert each at commit, and an event later in the batch
    still sees what an earlier one opened (one deal per lead, one account per company)."""
    counter = CommandCounter()
    client = store_module.AsyncMongoClient
    monkeypatch.setattr(
        store_module, "AsyncMongoClient", lambda *a, **kw: client(*a, event_listeners=[counter], **kw)
    )
    store = Store(settings_for(DealsSettings, service_name="deals"))
    metrics = RecordingDealsMetrics()
    units = MongoUnitsOfWork(store, SystemClock(), lambda tx, clock: MongoDealsUnitOfWork(tx, clock, metrics))
    on_lead_qualified = kafka.subscriptions(pipeline=DEFAULT_PIPELINE, currency="EUR")[LeadQualified]
    handle = units.handler(on_lead_qualified)
    same, other = unique("L"), unique("L")
    domain = f"{unique('co')}.example"
    nameless = f"Nameless {unique('co')}"
    events = [
        qualified(same, company="Batch Co", domain=domain),
        qualified(other, company="Batch Co Ltd", domain=domain),
        qualified(same, company="Batch Co", domain=domain),  # the same lead again, e.g. re-sent
        *(qualified(unique("L"), company=f"Co {i}", domain=f"{unique('co')}.example") for i in range(5)),
        qualified(unique("L"), company=nameless, domain=None),
        qualified(unique("L"), company=nameless.upper(), domain=None),
    ]
    envelopes = [from_qualification(event, unique("corr")) for event in events]

    async def apply(envelope: Envelope[Any], tx: Transaction) -> None:
        token = correlation_id.set(envelope.correlation_id)
        try:
            await handle(envelope.event, tx)
        finally:
            correlation_id.reset(token)

    try:
        counter.commands.clear()
        assert await handle_once(store, unique("deals"), envelopes, apply) == [True] * len(events)
        # One read of the deals for the batch's leads; one of the accounts by domain, and one more for
        # the domain asked again; one per company without a domain (by its name).
        assert counter.count("find", "deals") == 1
        assert counter.count("find", "accounts") == 1 + 1 + 2
        assert counter.count("insert", "deals") == counter.count("insert", "accounts") == 1
        assert counter.count("insert", pipeline_totals.DELTAS) == 1
        assert counter.count("insert", "outbox") == 1
        assert metrics.opened_count == len(events) - 1

        assert await store.db.accounts.count_documents({"key": f"domain:{domain}"}) == 1
        assert await store.db.deals.count_documents({"lead_id": {"$in": [same, other]}}) == 2
        [first, second] = await store.db.deals.find({"lead_id": {"$in": [same, other]}}).to_list()
        assert first["account"]["id"] == second["account"]["id"]
        no_domain = await store.db.deals.find({"account.domain": None}).to_list()
        assert len(no_domain) == 2 and len({d["account"]["id"] for d in no_domain}) == 1
        assert await store.db.outbox.count_documents({"topic": DealOpened.topic()}) == len(events) - 1
    finally:
        await store.close()


async def counted_over_the_deals(db: Any, owner: str) -> dict[str, tuple[int, Decimal]]:
    """The pipeline as a count over every deal (what the totals must agree with)."""
    cursor = await db.deals.aggregate(
        [
            {"$match": {"owner": owner}},
            {"$group": {"_id": "$stage", "count": {"$sum": 1}, "value": {"$sum": "$amount"}}},
        ]
    )
    return {row["_id"]: (row["count"], Decimal(str(row["value"] or 0))) for row in await cursor.to_list()}


async def pipeline_of(http: httpx.AsyncClient, owner: str) -> dict[str, tuple[int, Decimal]]:
    summary = (await http.get("/pipeline", params={"owner": owner})).json()
    return {s["stage"]: (s["count"], Decimal(s["value"])) for s in summary["stages"] if s["count"]}


async def test_the_pipeline_totals_agree_with_the_deals_through_moves_compactions_and_a_rebuild(
    deals: Running,
) -> None:
    http, owner = deals.http, f"{unique('rep')}@kariz.test"
    leads = [unique("L") for _ in range(4)]
    for i, lead in enumerate(leads):
        event = qualified(
            lead, owner=owner, company=f"Totals {i}", domain=None, budget=Decimal(1000 * (i + 1))
        )
        await publish(deals.bootstrap, from_qualification(event, unique("corr")))
    opened = [(await deal_for(http, lead))["id"] for lead in leads]
    stores = [Store(deals.settings), Store(deals.settings)]
    try:
        # A new amount, a move back, a note only (no change to the totals), a win and a loss.
        moves = [
            (opened[0], {"stage": "proposal", "amount": "4500.25"}),
            (opened[0], {"stage": "discovery", "reason": "the budget holder changed"}),
            (opened[1], {"stage": "won"}),
            (opened[2], {"stage": "lost", "reason": "price: too dear"}),
        ]
        for deal_id, body in moves[:2]:
            assert (await move(http, deal_id, **body)).status_code == 200
        assert await pipeline_of(http, owner) == await counted_over_the_deals(deals.db, owner)

        await pipeline_totals.compact_all(stores[0])
        assert await pipeline_of(http, owner) == await counted_over_the_deals(deals.db, owner)

        for deal_id, body in moves[2:]:
            assert (await move(http, deal_id, **body)).status_code == 200
        # Two replicas folding the same deltas at once: one of them retries, nothing is counted twice.
        await asyncio.gather(*(pipeline_totals.compact_all(store) for store in stores))
        assert await deals.db[pipeline_totals.DELTAS].count_documents({}) == 0
        expected = await counted_over_the_deals(deals.db, owner)
        assert expected == {
            "discovery": (1, Decimal("4500.25")),
            "won": (1, Decimal("2000")),
            "lost": (1, Decimal("3000")),
            "qualification": (1, Decimal("4000")),
        }
        assert await pipeline_of(http, owner) == expected

        # A database of a version before the totals: they are counted once from the deals at start-up.
        await deals.db[pipeline_totals.TOTALS].delete_many({})
        assert await pipeline_totals.build(stores[0], SystemClock()) is True
        assert await pipeline_totals.build(stores[1], SystemClock()) is False
        assert await pipeline_of(http, owner) == expected
    finally:
        for store in stores:
            await store.close()


async def test_an_admin_pipeline_refuses_a_jump_stalls_a_deal_once_and_an_activity_rearms_it(
    deals: Running,
) -> None:
    """Issue E's proof on the real broker and database: a deal routed into an enterprise pipeline cannot
    jump to proposal without amount and close date; past the rot limit (a timer worker on a fake clock)
    DealStalled goes out once, and an ActivityLogged for the deal arms its stall timer again."""
    http, db = deals.http, deals.db
    enterprise = {
        "name": "enterprise",
        "stages": [
            {
                "name": "qualification",
                "probability": "0.1",
                "forecast_category": "pipeline",
                "exit_criteria": {"required": ["amount", "expected_close_date"]},
                "rot_days": 14,
            },
            {"name": "proposal", "probability": "0.6", "forecast_category": "best_case"},
        ],
        "routing": [{"segments": ["enterprise"]}],
    }
    defined = await http.post("/pipelines", json=enterprise)
    assert defined.status_code == 201 and defined.headers["ETag"] == '"1"', defined.text

    lead, corr = unique("L"), unique("corr")
    domain = f"{unique('big')}.example"
    # Five thousand people: the enterprise segment its routing rule names.
    event = qualified(lead, company="Big Iron plc", domain=domain).model_copy(
        update={"company": Company(name="Big Iron plc", domain=domain, size=5000, country="GB")}
    )
    store = Store(deals.settings)
    try:
        async with reading(deals.bootstrap, DealStalled.topic()) as reader:
            await publish(deals.bootstrap, from_qualification(event, corr))
            deal = await deal_for(http, lead)
            assert (deal["pipeline"], deal["stage"]) == ("enterprise", "qualification")

            jump = await move(http, deal["id"], stage="proposal")
            assert jump.status_code == 422
            assert "qualification: amount, expected_close_date" in jump.json()["message"]

            key = f"deal:{deal['id']}:stalled"
            timer = await db.timers.find_one({"_id": key})
            due = timer["due_at"].replace(tzinfo=UTC)
            worker = TimerWorker(store, FakeClock(due + timedelta(seconds=1)), deals.settings)
            while await worker.fire_due() >= worker.batch:
                pass
            [stalled] = await reader.wait_for(lambda r: r.key == deal["id"])
            assert (stalled.body["stage"], stalled.body["rot_days"], stalled.body["owner"]) == (
                "qualification",
                14,
                "rep@kariz.test",
            )
            assert stalled.headers["ce_correlationid"] == corr
            assert await worker.fire_due() == 0  # once

            activity = ActivityLogged(
                activity_id=unique("A"),
                lead_id=lead,
                deal_id=deal["id"],
                owner="rep@kariz.test",
                channel=ActivityChannel.CALL,
                direction=ActivityDirection.OUTBOUND,
                outcome=ActivityOutcome.REACHED,
                reaching=True,
                occurred_at=due + timedelta(hours=1),
                logged_at=due + timedelta(hours=1),
            )
            await publish(
                deals.bootstrap, Envelope(event=activity, source="/kariz/leads", correlation_id=corr)
            )
            rearmed = await eventually(lambda: db.timers.find_one({"_id": key}), timeout=30)
            assert rearmed["due_at"].replace(tzinfo=UTC) == due + timedelta(hours=1, days=14)
            assert await worker.fire_due() == 0
            assert len(reader.of(DealStalled.topic(), deal["id"])) == 1
            # Re-armed: not stalled a day on, stalled again past the new rot limit.
            reads = MongoDealReads(store)
            assert ("enterprise", "qualification") not in await reads.stalled_by_stage(
                due + timedelta(days=1)
            )
            assert (await reads.stalled_by_stage(due + timedelta(days=15)))[
                ("enterprise", "qualification")
            ] == 1

            # With amount and close date filled in, the jump goes; proposal has no rot limit: disarmed.
            edited = await http.patch(
                f"/deals/{deal['id']}", json={"amount": "90000", "expected_close_date": "2026-12-31"}
            )
            assert edited.status_code == 200 and edited.json()["expected_close_date"] == "2026-12-31"
            assert (await move(http, deal["id"], stage="proposal")).status_code == 200
            assert await db.timers.find_one({"_id": key}) is None
    finally:
        await store.close()


async def test_a_discounted_quote_waits_for_the_manager_is_sent_accepted_and_prices_the_deal(
    deals: Running, issuer: LocalIssuer
) -> None:
    http, db = deals.http, deals.db
    lead, corr = unique("L"), unique("corr")
    rep = bearer(issuer.token(QUOTE_REP, ["rep"], team="emea"))
    manager = bearer(issuer.token("quote-manager@kariz.test", ["manager"], team="emea"))
    skus = [unique("SKU").upper() for _ in range(3)]
    for sku, price in zip(skus, ("500.00", "2500.00", "1200.00"), strict=True):
        body = {"name": f"Product {sku}", "unit": "seat", "list_prices": {"EUR": price}}
        assert (await http.put(f"/products/{sku}", json=body)).status_code == 200
    # A second definition replaces the first only over the version it edited.
    redefined = {"name": "Support", "unit": "year", "list_prices": {"EUR": "1100.00"}}
    again = await http.put(f"/products/{skus[2]}", json=redefined, headers={"If-Match": '"1"'})
    assert again.status_code == 200 and again.headers["ETag"] == '"2"'
    assert (
        await http.put(f"/products/{skus[2]}", json=redefined, headers={"If-Match": '"1"'})
    ).status_code == 409
    # The enterprise book prices the seat below its list price; the others at theirs.
    book = unique("enterprise").lower()
    defined = await http.put(f"/price-books/{book}", json={"currency": "EUR", "prices": {skus[0]: "480.00"}})
    assert defined.status_code == 200, defined.text
    assert (await http.get(f"/price-books/{book}", headers=rep)).json()["prices"] == {skus[0]: "480.00"}
    transitions = ("awaiting_approval", "approved"), ("approved", "sent"), ("sent", "accepted")
    before = [
        counted("kariz_deals_quote_transitions_total", from_status=f, to_status=t) for f, t in transitions
    ]

    quote_topics = [cls.topic() for cls in (QuoteApprovalRequested, QuoteSent, QuoteAccepted)]
    async with reading(deals.bootstrap, *quote_topics) as reader:
        await publish(deals.bootstrap, from_qualification(qualified(lead, owner=QUOTE_REP), corr))
        deal_id = (await deal_for(http, lead))["id"]
        lines = [
            {"sku": skus[0], "quantity": "50", "discount_pct": "25", "tax_pct": "19"},
            {"sku": skus[1], "quantity": "1", "tax_pct": "19"},
            {"sku": skus[2], "quantity": "1", "unit_price": "1000.00", "tax_pct": "19"},
        ]
        base = f"/deals/{deal_id}/quotes"
        made = await http.post(base, json={"lines": lines, "price_book": book}, headers=rep)
        assert made.status_code == 201, made.text
        assert (made.json()["status"], made.json()["totals"]["total"]) == ("awaiting_approval", "25585.00")
        assert (await http.post(f"{base}/1/send", headers=rep)).status_code == 409
        approved = await http.post(f"{base}/1/approve", headers=manager)
        assert approved.status_code == 200, approved.text
        assert (await http.post(f"{base}/1/send", headers=rep)).status_code == 200
        accepted = await http.post(f"{base}/1/accept", headers=rep)
        assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"

        for cls in (QuoteApprovalRequested, QuoteSent, QuoteAccepted):
            [record] = await reader.wait_for(lambda r, t=cls.topic(): r.topic == t and r.key == deal_id)
            assert record.headers["ce_correlationid"] == corr and record.body["quote_number"] == 1
            assert Decimal(record.body["total"]) == Decimal("25585.00")
        assert reader.of(QuoteSent.topic(), deal_id)[0].headers["ce_actor"] == QUOTE_REP

    deal = (await http.get(f"/deals/{deal_id}")).json()
    assert Decimal(deal["amount"]) == Decimal("25585.00")
    stored = await db.deals.find_one({"_id": deal_id})
    assert stored["accepted_quote_id"] == made.json()["id"]
    # Accepted: its expiry timer is gone with the change that answered it.
    assert await db.timers.find_one({"_id": f"quote:{made.json()['id']}:expiry"}) is None
    after = [
        counted("kariz_deals_quote_transitions_total", from_status=f, to_status=t) for f, t in transitions
    ]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]

    # The contract: sent by hand, then signed by the provider's signed webhook (no token).
    sent = await http.put(
        f"/deals/{deal_id}/contract", json={"request_id": "env-1", "status": "sent"}, headers=rep
    )
    assert sent.status_code == 200, sent.text
    callback = json.dumps(
        {"deal_id": deal_id, "request_id": "env-1", "status": "signed", "provider": "docusign"}
    )
    signature = e_sign_signature(E_SIGN_SECRET, callback.encode())
    request = http.build_request(
        "POST",
        "/webhooks/e-sign",
        content=callback,
        headers={SIGNATURE_HEADER: signature, "Content-Type": "application/json"},
    )
    del request.headers["Authorization"]  # the provider has no token: its signature is its credential
    signed = await http.send(request)
    assert signed.status_code == 200, signed.text
    assert (await http.get(f"/deals/{deal_id}")).json()["contract_status"] == "signed"
    assert (await db.contracts.find_one({"_id": deal_id}))["status"] == "signed"


async def test_objections_recorded_over_http_and_the_deal_won_move_the_librarys_usage_and_win_rate(
    deals: Running,
) -> None:
    """Objections through HTTP on MongoDB, ``ObjectionRecorded`` on the broker, and the deal's own
    ``DealWon`` consumed back: the library answer given on it counts the win once."""
    http, lead = deals.http, unique("L")
    await publish(
        deals.bootstrap, from_qualification(qualified(lead, budget=Decimal("5000")), unique("corr"))
    )
    deal_id = (await deal_for(http, lead))["id"]
    made = await http.post(
        "/objection-answers",
        json={
            "category": "price",
            "title": unique("Cost of waiting"),
            "text": "Each month without it costs more",
        },
    )
    assert made.status_code == 201, made.text
    answer_id = made.json()["id"]

    async with reading(deals.bootstrap, ObjectionRecorded.topic()) as reader:
        blocking = await http.post(
            f"/deals/{deal_id}/objections",
            json={"category": "price", "words": "Too dear", "status": "blocking", "answer_id": answer_id},
        )
        assert blocking.status_code == 201, blocking.text
        again = await http.post(
            f"/deals/{deal_id}/objections",
            json={"category": "timing", "words": "Next year", "status": "answered", "answer_id": answer_id},
        )
        assert again.status_code == 201, again.text
        [recorded, _] = await reader.wait_for(lambda r: r.key == deal_id, count=2)
    assert recorded.body["objection_id"] == blocking.json()["id"] and recorded.body["answer_id"] == answer_id
    assert (await http.get(f"/deals/{deal_id}")).json()["blocking_objections"] == 1
    resolved = await http.patch(
        f"/deals/{deal_id}/objections/{blocking.json()['id']}", json={"status": "resolved"}
    )
    assert resolved.status_code == 200, resolved.text
    assert [c["changed"] for c in resolved.json()["history"][1:]] == [{"status": "resolved"}]
    assert (await move(http, deal_id, stage="won", amount="5000.00")).status_code == 200

    async def counted_win() -> dict[str, Any] | None:
        view: dict[str, Any] = (await http.get(f"/objection-answers/{answer_id}")).json()
        return view if view["deals_closed"] else None

    view = await eventually(counted_win, timeout=30)
    assert (view["times_used"], view["deals_closed"], view["deals_won"], view["win_rate"]) == (
        2,
        1,
        1,
        "1.000",
    )
    assert counted("kariz_deals_objections_total", category="timing") >= 1
    found = (
        await http.get("/objection-answers", params={"q": view["title"].upper(), "category": "price"})
    ).json()
    assert [a["id"] for a in found["items"]] == [answer_id]


async def test_rfp_upsell_and_an_existing_customers_lead_open_deals_that_follow_their_pipelines(
    deals: Running,
) -> None:
    """Issue E's entry points beyond a qualified lead, on the real broker and database: a won account gets
    an upsell by hand (linked to its won deal) and one from qualification's existing-customer verdict; an
    RFP for it waits for its go before it moves on."""
    http = deals.http
    domain = f"{unique('acct')}.example"
    won_lead = unique("L")
    await publish(deals.bootstrap, from_qualification(qualified(won_lead, domain=domain), unique("corr")))
    won = await deal_for(http, won_lead)
    for stage in ("discovery", "demo", "proposal", "negotiation", "contract", "won"):
        moved = await move(http, won["id"], stage=stage, amount="20000")
        assert moved.status_code == 200, moved.text

    upsell = await http.post(
        "/deals", json={"account_id": won["account"]["id"], "deal_type": "upsell", "amount": "5000"}
    )
    assert upsell.status_code == 201, upsell.text
    assert upsell.json()["linked_deal_ids"] == [won["id"]] and upsell.json()["stage"] == "qualification"

    customer_lead = unique("L")
    verdict = qualified(customer_lead, domain=domain).model_copy(
        update={"existing_customer": True, "account_id": "qualification-account"}
    )
    await publish(deals.bootstrap, from_qualification(verdict, unique("corr")))
    from_verdict = await deal_for(http, customer_lead)
    assert (from_verdict["deal_type"], from_verdict["linked_deal_ids"]) == ("upsell", [won["id"]])
    assert from_verdict["account"]["id"] == won["account"]["id"]

    due = datetime.now(UTC) + timedelta(days=14)
    rfp = await http.post(
        "/deals",
        json={
            "account_id": won["account"]["id"],
            "deal_type": "rfp",
            "rfp": {"issuer": "Procurement", "response_due_at": due.isoformat(), "requirements": ["SSO"]},
        },
    )
    assert rfp.status_code == 201, rfp.text
    rfp_id = rfp.json()["id"]
    refused = await move(http, rfp_id, stage="discovery")
    assert refused.status_code == 422 and "go or no-go" in refused.json()["message"]
    go = await http.post(f"/deals/{rfp_id}/rfp-decision", json={"decision": "go"})
    assert go.status_code == 200, go.text
    assert (await move(http, rfp_id, stage="discovery")).status_code == 200
    # Its reminder and overdue timers are armed in the deals database.
    assert await deals.db.timers.count_documents({"_id": {"$regex": f"^deal:{rfp_id}:rfp"}}) == 2
