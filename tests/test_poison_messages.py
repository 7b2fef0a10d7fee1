"""Poison messages, against the four real services in-process on the real broker and database.

For every topic some service consumes, one partition receives, straight from a producer: a good event,
a value that is not JSON, JSON of the wrong schema, an event of an unknown version, a record without
CloudEvents headers, an event whose handler fails every time, then another good event. Each poison
record must land in ``<topic>.dlq`` once per consuming group, with the right ``dlq_reason``, attempts,
group and origin; both good events must be handled by every group, with their effects in the owning
service's database and API. The handler failure is injected into one service-layer function for one
event id: everything else is the real system.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import murmur2
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

import kariz_deals.service_layer.handlers
import kariz_deals.service_layer.objections
import kariz_deals.service_layer.pipelines
import kariz_deals.service_layer.quotes
import kariz_leads.service_layer.activities
import kariz_leads.service_layer.handlers
import kariz_leads.service_layer.reassignment
import kariz_notifications.service_layer.handlers
import kariz_qualification.service_layer.engagement
import kariz_qualification.service_layer.handlers
import kariz_qualification.service_layer.nurture
import kariz_qualification.service_layer.outcomes
from kariz_deals.bootstrap import build as build_deals
from kariz_deals.settings import DealsSettings
from kariz_devkit.embedded import free_port
from kariz_devkit.testing import Backends, Record, eventually, publish_raw, reading, running, unique
from kariz_leads.bootstrap import build as build_leads
from kariz_leads.settings import LeadsSettings
from kariz_notifications.bootstrap import build as build_notifications
from kariz_notifications.domain.rules import DEFAULT_RULES
from kariz_notifications.settings import NotificationsSettings
from kariz_qualification.bootstrap import build as build_qualification
from kariz_qualification.settings import QualificationSettings
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import (
    ActivityChannel,
    ActivityDirection,
    ActivityLogged,
    ActivityOutcome,
    Company,
    Contact,
    ContactUnsubscribed,
    DealFieldChange,
    DealLost,
    DealOpened,
    DealStalled,
    DealUpdated,
    DealWon,
    DigestDue,
    DigestItem,
    Event,
    FollowUpDue,
    ForecastSnapshotDue,
    LeadCaptured,
    LeadDisqualified,
    LeadEngagementDecayDue,
    LeadQualified,
    LeadQueued,
    LeadReassigned,
    LeadReopened,
    LeadResponseEscalationDue,
    LeadResponseOverdue,
    LeadScored,
    LeadsMerged,
    LeadSource,
    LeadTouched,
    NotificationDue,
    NurtureStepDue,
    NurtureStepKind,
    ObjectionCategory,
    ObjectionRecorded,
    ObjectionStatus,
    QuoteAccepted,
    QuoteApprovalRequested,
    QuoteExpired,
    QuoteSent,
    RepProfile,
    RfpResponseDue,
    ScoreLine,
    StageChanged,
    SubscriptionDebounceDue,
    TaskKind,
    TaskRequested,
    dead_letter_topic,
)
from kariz_shared.persistence.store import Transaction
from kariz_shared.runtime.settings import ServiceSettings
from kariz_shared.service import Service
from kariz_shared.system import source_of

pytestmark = [pytest.mark.integration, pytest.mark.faults]

MAX_ATTEMPTS = 2
# Scores 33 under the default rules (software 20, 10-49 employees 5, web form 8): nurtured, so the real
# qualification service emits no verdict of its own for the leads this test captures.
NURTURED_COMPANY = {"name": "Poison Test GmbH", "industry": "software", "size": 40}
NOW = datetime.now(UTC)


@dataclass
class Running:
    service: Service
    settings: ServiceSettings
    http: httpx.AsyncClient
    db: AsyncDatabase[dict[str, Any]]

    def group(self, cls: type[Event]) -> str:
        return self.settings.consumer_group(cls.kebab_name())


@dataclass
class Poison:
    key: str
    value: bytes
    headers: dict[str, str]
    reason: str
    attempts: int = 1


@dataclass
class Case:
    """One consumed topic: its consumers, the records published to it in order, what must follow."""

    cls: type[Event]
    consumers: list[Running]
    good: list[Envelope[Event]] = field(default_factory=list)
    poison: list[Poison] = field(default_factory=list)

    @property
    def topic(self) -> str:
        return self.cls.topic()


# --- events ----------------------------------------------------------------------------------------


def contact(email: str | None = None) -> Contact:
    return Contact(first_name="Pat", last_name="Poison", email=email or f"{unique('pat')}@poison.example")


def lead_captured(lead_id: str) -> LeadCaptured:
    return LeadCaptured(
        lead_id=lead_id,
        contact=contact(),
        company=Company(**NURTURED_COMPANY),
        source=LeadSource.WEB_FORM,
        owner="rep@kariz.example",
        assigned_by="round_robin",
        captured_at=NOW,
    )


def escalation_due(lead: dict[str, Any]) -> LeadResponseEscalationDue:
    """The leads service's own escalation timer's event, for a lead it captured."""
    return LeadResponseEscalationDue(
        lead_id=lead["id"], owner=lead["owner"], source=LeadSource.WEB_FORM, captured_at=NOW, due_at=NOW
    )


def task_requested(lead: dict[str, Any]) -> TaskRequested:
    """Another service's request for a follow-up on a lead leads captured."""
    return TaskRequested(
        request_id=unique("req"),
        lead_id=lead["id"],
        kind=TaskKind.CALL_BACK,
        title="Call the poison test back",
        due_at=NOW,
        requested_at=NOW,
    )


def lead_qualified(lead_id: str, owner: str = "rep@kariz.example", score: int = 80) -> LeadQualified:
    return LeadQualified(
        lead_id=lead_id,
        owner=owner,
        contact=contact(),
        company=Company(**NURTURED_COMPANY),
        source=LeadSource.WEB_FORM,
        score=score,
        threshold=70,
        breakdown=[ScoreLine(rule="industry", matched="software", points=20)],
        qualified_at=NOW,
    )


def lead_disqualified(
    lead_id: str, owner: str = "rep@kariz.example", reason: str = "no budget"
) -> LeadDisqualified:
    return LeadDisqualified(
        lead_id=lead_id,
        owner=owner,
        reason=reason,
        score=10,
        breakdown=[ScoreLine(rule="industry", matched="other", points=0)],
        disqualified_at=NOW,
    )


def leads_merged(survivor: str) -> LeadsMerged:
    """A merge of two leads neither consumer has seen: each remembers it (order-tolerant), fails nothing."""
    return LeadsMerged(
        lead_id=survivor,
        merged_lead_id=unique("merged"),
        owner="rep@kariz.example",
        merged_owner="rep@kariz.example",
        merged_at=NOW,
        actor="maria@kariz.example",
    )


def activity_logged(lead_id: str) -> ActivityLogged:
    """A call reaching the contact of a lead neither deals nor qualification holds: deals has no deal
    to re-arm, qualification drops the signal; it fails nothing."""
    return ActivityLogged(
        activity_id=unique("A"),
        lead_id=lead_id,
        owner="rep@kariz.example",
        channel=ActivityChannel.CALL,
        direction=ActivityDirection.OUTBOUND,
        outcome=ActivityOutcome.REACHED,
        reaching=True,
        occurred_at=NOW,
        logged_at=NOW,
    )


DEAL = {"lead_id": "L-poison", "owner": "rep@kariz.example"}


def deal_opened(deal_id: str) -> DealOpened:
    return DealOpened(
        deal_id=deal_id,
        **DEAL,
        account_id="A-poison",
        account_name="Poison Test GmbH",
        pipeline="default",
        stage="discovery",
        opened_at=NOW,
    )


def notification_due(deal_id: str) -> NotificationDue:
    """A deferred action of a rule that is not in force: handled (logged), sends nothing."""
    opened = deal_opened(deal_id)
    return NotificationDue(
        deferral_id=unique("deferral"),
        subject_id=deal_id,
        rule_id="no-such-rule",
        action=0,
        trigger="DealOpened",
        trigger_event_id=unique("evt"),
        event=opened.model_dump(mode="json"),
        due_at=NOW,
    )


def digest_due(recipient: str) -> DigestDue:
    """A digest window's end: one e-mail to its recipient."""
    item = DigestItem(
        event_id=unique("evt"), event_type="StageChanged", subject_id="D-1", subject="s", text="t"
    )
    return DigestDue(
        digest_id=unique("digest"),
        recipient=recipient,
        rule_id="setbacks",
        action=0,
        window_started_at=NOW,
        items=[item],
        due_at=NOW,
    )


def debounce_due(subject: str) -> SubscriptionDebounceDue:
    """A debounce window's end for a subscription this service does not have: handled, nothing sent."""
    return SubscriptionDebounceDue(
        debounce_id=unique("debounce"),
        subscription_id="0123456789abcdef",
        subject=subject,
        event_id=unique("evt"),
        event_type="StageChanged",
        body="{}",
        window_started_at=NOW,
        due_at=NOW,
    )


def stage_changed(deal_id: str) -> StageChanged:
    # Back, not forward: only a setback notifies the owner, so the effect is visible.
    return StageChanged(
        deal_id=deal_id,
        **DEAL,
        pipeline="default",
        from_stage="proposal",
        to_stage="demo",
        direction="back",
        seconds_in_from_stage=60.0,
        changed_at=NOW,
    )


def deal_won(deal_id: str) -> DealWon:
    return DealWon(
        deal_id=deal_id,
        **DEAL,
        account_id="A-poison",
        account_name="Poison Test GmbH",
        amount=Decimal("1000"),
        cycle_seconds=3600.0,
        won_at=NOW,
    )


def deal_lost(deal_id: str) -> DealLost:
    return DealLost(
        deal_id=deal_id,
        **DEAL,
        account_id="A-poison",
        account_name="Poison Test GmbH",
        reason="price",
        lost_at_stage="proposal",
        cycle_seconds=3600.0,
        lost_at=NOW,
    )


# Deals' own quote expiry timer, for deals: a quote it does not know is logged and left (processed).
def quote_expired(deal_id: str) -> QuoteExpired:
    return QuoteExpired(
        deal_id=deal_id,
        quote_id=unique("Q"),
        quote_number=1,
        owner="rep@kariz.example",
        valid_until=NOW,
    )


# Deals' and qualification's newer events, which notifications consumes with every public event (a rule
# may name any of them): each is handled, whatever a rule makes of it.
def deal_updated(deal_id: str) -> DealUpdated:
    return DealUpdated(
        deal_id=deal_id,
        **DEAL,
        pipeline="default",
        stage="demo",
        changes=[DealFieldChange(field="next_step", old=None, new="send the proposal")],
        updated_at=NOW,
    )


def deal_stalled(deal_id: str) -> DealStalled:
    return DealStalled(
        deal_id=deal_id,
        **DEAL,
        pipeline="default",
        stage="demo",
        days_in_stage=15.0,
        rot_days=14,
        entered_stage_at=NOW,
        stalled_at=NOW,
    )


def rfp_response_due(deal_id: str) -> RfpResponseDue:
    return RfpResponseDue(
        deal_id=deal_id,
        **DEAL,
        account_id="A-poison",
        account_name="Poison Test GmbH",
        issuer="Poison Test procurement",
        response_due_at=NOW,
        kind="reminder",
    )


# The quoting rep has a manager in the roster: the default rule quote-approval-requested e-mails them.
QUOTE_OWNER = "quoting-rep@kariz.example"
QUOTE = {"quote_number": 1, "owner": QUOTE_OWNER}


def quote_approval_requested(deal_id: str) -> QuoteApprovalRequested:
    return QuoteApprovalRequested(
        deal_id=deal_id,
        quote_id=unique("Q"),
        **QUOTE,
        currency="EUR",
        total=Decimal("900"),
        max_discount_pct=Decimal("25"),
        discount_limit_pct=Decimal("20"),
        requested_at=NOW,
    )


def quote_sent(deal_id: str) -> QuoteSent:
    return QuoteSent(
        deal_id=deal_id,
        quote_id=unique("Q"),
        **QUOTE,
        currency="EUR",
        total=Decimal("900"),
        valid_until=NOW,
        sent_at=NOW,
    )


def quote_accepted(deal_id: str) -> QuoteAccepted:
    return QuoteAccepted(
        deal_id=deal_id, quote_id=unique("Q"), **QUOTE, currency="EUR", total=Decimal("900"), accepted_at=NOW
    )


def objection_recorded(deal_id: str) -> ObjectionRecorded:
    return ObjectionRecorded(
        objection_id=unique("O"),
        deal_id=deal_id,
        **DEAL,
        category=ObjectionCategory.PRICE,
        words="too expensive",
        status=ObjectionStatus.OPEN,
        recorded_at=NOW,
    )


def lead_scored(lead_id: str) -> LeadScored:
    return LeadScored(
        lead_id=lead_id,
        owner="rep@kariz.example",
        fit=40,
        engagement=10,
        total=50,
        band="warm",
        scored_at=NOW,
    )


def lead_reopened(lead_id: str) -> LeadReopened:
    return LeadReopened(
        lead_id=lead_id,
        owner="rep@kariz.example",
        decision_number=2,
        reopened_decision=1,
        reason="asked again",
        reopened_at=NOW,
    )


# The leads service's reminders and alerts, for notifications: each e-mails someone (a queue's team has no
# manager in the roster here, so the sales team hears of it), so the effect is visible.
def follow_up_due(lead_id: str) -> FollowUpDue:
    return FollowUpDue(
        task_id=unique("T"),
        lead_id=lead_id,
        assignee="rep@kariz.example",
        kind=TaskKind.CALL_BACK,
        title="Call the poison test back",
        due_at=NOW,
    )


def response_overdue(lead_id: str) -> LeadResponseOverdue:
    return LeadResponseOverdue(
        lead_id=lead_id, owner="rep@kariz.example", source=LeadSource.WEB_FORM, captured_at=NOW, due_at=NOW
    )


def lead_queued(lead_id: str) -> LeadQueued:
    return LeadQueued(
        lead_id=lead_id, team="poison", queue="queue:poison", reason="nobody available", queued_at=NOW
    )


def lead_reassigned(lead_id: str) -> LeadReassigned:
    return LeadReassigned(
        lead_id=lead_id,
        from_owner="rep@kariz.example",
        to_owner="other@kariz.example",
        reason="manual",
        reassigned_at=NOW,
    )


def engagement_decay_due(lead_id: str) -> LeadEngagementDecayDue:
    """Qualification's own decay timer's event, for a lead it does not hold: nothing to rescore."""
    return LeadEngagementDecayDue(lead_id=lead_id, band="warm", due_at=NOW)


def nurture_step_due(lead_id: str) -> NurtureStepDue:
    return NurtureStepDue(
        step_id=f"{lead_id}:warm-up:0",
        lead_id=lead_id,
        owner="rep@kariz.example",
        track="warm-up",
        step=0,
        kind=NurtureStepKind.TASK,
        title="Call to see where they stand",
        task_kind=TaskKind.CALL_BACK,
        due_at=NOW,
    )


def contact_unsubscribed(lead_id: str) -> ContactUnsubscribed:
    return ContactUnsubscribed(lead_id=lead_id, email="sara@acme.example", unsubscribed_at=NOW)


def forecast_snapshot_due(schedule: str) -> ForecastSnapshotDue:
    """The reports' weekly snapshot timer (a schedule of its own per test run, for the key)."""
    return ForecastSnapshotDue(
        snapshot_id=f"{schedule}:{NOW.isoformat()}", schedule=schedule, time_zone="UTC", due_at=NOW
    )


def lead_touched(lead_id: str) -> LeadTouched:
    """A repeat capture of a lead qualification does not hold: the signal is dropped."""
    return LeadTouched(lead_id=lead_id, source=LeadSource.WEB_FORM, touch_count=2, touched_at=NOW)


def envelope(event: Event) -> Envelope[Event]:
    return Envelope(event=event, source=source_of(type(event)), correlation_id=unique("corr"))


# --- partitions ------------------------------------------------------------------------------------


async def partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()
        return {t: len(consumer.partitions_for_topic(t) or ()) for t in topics}
    finally:
        await consumer.stop()


def partition_of(key: str, partitions: int) -> int:
    """Where the producers' default partitioner (murmur2, as in Kafka's Java client) puts ``key``."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def key_in(partition: int, partitions: int, prefix: str) -> str:
    while True:
        key = unique(prefix)
        if partition_of(key, partitions) == partition:
            return key


# --- the services ----------------------------------------------------------------------------------


def failing_for(event_ids: set[str], real: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """``real``, except that it fails every time for these events: a bug that only some data triggers."""

    async def dependency(uow: Any, *args: Any, **kwargs: Any) -> Any:
        # The handler's unit of work runs in the consumer's transaction, which knows the event it applies.
        tx: Transaction = uow.tx
        if tx.causation_id in event_ids:
            raise RuntimeError(f"injected failure for event {tx.causation_id}")
        return await real(uow, *args, **kwargs)

    return dependency


@contextlib.asynccontextmanager
async def the_four_services(
    backends: Backends, settings_for: Callable[..., Any], token: str
) -> AsyncIterator[dict[str, Running]]:
    tuning = {
        "consumer_max_attempts": MAX_ATTEMPTS,
        "consumer_retry_backoff_s": 0.01,
        "kafka_bootstrap_servers": backends.kafka_bootstrap,
    }
    settings: dict[str, ServiceSettings] = {
        "leads": settings_for(LeadsSettings, service_name="leads", **tuning),
        "qualification": settings_for(QualificationSettings, service_name="qualification", **tuning),
        "deals": settings_for(DealsSettings, service_name="deals", **tuning),
        # Nothing listens on this SMTP port: deliveries are recorded (the effect looked at), sending fails.
        "notifications": settings_for(
            NotificationsSettings,
            service_name="notifications",
            smtp_port=free_port(),
            delivery_max_attempts=1,
            **tuning,
        ),
    }
    builders: dict[str, Callable[[Any], Service]] = {
        "leads": build_leads,
        "qualification": build_qualification,
        "deals": build_deals,
        "notifications": build_notifications,
    }
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(backends.mongodb_uri, tz_aware=True)
    async with contextlib.AsyncExitStack() as stack:
        services = {}
        for name, s in settings.items():
            service = builders[name](s)
            http = await stack.enter_async_context(running(service, token=token))
            services[name] = Running(service, s, http, client[s.database_name])
        yield services
    await client.close()


# --- the records -----------------------------------------------------------------------------------


def poison_records(case: Case, partition: int, partitions: int, fails: Envelope[Event]) -> list[Poison]:
    """The poison of one topic, every key in ``partition``. ``fails`` is the event whose handler fails."""
    topic = case.topic
    key = case.cls.key_field

    def a_key(kind: str) -> str:
        return key_in(partition, partitions, kind)

    def headers_for(k: str, **changes: str) -> dict[str, str]:
        like = envelope(case.good[0].event.model_copy(update={key: k}))
        return {**like.headers(), **changes}

    not_json, wrong, v2, bare = a_key("notjson"), a_key("schema"), a_key("v2"), a_key("bare")
    next_version = topic.rsplit(".v", 1)[0] + ".v2"
    body = case.good[0].event.model_copy(update={key: v2}).model_dump_json().encode()
    return [
        Poison(not_json, b"\x00\x01 this is not JSON {", headers_for(not_json), "not_json"),
        Poison(
            wrong, json.dumps({key: wrong, "colour": "red"}).encode(), headers_for(wrong), "invalid_schema"
        ),
        Poison(v2, body, headers_for(v2, ce_type=next_version), "unknown_version"),
        Poison(
            bare,
            case.good[0].event.model_copy(update={key: bare}).model_dump_json().encode(),
            {},
            "invalid_envelope",
        ),
        Poison(fails.key, fails.value(), fails.headers(), "handler_failed", MAX_ATTEMPTS),
    ]


async def known_leads(leads: Running, count: int, partitions: int) -> list[dict[str, Any]]:
    """``count`` leads captured through the leads API whose ids share one partition of the verdict topics."""
    by_partition: dict[int, list[dict[str, Any]]] = {}
    while True:
        body = {
            "contact": {
                "first_name": "Pat",
                "last_name": "Poison",
                "email": f"{unique('pat')}@poison.example",
            },
            "company": NURTURED_COMPANY,
            "source": "web_form",
        }
        response = await leads.http.post("/leads", json=body)
        assert response.status_code == 201, response.text
        lead = response.json()
        same = by_partition.setdefault(partition_of(lead["id"], partitions), [])
        same.append(lead)
        if len(same) == count:
            return same


async def test_poison_messages_go_to_the_dead_letters_and_the_good_events_around_them_are_handled(
    stack_backends: Backends,
    settings_for: Callable[..., Any],
    admin_token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumed = [
        DealOpened,
        NotificationDue,
        DigestDue,
        SubscriptionDebounceDue,
        LeadCaptured,
        LeadQualified,
        LeadDisqualified,
        LeadResponseEscalationDue,
        TaskRequested,
        LeadsMerged,
        ActivityLogged,
        StageChanged,
        DealWon,
        DealLost,
        FollowUpDue,
        LeadResponseOverdue,
        LeadQueued,
        LeadReassigned,
        QuoteExpired,
        LeadEngagementDecayDue,
        LeadTouched,
        DealUpdated,
        DealStalled,
        RfpResponseDue,
        QuoteApprovalRequested,
        QuoteSent,
        QuoteAccepted,
        ObjectionRecorded,
        LeadScored,
        LeadReopened,
        NurtureStepDue,
        ContactUnsubscribed,
        ForecastSnapshotDue,
    ]
    # A broker of the module's own: on the session's, these new consumer groups would first read every
    # earlier test's records (minutes late in a full run, past every wait below).
    backends = stack_backends
    topics = [cls.topic() for cls in consumed]
    partitions = await partition_counts(backends.kafka_bootstrap, topics)
    assert len(set(partitions.values())) == 1, partitions
    count = partitions[topics[0]]

    async with (
        the_four_services(backends, settings_for, admin_token) as svc,
        reading(backends.kafka_bootstrap, *topics, *map(dead_letter_topic, topics)) as reader,
    ):
        leads, qualification, deals, notifications = (
            svc["leads"],
            svc["qualification"],
            svc["deals"],
            svc["notifications"],
        )
        # As if read from kariz.reps.v1; put here so no other test's services see this rep's manager.
        notifications.service.roster.put(
            RepProfile(
                email=QUOTE_OWNER, team="quotes", manager="quote-manager@kariz.example", updated_at=NOW
            )
        )
        qualified_leads = await known_leads(leads, 2, count)
        disqualified_leads = await known_leads(leads, 2, count)
        escalated_leads = await known_leads(leads, 2, count)
        requested_for = await known_leads(leads, 2, count)
        nurtured_for = await known_leads(leads, 2, count)

        def pair(make: Callable[[str], Event], prefix: str) -> list[Envelope[Event]]:
            first = unique(prefix)
            return [envelope(make(first)), envelope(make(key_in(partition_of(first, count), count, prefix)))]

        cases = [
            # Notifications consumes every public event (a "*" subscriber, a runtime rule may want any).
            Case(DealOpened, [notifications], pair(deal_opened, "D")),
            Case(NotificationDue, [notifications], pair(notification_due, "D")),
            Case(DigestDue, [notifications], pair(digest_due, "rep")),
            Case(SubscriptionDebounceDue, [notifications], pair(debounce_due, "D")),
            Case(LeadCaptured, [qualification, notifications], pair(lead_captured, "L")),
            Case(
                LeadQualified,
                [leads, deals, notifications],
                [
                    envelope(lead_qualified(lead["id"], lead["owner"], 80 + i))
                    for i, lead in enumerate(qualified_leads)
                ],
            ),
            Case(
                LeadDisqualified,
                [leads, notifications],
                [
                    envelope(lead_disqualified(lead["id"], lead["owner"], f"reason {i}"))
                    for i, lead in enumerate(disqualified_leads)
                ],
            ),
            Case(
                LeadResponseEscalationDue,
                [leads, notifications],
                [envelope(escalation_due(lead)) for lead in escalated_leads],
            ),
            Case(TaskRequested, [leads], [envelope(task_requested(lead)) for lead in requested_for]),
            Case(LeadsMerged, [qualification, deals, notifications], pair(leads_merged, "L")),
            Case(ActivityLogged, [qualification, deals, notifications], pair(activity_logged, "L")),
            Case(LeadEngagementDecayDue, [qualification, notifications], pair(engagement_decay_due, "L")),
            Case(LeadTouched, [qualification, notifications], pair(lead_touched, "L")),
            Case(StageChanged, [notifications], pair(stage_changed, "D")),
            Case(DealWon, [qualification, deals, notifications], pair(deal_won, "D")),
            Case(DealLost, [qualification, deals, notifications], pair(deal_lost, "D")),
            Case(FollowUpDue, [notifications], pair(follow_up_due, "L")),
            Case(LeadResponseOverdue, [notifications], pair(response_overdue, "L")),
            Case(LeadQueued, [notifications], pair(lead_queued, "L")),
            Case(LeadReassigned, [notifications], pair(lead_reassigned, "L")),
            Case(QuoteExpired, [deals, notifications], pair(quote_expired, "D")),
            Case(DealUpdated, [notifications], pair(deal_updated, "D")),
            Case(DealStalled, [notifications], pair(deal_stalled, "D")),
            Case(RfpResponseDue, [notifications], pair(rfp_response_due, "D")),
            Case(QuoteApprovalRequested, [notifications], pair(quote_approval_requested, "D")),
            Case(QuoteSent, [notifications], pair(quote_sent, "D")),
            Case(QuoteAccepted, [notifications], pair(quote_accepted, "D")),
            Case(ObjectionRecorded, [notifications], pair(objection_recorded, "D")),
            Case(LeadScored, [notifications], pair(lead_scored, "L")),
            Case(LeadReopened, [notifications], pair(lead_reopened, "L")),
            Case(
                NurtureStepDue,
                [qualification, leads, notifications],
                [envelope(nurture_step_due(lead["id"])) for lead in nurtured_for],
            ),
            Case(ContactUnsubscribed, [qualification, notifications], pair(contact_unsubscribed, "L")),
            # The reports' own snapshot timer; reports runs in none of these four (its consumer is
            # covered by its own tests), so notifications, which hears every event, is the one here.
            Case(ForecastSnapshotDue, [notifications], pair(forecast_snapshot_due, "weekly")),
        ]
        # Every topic some service consumes is here, with every group that consumes it.
        assert {cls for r in svc.values() for cls in r.service.consumes} == set(consumed)
        for case in cases:
            expected = {name for name, r in svc.items() if case.cls in r.service.consumes}
            assert {r.settings.service_name for r in case.consumers} == expected, case.topic

        failing: set[str] = set()
        for case in cases:
            key = case.cls.key_field
            partition = partition_of(case.good[0].key, count)
            assert partition_of(case.good[1].key, count) == partition
            fails = envelope(case.good[0].event.model_copy(update={key: key_in(partition, count, "fails")}))
            failing.add(fails.id)
            case.poison = poison_records(case, partition, count, fails)

        # One service-layer function of each consumer fails every time for these events, and only them.
        for module, name in [
            (kariz_qualification.service_layer.handlers, "capture_lead"),
            (kariz_leads.service_layer.handlers, "record_qualified"),
            (kariz_leads.service_layer.handlers, "record_disqualified"),
            (kariz_leads.service_layer.reassignment, "escalate_unanswered_lead"),
            (kariz_leads.service_layer.activities, "record_task_requested"),
            (kariz_leads.service_layer.activities, "record_nurture_task"),
            (kariz_qualification.service_layer.nurture, "take_nurture_step"),
            (kariz_qualification.service_layer.nurture, "stop_nurture_on_unsubscribe"),
            (kariz_deals.service_layer.handlers, "open_deal_for"),
            (kariz_qualification.service_layer.handlers, "follow_merge"),
            (kariz_qualification.service_layer.engagement, "engage_on_activity"),
            (kariz_qualification.service_layer.engagement, "fade_engagement"),
            (kariz_qualification.service_layer.engagement, "engage_on_touch"),
            (kariz_qualification.service_layer.handlers, "record_won_account"),
            (kariz_qualification.service_layer.outcomes, "count_lost"),
            (kariz_deals.service_layer.handlers, "follow_merge"),
            (kariz_deals.service_layer.pipelines, "activity_logged"),
            (kariz_deals.service_layer.quotes, "expire_quote"),
            (kariz_deals.service_layer.objections, "count_outcome"),
            (kariz_notifications.service_layer.handlers, "record_notifications"),
            (kariz_notifications.service_layer.handlers, "record_due_action"),
            (kariz_notifications.service_layer.handlers, "send_digest"),
            (kariz_notifications.service_layer.handlers, "deliver_debounced"),
        ]:
            monkeypatch.setattr(module, name, failing_for(failing, getattr(module, name)))

        for case in cases:
            first, last = case.good
            await publish_raw(
                backends.kafka_bootstrap, case.topic, first.key.encode(), first.value(), first.headers()
            )
            for p in case.poison:
                await publish_raw(backends.kafka_bootstrap, case.topic, p.key.encode(), p.value, p.headers)
            await publish_raw(
                backends.kafka_bootstrap, case.topic, last.key.encode(), last.value(), last.headers()
            )

        # Both good events of every topic are handled by every consuming group: past the poison between them.
        for case in cases:
            for consumer in case.consumers:
                for good in case.good:
                    marker = f"{consumer.group(case.cls)}:{good.id}"
                    await eventually(
                        lambda db=consumer.db, m=marker: db.processed_events.find_one({"_id": m})
                    )

        # Each poison record is dead-lettered once by each consuming group, with why and from where.
        for case in cases:
            dlq = dead_letter_topic(case.topic)
            for p in case.poison:
                [original] = await reader.wait_for(
                    lambda r, t=case.topic, k=p.key: r.topic == t and r.key == k
                )
                dead = await reader.wait_for(
                    lambda r, k=p.key, t=dlq, c=case: r.topic == t and r.key == k and _ours(r, c),
                    count=len(case.consumers),
                )
                assert sorted(r.headers["dlq_consumer_group"] for r in dead) == sorted(
                    c.group(case.cls) for c in case.consumers
                )
                for r in dead:
                    where = f"{p.reason} on {case.topic} by {r.headers['dlq_consumer_group']}"
                    assert r.headers["dlq_reason"] == p.reason, (where, r.headers["dlq_error"])
                    assert r.headers["dlq_attempts"] == str(p.attempts), where
                    assert r.headers["dlq_original_topic"] == case.topic
                    assert (r.headers["dlq_original_partition"], r.headers["dlq_original_offset"]) == (
                        str(original.partition),
                        str(original.offset),
                    )
                    assert r.value == p.value, where
                    if p.reason == "handler_failed":
                        assert "RuntimeError: injected failure for event" in r.headers["dlq_error"]

        # The good events' effects, in each owning service.
        captured = next(c for c in cases if c.cls is LeadCaptured).good
        for env in captured:
            response = await qualification.http.get(f"/leads/{env.key}/qualification")
            assert (response.status_code, response.json()["status"]) == (200, "nurture")
        for i, lead in enumerate(qualified_leads):
            got = (await leads.http.get(f"/leads/{lead['id']}")).json()
            assert (got["status"], got["score"]) == ("qualified", 80 + i)
            found = (await deals.http.get("/deals", params={"lead_id": lead["id"]})).json()
            assert found["total"] == 1
        for i, lead in enumerate(disqualified_leads):
            got = (await leads.http.get(f"/leads/{lead['id']}")).json()
            assert (got["status"], got["disqualification_reason"]) == ("disqualified", f"reason {i}")
        for lead in escalated_leads:
            got = (await leads.http.get(f"/leads/{lead['id']}")).json()
            assert (got["owner"] != lead["owner"], got["assigned_by"]) == (True, "escalation"), got
        for env in next(c for c in cases if c.cls is TaskRequested).good:
            request = env.event
            assert isinstance(request, TaskRequested)
            task = (await leads.http.get(f"/tasks/{request.request_id}")).json()
            assert (task["lead_id"], task["status"]) == (request.lead_id, "open"), task
        for env in next(c for c in cases if c.cls is LeadsMerged).good:
            merge = env.event
            assert isinstance(merge, LeadsMerged)
            for consumer in (qualification, deals):
                remembered = await consumer.db.lead_merges.find_one({"_id": merge.merged_lead_id})
                assert remembered is not None and remembered["survivor"] == merge.lead_id
        # The events the default rules e-mail about (the others it consumes send nothing by default).
        mailed = {rule.trigger for rule in DEFAULT_RULES}
        for case in [c for c in cases if any(r is notifications for r in c.consumers) and c.cls in mailed]:
            for env in case.good:
                listed = (await notifications.http.get("/notifications", params={"subject": env.key})).json()
                assert {n["event_id"] for n in listed["items"]} == {env.id}, (case.topic, listed)

        # The handler that always fails was tried exactly the bounded number of times, then given up.
        for case in cases:
            fails = case.poison[-1]
            for consumer in case.consumers:
                marker = f"{consumer.group(case.cls)}:{fails.headers['ce_id']}"
                assert await consumer.db.processed_events.find_one({"_id": marker}) is None


def _ours(record: Record, case: Case) -> bool:
    """Dead-lettered by this test's services: other tests' services may still read the same topics."""
    return record.headers.get("dlq_consumer_group") in {c.group(case.cls) for c in case.consumers}
