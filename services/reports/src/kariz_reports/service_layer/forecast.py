"""The forecast against targets: its query, and the use cases that set a quota and submit a forecast
call. Who may set or call for whom is decided here, from the caller's roles and team."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from kariz_reports.domain import forecast as figures_of
from kariz_reports.domain import plans
from kariz_reports.domain.facts import WHOLE, Metric, forecast_metrics
from kariz_reports.domain.figures import tally
from kariz_reports.domain.periods import Period
from kariz_reports.domain.plans import CallKind, ForecastCall, Quota
from kariz_reports.service_layer.unit_of_work import PlansUnitOfWork, ReportsUnitOfWork, Teams
from kariz_shared.contracts.errors import Forbidden, RuleViolation
from kariz_shared.contracts.identity import Caller, Role, Scope

T = TypeVar("T")
U = TypeVar("U", bound=PlansUnitOfWork)


class Units(Protocol[U]):  # type: ignore[misc]
    async def run(self, work: Callable[[U], Awaitable[T]]) -> T: ...


@dataclass(frozen=True)
class ForecastQuery:
    period: Period
    #: ``all``, ``rep`` or ``team``.
    by: str
    #: Whose figures: ``*``, ``team:<name>`` or ``rep:<email>`` (as the reports').
    scope: str


def whole_of(scope: str) -> str:
    """Whose quota and call the ``all`` line of a forecast is: the organisation's for everyone's figures,
    else the team's or the rep's."""
    return plans.ORGANISATION if scope == "*" else scope


def _visible(scope: str, by: str, value: str, teams: Teams) -> bool:
    if scope == "*":
        return True
    if by == "rep":
        return scope == f"rep:{value}" or scope == f"team:{teams.team_of(value)}"
    return scope == f"team:{value}"


async def forecast(uow: ReportsUnitOfWork, query: ForecastQuery) -> dict[str, Any]:
    """Per category the count, amount and weighted amount of the open deals expected to close in the
    period, the won ones, the roll-ups, and each line's quota, attainment, gap and newest calls."""
    metrics = (*forecast_metrics(), Metric.WON)
    p = query.period
    rows = await uow.figures.rows(metrics, query.scope, query.by, p.start, p.end)
    whole_rows = (
        rows if query.by == WHOLE else await uow.figures.rows(metrics, query.scope, WHOLE, p.start, p.end)
    )
    quotas = {q.whom: q for q in await uow.quotas.of_period(p.label)}
    calls = await uow.calls.of_period(p.label)

    def newest(whom: str, kind: CallKind) -> ForecastCall | None:
        return next((c for c in calls if c.whom == whom and c.kind is kind), None)

    def line(t: Any, value: str, whom: str) -> dict[str, Any]:
        quota = quotas.get(whom)
        return {
            **figures_of.figures(t, value, quota.amount if quota else None),
            "call": figures_of.call_summary(newest(whom, CallKind.CALL)),
            "adjusted": figures_of.call_summary(newest(whom, CallKind.ADJUSTMENT)),
        }

    items: list[dict[str, Any]] = []
    if query.by != WHOLE:
        t = tally(rows, p)
        values = {v for metric in t.values() for v in metric}
        # A rep or team with a quota and no deal in the period is a line too: all gap.
        values |= {
            whom.split(":", 1)[1]
            for whom in quotas
            if whom.startswith(f"{query.by}:")
            and _visible(query.scope, query.by, whom.split(":", 1)[1], uow.teams)
        }
        items = [{query.by: v, **line(t, v, f"{query.by}:{v}")} for v in sorted(values)]
    last = p.end - timedelta(days=1)
    return {
        "report": "forecast",
        "by": query.by,
        "period": {"label": p.label, "from": p.start.isoformat(), "to": last.isoformat(), "days": p.days},
        "all": line(tally(whole_rows, p), WHOLE, whole_of(query.scope)),
        "items": items,
    }


def _one_of(rep: str | None, team: str | None) -> None:
    if rep is not None and team is not None:
        raise RuleViolation("rep, team: name one of them, or neither")


def quota_for(caller: Caller, rep: str | None, team: str | None) -> str:
    """Whose quota ``caller`` may set: an admin anyone's (neither: the organisation's), a manager their
    team's and its reps'; a rep none."""
    caller.require(Role.ADMIN, Role.MANAGER)
    _one_of(rep, team)
    if caller.has(Role.ADMIN):
        return plans.rep(rep) if rep else plans.team(team) if team else plans.ORGANISATION
    if rep is not None:
        if not caller.seen.include(rep):
            raise Forbidden(f"rep: {rep} is not in your team ({caller.team or 'none'})")
        return plans.rep(rep)
    if team is None or team != caller.team:
        raise Forbidden(f"team: a manager sets the quotas of their own team ({caller.team or 'none'})")
    return plans.team(team)


def call_for(caller: Caller, rep: str | None, team: str | None) -> tuple[str, CallKind]:
    """Whose call ``caller`` submits, and as what: their own call, or a manager's (admin's) adjustment
    of a rep's of their team, their team's (or, for an admin, the organisation's)."""
    caller.require(Role.ADMIN, Role.MANAGER, Role.REP)
    _one_of(rep, team)
    if (rep is None or rep == caller.subject) and team is None and not caller.has(Role.ADMIN):
        return plans.rep(caller.subject), CallKind.CALL
    if rep == caller.subject:
        return plans.rep(rep), CallKind.CALL
    if caller.has(Role.ADMIN):
        whom = plans.rep(rep) if rep else plans.team(team) if team else plans.ORGANISATION
        return whom, CallKind.ADJUSTMENT
    if not caller.has(Role.MANAGER):
        raise Forbidden("a rep submits their own forecast call; adjusting another's is a manager's")
    if rep is not None:
        if not caller.seen.include(rep):
            raise Forbidden(f"rep: {rep} is not in your team ({caller.team or 'none'})")
        return plans.rep(rep), CallKind.ADJUSTMENT
    if team != caller.team:
        raise Forbidden(f"team: a manager adjusts their own team's call ({caller.team or 'none'})")
    return plans.team(team), CallKind.ADJUSTMENT


@dataclass(frozen=True)
class SetQuota:
    period: str
    whom: str
    amount: Decimal
    currency: str
    by: str


async def set_quota(units: Units[U], command: SetQuota) -> Quota:
    async def work(uow: U) -> Quota:
        existing = await uow.quotas.get(command.period, command.whom)
        quota = Quota.set(
            existing,
            period=command.period,
            whom=command.whom,
            amount=command.amount,
            currency=command.currency,
            by=command.by,
            at=uow.clock.now(),
        )
        await uow.quotas.put(quota)
        return quota

    return await units.run(work)


@dataclass(frozen=True)
class SubmitCall:
    period: str
    whom: str
    kind: CallKind
    commit: Decimal
    best_case: Decimal
    note: str | None
    by: str


async def submit_forecast_call(units: Units[U], command: SubmitCall) -> ForecastCall:
    async def work(uow: U) -> ForecastCall:
        call = ForecastCall.submitted(
            id=str(uuid.uuid4()),
            period=command.period,
            whom=command.whom,
            kind=command.kind,
            commit=command.commit,
            best_case=command.best_case,
            note=command.note,
            by=command.by,
            at=uow.clock.now(),
        )
        await uow.calls.add(call)
        return call

    return await units.run(work)


def visible_plans(caller: Caller, whom: str) -> bool:
    """Whether ``caller`` may read a quota or call of ``whom``: an admin all, a manager their team's and
    its reps', a rep their own, a ``reports:read`` key all (it reads the organisation's figures)."""
    if caller.has(Role.ADMIN) or Scope.REPORTS_READ in caller.scopes:
        return True
    kind, _, name = whom.partition(":")
    if kind == "rep":
        return caller.seen.include(name)
    if kind == "team":
        return caller.has(Role.MANAGER) and name == caller.team
    return False
