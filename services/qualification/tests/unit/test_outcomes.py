"""The closed loop on the in-memory unit of work: qualified leads are kept with the rules that qualified
them, DealWon and DealLost count against them, the performance report (by band and rule, with lift) and
the calibrated probability come from those outcomes, change when they change, and suggest points an admin
can put in force. Over HTTP: who may read and act, and the lead's probability."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeAlias

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from pydantic import ValidationError

from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.testing import accepting, bearer
from kariz_qualification.adapters.in_memory import InMemoryQualificationUnitOfWork
from kariz_qualification.adapters.mongo.documents import (
    calibration_from_document,
    calibration_to_document,
    qualified_lead_from_document,
    qualified_lead_to_document,
)
from kariz_qualification.domain.calibration import (
    NotEnoughOutcomes,
    PointSuggestion,
    train,
    with_suggested_points,
)
from kariz_qualification.domain.outcomes import CalibrationRules, QualifiedLead, band_of, performance
from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet
from kariz_qualification.entrypoints import http as qualification_http
from kariz_qualification.entrypoints import scoring
from kariz_qualification.service_layer import handlers, outcomes, views
from kariz_qualification.service_layer.commands import ApplySuggestedPoints, Calibrate
from kariz_qualification.service_layer.unit_of_work import QualificationUnitOfWork
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import (
    Company,
    Contact,
    DealLost,
    DealWon,
    LeadCaptured,
    LeadsMerged,
    LeadSource,
)
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime import http as shared_http
from kariz_shared.runtime.clock import FakeClock

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OWNER = "rep@kariz.test"
Units: TypeAlias = InMemoryUnitsOfWork[InMemoryQualificationUnitOfWork]
#: A small calibration, so a test needs few outcomes.
SMALL = CalibrationRules(min_outcomes=20, min_each=4, retrain_every=10, min_support=4)


def strong(lead_id: str, industry: str = "software", country: str = "DE") -> LeadCaptured:
    """CEO (20) of 1000+ (25) in DE/US (10) by referral (15), + software 20 (90) or retail 5 (75):
    qualified at capture."""
    return LeadCaptured(
        lead_id=lead_id,
        contact=Contact(first_name="Ada", last_name="Lovelace", email=f"{lead_id}@example.com", title="CEO"),
        company=Company(name=f"Co {lead_id}", industry=industry, size=2000, country=country),
        source=LeadSource.REFERRAL,
        owner=OWNER,
        assigned_by="round_robin",
        captured_at=T0,
    )


def won(lead_id: str, deal_id: str | None = None, at: datetime = T0 + timedelta(days=30)) -> DealWon:
    return DealWon(
        deal_id=deal_id or f"D-{lead_id}",
        lead_id=lead_id,
        owner=OWNER,
        account_id=f"A-{lead_id}",
        account_name=f"Co {lead_id}",
        amount=Decimal("1000"),
        cycle_seconds=3600.0,
        won_at=at,
    )


def lost(lead_id: str, deal_id: str | None = None, at: datetime = T0 + timedelta(days=30)) -> DealLost:
    return DealLost(
        deal_id=deal_id or f"D-{lead_id}",
        lead_id=lead_id,
        owner=OWNER,
        account_id=f"A-{lead_id}",
        account_name=f"Co {lead_id}",
        reason="price",
        lost_at_stage="proposal",
        cycle_seconds=3600.0,
        lost_at=at,
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def units(clock: FakeClock) -> Units:
    rules = DEFAULT_RULES.model_copy(update={"calibration": SMALL})
    return InMemoryUnitsOfWork(InMemoryQualificationUnitOfWork(clock, rules=rules))


async def on_won(uow: QualificationUnitOfWork, event: DealWon) -> None:
    await outcomes.count_won(uow, event)


async def on_lost(uow: QualificationUnitOfWork, event: DealLost) -> None:
    await outcomes.count_lost(uow, event)


async def seed(
    units: Units,
    *,
    software_wins: int,
    retail_wins: int,
    each: int = 15,
    start: int = 0,
    closed_at: datetime = T0 + timedelta(days=30),
) -> None:
    """``each`` software and ``each`` retail leads qualified and closed at ``closed_at``: the first
    ``*_wins`` of each won, the others lost."""
    for i in range(start, start + each):
        for industry, wins in (("software", software_wins), ("retail", retail_wins)):
            lead_id = f"{industry}-{i}"
            await units.handle(handlers.capture_lead, strong(lead_id, industry, "DE" if i % 2 else "US"))
            if i - start < wins:
                await units.handle(on_won, won(lead_id, at=closed_at))
            else:
                await units.handle(on_lost, lost(lead_id, at=closed_at))


# --- the rows and the report ----------------------------------------------------------------------


async def test_a_qualified_lead_is_kept_with_its_rules_and_its_deals_outcome_counts_once(
    units: Units,
) -> None:
    await units.handle(handlers.capture_lead, strong("L-1"))
    row = units.uow.outcomes.by_id["L-1"]
    assert (row.result, row.score, row.band, row.rules_version) == ("open", 90, "90-99", 0)
    assert row.features == (
        "industry=software",
        "company_size=1000+",
        "country=DE",
        "seniority=c_level",
        "source=referral",
    )

    await units.handle(on_won, won("L-1"))
    await units.handle(on_won, won("L-1"))  # the same outcome again (a re-publication): counted once
    row = units.uow.outcomes.by_id["L-1"]
    assert (row.result, row.deal_id, row.closed_at) == ("won", "D-L-1", T0 + timedelta(days=30))
    assert units.uow.metrics.outcomes == ["won"]

    # A deal of a lead never qualified here (opened by hand) says nothing about the score.
    await units.handle(on_lost, lost("L-unknown"))
    assert "L-unknown" not in units.uow.outcomes.by_id


async def test_a_nurtured_lead_is_not_kept_until_it_qualifies(units: Units) -> None:
    middling = strong("L-2").model_copy(
        update={"company": Company(name="Small", industry="retail", size=20, country="FR")}
    )
    await units.handle(handlers.capture_lead, middling)
    assert units.uow.outcomes.by_id == {}
    await units.handle(on_won, won("L-2"))  # its deal opened by hand, say
    assert units.uow.outcomes.by_id == {}


async def test_the_outcome_of_a_survivors_deal_closes_the_row_of_the_duplicate_that_qualified(
    units: Units,
) -> None:
    await units.handle(handlers.capture_lead, strong("L-dup"))
    await units.handle(
        handlers.capture_lead,
        strong("L-survivor").model_copy(
            update={"company": Company(name="Small", industry="retail", size=20, country="FR")}
        ),
    )
    merge = LeadsMerged(
        lead_id="L-survivor", merged_lead_id="L-dup", owner=OWNER, merged_owner=OWNER, merged_at=T0
    )
    await units.handle(handlers.follow_merge, merge)
    # Deals moves the duplicate's deal to the survivor: its outcome names the survivor.
    await units.handle(on_lost, lost("L-survivor", deal_id="D-1"))
    assert units.uow.outcomes.by_id["L-dup"].result == "lost"
    assert "L-survivor" not in units.uow.outcomes.by_id


def test_performance_counts_by_band_and_rule_and_gives_each_rule_its_lift() -> None:
    def row(lead_id: str, score: int, features: tuple[str, ...], result: str) -> QualifiedLead:
        return QualifiedLead(lead_id, T0, score, features, 0, result)  # type: ignore[arg-type]

    report = performance(
        [
            row("a", 92, ("industry=software",), "won"),
            row("b", 95, ("industry=software",), "won"),
            row("c", 91, ("industry=software",), "lost"),
            row("d", 75, ("industry=retail",), "lost"),
            row("e", 78, ("industry=retail",), "won"),
            row("f", 71, ("industry=retail",), "open"),
        ]
    )
    assert (report.overall.won, report.overall.lost, report.overall.open) == (3, 2, 1)
    assert report.overall.win_rate == pytest.approx(3 / 5)
    assert list(report.bands) == ["70-79", "90-99"]
    assert (report.bands["70-79"].won, report.bands["70-79"].lost, report.bands["70-79"].open) == (1, 1, 1)
    assert report.rules["industry=software"].win_rate == pytest.approx(2 / 3)
    assert report.lift("industry=software") == pytest.approx((2 / 3) / (3 / 5))
    assert report.lift("industry=retail") == pytest.approx((1 / 2) / (3 / 5))
    assert band_of(-5) == "0-9" and band_of(100) == "100-109"


# --- calibration ----------------------------------------------------------------------------------


async def test_below_the_minimum_the_rule_score_stands_and_a_calibration_is_refused_with_the_counts(
    units: Units,
) -> None:
    await seed(units, software_wins=4, retail_wins=1, each=5)  # 10 closed: 5 won, 5 lost
    assert units.uow.calibrations.models == []
    view = await outcomes.scoring_performance(units)
    assert view.model is None and view.suggestions == []
    with pytest.raises(RuleViolation, match=r"10 closed \(5 won, 5 lost\); at least 20 are needed"):
        await outcomes.calibrate(units, Calibrate("admin@kariz.test"))
    with pytest.raises(RuleViolation, match="no calibration yet"):
        await outcomes.apply_suggested_points(units, ApplySuggestedPoints("admin@kariz.test"))


async def test_enough_outcomes_calibrate_the_score_and_new_outcomes_change_it(
    units: Units, clock: FakeClock
) -> None:
    # Software wins 12 of 15, retail 3 of 15: 30 closed, over the minimum (20) on the 20th.
    await seed(units, software_wins=12, retail_wins=3)
    [first, second] = units.uow.calibrations.models  # the 20th outcome, then 10 more (retrain_every)
    assert (first.number, first.outcomes, second.number, second.outcomes) == (1, 20, 2, 30)
    assert units.uow.metrics.calibrations == [1, 2]
    assert (second.won, second.lost, second.rules_version, second.folds) == (15, 15, 0, 5)
    assert 0.5 < second.auc <= 1.0 and 0.0 <= second.brier < 0.25

    software = (
        "industry=software",
        "company_size=1000+",
        "country=DE",
        "seniority=c_level",
        "source=referral",
    )
    retail = ("industry=retail", *software[1:])
    before = second.probability(software), second.probability(retail)
    assert before[0] > 0.6 > 0.4 > before[1]
    assert second.weights["industry=software"] > 0 > second.weights["industry=retail"]

    # The outcomes turn: retail wins now, software loses. The calibration after them says so.
    clock.advance(timedelta(days=60))
    await seed(units, software_wins=0, retail_wins=15, each=15, start=100)
    latest = units.uow.calibrations.models[-1]
    assert latest.number == 5 and latest.outcomes == 60 and latest.trained_at == clock.now()
    assert latest.probability(software) < before[0] and latest.probability(retail) > before[1]

    report = (await outcomes.scoring_performance(units)).report
    assert (report.rules["industry=software"].won, report.rules["industry=software"].lost) == (12, 18)
    assert (report.rules["industry=retail"].won, report.rules["industry=retail"].lost) == (18, 12)


async def test_a_calibration_asked_for_is_the_next_version(units: Units) -> None:
    await seed(units, software_wins=12, retail_wins=3)
    model = await outcomes.calibrate(units, Calibrate("admin@kariz.test"))
    assert model.number == 3 and model.outcomes == 30
    page, total = await outcomes.calibrations(units, limit=2, offset=0)
    assert ([m.number for m in page], total) == ([3, 2], 3)


def test_training_refuses_outcomes_of_one_kind_only() -> None:
    rows = [QualifiedLead(f"L-{i}", T0, 90, ("industry=software",), 0, "won") for i in range(60)]
    with pytest.raises(NotEnoughOutcomes, match=r"60 closed \(60 won, 0 lost\)"):
        train(rows, CalibrationRules(), number=1, at=T0, rules_version=0)


# --- suggested points -----------------------------------------------------------------------------


async def test_the_suggested_points_follow_the_outcomes_and_an_admin_puts_them_in_force(units: Units) -> None:
    await seed(units, software_wins=12, retail_wins=3)
    view = await outcomes.scoring_performance(units)
    by_feature = {s.feature: s for s in view.suggestions}
    # Every lead has the same size, seniority and source: only industry and country tell them apart.
    assert by_feature["industry=software"].current == 20 and by_feature["industry=retail"].current == 5
    assert by_feature["industry=software"].suggested > by_feature["industry=retail"].suggested
    assert by_feature["industry=software"].outcomes == 15

    version = await outcomes.apply_suggested_points(
        units, ApplySuggestedPoints("admin@kariz.test", edited_version=0)
    )
    assert (version.number, version.actor, version.changed) == (1, "admin@kariz.test", version.changed)
    assert version.changed is not None and "industry" in version.changed
    assert version.rules.industry["software"] == by_feature["industry=software"].suggested
    assert version.rules.industry["retail"] == by_feature["industry=retail"].suggested
    assert version.rules.industry["healthcare"] == 10  # no outcome of it: as it was
    assert version.rules.thresholds == DEFAULT_RULES.thresholds

    # Read against version 0, applied again: 409, as any edit of a stale version.
    with pytest.raises(Exception, match="version 1 is in force"):
        await outcomes.apply_suggested_points(
            units, ApplySuggestedPoints("admin@kariz.test", edited_version=0)
        )
    # In force now, the suggestion changes nothing.
    with pytest.raises(RuleViolation, match="suggests the points in force"):
        await outcomes.apply_suggested_points(units, ApplySuggestedPoints("admin@kariz.test"))


def test_suggested_points_that_leave_the_qualify_threshold_out_of_reach_make_no_rule_set() -> None:
    document = DEFAULT_RULES.model_dump(mode="json")
    document["thresholds"] = {"qualify": DEFAULT_RULES.highest_possible_score(), "disqualify_below": 15}
    tight = RuleSet.model_validate(document)
    lower = PointSuggestion("industry=software", "industry", "software", 20, 12, -0.4, 30)
    with pytest.raises(ValidationError, match="qualify"):
        with_suggested_points(tight, [lower])
    assert outcomes.suggested_rules(tight, [lower]) is None
    higher = PointSuggestion("industry=retail", "industry", "retail", 5, 9, 0.3, 30)
    assert with_suggested_points(tight, [higher]).industry["retail"] == 9


# --- documents ------------------------------------------------------------------------------------


async def test_rows_and_calibrations_round_trip_through_their_documents(units: Units) -> None:
    await seed(units, software_wins=12, retail_wins=3)
    row = units.uow.outcomes.by_id["software-0"]
    assert qualified_lead_from_document(qualified_lead_to_document(row)) == row
    model = units.uow.calibrations.models[-1]
    assert calibration_from_document(calibration_to_document(model)) == model


# --- HTTP -----------------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def client(units: Units, issuer: LocalIssuer) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    shared_http.install(app, "qualification")
    accepting(app, issuer)
    app.include_router(qualification_http.router(units))
    app.include_router(scoring.router(units))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


async def test_over_http_managers_read_the_loop_admins_act_on_it_and_a_lead_shows_its_probability(
    units: Units, client: httpx.AsyncClient, issuer: LocalIssuer
) -> None:
    admin = bearer(issuer.token("admin@kariz.test", ["admin"]))
    manager = bearer(issuer.token("mia@kariz.test", ["manager"]))
    rep = bearer(issuer.token(OWNER, ["rep"]))

    await units.handle(handlers.capture_lead, strong("L-1"))
    shown = (await client.get("/leads/L-1/qualification", headers=rep)).json()
    assert shown["win_probability"]["probability"] is None
    assert "not enough outcomes" in shown["win_probability"]["basis"]
    early = (await client.get("/scoring/performance", headers=manager)).json()
    assert early["calibration"]["status"] == "not enough outcomes"
    assert (await client.post("/scoring/calibrations", headers=admin)).status_code == 422

    await seed(units, software_wins=12, retail_wins=3)
    assert (await client.get("/scoring/performance", headers=rep)).status_code == 403
    assert (await client.post("/scoring/calibrations", headers=manager)).status_code == 403
    report = (await client.get("/scoring/performance", headers=manager)).json()
    assert report["overall"] == {"won": 15, "lost": 15, "open": 1, "closed": 30, "win_rate": 0.5}
    assert {b["band"] for b in report["bands"]} == {"70-79", "90-99"}
    software = next(r for r in report["rules"] if (r["rule"], r["matched"]) == ("industry", "software"))
    assert (software["won"], software["lost"], software["open"], software["lift"]) == (12, 3, 1, 1.6)
    assert report["calibration"]["status"] == "calibrated"
    assert report["calibration"]["calibration"]["version"] == 2

    shown = (await client.get("/leads/L-1/qualification", headers=rep)).json()
    model = units.uow.calibrations.models[-1]
    lead = await views.qualification_of(units, "L-1")
    expected = model.probability(
        ("industry=software", *[f for f in units.uow.outcomes.by_id["L-1"].features])
    )
    assert shown["win_probability"]["probability"] == pytest.approx(expected)
    assert lead.status == "qualified"
    assert shown["win_probability"]["calibration"] == 2

    created = await client.post("/scoring/calibrations", headers=admin)
    assert (created.status_code, created.json()["version"]) == (201, 3)
    suggestion = await client.get("/scoring/suggestion", headers=manager)
    assert suggestion.status_code == 200 and suggestion.headers["ETag"] == '"0"'
    assert suggestion.json()["changes"] > 0 and suggestion.json()["rules"] is not None
    assert (await client.post("/scoring/suggestion/apply", headers=manager)).status_code == 403
    applied = await client.post("/scoring/suggestion/apply", headers={**admin, "If-Match": '"0"'})
    assert applied.status_code == 200 and applied.headers["ETag"] == '"1"'
    assert applied.json()["industry"] == suggestion.json()["rules"]["industry"]
    stale = await client.post("/scoring/suggestion/apply", headers={**admin, "If-Match": '"0"'})
    assert stale.status_code == 409


async def test_a_calibration_learns_from_the_newest_outcomes_only_and_is_due_by_all_that_closed(
    clock: FakeClock,
) -> None:
    window = SMALL.model_copy(update={"max_outcomes": 20})
    units = InMemoryUnitsOfWork(
        InMemoryQualificationUnitOfWork(clock, rules=DEFAULT_RULES.model_copy(update={"calibration": window}))
    )
    await seed(units, software_wins=12, retail_wins=3)
    # 20 more, closed later: retail wins them all, software none.
    later = T0 + timedelta(days=31)
    await seed(units, software_wins=0, retail_wins=10, each=10, start=100, closed_at=later)
    latest = units.uow.calibrations.models[-1]
    assert (latest.closed, latest.outcomes) == (50, 20)
    # It learned from the newest 20 alone: retail wins there.
    assert latest.weights["industry=retail"] > 0 > latest.weights["industry=software"]
    assert [m.closed for m in units.uow.calibrations.models] == [20, 30, 40, 50]
