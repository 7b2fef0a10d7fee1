"""The duplicate rule (same normalised e-mail) and what a repeated capture does to the lead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kariz_leads.domain import AssignedBy, Assignment, Lead, LeadStatus, Touch
from kariz_shared.contracts.events import Company, Contact, LeadSource, LeadTouched
from kariz_shared.contracts.identity import Actor
from kariz_shared.contracts.normalisation import duplicate_key

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
REP = Actor("alex@kariz.example")


def a_lead(email: str = "ada@analytical.example") -> Lead:
    return Lead.capture(
        lead_id="L-1",
        contact=Contact(first_name="Ada", last_name="Lovelace", email=email),
        company=Company(name="Analytical", domain="analytical.example", country="GB"),
        source=LeadSource.WEB_FORM,
        campaign="spring",
        consent=True,
        assignment=Assignment("alex@kariz.example", AssignedBy.ROUND_ROBIN),
        correlation_id="corr-1",
        at=T0,
        by=REP,
    )


@pytest.mark.parametrize(
    "other", ["ada@analytical.example", " ADA@Analytical.Example ", "Ada@ANALYTICAL.EXAMPLE\t"]
)
def test_same_address_in_any_case_or_spacing_is_the_same_lead(other: str) -> None:
    assert a_lead().is_same_contact(other)
    assert duplicate_key(other) == "ada@analytical.example"


@pytest.mark.parametrize(
    "other", ["ada+events@analytical.example", "ada@analytical.co", "a.da@analytical.example"]
)
def test_a_different_mailbox_is_a_different_lead(other: str) -> None:
    assert not a_lead().is_same_contact(other)


def test_a_new_lead_starts_new_with_its_capture_as_first_touch() -> None:
    lead = a_lead()
    assert lead.status is LeadStatus.NEW
    assert lead.touches == [Touch(LeadSource.WEB_FORM, "spring", T0)]
    assert (lead.created_at, lead.updated_at) == (T0, T0)


def test_a_repeated_capture_is_recorded_as_a_touch_and_changes_nothing_else() -> None:
    lead = a_lead()
    later = T0 + timedelta(days=3)
    touch = lead.touch(LeadSource.TRADE_SHOW, "cebit", later, REP)
    assert touch == Touch(LeadSource.TRADE_SHOW, "cebit", later)
    assert [t.source for t in lead.touches] == [LeadSource.WEB_FORM, LeadSource.TRADE_SHOW]
    assert (lead.source, lead.campaign, lead.owner, lead.status) == (
        LeadSource.WEB_FORM,
        "spring",
        "alex@kariz.example",
        LeadStatus.NEW,
    )
    assert (lead.created_at, lead.updated_at) == (T0, later)


def test_qualification_verdicts_set_status_score_and_reason() -> None:
    lead = a_lead()
    lead.disqualify("no budget", 12, T0 + timedelta(hours=1), REP)
    assert (lead.status, lead.score, lead.disqualification_reason) == (
        LeadStatus.DISQUALIFIED,
        12,
        "no budget",
    )
    lead.qualify(80, T0 + timedelta(hours=2), REP)
    assert (lead.status, lead.score, lead.disqualification_reason) == (LeadStatus.QUALIFIED, 80, None)


def test_a_new_lead_raises_lead_captured_once() -> None:
    lead = a_lead()
    assert lead.pull_events() == [lead.captured()]
    assert lead.pull_events() == []
    lead.touch(LeadSource.EVENT, None, T0 + timedelta(days=1), REP)
    lead.qualify(80, T0 + timedelta(days=2), REP)
    # A touch says so (LeadTouched, for qualification's engagement); the capture is not raised again.
    assert [type(event) for event in lead.pull_events()] == [LeadTouched]


def test_the_captured_event_carries_the_lead() -> None:
    event = a_lead().captured()
    assert event.key() == "L-1"
    assert (event.owner, event.assigned_by, event.captured_at, event.consent) == (
        "alex@kariz.example",
        "round_robin",
        T0,
        True,
    )
