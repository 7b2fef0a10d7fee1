"""``make demo`` end to end: the driver against the services as processes, and the run's funnel read
from the reports service agrees with what the driver itself counted."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kariz_loadgen.cli import not_ready, run_demo

from kariz_devkit.testing import Backends, unique
from kariz_devkit.testing.cluster import Cluster, Sinks, standard_environment

pytestmark = pytest.mark.e2e

LEADS = 20


@pytest.fixture
async def cluster(stack_backends: Backends, tmp_path: Path) -> AsyncIterator[Cluster]:
    # A broker of the module's own: on the session's, the reports service's new consumer groups first
    # read every earlier test's records, and late in a full run the demo gave up waiting for them.
    backends = stack_backends
    sinks = await Sinks().start()
    running = Cluster(
        backends, tmp_path / "logs", standard_environment(backends, sinks, [f"{unique('rep')}@kariz.test"])
    )
    try:
        await running.start_all()
        yield running
    finally:
        await running.stop_all()
        await sinks.stop()


async def test_the_demo_report_read_from_kariz_agrees_with_the_driver(
    cluster: Cluster, admin_token: str
) -> None:
    assert await not_ready(cluster.urls) == []
    progress = io.StringIO()
    result = await run_demo(
        cluster.urls, leads=LEADS, concurrency=8, seed=5, token=admin_token, progress_to=progress
    )

    tally, report = result.tally, result.report
    print("\n" + result.report_text())
    assert result.mismatches == []
    assert tally.captured + tally.touches == LEADS
    assert report.captured == tally.captured > 0
    assert report.qualified + report.disqualified == report.captured  # every lead decided
    # Every qualified lead got a deal and every deal ended won or lost, so every cycle has a length.
    assert report.deals == report.qualified == report.won + report.lost > 0
    assert report.cycle["all"].closed == report.deals
    assert report.cycle["all"].average_days is not None and report.cycle["all"].average_days > 0
    # Every deal opened in the pipeline's first stage.
    assert report.stages[0].reached == report.deals
    assert sum(r.captured for r in report.by_source) == report.captured
    bars = [line for line in progress.getvalue().splitlines() if not line.startswith("waiting for")]
    assert f"{LEADS}/{LEADS} leads" in bars[-1]
