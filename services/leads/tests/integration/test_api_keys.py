"""Machines capture with API keys an admin issues: a capture key creates leads and nothing else, answers
a repeat capture as it answers a new one (so a form cannot probe who is a lead), captures only for the
source it is bound to, is stored hashed, and is refused once revoked; its events name the key."""

from __future__ import annotations

from typing import Any

import pytest

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import bearer, unique

from .conftest import Leads

pytestmark = pytest.mark.integration


async def test_a_capture_key_creates_leads_and_nothing_else(
    leads: Leads, lead_body: Any, issuer: LocalIssuer
) -> None:
    rep = bearer(issuer.token("alex@kariz.example", ["rep"]))
    assert (
        await leads.http.post("/api-keys", json={"name": "x", "scopes": ["leads:capture"]}, headers=rep)
    ).status_code == 403

    issued = await leads.http.post(
        "/api-keys", json={"name": "website form", "scopes": ["leads:capture"], "source": "web_form"}
    )
    assert issued.status_code == 201, issued.text
    key = issued.json()
    secret = key.pop("key")
    assert secret.startswith("kariz_") and key["created_by"] == "admin@kariz.test"
    stored = await leads.db.api_keys.find_one({"_id": key["id"]})
    assert stored is not None and secret not in str(stored), "only a hash of the secret is kept"
    listed = (await leads.http.get("/api-keys")).json()
    assert key in listed and all("key" not in k for k in listed)

    form = {"X-Api-Key": secret, "Authorization": ""}
    email = f"{unique('form')}@acme.example"
    first = await leads.http.post("/leads", json=lead_body(email), headers=form)
    again = await leads.http.post("/leads", json=lead_body(email), headers=form)
    assert first.status_code == again.status_code == 201
    assert first.json().keys() == again.json().keys() == {"accepted", "correlation_id"}
    doc = await leads.db.leads.find_one({"contact.email": email})
    assert doc is not None and len(doc["touches"]) == 2, "the repeat was recorded as a touch"
    # The capture, then the touch (LeadTouched): both name the key as their actor.
    events = await leads.db.outbox.find({"key": doc["_id"]}).to_list()
    assert sorted(event["topic"] for event in events) == ["kariz.lead-captured.v1", "kariz.lead-touched.v1"]
    assert {event["headers"]["ce_actor"] for event in events} == {f"key:{key['id']}"}

    wrong_source = await leads.http.post("/leads", json=lead_body(source="partner"), headers=form)
    assert wrong_source.status_code == 422 and wrong_source.json()["message"].startswith("source:")
    for method, path in (("GET", "/leads"), ("GET", f"/leads/{doc['_id']}"), ("GET", "/api-keys")):
        assert (await leads.http.request(method, path, headers=form)).status_code == 403, path
    bulk = await leads.http.post("/leads/import", json={"leads": [lead_body()]}, headers=form)
    assert bulk.status_code == 403 and "leads:import" in bulk.json()["message"]

    revoked = await leads.http.delete(f"/api-keys/{key['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_by"] == "admin@kariz.test"
    after = await leads.http.post("/leads", json=lead_body(), headers=form)
    assert after.status_code == 401
    forged = await leads.http.post("/leads", json=lead_body(), headers={**form, "X-Api-Key": secret + "x"})
    assert forged.status_code == 401


async def test_a_key_is_issued_only_for_known_scopes_and_sources(leads: Leads) -> None:
    for body, field in (
        ({"name": "x", "scopes": ["leads:delete"]}, "scopes"),
        ({"name": "x", "scopes": ["leads:capture"], "source": "carrier_pigeon"}, "source"),
        ({"name": "", "scopes": ["leads:capture"]}, "name"),
        ({"name": "x", "scopes": []}, "scopes"),
    ):
        answer = await leads.http.post("/api-keys", json=body)
        assert answer.status_code == 422, body
        assert answer.json()["fields"][0]["field"].startswith(field), answer.json()
    assert (await leads.http.delete("/api-keys/no-such-key")).status_code == 404


async def test_a_keys_changes_name_the_key_and_whom_it_acts_for_in_the_history_and_on_the_wire(
    leads: Leads, lead_body: Any, issuer: LocalIssuer
) -> None:
    issued = await leads.http.post(
        "/api-keys",
        json={"name": "reseller feed", "scopes": ["leads:capture"], "on_behalf_of": "partner:acme"},
    )
    assert issued.status_code == 201 and issued.json()["on_behalf_of"] == "partner:acme"
    key = issued.json()
    rep = "alex@kariz.example"
    email = f"{unique('feed')}@acme.example"
    first = await leads.http.post("/leads", json=lead_body(email), headers=bearer(issuer.token(rep, ["rep"])))
    assert first.status_code in (200, 201), first.text
    again = await leads.http.post(
        "/leads",
        json=lead_body(email, source="partner"),
        headers={"X-Api-Key": key["key"], "Authorization": ""},
    )
    assert again.status_code == 201
    doc = await leads.db.leads.find_one({"contact.email": email})
    assert doc is not None

    history = await leads.http.get(f"/leads/{doc['_id']}/history")
    assert history.status_code == 200, history.text
    page = history.json()
    assert page["total"] == 2
    touched, captured = page["items"]
    assert (touched["kind"], touched["by"], touched["on_behalf_of"]) == (
        "touched",
        f"key:{key['id']}",
        "partner:acme",
    )
    assert touched["details"]["source"] == "partner"
    assert (captured["kind"], captured["by"], captured["on_behalf_of"]) == ("captured", rep, None)
    [event] = await leads.db.outbox.find({"key": doc["_id"], "topic": "kariz.lead-captured.v1"}).to_list()
    assert event["headers"]["ce_actor"] == rep and "ce_onbehalfof" not in event["headers"]
    [touch] = await leads.db.outbox.find({"key": doc["_id"], "topic": "kariz.lead-touched.v1"}).to_list()
    assert touch["headers"]["ce_actor"] == f"key:{key['id']}"

    owner = doc["owner"]
    other = next(r for r in ("alex@kariz.example", "sam@kariz.example", "kim@kariz.example") if r != owner)
    hidden = await leads.http.get(
        f"/leads/{doc['_id']}/history", headers=bearer(issuer.token(other, ["rep"]))
    )
    assert hidden.status_code == 404, "another rep's lead has no history for them"
    mine = await leads.http.get(f"/leads/{doc['_id']}/history", headers=bearer(issuer.token(owner, ["rep"])))
    assert mine.status_code == 200 and mine.json()["total"] == 2
    as_key = await leads.http.get(
        f"/leads/{doc['_id']}/history", headers={"X-Api-Key": key["key"], "Authorization": ""}
    )
    assert as_key.status_code == 403


async def test_a_new_lead_by_a_key_carries_whom_it_acts_for_on_its_event(
    leads: Leads, lead_body: Any
) -> None:
    issued = await leads.http.post(
        "/api-keys", json={"name": "scanner", "scopes": ["leads:capture"], "on_behalf_of": "team:events"}
    )
    key = issued.json()
    email = f"{unique('scan')}@acme.example"
    taken = await leads.http.post(
        "/leads", json=lead_body(email), headers={"X-Api-Key": key["key"], "Authorization": ""}
    )
    assert taken.status_code == 201
    doc = await leads.db.leads.find_one({"contact.email": email})
    assert doc is not None and doc["captured_by"] == f"key:{key['id']}"
    [event] = await leads.db.outbox.find({"key": doc["_id"]}).to_list()
    assert event["headers"]["ce_actor"] == f"key:{key['id']}"
    assert event["headers"]["ce_onbehalfof"] == "team:events"
    assert b'"actor":"key:' + key["id"].encode() in event["value"], "and in the LeadCaptured body"
    plain = await leads.http.post("/api-keys", json={"name": "plain", "scopes": ["leads:capture"]})
    assert plain.json()["on_behalf_of"] == "admin@kariz.test", "a key acts for its issuer unless named"
