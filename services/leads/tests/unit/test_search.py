"""Finding leads beyond source and country: campaign, company size, region, status, text (case and
accents aside, by word beginnings), and keyset paging; on the pure domain and the in-memory unit of work.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kariz_leads.adapters.in_memory import InMemoryLeadsUnitOfWork
from kariz_leads.domain import AssignedBy, Assignment, Lead, LeadFilter, LeadStatus
from kariz_leads.domain.regions import REGIONS, Region
from kariz_leads.domain.search import fold, prefix_end, search_keys, search_terms, words
from kariz_leads.domain.task import Task
from kariz_leads.service_layer import views
from kariz_shared.contracts.countries import ISO_COUNTRY_CODES
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import Company, Contact, LeadSource, TaskKind
from kariz_shared.contracts.identity import Actor, Owners
from kariz_shared.contracts.paging import Cursor
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock

Units = InMemoryUnitsOfWork[InMemoryLeadsUnitOfWork]
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
ALEX, SAM = "alex@kariz.example", "sam@kariz.example"


def a_lead(
    n: int,
    *,
    first: str = "Ada",
    last: str = "Lovelace",
    company: str = "Analytical Engines",
    email: str | None = None,
    owner: str = ALEX,
    at: datetime | None = None,
    campaign: str | None = None,
    **firm: Any,
) -> Lead:
    lead = Lead.capture(
        lead_id=f"L-{n:04d}",
        contact=Contact(first_name=first, last_name=last, email=email or f"lead{n}@example.org"),
        company=Company(name=company, **firm),
        source=LeadSource.WEB_FORM,
        campaign=campaign,
        consent=True,
        assignment=Assignment(owner, AssignedBy.ROUND_ROBIN),
        correlation_id=f"corr-{n}",
        at=at or T0 + timedelta(minutes=n),
        by=Actor(owner),
    )
    lead.pull_events()
    return lead


async def stored(*leads: Lead) -> Units:
    units = InMemoryUnitsOfWork(InMemoryLeadsUnitOfWork(FakeClock(T0)))
    await add(units, *leads)
    return units


async def add(units: Units, *leads: Lead) -> None:
    async def work(uow: InMemoryLeadsUnitOfWork) -> None:
        await uow.leads.add_all(list(leads))

    await units.run(work)


async def ids(units: Units, **criteria: Any) -> list[str]:
    found, _ = await views.leads_matching(units, LeadFilter.of(**criteria), limit=200, offset=0)
    return [lead.id for lead in found]


# --- text: folding and keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("José GARCÍA", "jose garcia"),
        ("Müller", "muller"),
        ("Straße", "strasse"),
        ("Ærøskøbing", "aeroskobing"),
        ("Łódź", "lodz"),
        ("\uff26\uff55\uff4c\uff4c", "full"),  # fullwidth letters
    ],
)
def test_folding_drops_case_and_accents(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_a_lead_is_found_by_the_words_of_its_names_and_its_address_local_part() -> None:
    keys = search_keys(
        Contact(first_name="José", last_name="García-Márquez", email="j.garcia@hijos.example"),
        Company(name="García & Hijos, S.L."),
    )
    assert keys == sorted(set(keys))
    assert {"jose", "garcia", "marquez", "hijos", "j", "j.garcia"} <= set(keys)
    assert "example" not in keys  # the domain is not searched: everyone at a company shares it


def test_search_words_are_folded_each_once_and_bounded() -> None:
    assert search_terms("  GARCÍA   jose garcia ") == ("garcia", "jose")
    with pytest.raises(ValueError, match="no word"):
        search_terms("&&& --")
    with pytest.raises(ValueError, match="at most 5 words"):
        search_terms("a b c d e f")
    assert prefix_end("gar") == "gas"
    assert words("ACME_Corp 2.0") == ["acme", "corp", "2", "0"]


@pytest.mark.parametrize(
    ("q", "found"),
    [
        ("jose", ["L-0001"]),
        ("JOSÉ", ["L-0001"]),
        ("gar", ["L-0001"]),
        ("mull", ["L-0002"]),
        ("MÜLLER", ["L-0002"]),
        ("jose gar", ["L-0001"]),
        ("jose mull", []),  # every word must match
        ("hij", ["L-0001"]),  # the company's name
        ("analytical", ["L-0002", "L-0001"]),  # the e-mail's local part of L-0001, the company of L-0002
        ("arcia", []),  # beginnings of words only
    ],
)
async def test_text_search_is_case_and_accent_insensitive_by_word_beginnings(
    q: str, found: list[str]
) -> None:
    units = await stored(
        a_lead(1, first="José", last="García", company="García & Hijos", email="analytical.jose@x.example"),
        a_lead(2, first="Jürgen", last="Müller", company="Analytical Engines GmbH"),
        a_lead(3, first="Grace", last="Hopper", company="Globex"),
    )
    assert await ids(units, text=q) == found


# --- other filters --------------------------------------------------------------------------------


async def test_campaign_size_range_and_status() -> None:
    units = await stored(
        a_lead(1, campaign="spring-webinar", size=10),
        a_lead(2, campaign="spring-webinar", size=500),
        a_lead(3, campaign="cebit", size=50),
        a_lead(4, size=None),
    )
    assert await ids(units, campaign=" spring-webinar ") == ["L-0002", "L-0001"]
    assert await ids(units, size_min=10, size_max=50) == ["L-0003", "L-0001"]  # both ends included
    assert await ids(units, size_min=51) == ["L-0002"]
    assert await ids(units, size_max=10) == ["L-0001"]  # a lead without a size is in no range
    assert await ids(units, campaign="spring-webinar", size_min=100) == ["L-0002"]
    assert await ids(units, status=LeadStatus.NEW) == ["L-0004", "L-0003", "L-0002", "L-0001"]
    assert await ids(units, status=LeadStatus.QUALIFIED) == []


def test_a_size_range_that_ends_below_its_start_is_refused() -> None:
    with pytest.raises(RuleViolation, match=r"^size_min \(100\) is above size_max \(10\)"):
        LeadFilter.of(size_min=100, size_max=10)


@pytest.mark.parametrize("q", ["--", "one two three four five six"])
def test_a_search_without_words_or_with_too_many_is_refused_naming_q(q: str) -> None:
    with pytest.raises(RuleViolation, match=r"^q: "):
        LeadFilter.of(text=q)


def test_every_assigned_country_but_antarctica_is_in_exactly_one_region() -> None:
    every = [code for countries in REGIONS.values() for code in countries]
    assert len(every) == len(set(every)), "a country in two regions"
    assert set(every) <= ISO_COUNTRY_CODES
    assert ISO_COUNTRY_CODES - set(every) == {"AQ"}
    assert {"DE", "GB", "AE", "ZA"} <= Region.EMEA.countries
    assert {"US", "CA"} <= Region.NA.countries and "MX" in Region.LATAM.countries
    assert {"JP", "AU", "IN", "SG"} <= Region.APAC.countries


async def test_region_is_a_set_of_countries_and_narrows_a_country() -> None:
    units = await stored(
        a_lead(1, country="DE"), a_lead(2, country="US"), a_lead(3, country="BR"), a_lead(4, country="JP")
    )
    assert await ids(units, region=Region.EMEA) == ["L-0001"]
    assert await ids(units, region=Region.NA) == ["L-0002"]
    assert await ids(units, region=Region.LATAM) == ["L-0003"]
    assert await ids(units, region=Region.APAC) == ["L-0004"]
    assert await ids(units, region=Region.EMEA, country="de") == ["L-0001"]
    assert await ids(units, region=Region.EMEA, country="US") == []  # the two disagree: nothing


async def test_filters_hold_within_what_the_caller_sees() -> None:
    units = await stored(a_lead(1, owner=ALEX, size=10), a_lead(2, owner=SAM, size=10))
    criteria = replace(LeadFilter.of(size_min=5), seen=Owners(frozenset({SAM})))
    found, total = await views.leads_matching(units, criteria, limit=50, offset=0)
    assert ([lead.id for lead in found], total) == (["L-0002"], 1)


# --- keyset paging --------------------------------------------------------------------------------


async def test_paging_by_cursor_reads_every_lead_once_newest_first_while_new_ones_arrive() -> None:
    # Leads in threes at one instant, so the id decides within an instant.
    leads = [a_lead(n, at=T0 + timedelta(seconds=n // 3)) for n in range(40)]
    units = await stored(*leads)
    newest_first = [lead.id for lead in sorted(leads, key=lambda x: (x.created_at, x.id), reverse=True)]
    criteria = LeadFilter.of()
    seen: list[str] = []
    after: Cursor | None = None
    arriving = 1000
    while True:
        page, more = (
            await views.leads_after(units, criteria, after=after, limit=7)
            if after
            else await units.read(lambda uow: uow.leads.search_after(criteria, after=None, limit=7))
        )
        seen += [lead.id for lead in page]
        # A lead captured at the head while paging is not on the pages after the cursor.
        arriving += 1
        await add(units, a_lead(arriving, at=T0 + timedelta(hours=1, seconds=arriving)))
        if not more:
            break
        after = Cursor.after(page[-1].created_at, page[-1].id)
    assert seen == newest_first


async def test_paging_by_cursor_keeps_to_the_filters() -> None:
    units = await stored(*(a_lead(n, campaign="a" if n % 2 else "b") for n in range(10)))
    criteria = LeadFilter.of(campaign="a")
    first, more = await units.read(lambda uow: uow.leads.search_after(criteria, after=None, limit=3))
    assert more and [lead.id for lead in first] == ["L-0009", "L-0007", "L-0005"]
    rest, more = await views.leads_after(
        units, criteria, after=Cursor.after(first[-1].created_at, first[-1].id), limit=3
    )
    assert not more and [lead.id for lead in rest] == ["L-0003", "L-0001"]


# --- open follow-ups ------------------------------------------------------------------------------


def a_follow_up(n: int, lead_id: str) -> Task:
    task = Task.open(
        task_id=f"T-{n}",
        lead_id=lead_id,
        deal_id=None,
        assignee=ALEX,
        kind=TaskKind.CALL_BACK,
        title="Call back",
        note=None,
        due_at=T0 + timedelta(days=1),
        correlation_id=f"corr-t{n}",
        at=T0,
        by=Actor(ALEX),
    )
    task.pull_events()
    return task


async def test_leads_with_and_without_an_open_follow_up() -> None:
    units = await stored(a_lead(1), a_lead(2), a_lead(3))

    async def open_two(uow: InMemoryLeadsUnitOfWork) -> None:
        await uow.tasks.add(a_follow_up(1, "L-0001"))
        await uow.tasks.add(a_follow_up(2, "L-0002"))

    await units.run(open_two)
    assert await ids(units, has_open_follow_up=True) == ["L-0002", "L-0001"]
    assert await ids(units, has_open_follow_up=False) == ["L-0003"]

    async def complete_one(uow: InMemoryLeadsUnitOfWork) -> None:
        task = await uow.tasks.get("T-2")
        assert task is not None
        task.complete(T0 + timedelta(hours=1), Actor(ALEX))
        await uow.tasks.save(task)

    await units.run(complete_one)
    assert await ids(units, has_open_follow_up=True) == ["L-0001"]
    page, more = await units.read(
        lambda uow: uow.leads.search_after(LeadFilter.of(has_open_follow_up=False), after=None, limit=5)
    )
    assert [lead.id for lead in page] == ["L-0003", "L-0002"] and not more
