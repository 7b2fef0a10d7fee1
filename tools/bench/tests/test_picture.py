"""The bench's picture and the series it is drawn from: deals per second and the latency curve."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from kariz_bench.cli import distribution, per_second
from kariz_bench.picture import draw, smoothed


def test_deals_are_counted_in_the_second_they_arrived() -> None:
    assert per_second(10.0, [10.2, 10.9, 11.0, 13.5]) == [2, 1, 0, 1]
    assert per_second(10.0, []) == []


def test_the_distribution_runs_from_the_fastest_to_the_slowest_in_101_points() -> None:
    curve = distribution([float(n) for n in range(1, 201)])
    assert len(curve) == 101
    assert curve[0] == 1.0 and curve[-1] == 200.0
    assert curve == sorted(curve)
    assert curve[50] == 100.5  # the median
    assert distribution([7.0]) == [7.0] and distribution([]) == []


def test_a_stall_stays_visible_in_the_smoothed_line() -> None:
    line = smoothed([10] * 10 + [0] * 10 + [10] * 10)
    assert line[9] == 10 and line[19] == 0 and line[29] == 10


def test_the_picture_has_a_line_per_phase_and_the_raw_ceiling(tmp_path: Path) -> None:
    phase = {
        "deals_per_second": [5, 9, 12, 11, 0, 0, 8],
        "to_deal_opened_distribution_ms": [float(100 + i * 10) for i in range(101)],
    }
    results = {
        "details": {
            "one_replica": phase,
            "two_replicas": phase,
            "latency": None,
            "raw": {"leads_per_second": 20.0},
        },
        "run": {"command": "kariz-bench --leads 7", "at": "2026-12-05T00:00:00Z"},
    }
    svg = draw(results, tmp_path / "bench.svg").read_text()
    ET.fromstring(svg)  # well-formed
    # matplotlib draws text as glyph paths and names each text in a comment beside it.
    for label in ("Kariz, 1 replica", "Kariz, 2 replicas", "raw ceiling"):
        assert f"<!-- {label}" in svg
    assert "latency phase" not in svg  # a phase that did not run draws no line
