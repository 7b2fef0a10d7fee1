"""The consumed events and their handlers: every public event a report counts, and the reports' own
snapshot timer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kariz_reports.domain.snapshots import SnapshotSchedule
from kariz_reports.service_layer import snapshots
from kariz_reports.service_layer.handlers import HANDLERS
from kariz_reports.service_layer.unit_of_work import ReportsUnitOfWork
from kariz_shared import system
from kariz_shared.contracts.events import ForecastSnapshotDue
from kariz_shared.persistence.unit_of_work import Subscriptions

#: Consumed, but no projection: a snapshot is taken once, on the generation the reports read, and a
#: rebuild never replays it.
OWN_TIMERS = frozenset({ForecastSnapshotDue})


def subscriptions() -> Subscriptions[ReportsUnitOfWork]:
    """The projections' events of the registry's list for reports, each with its handler (one table,
    checked equal)."""
    consumed = [e for e in system.service("reports").consumes if e not in OWN_TIMERS]
    if set(consumed) != set(HANDLERS) or not OWN_TIMERS <= set(system.service("reports").consumes):
        raise LookupError("the registry's consumes of reports and its handlers differ")
    return {event_cls: HANDLERS[event_cls] for event_cls in consumed}


def on_snapshot_due(
    schedule: SnapshotSchedule,
) -> Callable[[ReportsUnitOfWork, ForecastSnapshotDue], Awaitable[None]]:
    async def handle(uow: ReportsUnitOfWork, due: ForecastSnapshotDue) -> None:
        await snapshots.take_snapshot(uow, due, schedule)

    return handle
