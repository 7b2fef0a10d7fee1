"""Qualification's verdicts, consumed from Kafka, become the lead's status and stop its response timer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kariz_devkit.testing import Backends, eventually, publish, reading, unique
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import (
    Company,
    Contact,
    LeadDisqualified,
    LeadQualified,
    LeadSource,
    ScoreLine,
    dead_letter_topic,
)

pytestmark = pytest.mark.integration

BREAKDOWN = [ScoreLine(rule="industry", matched="software", points=30)]


def qualified(lead: dict[str, Any], score: int) -> LeadQualified:
    return LeadQualified(
        lead_id=lead["id"],
        owner=lead["owner"],
        contact=Contact(**lead["contact"]),
        company=Company(**lead["company"]),
        source=LeadSource(lead["source"]),
        score=score,
        threshold=60,
        breakdown=BREAKDOWN,
        qualified_at=datetime.now(UTC),
    )


def disqualified(lead_id: str, owner: str, reason: str, score: int) -> LeadDisqualified:
    return LeadDisqualified(
        lead_id=lead_id,
        owner=owner,
        reason=reason,
        score=score,
        breakdown=BREAKDOWN,
        disqualified_at=datetime.now(UTC),
    )


async def test_verdicts_set_status_and_an_unknown_lead_is_dead_lettered(
    leads: Any, lead_body: Any, backends: Backends
) -> None:
    http = leads.http
    good, bad = [(await http.post("/leads", json=lead_body())).json() for _ in range(2)]
    timers = [f"lead:{lead['id']}:response" for lead in (good, bad)]
    assert await leads.db.timers.count_documents({"_id": {"$in": timers}}) == 2
    ghost = unique("L")
    with_verdict = Envelope(
        event=qualified(good, 85), source="/kariz/qualification", correlation_id=good["correlation_id"]
    )
    async with reading(backends.kafka_bootstrap, dead_letter_topic(LeadQualified.topic())) as dlq:
        await publish(backends.kafka_bootstrap, with_verdict)
        await publish(backends.kafka_bootstrap, with_verdict)  # redelivered: applied once
        await publish(
            backends.kafka_bootstrap,
            Envelope(
                event=disqualified(bad["id"], bad["owner"], "no budget this year", 20),
                source="/kariz/qualification",
                correlation_id=bad["correlation_id"],
            ),
        )
        await publish(
            backends.kafka_bootstrap,
            Envelope(
                event=qualified({**good, "id": ghost}, 90), source="/kariz/qualification", correlation_id="c"
            ),
        )

        async def status_of(lead_id: str, status: str) -> dict[str, Any] | None:
            lead: dict[str, Any] = (await http.get(f"/leads/{lead_id}")).json()
            return lead if lead["status"] == status else None

        now_qualified = await eventually(lambda: status_of(good["id"], "qualified"))
        now_disqualified = await eventually(lambda: status_of(bad["id"], "disqualified"))
        [dead] = await dlq.wait_for(lambda r: r.key == ghost)

    assert (now_qualified["score"], now_qualified["disqualification_reason"]) == (85, None)
    assert now_qualified["updated_at"] > good["updated_at"]
    assert (now_disqualified["score"], now_disqualified["disqualification_reason"]) == (
        20,
        "no budget this year",
    )
    # Both left new: their response timers were cancelled with the verdict.
    assert await leads.db.timers.count_documents({"_id": {"$in": timers}}) == 0
    assert "LeadQualified for a lead leads never captured" in dead.headers["dlq_error"]
    assert ghost in dead.headers["dlq_error"]
    assert dead.headers["dlq_reason"] == "rejected"
    assert await leads.db.leads.count_documents({"_id": ghost}) == 0
    marks = await leads.db.processed_events.count_documents({"event_id": with_verdict.id})
    assert marks == 1

    listed = (await http.get("/leads", params={"status": "disqualified", "owner": bad["owner"]})).json()
    assert bad["id"] in [lead["id"] for lead in listed["items"]]
