"""The deals service's background loops: the pipeline gauges, the stalled deals' gauge."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any

from kariz_deals.domain import Pipeline, PipelineSummary
from kariz_deals.service_layer import views
from kariz_deals.service_layer.views import DealReads
from kariz_shared.runtime.clock import Clock
from kariz_shared.runtime.periodic import refreshing


def pipeline_gauges(
    reads: DealReads,
    pipelines: Iterable[Pipeline],
    *,
    currency: str,
    record: Callable[[PipelineSummary], None],
    interval_s: float,
    in_force: Callable[[], Awaitable[Iterable[Pipeline]]] | None = None,
) -> Callable[[], Coroutine[Any, Any, None]]:
    """Every ``interval_s``, each pipeline's summary in ``currency`` handed to ``record`` (the gauges):
    ``pipelines``, or those ``in_force`` answers each round (an admin's new pipeline is measured too)."""
    fixed = tuple(pipelines)

    async def measure() -> None:
        # The totals' deltas since the last round are folded first, so the reads stay short.
        await reads.fold_totals()
        measured = tuple(await in_force()) if in_force is not None else fixed
        for pipeline in measured:
            record(await views.pipeline_summary(reads, pipeline, currency=currency))

    return refreshing("pipeline", measure, interval_s)


def stalled_gauge(
    reads: DealReads,
    clock: Clock,
    *,
    record: Callable[[Mapping[tuple[str, str], int]], None],
    interval_s: float,
) -> Callable[[], Coroutine[Any, Any, None]]:
    """Every ``interval_s``, the open deals stalled at the clock's now, by pipeline and stage, handed to
    ``record`` (the gauge the funnel dashboard and ``KarizDealsStalling`` read)."""

    async def measure() -> None:
        record(await reads.stalled_by_stage(clock.now()))

    return refreshing("stalled", measure, interval_s)
