"""The forecast against targets over HTTP: ``GET /forecast``, quotas (``/quotas``) and forecast calls
(``/forecast/calls``). Who sees what is the reports' rule (an admin everyone's, a manager their team's,
a rep their own); who may set a quota or call for whom is :mod:`kariz_reports.service_layer.forecast`'s.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from kariz_reports.domain.periods import Calendar, Period, PeriodError, Year, planned
from kariz_reports.domain.plans import ForecastCall, Quota
from kariz_reports.entrypoints.http import Organisation, Reads, as_csv, scope_of
from kariz_reports.service_layer import forecast, snapshots
from kariz_reports.service_layer.forecast import ForecastQuery, SetQuota, SubmitCall, Units
from kariz_reports.service_layer.snapshots import ChangesQuery
from kariz_reports.service_layer.unit_of_work import PlansUnitOfWork
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.identity import same_person
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate
from kariz_shared.runtime.clock import Clock

PERIOD_HELP = (
    "this_month, next_quarter, ... or a label as the reports name periods: 2026-03, 2026-Q3, 2026 "
    "(FY2026-Q1 when the fiscal year starts after January)"
)


class QuotaBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: str = Field(max_length=40, description=PERIOD_HELP)
    rep: str | None = Field(default=None, max_length=320, description="A rep's quota (e-mail)")
    team: str | None = Field(default=None, max_length=100, description="A team's quota")
    amount: Decimal = Field(description="The target: won amount in the period")
    currency: str = "EUR"


class QuotaOut(BaseModel):
    period: str
    whom: str
    amount: float
    currency: str
    set_by: str
    set_at: datetime
    history: list[dict[str, Any]]

    @classmethod
    def of(cls, q: Quota) -> QuotaOut:
        return cls(
            period=q.period,
            whom=q.whom,
            amount=float(q.amount),
            currency=q.currency,
            set_by=q.set_by,
            set_at=q.set_at,
            history=[
                {"amount": float(h.amount), "currency": h.currency, "set_by": h.set_by, "set_at": h.set_at}
                for h in q.history
            ],
        )


class CallBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    period: str = Field(max_length=40, description=PERIOD_HELP)
    rep: str | None = Field(default=None, max_length=320, description="A manager adjusting a rep's call")
    team: str | None = Field(default=None, max_length=100, description="A manager's call for the team")
    commit: Decimal
    best_case: Decimal
    note: str | None = Field(default=None, max_length=2000, description="Required for an adjustment")


class CallOut(BaseModel):
    id: str
    period: str
    whom: str
    kind: str
    commit: float
    best_case: float
    note: str | None
    by: str
    at: datetime

    @classmethod
    def of(cls, c: ForecastCall) -> CallOut:
        return cls(
            id=c.id,
            period=c.period,
            whom=c.whom,
            kind=c.kind.value,
            commit=float(c.commit),
            best_case=float(c.best_case),
            note=c.note,
            by=c.by,
            at=c.at,
        )


def router(
    reads: Reads, units: Units[PlansUnitOfWork], clock: Clock, organisation: Organisation
) -> APIRouter:
    routes = APIRouter(tags=["forecast"], dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    def period_of(name: str, calendar: Calendar | None = None) -> tuple[Period, Year]:
        year = organisation.year(calendar)
        today = clock.now().astimezone(organisation.zone).date()
        try:
            return planned(name, today, year), year
        except PeriodError as exc:
            message = str(exc)
            raise RuleViolation(message if message.startswith("period") else f"period: {message}") from exc

    def person(address: str | None) -> str | None:
        return same_person(address) if address else None

    @routes.get(
        "/forecast",
        summary="The forecast of a period against its quota",
        description="Per forecast category (pipeline, best_case, commit) the count, amount and "
        "probability-weighted amount of the open deals whose expected close date falls in the period, "
        "closed_won for those won in it, the commit and best-case roll-ups, the quota, attainment and "
        "gap, and the newest forecast call and adjustment; by rep or team.",
        responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
    )
    async def get_forecast(
        request: Request,
        caller: Authenticated,
        period: Annotated[str, Query(max_length=40, description=PERIOD_HELP)] = "this_quarter",
        by: Annotated[Literal["all", "rep", "team"], Query(description="One line per rep or team")] = "all",
        calendar: Annotated[Calendar | None, Query(description="Months, quarters, years of it")] = None,
        format: Annotated[Literal["json", "csv"] | None, Query(description="csv, or Accept")] = None,
    ) -> Response:
        scope = scope_of(caller)
        the_period, _ = period_of(period, calendar)
        query = ForecastQuery(the_period, by, scope)
        answer = await reads.read(lambda uow: forecast.forecast(uow, query))
        if format == "csv" or (format is None and "text/csv" in request.headers.get("accept", "")):
            return Response(as_csv(answer), media_type="text/csv; charset=utf-8")
        return JSONResponse(answer)

    @routes.get(
        "/forecast/changes",
        summary="What changed in a period's forecast since a snapshot (default: the newest)",
        description="The period's open deals at the snapshot against those now: deals that moved into "
        "or out of the period, were won or lost, changed category (best_case->commit) or amount; per "
        "category the count, amount and weighted amount then, now and the change; by rep or team, and "
        "the deals one by one (JSON; the CSV has the totals).",
        responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
    )
    async def get_changes(
        request: Request,
        caller: Authenticated,
        period: Annotated[str, Query(max_length=40, description=PERIOD_HELP)] = "this_quarter",
        by: Annotated[Literal["all", "rep", "team"], Query(description="One line per rep or team")] = "all",
        since: Annotated[
            str | None, Query(max_length=200, description="A snapshot's id (GET /forecast/snapshots)")
        ] = None,
        calendar: Annotated[Calendar | None, Query(description="Months, quarters, years of it")] = None,
        format: Annotated[Literal["json", "csv"] | None, Query(description="csv, or Accept")] = None,
    ) -> Response:
        scope = scope_of(caller)
        the_period, _ = period_of(period, calendar)
        query = ChangesQuery(the_period, by, scope, since)
        answer = await reads.read(lambda uow: snapshots.changes(uow, query))
        if format == "csv" or (format is None and "text/csv" in request.headers.get("accept", "")):
            return Response(as_csv(answer), media_type="text/csv; charset=utf-8")
        return JSONResponse(answer)

    @routes.get("/forecast/snapshots", summary="The forecast snapshots taken, newest first")
    async def get_snapshots(
        caller: Authenticated,
        limit: Annotated[int, Query(ge=1, le=520, description="How many, newest first")] = 12,
    ) -> list[dict[str, Any]]:
        scope_of(caller)
        return [s.summary() for s in await reads.read(lambda uow: uow.snapshots.listing(limit))]

    @routes.put("/quotas", summary="Set a quota (admin; a manager for their team and its reps)")
    async def put_quota(body: QuotaBody, caller: Authenticated) -> QuotaOut:
        whom = forecast.quota_for(caller, person(body.rep), body.team)
        the_period, _ = period_of(body.period)
        command = SetQuota(the_period.label, whom, body.amount, body.currency, caller.actor)
        return QuotaOut.of(await forecast.set_quota(units, command))

    @routes.get("/quotas", summary="The quotas of a period you may see, each with its history")
    async def get_quotas(
        caller: Authenticated,
        period: Annotated[str, Query(max_length=40, description=PERIOD_HELP)] = "this_quarter",
    ) -> list[QuotaOut]:
        scope_of(caller)
        the_period, _ = period_of(period)
        found = await reads.read(lambda uow: uow.quotas.of_period(the_period.label))
        return [QuotaOut.of(q) for q in found if forecast.visible_plans(caller, q.whom)]

    @routes.post(
        "/forecast/calls",
        status_code=201,
        summary="Submit a forecast call: a rep's own, or a manager's adjustment with a note",
    )
    async def post_call(body: CallBody, caller: Authenticated) -> CallOut:
        whom, kind = forecast.call_for(caller, person(body.rep), body.team)
        the_period, _ = period_of(body.period)
        command = SubmitCall(
            the_period.label, whom, kind, body.commit, body.best_case, body.note, caller.actor
        )
        return CallOut.of(await forecast.submit_forecast_call(units, command))

    @routes.get("/forecast/calls", summary="Every forecast call of a period you may see, newest first")
    async def get_calls(
        caller: Authenticated,
        period: Annotated[str, Query(max_length=40, description=PERIOD_HELP)] = "this_quarter",
    ) -> list[CallOut]:
        scope_of(caller)
        the_period, _ = period_of(period)
        found = await reads.read(lambda uow: uow.calls.of_period(the_period.label))
        return [CallOut.of(c) for c in found if forecast.visible_plans(caller, c.whom)]

    return routes
