"""Qualification follows a merge of leads (``LeadsMerged``) on the in-memory unit of work: the better
qualification wins on the survivor, the duplicate is marked merged, nothing is published, a redelivery
changes nothing, and a merge of leads not seen yet neither fails nor loses the duplicate's verdict."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from kariz_qualification.adapters.in_memory import InMemoryQualificationUnitOfWork
from kariz_qualification.domain.lead import Decision, Lead, Scoring
from kariz_qualification.domain.queries import LeadsByStatus
from kariz_qualification.entrypoints import kafka
from kariz_qualification.service_layer import handlers, views
from kariz_qualification.service_layer.commands import RecordAnswers
from kariz_shared.contracts.errors import Conflict
from kariz_shared.contracts.events import (
    BantAnswers,
    Company,
    Contact,
    LeadCaptured,
    LeadQualified,
    LeadsMerged,
    LeadSource,
)
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.runtime.logging import correlation_id

Units = InMemoryUnitsOfWork[InMemoryQualificationUnitOfWork]

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
BANT = BantAnswers(budget="unknown", authority="unknown", need="unknown", timeline="unknown")


@pytest.fixture
def units() -> Units:
    return InMemoryUnitsOfWork(InMemoryQualificationUnitOfWork(FakeClock(AT)))


@pytest.fixture(autouse=True)
def story() -> Iterator[None]:
    token = correlation_id.set("corr-from-leads")
    yield
    correlation_id.reset(token)


def captured(lead_id: str, fit: str) -> LeadCaptured:
    """``strong``: 80, qualified; ``middling``: 44, nurtured; ``poor``: 2, disqualified."""
    company, title, source = {
        "strong": (Company(name="Acme", industry="software", size=500, country="DE"), "VP Sales", "referral"),
        "middling": (
            Company(name="Acme", industry="manufacturing", size=100, country="FR"),
            "Sales Manager",
            "web_form",
        ),
        "poor": (Company(name="Acme", industry="mining", size=3, country="BR"), None, "purchased_list"),
    }[fit]
    return LeadCaptured(
        lead_id=lead_id,
        contact=Contact(first_name="Ada", last_name="Lovelace", email=f"{lead_id}@acme.example", title=title),
        company=company,
        source=LeadSource(source),
        owner="rep@kariz.test",
        assigned_by="round_robin",
        captured_at=AT,
    )


def merge(survivor: str = "S", duplicate: str = "D") -> LeadsMerged:
    return LeadsMerged(
        lead_id=survivor,
        merged_lead_id=duplicate,
        owner="rep@kariz.test",
        merged_owner="sam@kariz.test",
        merged_at=AT,
        actor="maria@kariz.test",
    )


async def lead(units: Units, lead_id: str) -> Lead:
    return await views.qualification_of(units, lead_id)


@pytest.mark.parametrize(
    ("survivor", "duplicate", "status", "score", "took_theirs"),
    [
        ("middling", "strong", "qualified", 80, True),  # qualified beats undecided
        ("strong", "poor", "qualified", 80, False),
        ("poor", "middling", "nurture", 44, True),  # undecided beats disqualified: open again
        ("middling", "poor", "nurture", 44, False),
        ("poor", "strong", "qualified", 80, True),
    ],
)
async def test_the_better_qualification_wins_and_nothing_is_published(
    units: Units, survivor: str, duplicate: str, status: str, score: int, took_theirs: bool
) -> None:
    await units.handle(kafka.on_lead_captured, captured("S", survivor))
    await units.handle(kafka.on_lead_captured, captured("D", duplicate))
    published = list(units.published)

    await units.handle(kafka.on_leads_merged, merge())

    assert units.published == published, "a merge publishes no verdict: deals would open a second deal"
    after = await lead(units, "S")
    assert (after.status, after.score, after.merged_from) == (status, score, ["D"])
    assert [s.trigger for s in after.scorings] == (["captured", "merged"] if took_theirs else ["captured"])
    gone = await lead(units, "D")
    assert (gone.status, gone.merged_into) == ("merged", "S")


async def test_between_equal_verdicts_the_higher_score_wins() -> None:
    def scored(lead_id: str, score: int, decided: bool) -> Lead:
        event = captured(lead_id, "strong")
        return Lead(
            lead_id=lead_id,
            owner=event.owner,
            contact=event.contact,
            company=event.company,
            source=event.source,
            campaign=None,
            correlation_id=lead_id,
            captured_at=AT,
            answers=BANT if lead_id == "D" else None,
            scorings=[Scoring(AT, score, (), "captured", rules_version=3)],
            decision=Decision("qualified", AT, threshold=70) if decided else None,
        )

    survivor, duplicate = scored("S", 75, True), scored("D", 90, True)
    assert survivor.absorb(duplicate, AT) is True
    assert (survivor.score, survivor.scorings[-1].trigger, survivor.scorings[-1].rules_version) == (
        90,
        "merged",
        3,
    )
    assert survivor.answers == BANT, "the better record's answers come with it"
    assert survivor.absorb(duplicate, AT) is False and len(survivor.scorings) == 2, "once per duplicate"
    lower = scored("L", 60, True)
    assert survivor.absorb(lower, AT) is False and survivor.score == 90
    assert survivor.merged_from == ["D", "L"]


async def test_a_redelivered_merge_changes_nothing_more(units: Units) -> None:
    await units.handle(kafka.on_lead_captured, captured("S", "middling"))
    await units.handle(kafka.on_lead_captured, captured("D", "strong"))
    await units.handle(kafka.on_leads_merged, merge())
    once = (await lead(units, "S"), await lead(units, "D"))
    await units.handle(kafka.on_leads_merged, merge())
    assert (await lead(units, "S"), await lead(units, "D")) == once


async def test_a_merged_lead_takes_no_answers_and_leaves_the_queues(units: Units) -> None:
    await units.handle(kafka.on_lead_captured, captured("S", "middling"))
    await units.handle(kafka.on_lead_captured, captured("D", "middling"))
    await units.handle(kafka.on_leads_merged, merge())
    with pytest.raises(Conflict, match="merged into S"):
        await handlers.record_answers(units, RecordAnswers("D", BANT, by="rep@kariz.test"))
    nurtured, _ = await views.leads_by_status(units, LeadsByStatus("nurture"), 10, 0)
    merged, _ = await views.leads_by_status(units, LeadsByStatus("merged"), 10, 0)
    assert ([row.lead_id for row in nurtured], [row.lead_id for row in merged]) == (["S"], ["D"])


async def test_a_merge_before_the_duplicates_capture_folds_the_capture_in_when_it_comes(units: Units) -> None:
    await units.handle(kafka.on_lead_captured, captured("S", "middling"))
    await units.handle(kafka.on_leads_merged, merge())  # the duplicate's capture is still on its way
    assert units.published == []
    await units.handle(kafka.on_lead_captured, captured("D", "strong"))
    # Its own scoring's verdict goes out as any capture's (leads and deals take it to the survivor) ...
    assert [(type(e), e.lead_id) for e in units.published] == [(LeadQualified, "D")]
    # ... and the survivor has it here too.
    assert ((await lead(units, "S")).status, (await lead(units, "D")).status) == ("qualified", "merged")


async def test_a_merge_of_leads_never_seen_is_no_failure(units: Units) -> None:
    await units.handle(kafka.on_leads_merged, merge("S", "D"))  # neither
    await units.handle(kafka.on_lead_captured, captured("X", "strong"))
    await units.handle(kafka.on_leads_merged, merge("ghost", "X"))  # the survivor unknown
    assert (await lead(units, "X")).status == "merged"
    assert [type(e) for e in units.published] == [LeadQualified]
