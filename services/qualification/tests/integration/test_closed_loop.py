"""The closed loop against the real broker and database: qualified leads' deals close (DealWon, DealLost
as deals publishes them), and qualification's performance report and calibrated probability are
computed from those outcomes, are versioned, and change when the outcomes change."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import REGISTRY

from kariz_devkit.testing import Backends, eventually, publish_all, running, unique
from kariz_qualification.bootstrap import build
from kariz_qualification.settings import QualificationSettings
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import (
    Company,
    Contact,
    DealLost,
    DealWon,
    Event,
    LeadCaptured,
    LeadSource,
)
from kariz_shared.system import source_of

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
OWNER = "rep@kariz.test"


def captured(lead_id: str, industry: str) -> LeadCaptured:
    """A CEO of 1000+ in DE by referral: software 90, retail 75, both qualified at capture."""
    return LeadCaptured(
        lead_id=lead_id,
        contact=Contact(first_name="Ada", last_name="Lovelace", email=f"{lead_id}@loop.example", title="CEO"),
        company=Company(name=f"Co {lead_id}", industry=industry, size=2000, country="DE"),
        source=LeadSource.REFERRAL,
        owner=OWNER,
        assigned_by="round_robin",
        captured_at=NOW,
    )


def outcome(lead_id: str, won: bool) -> Event:
    common = {
        "deal_id": f"D-{lead_id}",
        "lead_id": lead_id,
        "owner": OWNER,
        "account_id": f"A-{lead_id}",
        "account_name": f"Co {lead_id}",
        "cycle_seconds": 86_400.0,
    }
    if won:
        return DealWon(**common, amount=Decimal("25000"), won_at=NOW)
    return DealLost(**common, reason="price", lost_at_stage="proposal", lost_at=NOW)


def envelopes(events: list[Event]) -> list[Envelope[Event]]:
    return [Envelope(event=e, source=source_of(type(e)), correlation_id=unique("corr")) for e in events]


def cohort(prefix: str, count: int, software_won: int, retail_won: int) -> tuple[list[Event], list[Event]]:
    """``count`` software and ``count`` retail leads, and their deals' outcomes: the first
    ``software_won`` / ``retail_won`` of each won, the rest lost."""
    leads: list[Event] = []
    closed: list[Event] = []
    for i in range(count):
        for industry, won in (("software", software_won), ("retail", retail_won)):
            lead_id = f"{prefix}-{industry}-{i}"
            leads.append(captured(lead_id, industry))
            closed.append(outcome(lead_id, i < won))
    return leads, closed


async def test_outcomes_of_qualified_leads_calibrate_the_score_and_a_change_of_outcomes_changes_it(
    stack_backends: Backends, settings_for: Callable[..., Any], admin_token: str
) -> None:
    # A broker of the module's own: the service's new consumer groups read nothing of earlier tests.
    backends = stack_backends
    settings = settings_for(
        QualificationSettings, service_name="qualification", kafka_bootstrap_servers=backends.kafka_bootstrap
    )
    service = build(settings)
    db = service.store.db
    run = unique("loop")
    async with running(service, token=admin_token) as http:
        # 120 outcomes with the default calibration rules (50 needed, a new one every 25): software won
        # 45 of 60, retail 15 of 60.
        leads, closed = cohort(f"{run}-a", 60, software_won=45, retail_won=15)
        await publish_all(backends.kafka_bootstrap, envelopes(leads))

        async def kept(count: int) -> int | None:
            n = await db.qualified_leads.count_documents({})
            return n if n == count else None

        await eventually(lambda: kept(120), timeout=60)
        await publish_all(backends.kafka_bootstrap, envelopes(closed))

        async def report_with(closed_count: int) -> dict[str, Any] | None:
            answer = (await http.get("/scoring/performance")).json()
            return answer if answer["overall"]["closed"] == closed_count else None

        report = await eventually(lambda: report_with(120), timeout=60)
        assert report["overall"] == {"won": 60, "lost": 60, "open": 0, "closed": 120, "win_rate": 0.5}
        rules = {(r["rule"], r["matched"]): r for r in report["rules"]}
        software, retail = rules[("industry", "software")], rules[("industry", "retail")]
        assert (software["won"], software["lost"], software["lift"]) == (45, 15, 1.5)
        assert (retail["won"], retail["lost"], retail["lift"]) == (15, 45, 0.5)
        assert {b["band"]: (b["won"], b["lost"]) for b in report["bands"]} == {
            "70-79": (15, 45),
            "90-99": (45, 15),
        }
        # Calibrated on the way (every 25 closed from the 50th), whichever consumer closed them.
        assert report["calibration"]["status"] == "calibrated"
        assert report["calibration"]["calibration"]["outcomes"] >= 50

        # Now on exactly these 120.
        made = await http.post("/scoring/calibrations")
        assert made.status_code == 201, made.text
        first = made.json()
        assert (first["outcomes"], first["won"], first["lost"], first["folds"]) == (120, 60, 60, 5)
        assert 0.7 < first["auc"] <= 0.8 and first["brier"] < 0.25
        assert first["weights"]["industry=software"] > 0 > first["weights"]["industry=retail"]

        async def probability(lead_id: str) -> float:
            shown = (await http.get(f"/leads/{lead_id}/qualification")).json()["win_probability"]
            assert shown["calibration"] is not None, shown
            return float(shown["probability"])

        a_software, a_retail = f"{run}-a-software-0", f"{run}-a-retail-0"
        before = await probability(a_software), await probability(a_retail)
        assert before[0] == pytest.approx(0.75, abs=0.05) and before[1] == pytest.approx(0.25, abs=0.05)

        # The outcomes turn: of 40 more of each, software wins none and retail all.
        leads, closed = cohort(f"{run}-b", 40, software_won=0, retail_won=40)
        await publish_all(backends.kafka_bootstrap, envelopes(leads))
        await eventually(lambda: kept(200), timeout=60)
        await publish_all(backends.kafka_bootstrap, envelopes(closed))
        report = await eventually(lambda: report_with(200), timeout=60)
        rules = {(r["rule"], r["matched"]): r for r in report["rules"]}
        assert (rules[("industry", "software")]["won"], rules[("industry", "retail")]["won"]) == (45, 55)

        made = await http.post("/scoring/calibrations")
        assert made.status_code == 201, made.text
        second = made.json()
        assert second["version"] > first["version"] and second["outcomes"] == 200
        after = await probability(a_software), await probability(a_retail)
        # Software won 45 of 100 now, retail 55 of 100: the same two leads' odds follow.
        assert after[0] < before[0] and after[1] > before[1] and after[1] > after[0]

        listed = (await http.get("/scoring/calibrations", params={"limit": 1})).json()
        assert (listed["items"][0]["version"], listed["total"]) == (second["version"], second["version"])
        assert REGISTRY.get_sample_value("kariz_qualification_calibration_outcomes") == 200
        assert REGISTRY.get_sample_value("kariz_qualification_outcomes_total", {"result": "won"}) is not None
