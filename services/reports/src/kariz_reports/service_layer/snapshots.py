"""The weekly forecast snapshots: arming their timer, taking one when it fires, and the changes since.

The timer (``forecast-snapshot:weekly``) is armed at start-up when none is armed at one of the
schedule's due times, and again each time a snapshot is taken, for the next due time after it; it emits
``ForecastSnapshotDue`` through the outbox, which reports consumes back (:func:`take_snapshot`). A
snapshot's id is its due event's, so a redelivered event keeps no second one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from kariz_reports.domain import snapshots as snap
from kariz_reports.domain.facts import WHOLE
from kariz_reports.domain.periods import Period
from kariz_reports.domain.snapshots import Snapshot, SnapshotLine, SnapshotSchedule
from kariz_reports.service_layer.unit_of_work import PlansUnitOfWork, ReportsUnitOfWork
from kariz_shared.contracts.errors import NotFound
from kariz_shared.contracts.events import ForecastSnapshotDue


async def arm_snapshots(uow: PlansUnitOfWork, schedule: SnapshotSchedule) -> None:
    """Arm the next snapshot, unless one is armed at a due time of ``schedule`` already (an overdue one
    included: it fires once the worker runs)."""
    key = snap.timer_key(schedule.name)
    armed = await uow.timers.get(key)
    if (
        armed is not None
        and isinstance(armed.event, ForecastSnapshotDue)
        and schedule.is_due_time(armed.due_at)
    ):
        return
    due = schedule.next_after(uow.clock.now())
    uow.timers.arm(key, due, schedule.due(due))


async def take_snapshot(
    uow: ReportsUnitOfWork, due: ForecastSnapshotDue, schedule: SnapshotSchedule
) -> Snapshot:
    """Keep every open deal's forecast standing under the due event's id (once), and arm the next."""
    now = uow.clock.now()
    kept = await uow.snapshots.get(due.snapshot_id)
    if kept is None:
        lines = [line for deal in await uow.facts.forecast_deals(None, None) if (line := snap.line_of(deal))]
        kept = Snapshot(due.snapshot_id, due.schedule, due.due_at, now, len(lines))
        await uow.snapshots.add(kept, lines)
    following = schedule.next_after(max(now, due.due_at))
    uow.timers.arm(snap.timer_key(schedule.name), following, schedule.due(following))
    return kept


@dataclass(frozen=True)
class ChangesQuery:
    period: Period
    #: ``all``, ``rep`` or ``team``.
    by: str
    #: Whose figures: ``*``, ``team:<name>`` or ``rep:<email>``.
    scope: str
    #: The snapshot to compare with; None: the newest.
    since: str | None = None


def _group(line: SnapshotLine, by: str) -> str | None:
    return line.rep if by == "rep" else line.team if by == "team" else WHOLE


async def changes(uow: ReportsUnitOfWork, query: ChangesQuery) -> dict[str, Any]:
    """What changed in the period's forecast since the snapshot: its lines then against the deals now,
    per category and per deal, for the whole and per rep or team."""
    if query.since is None:
        since = await uow.snapshots.newest()
        if since is None:
            raise NotFound("since: no forecast snapshot has been taken yet")
    else:
        found = await uow.snapshots.get(query.since)
        if found is None:
            raise NotFound(f"since: no forecast snapshot {query.since!r}")
        since = found
    p = query.period
    then = [
        line
        for line in await uow.snapshots.lines(since.id, p.start, p.end)
        if snap.visible(query.scope, line.rep, line.team)
    ]
    now_deals = await uow.facts.forecast_deals(p.start, p.end)
    now = [
        line
        for deal in now_deals
        if (line := snap.line_of(deal)) and snap.visible(query.scope, line.rep, line.team)
    ]
    here = {line.deal_id for line in now}
    gone = await uow.facts.deals_by_id([line.deal_id for line in then if line.deal_id not in here])
    closed = {deal.deal_id: c for deal in gone if (c := snap.closed_of(deal))}

    whole = snap.deal_changes(then, now, closed)
    items: list[dict[str, Any]] = []
    if query.by != WHOLE:
        values = sorted({v for line in (*then, *now) if (v := _group(line, query.by)) is not None})
        for value in values:
            mine_then = [line for line in then if _group(line, query.by) == value]
            mine_now = [line for line in now if _group(line, query.by) == value]
            mine = snap.deal_changes(mine_then, mine_now, closed)
            items.append({query.by: value, **snap.totals(mine_then, mine_now, mine)})
    last = p.end - timedelta(days=1)
    return {
        "report": "forecast-changes",
        "by": query.by,
        "period": {"label": p.label, "from": p.start.isoformat(), "to": last.isoformat(), "days": p.days},
        "since": since.summary(),
        "as_of": uow.clock.now().isoformat(),
        "all": snap.totals(then, now, whole),
        "items": items,
        "deals": [c.detail() for c in whole],
    }
