"""``make demo`` end to end: the driver against the four services as processes, and the funnel read back
from Kariz agrees with what the driver itself counted."""

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
async def cluster(backends: Backends, tmp_path: Path) -> AsyncIterator[Cluster]:
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

    tally, funnel = result.tally, result.funnel
    print("\n" + result.report())
    assert result.mismatches == []
    assert tally.captured + tally.touches == LEADS
    assert funnel.leads == tally.captured and funnel.captures == LEADS
    assert funnel.qualified + funnel.disqualified == funnel.leads  # every lead decided
    # Every qualified lead got a deal and every deal ended won or lost, so every cycle has a length.
    assert funnel.deals == funnel.qualified == funnel.won + funnel.lost > 0
    assert len(funnel.cycle_s) == funnel.deals and all(s > 0 for s in funnel.cycle_s)
    assert funnel.stages[0].reached == funnel.deals
    assert sum(r.captured for r in funnel.by_source) == funnel.leads
    assert f"{LEADS}/{LEADS} leads" in progress.getvalue().splitlines()[-1]
