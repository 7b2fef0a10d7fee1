"""Content and consent over the in-memory unit of work: the library's routes and who may use them, the
contact projected from the leads' events, a content action skipped without consent (and shown so in
the delivery log and the preview), sent with consent and an unsubscribe link, the unsubscribe route
(good, forged and replayed tokens), a nurture content step, and the default satisfaction check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_notifications.adapters.in_memory import InMemoryNotificationsUnitOfWork
from kariz_notifications.domain.content import ContentDraft, ContentItem
from kariz_notifications.domain.model import Delivery, DeliveryStatus, Email
from kariz_notifications.domain.unsubscribe import UnsubscribeLinks
from kariz_notifications.entrypoints import content_http, kafka, rules_http
from kariz_shared.contracts.events import (
    Company,
    Contact,
    ContactUnsubscribed,
    LeadCaptured,
    LeadsMerged,
    LeadSource,
    NotificationDue,
    NurtureStepDue,
    NurtureStepKind,
    StageChanged,
    TaskKind,
)
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as runtime_http
from kariz_shared.runtime.clock import FakeClock

OWNER = "rep@kariz.test"
OTHER_REP = "someone@kariz.test"
CUSTOMER = "ada@analytical.example"
SECRET = "s" * 40
Units = InMemoryUnitsOfWork[InMemoryNotificationsUnitOfWork]

DEMO_CONTENT: dict[str, Any] = {
    "id": "demo-content",
    "trigger": "StageChanged",
    "conditions": [{"field": "to_stage", "op": "equals", "value": "demo"}],
    "actions": [{"kind": "content", "tags": ["case-study"], "stage_field": "to_stage"}],
}
CASE_STUDY: dict[str, Any] = {
    "id": "acme-case-study",
    "title": "How Acme cut quoting time in half",
    "link": "https://kariz.example/case-studies/acme",
    "stages": ["demo", "proposal"],
    "tags": ["case-study"],
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2025, 3, 14, 9, 0, tzinfo=UTC))


@pytest.fixture
def units(clock: FakeClock) -> Units:
    links = UnsubscribeLinks(SECRET, "https://kariz.example")
    return InMemoryUnitsOfWork(InMemoryNotificationsUnitOfWork(clock, links=links))


@pytest.fixture
async def client(units: Units, issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    runtime_http.install(app, "notifications")
    accepting(app, issuer, teams={"emea": [OWNER]})
    app.include_router(rules_http.router(units))
    app.include_router(content_http.router(units))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kariz.test") as c:
        yield c


def as_(issuer: LocalIssuer, user: str, *roles: str, team: str | None = None) -> dict[str, str]:
    return bearer(issuer.token(user, roles, team=team))


async def consume(units: Units, event: Any, event_id: str) -> list[Delivery]:
    """The deliveries ``event`` recorded (a deferred action's are keyed by its deferral, not its id)."""
    before = set(units.uow.deliveries.stored)
    units.uow.causation_id, units.uow.correlation_id = event_id, f"corr-{event_id}"
    await units.handle(kafka.subscriptions()[type(event)], event)
    return [s.record.delivery for k, s in units.uow.deliveries.stored.items() if k not in before]


def customer_mail(deliveries: list[Delivery]) -> list[Delivery]:
    return [d for d in deliveries if d.to_customer]


def captured(lead_id: str = "L-1", *, consent: bool, email: str = CUSTOMER) -> LeadCaptured:
    return LeadCaptured(
        lead_id=lead_id,
        contact=Contact(first_name="Ada", last_name="Lovelace", email=email),
        company=Company(name="Analytical"),
        source=LeadSource.WEB_FORM,
        consent=consent,
        owner=OWNER,
        assigned_by="round_robin",
        captured_at=datetime(2025, 3, 1, tzinfo=UTC),
    )


def to_demo(lead_id: str = "L-1") -> StageChanged:
    return StageChanged(
        deal_id="D-1",
        lead_id=lead_id,
        owner=OWNER,
        pipeline="new-business",
        from_stage="discovery",
        to_stage="demo",
        direction="forward",
        seconds_in_from_stage=3600,
        changed_at=datetime(2025, 3, 14, 9, 0, tzinfo=UTC),
    )


async def library_with_rule(client: httpx.AsyncClient, issuer: LocalIssuer) -> None:
    admin = as_(issuer, "admin@kariz.test", "admin")
    assert (await client.post("/content", json=CASE_STUDY, headers=admin)).status_code == 201
    assert (await client.post("/rules", json=DEMO_CONTENT, headers=admin)).status_code == 201


async def test_managers_write_the_library_everyone_signed_in_reads_it(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    manager = as_(issuer, "boss@kariz.test", "manager")
    rep = as_(issuer, OWNER, "rep")
    created = await client.post("/content", json=CASE_STUDY, headers=manager)
    assert created.status_code == 201 and created.headers["etag"] == '"1"'
    assert created.json()["created_by"] == "boss@kariz.test"
    assert (await client.post("/content", json={**CASE_STUDY, "id": "x"}, headers=rep)).status_code == 403
    assert (await client.get("/content")).status_code == 401

    listed = (await client.get("/content", params={"tag": "case-study"}, headers=rep)).json()
    assert [c["id"] for c in listed["items"]] == ["acme-case-study"] and listed["total"] == 1
    assert (await client.get("/content", params={"tag": "pricing"}, headers=rep)).json()["total"] == 0

    change = {k: v for k, v in CASE_STUDY.items() if k != "id"} | {"title": "Acme, halved"}
    stale = await client.put("/content/acme-case-study", json=change, headers=manager | {"If-Match": '"0"'})
    assert stale.status_code == 409
    revised = await client.put("/content/acme-case-study", json=change, headers=manager | {"If-Match": '"1"'})
    assert revised.status_code == 200 and revised.json()["title"] == "Acme, halved"
    assert revised.headers["etag"] == '"2"'

    retired = await client.post("/content/acme-case-study/retire", headers=manager)
    assert retired.status_code == 200 and retired.json()["retired"] is True
    assert (await client.get("/content", headers=rep)).json()["total"] == 0
    assert (await client.get("/content", params={"retired": True}, headers=rep)).json()["total"] == 1
    assert (await client.get("/content/nothing-here", headers=rep)).status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"link": None}, "link"),  # neither a link nor an attachment
        ({"attachment": "dms:123"}, "link"),  # both
        ({"link": "ftp://kariz.example/x"}, "link"),
        ({"tags": ["Case Study"]}, "tags"),
        ({"id": "Not An Id"}, "id"),
    ],
)
async def test_a_piece_that_cannot_be_is_a_422_naming_its_field(
    client: httpx.AsyncClient, issuer: LocalIssuer, change: dict[str, Any], field: str
) -> None:
    response = await client.post(
        "/content", json=CASE_STUDY | change, headers=as_(issuer, "admin@kariz.test", "admin")
    )
    assert response.status_code == 422 and field in response.text


async def test_content_without_consent_is_skipped_and_shown_so(
    client: httpx.AsyncClient, issuer: LocalIssuer, units: Units
) -> None:
    await library_with_rule(client, issuer)
    await consume(units, captured(consent=False), "evt-capture")

    [skipped] = customer_mail(await consume(units, to_demo(), "evt-demo"))
    record = units.uow.deliveries.stored[skipped.key].record
    assert (record.status, skipped.skipped, skipped.recipient) == (
        DeliveryStatus.SKIPPED,
        "no_consent",
        CUSTOMER,
    )
    assert record.next_attempt_at is None  # never claimed by a sender
    # A lead notifications has no contact of: skipped too, named by its lead.
    [unknown] = customer_mail(await consume(units, to_demo("L-404"), "evt-demo-2"))
    assert (unknown.skipped, unknown.recipient) == ("no_contact", "lead:L-404")

    preview = await client.post(
        "/rules/demo-content/preview",
        json={"event": to_demo().model_dump(mode="json")},
        headers=as_(issuer, "admin@kariz.test", "admin"),
    )
    [shown] = preview.json()["deliveries"]
    assert shown["skipped"] == "no_consent" and "no consent recorded" in shown["body"]
    assert any("content skipped" in note for note in preview.json()["notes"])


async def test_with_consent_the_piece_goes_with_its_unsubscribe_link_in_both_parts(
    client: httpx.AsyncClient, issuer: LocalIssuer, units: Units
) -> None:
    await library_with_rule(client, issuer)
    await consume(units, captured(consent=True), "evt-capture")
    [sent] = customer_mail(await consume(units, to_demo(), "evt-demo"))
    mail = sent.message
    assert isinstance(mail, Email) and sent.skipped is None and sent.content_id == "acme-case-study"
    assert units.uow.deliveries.stored[sent.key].record.status is DeliveryStatus.PENDING
    assert mail.subject == "How Acme cut quoting time in half" and "Dear Ada Lovelace" in mail.body
    assert mail.unsubscribe is not None and mail.unsubscribe.startswith("https://kariz.example/unsubscribe/")
    assert mail.unsubscribe in mail.body and mail.html is not None and mail.unsubscribe in mail.html
    assert 'href="https://kariz.example/case-studies/acme"' in mail.html


async def test_the_owner_records_consent_and_others_do_not_see_the_contact(
    client: httpx.AsyncClient, issuer: LocalIssuer, units: Units
) -> None:
    await library_with_rule(client, issuer)
    await consume(units, captured(consent=False), "evt-capture")
    other = await client.put(
        "/contacts/L-1/consent", json={"given": True}, headers=as_(issuer, OTHER_REP, "rep")
    )
    assert other.status_code == 404  # a lead out of reach is as an unknown one
    bad = await client.put(
        "/contacts/L-1/consent", json={"given": "perhaps"}, headers=as_(issuer, OWNER, "rep")
    )
    assert bad.status_code == 422 and "given" in bad.text

    given = await client.put(
        "/contacts/L-1/consent", json={"given": True, "locale": "fa-IR"}, headers=as_(issuer, OWNER, "rep")
    )
    body = given.json()
    assert given.status_code == 200 and body["changed"] is True and body["may_receive_content"] is True
    assert (body["consent"]["by"], body["consent"]["at"]) == (OWNER, "2025-03-14T09:00:00Z")
    manager = as_(issuer, "boss@kariz.test", "manager", team="emea")
    assert (await client.get("/contacts/L-1", headers=manager)).json()["locale"] == "fa-IR"

    [sent] = customer_mail(await consume(units, to_demo(), "evt-demo"))
    assert sent.skipped is None and isinstance(sent.message, Email)
    assert sent.message.html is not None and 'dir="rtl"' in sent.message.html  # the contact reads Persian
    assert units.published == []  # a consent given publishes nothing

    withdrawn = await client.put(
        "/contacts/L-1/consent", json={"given": False}, headers=as_(issuer, OWNER, "rep")
    )
    assert withdrawn.json()["may_receive_content"] is False
    [event] = units.published
    assert isinstance(event, ContactUnsubscribed) and (event.lead_id, event.actor) == ("L-1", OWNER)
    [again] = customer_mail(await consume(units, to_demo(), "evt-demo-2"))
    assert again.skipped == "consent_withdrawn"


async def test_the_unsubscribe_link_unsubscribes_once_and_a_forged_one_is_refused(
    client: httpx.AsyncClient, issuer: LocalIssuer, units: Units
) -> None:
    await library_with_rule(client, issuer)
    await consume(units, captured(consent=True), "evt-capture")
    [sent] = customer_mail(await consume(units, to_demo(), "evt-demo"))
    assert isinstance(sent.message, Email) and sent.message.unsubscribe is not None
    path = sent.message.unsubscribe.removeprefix("https://kariz.example")

    page = await client.get(path)  # no bearer: the token is the credential; GET changes nothing
    assert page.status_code == 200 and '<form method="post">' in page.text and units.published == []
    done = await client.post(path)
    assert done.status_code == 200 and "no more e-mails" in done.text
    [event] = units.published
    assert isinstance(event, ContactUnsubscribed)
    assert (event.lead_id, event.email, event.content_id, event.actor) == (
        "L-1",
        CUSTOMER,
        "acme-case-study",
        CUSTOMER,
    )
    assert event.unsubscribed_at == datetime(2025, 3, 14, 9, 0, tzinfo=UTC)

    replayed = await client.post(path)  # the same link again: recorded once, published once
    assert replayed.status_code == 200 and "already" in replayed.text and len(units.published) == 1

    token = path.removeprefix("/unsubscribe/")
    forged = token[:-3] + ("abc" if not token.endswith("abc") else "xyz")
    for wrong in (
        forged,
        "nothing-signed-here",
        UnsubscribeLinks("t" * 40, "x://y").token("L-1", CUSTOMER, None),
    ):
        refused = await client.post(f"/unsubscribe/{wrong}")
        assert refused.status_code == 422 and refused.json()["message"].startswith("token:")
    assert (await client.get(f"/unsubscribe/{forged}")).status_code == 422
    assert len(units.published) == 1

    [after] = customer_mail(await consume(units, to_demo(), "evt-demo-2"))
    assert after.skipped == "unsubscribed"


async def test_a_merged_duplicates_unsubscribe_stands_on_the_survivor(
    client: httpx.AsyncClient, issuer: LocalIssuer, units: Units
) -> None:
    await library_with_rule(client, issuer)
    await consume(units, captured("L-1", consent=True), "evt-1")
    await consume(units, captured("L-2", consent=True, email="ada@other.example"), "evt-2")
    await client.put("/contacts/L-2/consent", json={"given": False}, headers=as_(issuer, OWNER, "rep"))
    merged = LeadsMerged(
        lead_id="L-1", merged_lead_id="L-2", owner=OWNER, merged_owner=OWNER, merged_at=datetime.now(UTC)
    )
    await consume(units, merged, "evt-merge")
    # A deal opened on the duplicate still names it: its contact is the survivor's now.
    [skipped] = customer_mail(await consume(units, to_demo("L-2"), "evt-demo"))
    assert (skipped.recipient, skipped.skipped) == (CUSTOMER, "consent_withdrawn")


def nurture_step(kind: NurtureStepKind, tags: list[str]) -> NurtureStepDue:
    return NurtureStepDue(
        step_id="L-1:warm:1",
        lead_id="L-1",
        owner=OWNER,
        track="warm",
        step=1,
        kind=kind,
        title="A case study",
        task_kind=TaskKind.CALL_BACK if kind is NurtureStepKind.TASK else None,
        content_tags=tags,
        due_at=datetime(2025, 3, 14, 9, 0, tzinfo=UTC),
    )


async def test_a_nurture_content_step_sends_the_piece_with_its_tags_a_task_step_nothing(
    client: httpx.AsyncClient, issuer: LocalIssuer, units: Units
) -> None:
    admin = as_(issuer, "admin@kariz.test", "admin")
    await client.post("/content", json=CASE_STUDY, headers=admin)
    pricing = {
        "id": "pricing-guide",
        "title": "Pricing guide",
        "attachment": "dms:pricing-2025",
        "tags": ["pricing"],
    }
    await client.post("/content", json=pricing, headers=admin)
    await consume(units, captured(consent=True), "evt-capture")

    [sent] = customer_mail(
        await consume(units, nurture_step(NurtureStepKind.CONTENT, ["pricing"]), "evt-step")
    )
    assert (sent.rule, sent.content_id, sent.skipped) == ("nurture-content", "pricing-guide", None)
    assert isinstance(sent.message, Email) and "dms:pricing-2025" in sent.message.body
    assert customer_mail(await consume(units, nurture_step(NurtureStepKind.TASK, []), "evt-task")) == []
    [none] = customer_mail(await consume(units, nurture_step(NurtureStepKind.CONTENT, ["webinar"]), "evt-3"))
    assert none.skipped == "no_content"


async def test_a_won_deal_asks_the_customer_three_days_later_with_consent(
    units: Units, clock: FakeClock
) -> None:
    from kariz_shared.contracts.events import DealWon

    await consume(units, captured(consent=True), "evt-capture")
    won = DealWon(
        deal_id="D-1",
        lead_id="L-1",
        account_id="A-1",
        account_name="Analytical",
        owner=OWNER,
        amount=48000,
        cycle_seconds=86400,
        won_at=clock.now(),
    )
    assert customer_mail(await consume(units, won, "evt-won")) == []  # not yet: a timer
    clock.advance(timedelta(days=3) - timedelta(minutes=1))
    assert await units.fire_due_timers() == []
    clock.advance(timedelta(minutes=1))
    [due] = await units.fire_due_timers()
    assert isinstance(due, NotificationDue) and due.rule_id == "satisfaction-check"
    [asked] = customer_mail(await consume(units, due, "evt-due"))
    assert asked.recipient == CUSTOMER and isinstance(asked.message, Email)
    assert asked.message.subject == "How is your start with us going, Ada Lovelace?"
    assert "for Analytical" in asked.message.body and asked.message.unsubscribe in asked.message.body


async def test_the_satisfaction_check_in_persian_and_skipped_without_consent(
    units: Units, clock: FakeClock
) -> None:
    from kariz_notifications.domain.content import SkipReason

    await consume(units, captured("L-1", consent=True), "evt-1")
    contact = await units.uow.contacts.get("L-1")
    assert contact is not None
    contact.locale = "fa"
    await units.uow.contacts.save(contact)
    await consume(units, captured("L-2", consent=False, email="bob@example.com"), "evt-2")
    for lead in ("L-1", "L-2"):
        due = NotificationDue(
            deferral_id=f"evt-won-{lead}:satisfaction-check:0",
            subject_id="D-1",
            rule_id="satisfaction-check",
            action=0,
            trigger="DealWon",
            trigger_event_id=f"evt-won-{lead}",
            event={
                "deal_id": "D-1",
                "lead_id": lead,
                "account_id": "A-1",
                "account_name": "Analytical",
                "owner": OWNER,
                "amount": "48000",
                "cycle_seconds": 86400,
                "won_at": "2025-03-14T09:00:00Z",
            },
            due_at=clock.now(),
        )
        [mail] = customer_mail(await consume(units, due, f"evt-due-{lead}"))
        if lead == "L-1":
            assert isinstance(mail.message, Email) and mail.message.subject.startswith("Ada Lovelace، شروع")
            assert mail.message.html is not None and 'dir="rtl"' in mail.message.html
        else:
            assert mail.skipped == SkipReason.NO_CONSENT.value


def test_the_unsubscribe_key_is_long_or_absent_and_absent_makes_no_links(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from kariz_notifications.settings import NotificationsSettings

    monkeypatch.delenv("KARIZ_UNSUBSCRIBE_SECRET", raising=False)
    assert NotificationsSettings().unsubscribe_links() is None
    with pytest.raises(ValidationError, match="KARIZ_UNSUBSCRIBE_SECRET must be at least 32 bytes"):
        NotificationsSettings(unsubscribe_secret="short")
    links = NotificationsSettings(
        unsubscribe_secret=SECRET, unsubscribe_base_url="https://k.example/"
    ).unsubscribe_links()
    assert links is not None and links.link("L-1", CUSTOMER, None).startswith(
        "https://k.example/unsubscribe/"
    )
    assert links.read(links.token("L-1", CUSTOMER, "x")).content_id == "x"


async def test_without_the_key_content_is_skipped_and_the_route_refuses(
    issuer: LocalIssuer, clock: FakeClock
) -> None:
    units = InMemoryUnitsOfWork(InMemoryNotificationsUnitOfWork(clock))
    await consume(units, captured(consent=True), "evt-capture")
    [skipped] = customer_mail(await consume(units, nurture_step(NurtureStepKind.CONTENT, []), "evt-step"))
    assert skipped.skipped == "no_content"  # no library piece: found before the missing key
    # With a piece but no key: skipped all the same, never sent without a working link.
    await units.uow.content.add(
        ContentItem.created("guide", ContentDraft("Guide", "https://k.example/g"), "a", clock.now())
    )
    [no_link] = customer_mail(await consume(units, nurture_step(NurtureStepKind.CONTENT, []), "evt-step-2"))
    assert no_link.skipped == "no_unsubscribe_link"
    app = FastAPI()
    runtime_http.install(app, "notifications")
    app.include_router(content_http.router(units))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://kariz.test") as c:
        token = UnsubscribeLinks(SECRET, "x://y").token("L-1", CUSTOMER, None)
        refused = await c.post(f"/unsubscribe/{token}")
        assert refused.status_code == 422 and "KARIZ_UNSUBSCRIBE_SECRET" in refused.text


async def test_a_rule_naming_content_not_in_the_library_is_refused_at_save_time(
    client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    admin = as_(issuer, "admin@kariz.test", "admin")
    named = DEMO_CONTENT | {"actions": [{"kind": "content", "content_id": "acme-case-study"}]}
    refused = await client.post("/rules", json=named, headers=admin)
    assert refused.status_code == 422 and "actions[0].content_id" in refused.text
    no_lead = {"id": "r", "trigger": "QuoteExpired", "actions": [{"kind": "content"}]}
    refused = await client.post("/rules", json=no_lead, headers=admin)
    assert refused.status_code == 422 and "QuoteExpired names no lead" in refused.text
    await client.post("/content", json=CASE_STUDY, headers=admin)
    assert (await client.post("/rules", json=named, headers=admin)).status_code == 201
    shown = (await client.get("/rules/demo-content", headers=admin)).json()
    assert shown["actions"][0]["kind"] == "content" and shown["actions"][0]["content_id"] == "acme-case-study"


def test_content_actions_survive_their_stored_form() -> None:
    from kariz_notifications.adapters.mongo.rule_documents import rule_document, rule_from_document
    from kariz_notifications.domain.automation import default_rule_set

    for rule in default_rule_set():
        assert rule_from_document(rule_document(rule)) == rule
