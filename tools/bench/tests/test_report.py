"""The benchmark's own arithmetic and traffic, without servers: every hot lead qualifies at capture
under the default rules, and the figures it reports are computed from what it measured."""

from __future__ import annotations

import argparse

from kariz_bench import raw
from kariz_bench.cli import Latency, Throughput, end_to_end_s, percentiles, summary, table
from kariz_bench.stack import Usage
from kariz_bench.traffic import hot_leads

from kariz_qualification.domain.rules import DEFAULT_RULES
from kariz_shared.contracts.events import Company, Contact, LeadSource
from kariz_shared.system import SERVICE_NAMES


def test_every_hot_lead_qualifies_on_its_fit_alone() -> None:
    bodies = hot_leads(300, seed=3, run_tag="t")
    assert len({b["contact"]["email"] for b in bodies}) == 300
    for body in bodies:
        contact = Contact(**{k: v for k, v in body["contact"].items() if k != "phone"})
        lines = DEFAULT_RULES.score_fit(Company(**body["company"]), contact, LeadSource(body["source"]))
        assert sum(line.points for line in lines) >= DEFAULT_RULES.thresholds.qualify, body
    # Still a realistic mix of sources and names, not one lead 300 times.
    assert len({b["source"] for b in bodies}) >= 5
    assert len({b["company"]["name"] for b in bodies}) > 250


def test_percentiles_of_a_known_series() -> None:
    cuts = percentiles([float(n) for n in range(1, 101)])
    # Linear interpolation between ranks (95.05, 99.01), shown to a tenth of a millisecond.
    assert cuts == {"p50": 50.5, "p95": 95.0, "p99": 99.0}


def test_the_summary_divides_what_was_measured() -> None:
    usage = {"database": Usage(peak_rss_mb=200, cpu_s=90.0), "leads": Usage(peak_rss_mb=80, cpu_s=10.0)}
    one = Throughput(1, 1000, "import", 2.0, 100.0, 10.0, 500.0, 2, 0, usage)
    two = Throughput(2, 1000, "import", 2.0, 80.0, 12.5, 500.0, 2, 0, dict(usage))
    late = Latency(
        5.0, 300, {"p50": 90.0, "p95": 150.0, "p99": 200.0}, {"p50": 300.0, "p95": 450, "p99": 600}
    )
    raw = {"leads": 1000, "leads_per_second": 40.0, "usage": {}}
    results = {"one_replica": one, "two_replicas": two, "latency": late, "raw": raw, "backends": "embedded"}
    out = summary(results, argparse.Namespace(), __import__("pathlib").Path("/tmp"))

    assert out["leads_per_second"] == 10.0 and out["raw_leads_per_second"] == 40.0
    assert out["ratio_vs_raw"] == 0.25
    assert out["two_replicas_speedup"] == 1.25
    assert out["latency_ms"]["to_deal_opened"]["p99"] == 600
    assert out["cpu_seconds_per_lead"] == 0.1
    # The database used 90 of the 100 CPU seconds, 0.9 of a core over the 100 s run.
    assert out["limit"] == {
        "process": "database",
        "cores_busy": 0.9,
        "cpu_share": 0.9,
        "cpu_ms_per_lead": 90.0,
    }
    printed = table(out)
    assert "Kariz / raw" in printed and "0.25" in printed and "busiest process: database" in printed


def test_the_raw_path_models_every_service_of_the_registry() -> None:
    """A service added to kariz_shared.system needs its raw counterpart (hops, collections, indexes)."""
    assert set(raw.SERVICES) == set(SERVICE_NAMES)
    assert set(raw.COLLECTIONS) == set(raw.KARIZ_INDEXES) == set(SERVICE_NAMES)


def test_throughput_ends_with_the_last_answer_when_deals_came_first() -> None:
    # Deals of every lead out 30 s after the start, but the last import (retried) answered at 170 s.
    assert end_to_end_s(started=100.0, captured_s=170.0, last_deal=130.0) == 170.0
    assert end_to_end_s(started=100.0, captured_s=20.0, last_deal=130.0) == 30.0


def test_the_reports_phase_seeds_whole_deal_stories_and_reports_their_percentiles() -> None:
    from datetime import date

    from kariz_bench.reports import _percentiles, stories

    from kariz_shared.contracts.events import DealLost, DealOpened, DealWon, LeadCaptured

    first = list(stories(200, seed=5, tag="t", today=date(2026, 12, 4)))
    assert first == list(stories(200, seed=5, tag="t", today=date(2026, 12, 4)))  # the same seed, the same
    kinds = [type(e) for e in first]
    assert kinds.count(LeadCaptured) == kinds.count(DealOpened) == 200
    closed = kinds.count(DealWon) + kinds.count(DealLost)
    assert 0 < kinds.count(DealWon) < closed < 200  # some won, some lost, some still open
    opened = [e for e in first if isinstance(e, DealOpened)]
    assert all(date(2025, 12, 4) <= e.opened_at.date() <= date(2026, 12, 4) for e in opened)
    assert _percentiles([float(n) for n in range(1, 101)]) == {
        "p50": 51.0,
        "p95": 96.0,
        "max": 100.0,
        "count": 100.0,
    }
