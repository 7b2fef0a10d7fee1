"""Decisions by the kind of their reason, for the metric ``kariz_qualification_decisions_total{outcome,
reason}``: each path to a decision on the in-memory unit of work, the kind kept with the decision (and in
its document), and the Prometheus series it counts in. The kind is a bounded word, never the reason's
text (a rep's words, a rule set's hard no)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeAlias

import pytest
from prometheus_client import REGISTRY

from kariz_qualification.adapters.in_memory import InMemoryQualificationUnitOfWork
from kariz_qualification.adapters.metrics import PrometheusMetrics
from kariz_qualification.adapters.mongo.documents import decision_from_document, decision_to_document
from kariz_qualification.domain.engagement import MarketingKind
from kariz_qualification.domain.lead import REASON_KINDS, Decision
from kariz_qualification.domain.methodologies import Given
from kariz_qualification.service_layer import engagement, handlers, views
from kariz_qualification.service_layer.commands import (
    DisqualifyLead,
    RecordAnswers,
    RecordChecklist,
    RecordEngagement,
)
from kariz_shared.contracts.events import BantAnswers, Company, Contact, DealWon, LeadCaptured, LeadSource
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.runtime.logging import correlation_id

Units: TypeAlias = InMemoryUnitsOfWork[InMemoryQualificationUnitOfWork]
REP = "rep@kariz.test"
FULL_BANT = BantAnswers(
    budget="confirmed", authority="decision_maker", need="confirmed", timeline="within_3_months"
)


def lead(
    lead_id: str, *, industry: str, size: int, country: str, title: str | None, source: LeadSource
) -> LeadCaptured:
    return LeadCaptured(
        lead_id=lead_id,
        contact=Contact(
            first_name="Ada", last_name="Lovelace", email=f"{lead_id.lower()}@example.com", title=title
        ),
        company=Company(name=f"Company {lead_id}", industry=industry, size=size, country=country),
        source=source,
        owner=REP,
        assigned_by="round_robin",
        captured_at=datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
    )


def strong(lead_id: str) -> LeadCaptured:
    """software 20 + 200-999 20 + DE 10 + VP 15 + referral 15 = 80: qualified at capture."""
    return lead(
        lead_id, industry="software", size=500, country="DE", title="VP Sales", source=LeadSource.REFERRAL
    )


def cold(lead_id: str) -> LeadCaptured:
    """retail 5 + 10-49 5 + FR 8 + manager 8 + web_form 8 = 34: nurture."""
    return lead(
        lead_id, industry="retail", size=20, country="FR", title="IT Manager", source=LeadSource.WEB_FORM
    )


def poor(lead_id: str) -> LeadCaptured:
    """mining 0 + 1-9 0 + BR 0 + individual 2 + purchased_list 0 = 2: below the floor (15)."""
    return lead(
        lead_id, industry="mining", size=3, country="BR", title=None, source=LeadSource.PURCHASED_LIST
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryQualificationUnitOfWork(clock))


@pytest.fixture(autouse=True)
def story() -> Iterator[None]:
    token = correlation_id.set("corr-from-leads")
    yield
    correlation_id.reset(token)


async def test_every_path_to_a_decision_counts_under_its_kind_of_reason(
    units: Units, clock: FakeClock
) -> None:
    await units.handle(handlers.capture_lead, strong("L-score"))
    await units.handle(handlers.capture_lead, poor("L-floor"))

    await units.handle(handlers.capture_lead, cold("L-answers"))
    await handlers.record_answers(units, RecordAnswers("L-answers", FULL_BANT, by=REP))

    await units.handle(handlers.capture_lead, cold("L-engaged"))
    signals: tuple[MarketingKind, ...] = ("webinar_attended", "webinar_attended", "content_downloaded")
    for kind in signals:
        command = RecordEngagement(
            kind=kind, occurred_at=clock.now(), lead_id="L-engaged", by="key:marketing"
        )
        await engagement.record_engagement(units, command)

    await units.handle(handlers.capture_lead, cold("L-no-need"))
    no_need = FULL_BANT.model_copy(update={"need": "none"})
    await handlers.record_answers(units, RecordAnswers("L-no-need", no_need, by=REP))

    await units.handle(handlers.capture_lead, cold("L-by-hand"))
    await handlers.disqualify_lead(units, DisqualifyLead("L-by-hand", "went with a competitor", by=REP))

    won = DealWon(
        deal_id="D-1",
        lead_id="L-score",
        account_id="A-1",
        account_name="Company L-score",
        owner=REP,
        amount=Decimal("12000"),
        cycle_seconds=3600.0,
        won_at=clock.now(),
    )
    await units.handle(handlers.record_won_account, won)
    again = cold("L-customer").model_copy(update={"company": strong("L-score").company})
    await units.handle(handlers.capture_lead, again)
    # An upsell's own items first (need and timeline): its fit is known.
    upsell = {
        "need": Given("choice", value="confirmed"),
        "timeline": Given("choice", value="within_3_months"),
    }
    await handlers.record_checklist(units, RecordChecklist("L-customer", "bant", upsell, by=REP))

    assert units.uow.metrics.decision_reasons == [
        ("qualified", "score"),
        ("disqualified", "score"),
        ("qualified", "answers"),
        ("qualified", "engagement"),
        ("disqualified", "hard_no"),
        ("disqualified", "manual"),
        ("qualified", "existing_customer"),
    ]
    # Kept with the decision, beside its reason's text.
    decided = await views.qualification_of(units, "L-no-need")
    assert decided.decision is not None
    assert (decided.decision.reason, decided.decision.reason_kind) == ("no need", "hard_no")


def test_the_kind_survives_the_document_and_one_stored_before_kinds_reads_as_none() -> None:
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    decision = Decision("disqualified", at, reason="not now", manual=True, by=REP, reason_kind="manual")
    assert decision_from_document(decision_to_document(decision)) == decision
    stored_before = {k: v for k, v in decision_to_document(decision).items() if k != "reason_kind"}
    assert decision_from_document(stored_before).reason_kind is None


def test_the_metric_counts_by_outcome_and_kind_with_every_pair_from_zero() -> None:
    def sample(outcome: str, reason: str) -> float | None:
        labels = {"outcome": outcome, "reason": reason}
        return REGISTRY.get_sample_value("kariz_qualification_decisions_total", labels)

    # Every pair exists before its first decision, so increase() sees that one too.
    for outcome, kinds in REASON_KINDS.items():
        for kind in kinds:
            assert sample(outcome, kind) is not None, (outcome, kind)
    before = sample("disqualified", "hard_no") or 0.0
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    PrometheusMetrics().decided(Decision("disqualified", at, reason="no pain", reason_kind="hard_no"))
    assert sample("disqualified", "hard_no") == before + 1
