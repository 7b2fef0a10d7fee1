"""Schema evolution: every event version's JSON Schema is committed in docs/events/, the current models
keep those contracts, the checker catches each kind of breaking change, and consumers ignore fields they
do not know. After changing an event: `make asyncapi`, and if a test here fails, make a new version."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, get_origin

import pytest
from jsonschema import Draft202012Validator
from pydantic import create_model

from kariz_shared.contracts.compatibility import (
    ContractBroken,
    breaking_changes,
    committed_schemas,
    event_schema,
    render,
    schema_file,
    write_event_schemas,
)
from kariz_shared.contracts.envelope import Envelope, decode
from kariz_shared.contracts.events import (
    EVENTS,
    EVENTS_BY_TOPIC,
    ActivityChannel,
    ActivityDirection,
    ActivityLogged,
    ActivityOutcome,
    BantAnswers,
    ChecklistAnswer,
    ChecklistCompleteness,
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
    LeadPriority,
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
    ObjectionJudgement,
    ObjectionRecorded,
    ObjectionStatus,
    QualificationChecklist,
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
)

EVENTS_DIR = Path(__file__).resolve().parents[2] / "docs" / "events"
NOW = datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)


def examples() -> dict[str, Event]:
    """One event of every type, every optional field set, as producers write them. Built when a test
    asks, so a model change that breaks them fails those tests, not the whole module."""
    contact = Contact(
        first_name="Grace", last_name="Hopper", email="grace@globex.example", phone="+49 30 1234", title="VP"
    )
    company = Company(name="Globex", domain="globex.example", industry="software", size=450, country="DE")
    breakdown = [ScoreLine(rule="industry", matched="software", points=20)]
    answers = BantAnswers(
        budget="confirmed",
        budget_amount=Decimal("30000.00"),
        authority="decision_maker",
        decision_maker="Grace Hopper",
        need="confirmed",
        pain="manual quoting",
        timeline="within_3_months",
        notes="call again in May",
    )
    checklist = QualificationChecklist(
        methodology="meddic",
        answers=[
            ChecklistAnswer(
                item="economic_buyer",
                kind="person",
                value="Grace Hopper",
                title="CFO",
                answered_by="rep@kariz.example",
                answered_at=NOW,
            ),
            ChecklistAnswer(
                item="budget",
                kind="amount",
                amount=Decimal("30000.00"),
                currency="EUR",
                answered_by="rep@kariz.example",
                answered_at=NOW,
            ),
        ],
        completeness=ChecklistCompleteness(
            answered=2,
            items=7,
            required=4,
            required_answered=1,
            missing=["metrics", "identify_pain", "champion"],
        ),
    )
    deal = {"deal_id": "D-1", "lead_id": "L-1", "owner": "rep@kariz.example"}
    quote = {"deal_id": "D-1", "quote_id": "Q-1", "quote_number": 1, "owner": "rep@kariz.example"}

    return {
        "LeadCaptured": LeadCaptured(
            lead_id="L-1",
            contact=contact,
            company=company,
            source=LeadSource.REFERRAL,
            campaign="customer-referrals",
            consent=True,
            owner="rep@kariz.example",
            assigned_by="territory",
            captured_at=NOW,
            actor="rep@kariz.example",
            priority=LeadPriority.HIGH,
        ),
        "LeadResponseOverdue": LeadResponseOverdue(
            lead_id="L-1",
            owner="rep@kariz.example",
            source=LeadSource.WEB_FORM,
            captured_at=NOW,
            due_at=NOW,
        ),
        "LeadResponseEscalationDue": LeadResponseEscalationDue(
            lead_id="L-1",
            owner="rep@kariz.example",
            source=LeadSource.WEB_FORM,
            captured_at=NOW,
            due_at=NOW,
        ),
        "ActivityLogged": ActivityLogged(
            activity_id="A-1",
            lead_id="L-1",
            deal_id="D-1",
            owner="rep@kariz.example",
            channel=ActivityChannel.CALL,
            direction=ActivityDirection.OUTBOUND,
            outcome=ActivityOutcome.REACHED,
            reaching=True,
            duration_s=600,
            note="spoke with Grace",
            agreed="a demo next week",
            occurred_at=NOW,
            logged_at=NOW,
            actor="rep@kariz.example",
        ),
        "FollowUpDue": FollowUpDue(
            task_id="T-1",
            lead_id="L-1",
            deal_id="D-1",
            assignee="rep@kariz.example",
            kind=TaskKind.CALL_BACK,
            title="Call back",
            due_at=NOW,
        ),
        "TaskRequested": TaskRequested(
            request_id="R-1",
            lead_id="L-1",
            deal_id="D-1",
            assignee="rep@kariz.example",
            kind=TaskKind.CALL_BACK,
            title="Call back",
            due_at=NOW,
            note="from the automation",
            requested_at=NOW,
        ),
        "LeadReassigned": LeadReassigned(
            lead_id="L-1",
            from_owner="rep@kariz.example",
            to_owner="other@kariz.example",
            reason="holiday cover",
            reassigned_at=NOW,
            actor="manager@kariz.example",
        ),
        "LeadQueued": LeadQueued(
            lead_id="L-1",
            team="emea",
            queue="queue:emea",
            rule="DACH enterprise",
            reason="every rep of emea is away or at capacity",
            queued_at=NOW,
        ),
        "LeadsMerged": LeadsMerged(
            lead_id="L-1",
            merged_lead_id="L-2",
            owner="rep@kariz.example",
            merged_owner="other@kariz.example",
            merged_at=NOW,
            actor="manager@kariz.example",
        ),
        "RepProfile": RepProfile(
            email="rep@kariz.example",
            name="Robin Rep",
            team="emea",
            manager="manager@kariz.example",
            time_zone="Europe/Berlin",
            locale="de",
            active=True,
            capacity=40,
            weight=2,
            away_until=NOW,
            updated_at=NOW,
            actor="admin@kariz.example",
        ),
        "LeadQualified": LeadQualified(
            lead_id="L-1",
            owner="rep@kariz.example",
            contact=contact,
            company=company,
            source=LeadSource.WEB_FORM,
            score=85,
            threshold=70,
            breakdown=breakdown,
            answers=answers,
            checklist=checklist,
            budget_amount=Decimal("30000.00"),
            budget_currency="EUR",
            qualified_at=NOW,
        ),
        "LeadDisqualified": LeadDisqualified(
            lead_id="L-1",
            owner="rep@kariz.example",
            reason="no budget",
            score=10,
            breakdown=breakdown,
            answers=answers,
            checklist=checklist,
            disqualified_at=NOW,
        ),
        "DealOpened": DealOpened(
            **deal,
            account_id="A-1",
            account_name="Globex",
            pipeline="default",
            stage="qualification",
            amount=Decimal("48000.00"),
            currency="EUR",
            opened_at=NOW,
        ),
        "StageChanged": StageChanged(
            **deal,
            pipeline="default",
            from_stage="demo",
            to_stage="proposal",
            direction="forward",
            seconds_in_from_stage=3600.5,
            amount=Decimal("48000.00"),
            note="pricing sent",
            changed_at=NOW,
        ),
        "DealWon": DealWon(
            **deal,
            account_id="A-1",
            account_name="Globex",
            amount=Decimal("48000.00"),
            cycle_seconds=86400.0,
            won_at=NOW,
        ),
        "DealLost": DealLost(
            **deal,
            account_id="A-1",
            account_name="Globex",
            reason="price",
            lost_at_stage="negotiation",
            amount=Decimal("48000.00"),
            cycle_seconds=86400.0,
            lost_at=NOW,
        ),
        "QuoteApprovalRequested": QuoteApprovalRequested(
            **quote,
            manager="maria@kariz.example",
            currency="EUR",
            total=Decimal("25585.00"),
            max_discount_pct=Decimal("25"),
            discount_limit_pct=Decimal("20"),
            requested_at=NOW,
            actor="alex@kariz.example",
        ),
        "QuoteSent": QuoteSent(
            **quote,
            currency="EUR",
            total=Decimal("25585.00"),
            valid_until=NOW,
            sent_at=NOW,
            actor="alex@kariz.example",
        ),
        "QuoteAccepted": QuoteAccepted(
            **quote, currency="EUR", total=Decimal("25585.00"), accepted_at=NOW, actor="alex@kariz.example"
        ),
        "QuoteExpired": QuoteExpired(**quote, valid_until=NOW),
        "DealUpdated": DealUpdated(
            deal_id="D-1",
            lead_id="L-1",
            owner="alex@kariz.example",
            pipeline="default",
            stage="demo",
            changes=[DealFieldChange(field="amount", old="40000.00", new="48000.00")],
            amount=Decimal("48000.00"),
            updated_at=NOW,
            actor="alex@kariz.example",
        ),
        "DealStalled": DealStalled(
            deal_id="D-1",
            lead_id="L-1",
            owner="alex@kariz.example",
            pipeline="enterprise",
            stage="demo",
            days_in_stage=14.5,
            rot_days=14,
            amount=Decimal("48000.00"),
            entered_stage_at=NOW,
            stalled_at=NOW,
        ),
        "RfpResponseDue": RfpResponseDue(
            deal_id="D-1",
            lead_id="L-1",
            owner="alex@kariz.example",
            account_id="A-1",
            account_name="Globex",
            issuer="Globex procurement",
            response_due_at=NOW,
            kind="reminder",
        ),
        "LeadTouched": LeadTouched(
            lead_id="L-1", source=LeadSource.WEB_FORM, campaign="spring", touch_count=2, touched_at=NOW
        ),
        "LeadScored": LeadScored(
            lead_id="L-1",
            owner="rep@kariz.example",
            fit=45,
            engagement=30,
            total=75,
            band="hot",
            previous_band="warm",
            breakdown=[ScoreLine(rule="engagement.webinar_attended", matched="webinar_attended", points=30)],
            scored_at=NOW,
        ),
        "LeadEngagementDecayDue": LeadEngagementDecayDue(lead_id="L-1", band="warm", due_at=NOW),
        "LeadReopened": LeadReopened(
            lead_id="L-1",
            owner="rep@kariz.example",
            decision_number=3,
            reopened_decision=2,
            reason="asked for a demo again",
            reopened_at=NOW,
            actor="maria@kariz.example",
        ),
        "NotificationDue": NotificationDue(
            deferral_id="E-1:satisfaction-check:0",
            subject_id="D-1",
            rule_id="satisfaction-check",
            action=0,
            trigger="DealWon",
            trigger_event_id="E-1",
            event={"deal_id": "D-1", "owner": "rep@kariz.example"},
            due_at=NOW,
        ),
        "NurtureStepDue": NurtureStepDue(
            step_id="L-1:warm-up:0",
            lead_id="L-1",
            owner="rep@kariz.example",
            track="warm-up",
            step=0,
            kind=NurtureStepKind.CONTENT,
            title="Case study for manufacturing",
            content_tags=["case-study", "manufacturing"],
            due_at=NOW,
        ),
        "ContactUnsubscribed": ContactUnsubscribed(
            lead_id="L-1",
            email="sara@acme.example",
            content_id="C-1",
            unsubscribed_at=NOW,
        ),
        "DigestDue": DigestDue(
            digest_id="deal-stalled:0:maria@kariz.example:2026-01-01T00:00:00Z",
            recipient="maria@kariz.example",
            rule_id="deal-stalled",
            action=0,
            window_started_at=NOW,
            items=[
                DigestItem(
                    event_id="E-1",
                    event_type="DealStalled",
                    subject_id="D-1",
                    subject="Deal stalled: D-1 in demo for 15 days",
                    text="Deal D-1 has sat in demo for 15 days.",
                )
            ],
            due_at=NOW,
        ),
        "ForecastSnapshotDue": ForecastSnapshotDue(
            snapshot_id="weekly:2026-01-05T00:00:00+00:00",
            schedule="weekly",
            time_zone="Europe/Berlin",
            due_at=NOW,
        ),
        "SubscriptionDebounceDue": SubscriptionDebounceDue(
            debounce_id="0123456789abcdef:D-1:2026-01-01T00:00:00+00:00",
            subscription_id="0123456789abcdef",
            subject="D-1",
            event_id="E-3",
            event_type="StageChanged",
            body='{"id":"E-3","type":"kariz.stage-changed.v1","subject":"D-1","data":{}}',
            collapsed=2,
            window_started_at=NOW,
            due_at=NOW,
        ),
        "ObjectionRecorded": ObjectionRecorded(
            objection_id="O-1",
            deal_id="D-1",
            lead_id="L-1",
            owner="alex@kariz.example",
            category=ObjectionCategory.PRICE,
            words="Your competitor is 20 % cheaper",
            judgement=ObjectionJudgement.REAL,
            status=ObjectionStatus.ANSWERED,
            answer_text="Our price includes onboarding and support for the first year",
            recorded_at=NOW,
            actor="alex@kariz.example",
        ),
    }


def committed(cls: type[Event]) -> dict[str, Any]:
    path = schema_file(EVENTS_DIR, cls.topic())
    assert path.exists(), f"{path} is missing: run `make asyncapi`"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


# --- the committed contracts -------------------------------------------------------------------------


@pytest.mark.parametrize("cls", EVENTS.values(), ids=EVENTS.keys())
def test_the_current_model_keeps_its_committed_contract(cls: type[Event]) -> None:
    problems = breaking_changes(committed(cls), event_schema(cls))
    assert not problems, (
        f"{cls.__name__} breaks the committed {cls.topic()}: "
        + "; ".join(map(str, problems))
        + ". A breaking change is a new version: a new model with version = 2 (a new topic), v1 stays."
    )


@pytest.mark.parametrize("cls", EVENTS.values(), ids=EVENTS.keys())
def test_committed_schema_is_current(cls: type[Event]) -> None:
    assert schema_file(EVENTS_DIR, cls.topic()).read_text() == render(event_schema(cls)), (
        f"docs/events/{cls.topic()}.schema.json is stale: run `make asyncapi`"
    )


def test_every_committed_schema_still_has_its_model_and_topic() -> None:
    # A new version is a new model and topic next to the old one: v1 stays while consumers move.
    orphans = sorted(set(committed_schemas(EVENTS_DIR)) - set(EVENTS_BY_TOPIC))
    assert not orphans, f"committed schemas without a model (keep the old version's model): {orphans}"


@pytest.mark.parametrize("name", EVENTS.keys())
def test_a_real_event_validates_against_its_committed_schema(name: str) -> None:
    event = examples()[name]
    validator = Draft202012Validator(committed(type(event)))
    wire = json.loads(event.model_dump_json())
    assert not [e.message for e in validator.iter_errors(wire)]
    # ... and the schema does say something: without its key the event is not valid.
    wire.pop(type(event).key_field)
    assert not validator.is_valid(wire)


def test_every_event_type_has_an_example() -> None:
    assert examples().keys() == EVENTS.keys()


@pytest.mark.parametrize("name", EVENTS.keys())
def test_consumers_ignore_fields_they_do_not_know(name: str) -> None:
    event = examples()[name]
    wire = json.loads(event.model_dump_json())
    wire["added_in_a_later_release"] = {"any": ["thing"]}
    fields = type(event).model_fields
    for key, value in wire.items():
        # Nested models ignore them too; a free-form dict (NotificationDue's copy of its trigger) keeps
        # what it is given.
        annotation = fields[key].annotation if key in fields else None
        free_form = annotation is dict or get_origin(annotation) is dict
        if isinstance(value, dict) and not free_form:
            value["nested_addition"] = 1
    envelope = Envelope(event=event, source="/kariz/test", correlation_id="c")
    read = decode(envelope.topic, envelope.key.encode(), json.dumps(wire).encode(), envelope.headers())
    assert read.event == event


# --- the checker, on changed copies of the real models -----------------------------------------------


def variant(cls: type[Event], *, drop: tuple[str, ...] = (), **fields: Any) -> type[Event]:
    """``cls`` with fields removed (``drop``) and others changed or added (``name=(type, default)``)."""
    kept = {name: (f.annotation, f) for name, f in cls.model_fields.items() if name not in drop}
    model: type[Event] = create_model(cls.__name__, __base__=Event, **{**kept, **fields})
    model.key_field = cls.key_field
    model.description = cls.description
    return model


MoreSources = StrEnum("LeadSource", {s.name: s.value for s in LeadSource} | {"PODCAST": "podcast"})
FewerSources = StrEnum("LeadSource", {s.name: s.value for s in LeadSource if s.value != "outbound"})
ContactWithoutEmail = create_model(
    "Contact", **{n: (f.annotation, f) for n, f in Contact.model_fields.items() if n != "email"}
)
CompanySizeAsText = create_model("Company", __base__=Company, size=(str | None, None))
ScoreLinePointsAsText = create_model("ScoreLine", __base__=ScoreLine, points=(str, ...))


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        pytest.param(variant(LeadCaptured, drop=("owner",)), ["owner: required field removed"], id="removed"),
        pytest.param(
            variant(LeadCaptured, owner=(str | None, None)),
            ["owner: required field made optional", "owner: type changed from string to null|string"],
            id="made-optional",
        ),
        pytest.param(
            variant(LeadCaptured, consent=(str, "no")),
            ["consent: type changed from boolean to string"],
            id="type-changed",
        ),
        pytest.param(
            variant(LeadCaptured, source=(MoreSources, ...)),
            ['source: enum values added "podcast": old consumers cannot read them'],
            id="enum-value-added",
        ),
        pytest.param(
            variant(LeadCaptured, source=(FewerSources, ...)),
            ['source: enum values removed "outbound": old events no longer validate'],
            id="enum-value-removed",
        ),
        pytest.param(
            variant(LeadCaptured, region=(str, ...)),
            ["region: new required field without a default: old events lack it"],
            id="new-required-field",
        ),
        pytest.param(
            variant(LeadCaptured, campaign=(str, ...)),
            [
                "campaign: optional field made required: old events may lack it",
                "campaign: type changed from null|string to string",
            ],
            id="made-required",
        ),
        pytest.param(
            variant(LeadCaptured, captured_at=(str, ...)),
            ["captured_at: format changed from date-time to None"],
            id="format-changed",
        ),
        pytest.param(
            variant(LeadCaptured, contact=(ContactWithoutEmail, ...), company=(CompanySizeAsText, ...)),
            [
                "company.size: type changed from integer|null to null|string",
                "contact.email: required field removed",
            ],
            id="nested-object-changed",
        ),
        pytest.param(
            variant(LeadQualified, breakdown=(list[ScoreLinePointsAsText], ...)),
            ["breakdown[].points: type changed from integer to string"],
            id="array-items-changed",
        ),
        pytest.param(
            variant(LeadQualified, answers=(BantAnswers, ...)),
            [
                "answers: optional field made required: old events may lack it",
                "answers: type changed from null|object to object",
            ],
            id="nested-made-required",
        ),
    ],
)
def test_the_checker_names_each_breaking_change(changed: type[Event], expected: list[str]) -> None:
    original = next(cls for cls in EVENTS.values() if cls.__name__ == changed.__name__)
    found = breaking_changes(committed(original), event_schema(changed))
    assert sorted(map(str, found)) == sorted(expected)


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(variant(LeadCaptured, region=(str | None, None)), id="optional-field-added"),
        pytest.param(variant(LeadCaptured, referrer=(str, "none")), id="field-with-default-added"),
        pytest.param(variant(LeadCaptured, drop=("campaign",)), id="optional-field-removed"),
        pytest.param(
            variant(
                LeadQualified,
                company=(create_model("Company", __base__=Company, vat=(str | None, None)), ...),
            ),
            id="optional-nested-field-added",
        ),
    ],
)
def test_the_checker_accepts_compatible_changes(changed: type[Event]) -> None:
    original = next(cls for cls in EVENTS.values() if cls.__name__ == changed.__name__)
    assert breaking_changes(committed(original), event_schema(changed)) == []


def test_regenerating_refuses_to_replace_a_committed_schema_with_a_breaking_one(tmp_path: Path) -> None:
    write_event_schemas(tmp_path, [LeadCaptured])
    before = schema_file(tmp_path, LeadCaptured.topic()).read_text()
    with pytest.raises(ContractBroken, match=r"kariz\.lead-captured\.v1: owner: required field removed"):
        write_event_schemas(tmp_path, [variant(LeadCaptured, drop=("owner",))])
    assert schema_file(tmp_path, LeadCaptured.topic()).read_text() == before
    write_event_schemas(tmp_path, [variant(LeadCaptured, region=(str | None, None))])  # compatible
    assert '"region"' in schema_file(tmp_path, LeadCaptured.topic()).read_text()
    write_event_schemas(tmp_path, [variant(LeadCaptured, drop=("owner",))], allow_breaking=True)
    assert '"owner"' not in schema_file(tmp_path, LeadCaptured.topic()).read_text()
