"""The raw ceiling's run on the session's real broker and database: every qualified lead reaches the
final reader and every write the docstring's table promises is in the databases afterwards."""

from __future__ import annotations

from typing import Any

import pytest
from kariz_bench.raw import OUTBOX, PROCESSED_EVENTS, run_raw
from pymongo import AsyncMongoClient

from kariz_devkit.testing import Backends

pytestmark = pytest.mark.integration

LEADS = 300
QUALIFIED = 240  # 0.8 of 300, spread evenly: the nurtured rest stop after qualification


async def test_every_lead_goes_from_capture_to_deal_opened_with_its_writes(backends: Backends) -> None:
    # Batches of 100: several transactions per stage, so batching across records is exercised too.
    result = await run_raw(
        backends.kafka_bootstrap,
        backends.mongodb_uri,
        LEADS,
        batch=100,
        qualify_share=0.8,
        enable_idempotence=backends.kafka_idempotence,
    )
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(backends.mongodb_uri)
    try:
        db = {service: client[name] for service, name in result.databases.items()}
        assert result.leads == LEADS
        assert result.deals_opened == QUALIFIED
        assert result.elapsed_s > 0
        topics = result.topics
        assert result.produced == {
            topics["lead-captured"]: LEADS,
            topics["lead-qualified"]: QUALIFIED,
            topics["deal-opened"]: QUALIFIED,
        }
        # Qualification, and the reports' LeadCaptured group, read every lead; the other groups the qualified.
        assert sorted(result.consumed.values()) == [QUALIFIED] * 6 + [LEADS] * 2

        leads = db["leads"]["leads"]
        assert await leads.count_documents({}) == LEADS
        assert await leads.count_documents({"status": "qualified"}) == QUALIFIED
        assert (await db["leads"]["assignment_turns"].find_one({}) or {}).get("taken") == LEADS
        assert await db["qualification"]["leads"].count_documents({}) == LEADS
        assert await db["qualification"]["leads"].count_documents({"status": "nurture"}) == LEADS - QUALIFIED
        assert await db["deals"]["deals"].count_documents({}) == QUALIFIED
        assert await db["deals"]["accounts"].count_documents({}) == QUALIFIED
        deal_leads = await db["deals"]["deals"].distinct("lead_id")
        qualified_leads = await leads.distinct("_id", {"status": "qualified"})
        assert sorted(deal_leads) == sorted(qualified_leads)
        assert await db["notifications"]["deliveries"].count_documents({"status": "sent"}) == QUALIFIED

        # One marker per consumed event, and every outbox document published.
        for service, markers in (("qualification", LEADS), ("deals", QUALIFIED), ("leads", QUALIFIED)):
            assert await db[service][PROCESSED_EVENTS].count_documents({}) == markers, service
        assert await db["notifications"][PROCESSED_EVENTS].count_documents({}) == QUALIFIED
        assert await db["reports"][PROCESSED_EVENTS].count_documents({}) == LEADS + 2 * QUALIFIED
        figures = db["reports"]["g1_figures"]
        for metric, count in (("captured", LEADS), ("qualified", QUALIFIED), ("deal_opened", QUALIFIED)):
            rows = await figures.find({"_id": {"$regex": rf"^[0-9-]+\|{metric}\|\*\|all\|all$"}}).to_list()
            assert sum(r["count"] for r in rows) == count, metric
        for service, events in (("leads", LEADS), ("qualification", QUALIFIED), ("deals", QUALIFIED)):
            assert await db[service][OUTBOX].count_documents({"published_at": {"$ne": None}}) == events
            assert await db[service][OUTBOX].count_documents({"published_at": None}) == 0
    finally:
        for name in result.databases.values():
            await client.drop_database(name)
        await client.close()
