"""The daily figures and the reports made of them.

A :class:`DailyFigure` is one stored row: for a local day, a metric, whose figures (``scope``), and one
dimension value (``source = referral``, or ``all``), the count, the summed amount, counts per facet
(loss reason, stage, channel/outcome) and the samples medians are taken from (per facet, by the
contributing thing's key, so a retraction removes exactly its own). A report reads the rows of its days
and sums them per dimension value: what it costs grows with days x values, never with deals or leads.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from kariz_reports.domain.facts import Contribution, Metric
from kariz_reports.domain.periods import Period

NO_FACET = "_"


@dataclass
class DailyFigure:
    day: date
    metric: str
    scope: str
    dim: str
    value: str
    count: int = 0
    amount: Decimal = Decimal(0)
    facets: dict[str, int] = field(default_factory=dict)
    samples: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class Tally:
    """The figures of one metric over some days, for one dimension value."""

    count: int = 0
    amount: Decimal = Decimal(0)
    facets: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def take(self, row: DailyFigure) -> None:
        self.count += row.count
        self.amount += row.amount
        for facet, n in row.facets.items():
            self.facets[facet] += n
        for facet, values in row.samples.items():
            self.samples[facet].extend(values.values())

    def all_samples(self) -> list[float]:
        return [v for values in self.samples.values() for v in values]


#: metric -> dimension value -> tally
Tallies = dict[str, dict[str, Tally]]


def tally(rows: Iterable[DailyFigure], period: Period) -> Tallies:
    out: Tallies = defaultdict(lambda: defaultdict(Tally))
    for row in rows:
        if period.holds(row.day):
            out[row.metric][row.value].take(row)
    return out


#: A stored row: (day, metric, scope, dimension, value).
RowKey = tuple[date, str, str, str, str]


@dataclass
class Bump:
    """How one row moves: counts and amounts added (or taken out), samples set and removed."""

    count: int = 0
    amount: Decimal = Decimal(0)
    facets: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples_set: dict[tuple[str, str], float] = field(default_factory=dict)
    samples_unset: set[tuple[str, str]] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return (
            not self.count
            and not self.amount
            and not any(self.facets.values())
            and not self.samples_set
            and not self.samples_unset
        )


def gather(into: dict[RowKey, Bump], later: dict[RowKey, Bump]) -> None:
    """Fold ``later`` bumps (the next event's) into ``into`` (those of the events before it), so a batch
    moves each row once: counts add up, and a sample set or unset later wins over an earlier one."""
    for key, bump in later.items():
        kept = into.get(key)
        if kept is None:
            into[key] = bump
            continue
        kept.count += bump.count
        kept.amount += bump.amount
        for facet, n in bump.facets.items():
            kept.facets[facet] += n
        # Within one bump a sample is set or unset, never both (see bumps()).
        for at in bump.samples_unset:
            kept.samples_set.pop(at, None)
            kept.samples_unset.add(at)
        for at, value in bump.samples_set.items():
            kept.samples_unset.discard(at)
            kept.samples_set[at] = value


def bumps(retract: Iterable[Contribution], add: Iterable[Contribution]) -> dict[RowKey, Bump]:
    """The rows ``retract`` and ``add`` move, and by how much: each contribution counts in each of its
    scopes under each of its dimension values (the whole included). Retractions first, so a
    contribution retracted and added again under the same row leaves it as it was."""
    out: dict[RowKey, Bump] = defaultdict(Bump)
    for sign, contributions in ((-1, retract), (1, add)):
        for c in contributions:
            for scope in c.scopes():
                for dim, value in c.dimension_values():
                    bump = out[(c.day, c.metric, scope, dim, value)]
                    bump.count += sign
                    if c.amount is not None:
                        bump.amount += sign * c.amount
                    if c.facet is not None:
                        bump.facets[c.facet] += sign
                    if c.sample is not None:
                        at = (c.facet or NO_FACET, c.key)
                        if sign > 0:
                            bump.samples_unset.discard(at)
                            bump.samples_set[at] = c.sample
                        else:
                            bump.samples_set.pop(at, None)
                            bump.samples_unset.add(at)
    return {k: b for k, b in out.items() if not b.empty}


def moved(row: DailyFigure, bump: Bump) -> DailyFigure:
    """``row`` after ``bump`` (in place), as the database's $inc, $set and $unset would leave it."""
    row.count += bump.count
    row.amount += bump.amount
    for facet, n in bump.facets.items():
        row.facets[facet] = row.facets.get(facet, 0) + n
    for facet, key in bump.samples_unset:
        row.samples.get(facet, {}).pop(key, None)
    for (facet, key), value in bump.samples_set.items():
        row.samples.setdefault(facet, {})[key] = value
    return row


def rate(part: float, whole: float) -> float | None:
    """``part / whole`` rounded to four places; None when there is no whole to divide."""
    return round(part / whole, 4) if whole else None


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 3) if values else None


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank percentile: a value that occurred, so a p90 of 10 deals is the 9th slowest."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return round(ordered[int(rank) - 1], 3)


def _count(t: Tallies, metric: str, value: str) -> int:
    found = t.get(metric, {}).get(value)
    return found.count if found else 0


def _get(t: Tallies, metric: str, value: str) -> Tally:
    return t.get(metric, {}).get(value) or Tally()


FUNNEL_STEPS = (Metric.CAPTURED, Metric.CONTACTED, Metric.QUALIFIED, Metric.DEAL_OPENED, Metric.WON)


def funnel(t: Tallies, value: str, open_deals: int = 0) -> dict[str, Any]:
    counts = {step: _count(t, step, value) for step in FUNNEL_STEPS}
    conversion = {f"{a}_to_{b}": rate(counts[b], counts[a]) for a, b in itertools.pairwise(FUNNEL_STEPS)}
    return {**counts, **conversion, "captured_to_won": rate(counts[Metric.WON], counts[Metric.CAPTURED])}


def win_rate(t: Tallies, value: str, open_deals: int = 0) -> dict[str, Any]:
    won, lost = _get(t, Metric.WON, value), _get(t, Metric.LOST, value)
    return {
        "won": won.count,
        "lost": lost.count,
        "closed": won.count + lost.count,
        "win_rate": rate(won.count, won.count + lost.count),
        "won_amount": str(won.amount),
    }


def _days(seconds: float | None) -> float | None:
    # To 6 places (a tenth of a second): a cycle of seconds (a demo's, a test's) is not 0.
    return round(seconds / 86400, 6) if seconds is not None else None


def cycle(t: Tallies, value: str, open_deals: int = 0) -> dict[str, Any]:
    won = _get(t, Metric.WON, value).all_samples()
    lost = _get(t, Metric.LOST, value).all_samples()

    def of(values: list[float]) -> dict[str, Any]:
        return {
            "closed": len(values),
            "average_days": _days(mean(values)),
            "median_days": _days(median(values)),
        }

    return {"won": of(won), "lost": of(lost), "all": of(won + lost)}


def velocity(t: Tallies, value: str, open_deals: int) -> dict[str, Any]:
    """Sales velocity: open deals x average won value x win rate / average cycle (days), per day."""
    won = _get(t, Metric.WON, value)
    lost = _get(t, Metric.LOST, value)
    closed_cycles = won.all_samples() + lost.all_samples()
    average_won = won.amount / won.count if won.count else None
    win = rate(won.count, won.count + lost.count)
    cycle_days = _days(mean(closed_cycles))
    per_day = None
    if average_won is not None and win is not None and cycle_days:
        per_day = (Decimal(open_deals) * average_won * Decimal(str(win)) / Decimal(str(cycle_days))).quantize(
            Decimal("0.01")
        )
    return {
        "open_deals": open_deals,
        "average_won_amount": str(average_won.quantize(Decimal("0.01"))) if average_won is not None else None,
        "win_rate": win,
        "average_cycle_days": cycle_days,
        "velocity_per_day": str(per_day) if per_day is not None else None,
    }


def _ranked(facets: dict[str, int]) -> list[dict[str, Any]]:
    return [{"name": k, "count": n} for k, n in sorted(facets.items(), key=lambda kv: (-kv[1], kv[0])) if n]


#: Loss reasons that name a competitor as the cause; the events carry no competitor field yet.
COMPETITOR_WORDS = ("competitor", "competition")


def outcomes(t: Tallies, value: str, open_deals: int = 0) -> dict[str, Any]:
    lost = _get(t, Metric.LOST, value)
    return {
        "won": _count(t, Metric.WON, value),
        "lost": lost.count,
        "loss_reasons": _ranked(dict(lost.facets)),
        "competitor_losses": sum(
            n for reason, n in lost.facets.items() if any(w in reason.lower() for w in COMPETITOR_WORDS)
        ),
        "lost_at_stage": _ranked(dict(_get(t, Metric.LOST_AT_STAGE, value).facets)),
        "disqualification_reasons": _ranked(dict(_get(t, Metric.DISQUALIFIED, value).facets)),
    }


def stages(t: Tallies, value: str, open_deals: int = 0) -> dict[str, Any]:
    reached = _get(t, Metric.STAGE_REACHED, value).facets
    went_on = _get(t, Metric.STAGE_WENT_ON, value).facets
    lost_there = _get(t, Metric.LOST_AT_STAGE, value).facets
    times = _get(t, Metric.STAGE_TIME, value).samples
    names = sorted(
        set(reached) | set(went_on) | set(lost_there) | set(times), key=lambda s: -reached.get(s, 0)
    )
    return {
        "stages": [
            {
                "stage": name,
                "reached": reached.get(name, 0),
                "went_on": went_on.get(name, 0),
                "conversion": rate(went_on.get(name, 0), reached.get(name, 0)),
                "lost_here": lost_there.get(name, 0),
                "median_days_in_stage": _days(median(times.get(name, []))),
                "p90_days_in_stage": _days(percentile(times.get(name, []), 90)),
            }
            for name in names
        ]
    }


def activity(t: Tallies, value: str, open_deals: int = 0) -> dict[str, Any]:
    done = _get(t, Metric.ACTIVITY, value)
    by_channel: dict[str, int] = defaultdict(int)
    by_outcome: dict[str, int] = defaultdict(int)
    for facet, n in done.facets.items():
        channel, _, outcome = facet.partition("/")
        by_channel[channel] += n
        by_outcome[outcome] += n
    first_contact = _get(t, Metric.CONTACTED, value).all_samples()
    return {
        "activities": done.count,
        "by_channel": _ranked(by_channel),
        "by_outcome": _ranked(by_outcome),
        "contacted": _count(t, Metric.CONTACTED, value),
        "first_contact_median_hours": round(m / 3600, 3)
        if (m := median(first_contact)) is not None
        else None,
        "first_contact_average_hours": round(a / 3600, 3) if (a := mean(first_contact)) is not None else None,
        "sla_breaches": _count(t, Metric.SLA_BREACH, value),
    }


@dataclass(frozen=True)
class Report:
    """What a report reads (metrics) and how it makes one dimension value's figures; ``open_deals`` is
    the value's deals open at the period's end (velocity's only)."""

    name: str
    metrics: tuple[str, ...]
    figures: Callable[[Tallies, str, int], dict[str, Any]]
    #: The headline figures a trailing average is taken of.
    headline: tuple[str, ...]
    #: Whether it needs the deals open at the period's end (read from the first day on).
    counts_open_deals: bool = False


REPORTS: dict[str, Report] = {
    "funnel": Report("funnel", FUNNEL_STEPS, funnel, FUNNEL_STEPS),
    "win-rate": Report("win-rate", (Metric.WON, Metric.LOST), win_rate, ("won", "lost", "win_rate")),
    "cycle": Report("cycle", (Metric.WON, Metric.LOST), cycle, ()),
    "velocity": Report(
        "velocity",
        (Metric.WON, Metric.LOST),
        velocity,
        ("open_deals", "win_rate", "average_cycle_days"),
        counts_open_deals=True,
    ),
    "outcomes": Report(
        "outcomes",
        (Metric.WON, Metric.LOST, Metric.LOST_AT_STAGE, Metric.DISQUALIFIED),
        outcomes,
        ("won", "lost", "competitor_losses"),
    ),
    "stages": Report(
        "stages",
        (Metric.STAGE_REACHED, Metric.STAGE_WENT_ON, Metric.LOST_AT_STAGE, Metric.STAGE_TIME),
        stages,
        (),
    ),
    "activity": Report(
        "activity",
        (Metric.ACTIVITY, Metric.CONTACTED, Metric.SLA_BREACH),
        activity,
        ("activities", "contacted", "sla_breaches"),
    ),
}


def open_deals(rows: Iterable[DailyFigure], before: date) -> dict[str, int]:
    """Per dimension value, the deals opened before ``before`` and not closed before it."""
    out: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.day < before:
            sign = (
                1
                if row.metric == Metric.DEAL_OPENED
                else -1
                if row.metric in (Metric.WON, Metric.LOST)
                else 0
            )
            out[row.value] += sign * row.count
    return out


def trailing_average(answers: list[dict[str, Any]], headline: tuple[str, ...]) -> dict[str, float | None]:
    """The average of each headline figure over ``answers`` (the periods before), None where none had it."""
    out: dict[str, float | None] = {}
    for name in headline:
        values = [float(a[name]) for a in answers if a.get(name) is not None]
        out[name] = round(statistics.fmean(values), 4) if values else None
    return out
