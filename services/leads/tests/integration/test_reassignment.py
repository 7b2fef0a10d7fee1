"""A manager's reassignment on the real broker and database, through HTTP with tokens: the owner changes,
``LeadReassigned`` is in the outbox with its actor, the history shows it, and the response timer follows
the new owner."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import bearer, eventually, unique
from kariz_shared.contracts.events import (
    LeadReassigned,
    LeadResponseEscalationDue,
    LeadResponseOverdue,
    LeadSource,
)
from kariz_shared.persistence.store import Transaction
from kariz_shared.persistence.unit_of_work import MongoTimers

from .conftest import Leads

pytestmark = pytest.mark.integration

DACH = {"jonas@kariz.example", "lena@kariz.example"}


async def test_a_manager_reassigns_a_lead_of_their_team_and_it_is_recorded(
    leads: Leads, lead_body: Any, issuer: LocalIssuer
) -> None:
    body = lead_body(company={"country": "DE", "industry": unique("reassign")}, priority="high")
    captured = await leads.http.post("/leads", json=body)
    assert captured.status_code == 201, captured.text
    lead = captured.json()
    assert lead["priority"] == "high" and lead["owner"] in DACH
    [other] = DACH - {lead["owner"]}
    path = f"/leads/{lead['id']}/assign"
    manager = bearer(issuer.token("greta@kariz.example", ["manager"], team="dach"))
    rep = bearer(issuer.token(lead["owner"], ["rep"], team="dach"))
    stranger = bearer(issuer.token("max@kariz.example", ["manager"], team="emea"))
    reason = {"reason": "Lena speaks the customer's dialect"}

    refused = await leads.http.post(path, json={"owner": other, **reason}, headers=rep)
    assert refused.status_code == 403, refused.text
    outside = await leads.http.post(path, json={"owner": "alex@kariz.example", **reason}, headers=manager)
    assert outside.status_code == 403, outside.text
    unseen = await leads.http.post(path, json={"owner": other, **reason}, headers=stranger)
    assert unseen.status_code == 404 and unseen.json()["message"] == f"no lead with id {lead['id']!r}"
    assert await leads.db.outbox.count_documents({"key": lead["id"], "topic": LeadReassigned.topic()}) == 0
    # An open follow-up of the old owner's: it goes with the lead.
    due = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    task = await leads.http.post(
        f"/leads/{lead['id']}/follow-ups",
        json={"kind": "call_back", "title": "Call back", "due_at": due},
        headers=manager,
    )
    assert task.status_code == 201, task.text
    assert task.json()["assignee"] == lead["owner"]

    done = await leads.http.post(path, json={"owner": other, **reason}, headers=manager)
    assert done.status_code == 200, done.text
    assert (done.json()["owner"], done.json()["assigned_by"]) == (other, "manual")
    stored = await leads.db.leads.find_one({"_id": lead["id"]})
    assert stored is not None and (stored["owner"], stored["assigned_by"]) == (other, "manual")

    [record] = await leads.db.outbox.find({"key": lead["id"], "topic": LeadReassigned.topic()}).to_list()
    assert record["headers"]["ce_actor"] == "greta@kariz.example"
    event = LeadReassigned.model_validate(json.loads(record["value"]))
    assert (event.from_owner, event.to_owner, event.reason, event.actor) == (
        lead["owner"],
        other,
        reason["reason"],
        "greta@kariz.example",
    )

    history = await leads.http.get(f"/leads/{lead['id']}/history", headers=manager)
    assert history.status_code == 200, history.text
    # Newest first: the follow-up's move, then the lead's.
    kinds = [item["kind"] for item in history.json()["items"]]
    assert kinds[:2] == ["follow_up_reassigned", "reassigned"], kinds
    newest = history.json()["items"][1]
    assert (newest["kind"], newest["by"]) == ("reassigned", "greta@kariz.example")
    assert newest["details"] == {
        "from_owner": lead["owner"],
        "to_owner": other,
        "reason": reason["reason"],
        "assigned_by": "manual",
    }
    # Still unanswered: the response timer now waits on the new owner.
    timer = await leads.db.timers.find_one({"_id": f"lead:{lead['id']}:response"})
    assert timer is not None and timer["topic"] == LeadResponseOverdue.topic()
    assert timer["event"]["owner"] == other
    moved = await leads.http.get(f"/tasks/{task.json()['id']}", headers=manager)
    assert moved.status_code == 200 and moved.json()["assignee"] == other, moved.text
    assert await leads.db.timers.find_one({"_id": f"task:{task.json()['id']}:due", "event.assignee": other})
    # The new owner sees it; the old one no longer does.
    assert (await leads.http.get(f"/leads/{lead['id']}", headers=rep)).status_code == 404


async def test_an_unanswered_lead_is_escalated_to_the_next_rep_through_its_own_timer_event(
    leads: Leads, lead_body: Any
) -> None:
    """The escalation timer's event goes out through the outbox and Kafka and comes back to this
    service's consumer, which reassigns the lead (here armed by hand, already due: the suite's service
    has no escalation setting)."""
    captured = await leads.http.post("/leads", json=lead_body(company={"country": "DE"}))
    assert captured.status_code == 201, captured.text
    lead = captured.json()
    [other] = DACH - {lead["owner"]}
    now = datetime.now(UTC)
    due = LeadResponseEscalationDue(
        lead_id=lead["id"],
        owner=lead["owner"],
        source=LeadSource.WEB_FORM,
        captured_at=datetime.fromisoformat(lead["created_at"]),
        due_at=now,
    )

    async def arm(tx: Transaction) -> None:
        MongoTimers(tx).arm(f"lead:{lead['id']}:response-escalation", now - timedelta(seconds=1), due)

    await leads.service.store.transaction(arm, correlation_id=lead["correlation_id"])

    async def reassigned() -> dict[str, Any] | None:
        doc = await leads.db.leads.find_one({"_id": lead["id"], "owner": other})
        return doc

    stored = await eventually(reassigned, timeout=60)
    assert stored["assigned_by"] == "escalation"
    [record] = await leads.db.outbox.find({"key": lead["id"], "topic": LeadReassigned.topic()}).to_list()
    assert record["headers"]["ce_actor"] == "/kariz/leads", "the service decided by itself"
    assert record["headers"]["ce_correlationid"] == lead["correlation_id"], "the lead's own story"
    event = LeadReassigned.model_validate(json.loads(record["value"]))
    assert (event.from_owner, event.to_owner, event.reason, event.actor) == (
        lead["owner"],
        other,
        "response_sla_escalation",
        None,
    )
    timer = await leads.db.timers.find_one({"_id": f"lead:{lead['id']}:response"})
    assert timer is not None and timer["event"]["owner"] == other
