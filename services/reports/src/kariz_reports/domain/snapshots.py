"""Forecast snapshots: where every open deal stood in the forecast at a moment, and what changed since.

A snapshot is taken when the weekly timer fires (``ForecastSnapshotDue``). It keeps one line per open
deal that counts in a forecast (a close date and a category of :data:`FORECAST_CATEGORIES`): its close
date, category, amount and weighted amount, whose it was. That is the compact form of "per upcoming
period": the period a line falls in is read from its close date, so any period can be compared later.

The changes of a period since a snapshot compare its lines closing in the period with the deals that
close in it now, side by side per whose figures they are (so a deal handed from one rep to another
moved out of the first's and into the second's): moved in, moved out, won, lost, category moves and
amount changes, with the totals per category then and now.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum
from typing import Any

from kariz_reports.domain.facts import CENT, FORECAST_CATEGORIES, DealFacts
from kariz_shared.contracts.events import ForecastSnapshotDue

#: The schedule of the weekly snapshots (the due event's ``schedule`` and its key).
WEEKLY = "weekly"


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"

    @property
    def number(self) -> int:
        """As ``date.weekday()`` counts: Monday 0."""
        return list(Weekday).index(self)


def timer_key(schedule: str) -> str:
    return f"forecast-snapshot:{schedule}"


@dataclass(frozen=True)
class SnapshotSchedule:
    """When the snapshots fall due: a weekday and a time of day on the organisation's wall clock."""

    weekday: Weekday
    at: time
    zone: tzinfo
    zone_name: str
    name: str = WEEKLY

    def _local(self, day: date) -> datetime:
        return datetime.combine(day, self.at, tzinfo=self.zone).astimezone(UTC)

    def next_after(self, instant: datetime) -> datetime:
        """The first due time strictly after ``instant`` (UTC): the weekday's local time, so a change of
        the clocks moves it with the wall clock, not by an hour."""
        day = instant.astimezone(self.zone).date()
        day += timedelta(days=(self.weekday.number - day.weekday()) % 7)
        due = self._local(day)
        return due if due > instant else self._local(day + timedelta(days=7))

    def is_due_time(self, at: datetime) -> bool:
        """Whether ``at`` is one of this schedule's due times (a timer armed under other settings is not)."""
        return self.next_after(at - timedelta(milliseconds=1)) == at

    def due(self, at: datetime) -> ForecastSnapshotDue:
        at = at.astimezone(UTC)
        return ForecastSnapshotDue(
            snapshot_id=f"{self.name}:{at.isoformat()}",
            schedule=self.name,
            time_zone=self.zone_name,
            due_at=at,
        )


@dataclass(frozen=True)
class Snapshot:
    id: str
    schedule: str
    due_at: datetime
    taken_at: datetime
    #: Open deals it kept.
    deals: int

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "schedule": self.schedule,
            "due_at": self.due_at.isoformat(),
            "taken_at": self.taken_at.isoformat(),
            "deals": self.deals,
        }


@dataclass(frozen=True)
class SnapshotLine:
    """One open deal as it counted in the forecast."""

    deal_id: str
    rep: str | None
    team: str | None
    close: date
    category: str
    amount: Decimal | None
    weighted: Decimal | None

    def detail(self) -> dict[str, Any]:
        return {
            "close": self.close.isoformat(),
            "category": self.category,
            "amount": _money(self.amount),
            "weighted_amount": _money(self.weighted),
        }


def line_of(deal: DealFacts) -> SnapshotLine | None:
    """The deal as it counts in a forecast now, or None (closed, no close date, a category that counts
    nowhere): the same rule as its forecast contributions."""
    s = deal.standing
    if s is None or deal.won is not None or deal.lost is not None:
        return None
    if s.expected_close is None or s.category not in FORECAST_CATEGORIES:
        return None
    weighted = None
    if s.amount is not None and s.probability is not None:
        weighted = (s.amount * s.probability).quantize(CENT)
    return SnapshotLine(deal.deal_id, s.who.rep, s.who.team, s.expected_close, s.category, s.amount, weighted)


@dataclass(frozen=True)
class Closed:
    """How a deal ended, when it did."""

    outcome: str  # won | lost
    at: datetime
    amount: Decimal | None
    rep: str | None
    team: str | None


def closed_of(deal: DealFacts) -> Closed | None:
    if deal.won is not None:
        at, amount, _, who = deal.won
        return Closed("won", at, amount, who.rep, who.team)
    if deal.lost is not None:
        lost_at, _, _, lost_amount, _, who = deal.lost
        return Closed("lost", lost_at, lost_amount, who.rep, who.team)
    return None


def visible(scope: str, rep: str | None, team: str | None) -> bool:
    """Whether a line counts in ``scope``'s figures (``*``, ``rep:<email>``, ``team:<name>``)."""
    if scope == "*":
        return True
    kind, _, name = scope.partition(":")
    return (kind == "rep" and rep == name) or (kind == "team" and team == name)


def _money(amount: Decimal | None) -> float | None:
    return float(amount.quantize(CENT)) if amount is not None else None


def _amount(amount: Decimal | None) -> Decimal:
    return amount if amount is not None else Decimal(0)


@dataclass(frozen=True)
class DealChange:
    deal_id: str
    #: What changed: moved_in, moved_out, won, lost, category, amount, close_date.
    changes: tuple[str, ...]
    then: SnapshotLine | None
    now: SnapshotLine | None
    closed: Closed | None

    def detail(self) -> dict[str, Any]:
        who = self.now or self.then
        return {
            "deal_id": self.deal_id,
            "rep": who.rep if who else None,
            "team": who.team if who else None,
            "changes": list(self.changes),
            "then": self.then.detail() if self.then else None,
            "now": self.now.detail() if self.now else None,
            "closed": (
                {
                    "outcome": self.closed.outcome,
                    "at": self.closed.at.isoformat(),
                    "amount": _money(self.closed.amount),
                }
                if self.closed
                else None
            ),
        }


def deal_changes(
    then: Iterable[SnapshotLine], now: Iterable[SnapshotLine], closed: Mapping[str, Closed]
) -> list[DealChange]:
    """What changed between the lines of a period at the snapshot (``then``) and now (``now``), both
    already those of one period and one person's view; ``closed``: how the deals that ended did."""
    before = {line.deal_id: line for line in then}
    after = {line.deal_id: line for line in now}
    out: list[DealChange] = []
    for deal_id in sorted(before.keys() | after.keys()):
        old, new = before.get(deal_id), after.get(deal_id)
        kinds: list[str] = []
        ended: Closed | None = None
        if old is not None and new is None:
            ended = closed.get(deal_id)
            kinds.append(ended.outcome if ended else "moved_out")
        elif old is None and new is not None:
            kinds.append("moved_in")
        elif old is not None and new is not None:
            if old.category != new.category:
                kinds.append("category")
            if old.amount != new.amount:
                kinds.append("amount")
            if old.close != new.close:
                kinds.append("close_date")
        if kinds:
            out.append(DealChange(deal_id, tuple(kinds), old, new, ended))
    return out


def _count(lines: Iterable[SnapshotLine]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for category in FORECAST_CATEGORIES:
        mine = [line for line in lines if line.category == category]
        out[category] = {
            "count": len(mine),
            "amount": float(sum((_amount(line.amount) for line in mine), Decimal(0))),
            "weighted_amount": float(sum((_amount(line.weighted) for line in mine), Decimal(0))),
        }
    return out


def _sum(changes: Iterable[DealChange], amount: Callable[[DealChange], Decimal]) -> dict[str, Any]:
    chosen = list(changes)
    return {"count": len(chosen), "amount": float(sum((amount(c) for c in chosen), Decimal(0)))}


def _then_amount(c: DealChange) -> Decimal:
    return _amount(c.then.amount if c.then else None)


def _now_amount(c: DealChange) -> Decimal:
    return _amount(c.now.amount if c.now else None)


def totals(then: list[SnapshotLine], now: list[SnapshotLine], changes: list[DealChange]) -> dict[str, Any]:
    """The figures of one line of the answer: per category then, now and the change; the deals moved in
    and out (their amount now and then), won and lost (the amount they closed at), the category moves
    (``best_case->commit``) and the amount changes (the net difference)."""
    before, after = _count(then), _count(now)
    categories = {
        category: {
            "then": before[category],
            "now": after[category],
            "change": {
                key: after[category][key] - before[category][key]
                for key in ("count", "amount", "weighted_amount")
            },
        }
        for category in FORECAST_CATEGORIES
    }
    moves: dict[str, list[DealChange]] = {}
    for c in changes:
        if "category" in c.changes and c.then and c.now:
            moves.setdefault(f"{c.then.category}->{c.now.category}", []).append(c)

    def closed_amount(c: DealChange) -> Decimal:
        return _amount(c.closed.amount) if c.closed and c.closed.amount is not None else _then_amount(c)

    return {
        "categories": categories,
        "moved_in": _sum((c for c in changes if "moved_in" in c.changes), _now_amount),
        "moved_out": _sum((c for c in changes if "moved_out" in c.changes), _then_amount),
        "won": _sum((c for c in changes if "won" in c.changes), closed_amount),
        "lost": _sum((c for c in changes if "lost" in c.changes), closed_amount),
        "category_moves": {move: _sum(found, _now_amount) for move, found in sorted(moves.items())},
        "amount_changes": _sum(
            (c for c in changes if "amount" in c.changes), lambda c: _now_amount(c) - _then_amount(c)
        ),
    }
