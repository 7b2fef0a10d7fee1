"""The HTTP API: one route per report, JSON by default and CSV on ``Accept: text/csv`` or ``?format=csv``.

Who sees what: an admin everyone's figures, a manager their team's (the roster's team of the token), a
rep their own; a machine's API key none (the reports honour no key scope yet).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import date, tzinfo
from typing import Annotated, Any, Literal, Protocol, TypeVar, get_args

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from kariz_reports.domain.facts import DIMENSIONS, WHOLE
from kariz_reports.domain.periods import NAMED, Calendar, Period, PeriodError, Year, between, named
from kariz_reports.service_layer import views
from kariz_reports.service_layer.unit_of_work import ReportsUnitOfWork
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.identity import Caller, Role, Scope
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate
from kariz_shared.runtime.clock import Clock

T = TypeVar("T")

Breakdown = Literal[
    "all", "source", "campaign", "rep", "team", "industry", "country", "company_size", "pipeline"
]
PeriodName = Literal[
    "this_week",
    "last_week",
    "this_month",
    "last_month",
    "this_quarter",
    "last_quarter",
    "this_year",
    "last_year",
]
# The literals are for the OpenAPI document; the domain's lists are the truth they must match.
assert set(get_args(Breakdown)) == {WHOLE, *DIMENSIONS}
assert set(get_args(PeriodName)) == set(NAMED)

DESCRIPTIONS = {
    "funnel": "Captured, contacted (first reaching activity), qualified, deal opened and won, with the "
    "conversion from each step to the next.",
    "win-rate": "Won and lost deals closed in the period, the win rate (won / closed) and the won amount.",
    "cycle": "Average and median days from deal opened to closed, for won, lost and all closed deals.",
    "velocity": "Open deals at the period's end x average won amount x win rate / average cycle days.",
    "outcomes": "Loss reasons, losses to a competitor, the stage deals were lost at, disqualification "
    "reasons.",
    "stages": "Per pipeline stage: deals that reached it, went on, were lost there; median and p90 days "
    "in it.",
    "activity": "Activities by channel and outcome, leads first contacted and the time to it, response SLA "
    "breaches.",
}


class Reads(Protocol):
    async def read(self, work: Callable[[ReportsUnitOfWork], Awaitable[T]]) -> T: ...


class Organisation(Protocol):
    """The reports' settings the routes need."""

    @property
    def zone(self) -> tzinfo: ...

    def year(self, calendar: Calendar | None = None) -> Year: ...


def scope_of(caller: Caller) -> str:
    """Whose figures ``caller`` reads: an admin everyone's, a manager their team's, a rep their own, and
    a machine whose key has the scope ``reports:read`` (a BI tool's) the organisation's."""
    caller.require(Role.ADMIN, Role.MANAGER, Role.REP, scope=Scope.REPORTS_READ)
    if caller.has(Role.ADMIN) or Scope.REPORTS_READ in caller.scopes:
        return "*"
    if caller.has(Role.MANAGER) and caller.team:
        return f"team:{caller.team}"
    return f"rep:{caller.subject}"


def the_period(today: date, year: Year, period: str | None, first: date | None, last: date | None) -> Period:
    try:
        if period is not None and (first is not None or last is not None):
            raise PeriodError("period: give a period or from/to, not both")
        if (first is None) != (last is None):
            raise PeriodError(f"{'to' if last is None else 'from'}: from and to come together")
        if first is not None and last is not None:
            return between(first, last)
        return named(period or "this_month", today, year)
    except PeriodError as exc:
        raise RuleViolation(str(exc)) from exc


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """A nested answer as spreadsheet columns: ``previous.won``, ``loss_reasons.price too high``."""
    if isinstance(value, dict):
        for key, inner in value.items():
            _flat(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and ("name" in item or "stage" in item):
                label = item.get("name", item.get("stage"))
                rest = {k: v for k, v in item.items() if k not in ("name", "stage")}
                _flat(f"{prefix}.{label}", rest["count"] if set(rest) == {"count"} else rest, out)
    else:
        out[prefix] = value


def as_csv(answer: dict[str, Any]) -> str:
    """One row for the whole (``all``) and one per value of the dimension, the period in every row."""
    lines: list[dict[str, Any]] = []
    for value, figures in [(WHOLE, answer["all"]), *((i[answer["by"]], i) for i in answer["items"])]:
        row: dict[str, Any] = {
            "report": answer["report"],
            "period": answer["period"]["label"],
            "from": answer["period"]["from"],
            "to": answer["period"]["to"],
            answer["by"] if answer["by"] != WHOLE else "all": value,
        }
        _flat("", {k: v for k, v in figures.items() if k != answer["by"]}, row)
        lines.append(row)
    columns = list(dict.fromkeys(k for line in lines for k in line))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(lines)
    return text.getvalue()


def router(reads: Reads, clock: Clock, organisation: Organisation) -> APIRouter:
    routes = APIRouter(tags=["reports"], dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    def route(name: str) -> None:
        async def answer(
            request: Request,
            caller: Authenticated,
            by: Annotated[Breakdown, Query(description="The dimension to break the figures down by")] = "all",
            period: Annotated[
                PeriodName | None, Query(description="A period relative to today (default this_month)")
            ] = None,
            first: Annotated[date | None, Query(alias="from", description="First day (with to)")] = None,
            last: Annotated[
                date | None, Query(alias="to", description="Last day, included (with from)")
            ] = None,
            calendar: Annotated[
                Calendar | None, Query(description="Months, quarters and years of this calendar")
            ] = None,
            format: Annotated[Literal["json", "csv"] | None, Query(description="csv, or Accept")] = None,
        ) -> Response:
            scope = scope_of(caller)
            year = organisation.year(calendar)
            today = clock.now().astimezone(organisation.zone).date()
            query = views.ReportQuery(name, by, the_period(today, year, period, first, last), year, scope)
            result = await reads.read(lambda uow: views.report(uow, query))
            wants_csv = format == "csv" or (
                format is None and "text/csv" in request.headers.get("accept", "")
            )
            if wants_csv:
                return Response(as_csv(result), media_type="text/csv; charset=utf-8")
            return JSONResponse(result)

        routes.add_api_route(
            f"/reports/{name}",
            answer,
            methods=["GET"],
            summary=f"The {name} report",
            description=DESCRIPTIONS[name] + " Each figure also for the previous period, and the average "
            "of the four periods before (trailing_average).",
            responses={
                200: {"content": {"application/json": {}, "text/csv": {}}},
                422: {"description": "A bad period, calendar, dimension or date, named"},
            },
            name=f"report_{name.replace('-', '_')}",
        )

    for name in DESCRIPTIONS:
        route(name)
    return routes
