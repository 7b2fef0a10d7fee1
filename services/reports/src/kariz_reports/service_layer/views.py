"""The reports as queries: read the daily figures of the periods asked for, sum them, answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from kariz_reports.domain.facts import WHOLE, Metric
from kariz_reports.domain.figures import REPORTS, Report, open_deals, tally, trailing_average
from kariz_reports.domain.periods import Period, Year, before, trailing
from kariz_reports.service_layer.unit_of_work import ReportsUnitOfWork


@dataclass(frozen=True)
class ReportQuery:
    report: str
    #: A dimension (``source``, ``rep``, ...) or ``all``.
    by: str
    period: Period
    year: Year
    #: Whose figures: ``*`` (everyone), ``team:<name>`` or ``rep:<email>``.
    scope: str


def _described(p: Period) -> dict[str, Any]:
    last = p.end - timedelta(days=1)
    return {"label": p.label, "from": p.start.isoformat(), "to": last.isoformat(), "days": p.days}


async def report(uow: ReportsUnitOfWork, query: ReportQuery) -> dict[str, Any]:
    """One report for ``query``: per value of its dimension (and in all), the period's figures, the
    previous period's, and the average of the four periods before."""
    spec: Report = REPORTS[query.report]
    previous = before(query.period, query.year)
    earlier = trailing(query.period, query.year, 4)
    first = earlier[-1].start
    rows = await uow.figures.rows(spec.metrics, query.scope, query.by, first, query.period.end)
    whole = (
        rows
        if query.by == WHOLE
        else await uow.figures.rows(spec.metrics, query.scope, WHOLE, first, query.period.end)
    )
    ever: list[Any] = []
    ever_whole: list[Any] = []
    if spec.counts_open_deals:
        flow = (Metric.DEAL_OPENED, Metric.WON, Metric.LOST)
        ever = await uow.figures.rows(flow, query.scope, query.by, None, query.period.end)
        ever_whole = (
            ever
            if query.by == WHOLE
            else await uow.figures.rows(flow, query.scope, WHOLE, None, query.period.end)
        )
    periods = [query.period, *earlier]

    def figures_of(source: Sequence[Any], opened: Sequence[Any]) -> dict[str, dict[str, dict[str, Any]]]:
        """period label -> value -> figures"""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for p in periods:
            t = tally(source, p)
            open_at = open_deals(opened, p.end) if spec.counts_open_deals else {}
            values = {v for metric in t.values() for v in metric} | set(open_at)
            out[p.label] = {v: spec.figures(t, v, max(0, open_at.get(v, 0))) for v in values}
        return out

    by_value = figures_of(rows, ever)
    in_all = figures_of(whole, ever_whole)

    def answer(table: dict[str, dict[str, dict[str, Any]]], value: str) -> dict[str, Any]:
        empty = spec.figures({}, value, 0)
        current = table[query.period.label].get(value, empty)
        return {
            **current,
            "previous": table[previous.label].get(value, empty),
            "trailing_average": trailing_average(
                [table[p.label].get(value, empty) for p in earlier], spec.headline
            ),
        }

    values = sorted(by_value[query.period.label], key=str) if query.by != WHOLE else []
    return {
        "report": spec.name,
        "by": query.by,
        "calendar": query.year.calendar.value,
        "fiscal_year_start_month": query.year.fiscal_start_month,
        "period": _described(query.period),
        "previous_period": _described(previous),
        "trailing_periods": [_described(p) for p in earlier],
        "all": answer(in_all, WHOLE),
        "items": [{query.by: value, **answer(by_value, value)} for value in values],
    }
