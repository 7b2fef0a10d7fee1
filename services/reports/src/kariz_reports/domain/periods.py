"""Reporting periods: this or last week, month, quarter, year, or explicit dates, in the organisation's
calendar (Gregorian or Solar Hijri) with its fiscal year, and the periods a report compares against.

Pure date arithmetic: the caller says what "today" is (in the organisation's time zone), so every edge
(a month's last day, a quarter across the new year, a fiscal year starting in April, Esfand's leap day)
is a unit test with fixed dates. A period is a half-open range of local days, ``start <= day < end``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

import jdatetime


class Calendar(StrEnum):
    GREGORIAN = "gregorian"
    #: The Solar Hijri calendar (Iran, Afghanistan): Farvardin 1 is the March equinox's day.
    PERSIAN = "persian"


class Span(StrEnum):
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"
    #: Explicit ``from``/``to`` dates: compared with as many days just before.
    DAYS = "days"


#: The names ``?period=`` accepts, and what each means relative to today.
NAMED: dict[str, tuple[Span, int]] = {
    "this_week": (Span.WEEK, 0),
    "last_week": (Span.WEEK, -1),
    "this_month": (Span.MONTH, 0),
    "last_month": (Span.MONTH, -1),
    "this_quarter": (Span.QUARTER, 0),
    "last_quarter": (Span.QUARTER, -1),
    "this_year": (Span.YEAR, 0),
    "last_year": (Span.YEAR, -1),
}

#: The periods ahead a forecast or a quota may also name (a report reads what happened: not these).
AHEAD: dict[str, tuple[Span, int]] = {
    "next_month": (Span.MONTH, 1),
    "next_quarter": (Span.QUARTER, 1),
    "next_year": (Span.YEAR, 1),
}

MONTHS_IN: dict[Span, int] = {Span.MONTH: 1, Span.QUARTER: 3, Span.YEAR: 12}

#: A month, quarter or year by its label: ``2026-03``, ``2026-Q3``, ``2026``; ``FY2026-Q1``, ``FY2026``
#: when the fiscal year starts after January (in the organisation's calendar: ``1405-Q1`` in Persian).
LABEL = re.compile(
    r"^(?:(?P<month_year>\d{4})-(?P<month>\d{2})|(?P<fy>FY)?(?P<year>\d{4})(?:-Q(?P<quarter>[1-4]))?)$"
)

#: The longest explicit range a report answers (with its four comparison periods, five times this).
LONGEST_RANGE = timedelta(days=3 * 366)
#: The days a report may name: its comparison periods stay far inside what a date can hold.
EARLIEST, LATEST = date(1900, 1, 1), date(2199, 12, 31)


class PeriodError(ValueError):
    """A period that cannot be: an unknown name, ``to`` before ``from``, a range too long."""


@dataclass(frozen=True)
class Year:
    """The organisation's year: its calendar and the month (1-12, in that calendar) its fiscal year,
    and so its quarters, start with."""

    calendar: Calendar = Calendar.GREGORIAN
    fiscal_start_month: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.fiscal_start_month <= 12:
            raise PeriodError(f"fiscal_start_month must be 1..12, not {self.fiscal_start_month}")

    # A month is numbered from year 0 of its calendar (year * 12 + month - 1): month arithmetic is then
    # integer arithmetic, the same in both calendars.
    def month_of(self, day: date) -> int:
        if self.calendar is Calendar.PERSIAN:
            j = jdatetime.date.fromgregorian(date=day)
            return j.year * 12 + j.month - 1
        return day.year * 12 + day.month - 1

    def first_day(self, month: int) -> date:
        year, index = divmod(month, 12)
        if self.calendar is Calendar.PERSIAN:
            gregorian: date = jdatetime.date(year, index + 1, 1).togregorian()
            return gregorian
        return date(year, index + 1, 1)

    def week_start(self, day: date) -> date:
        # The Persian week starts on Saturday, the ISO week on Monday.
        first = 5 if self.calendar is Calendar.PERSIAN else 0
        return day - timedelta(days=(day.weekday() - first) % 7)

    def month_label(self, month: int) -> str:
        year, index = divmod(month, 12)
        return f"{year:04d}-{index + 1:02d}"


@dataclass(frozen=True)
class Period:
    """Local days ``start <= day < end``, of ``span``, labelled as the organisation names it."""

    span: Span
    start: date
    end: date
    label: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def holds(self, day: date) -> bool:
        return self.start <= day < self.end


def _month_period(year: Year, span: Span, first_month: int) -> Period:
    months = MONTHS_IN[span]
    start, end = year.first_day(first_month), year.first_day(first_month + months)
    # A fiscal year is named after the calendar year it starts in (FY2025 starting April 2025).
    fiscal_year, fiscal_month = divmod(first_month - (year.fiscal_start_month - 1), 12)
    prefix = "FY" if year.fiscal_start_month != 1 else ""
    if span is Span.MONTH:
        label = year.month_label(first_month)
    elif span is Span.QUARTER:
        label = f"{prefix}{fiscal_year:04d}-Q{fiscal_month // 3 + 1}"
    else:
        label = f"{prefix}{fiscal_year:04d}"
    return Period(span, start, end, label)


def _containing(year: Year, span: Span, day: date, shift: int) -> Period:
    """The ``span`` period holding ``day``, moved ``shift`` periods (-1: the one before)."""
    if span is Span.WEEK:
        start = year.week_start(day) + timedelta(weeks=shift)
        end = start + timedelta(days=7)
        return Period(span, start, end, f"week of {start.isoformat()}")
    months = MONTHS_IN[span]
    month = year.month_of(day)
    # Quarters and years count from the fiscal year's first month.
    first = month - (month - (year.fiscal_start_month - 1)) % months
    return _month_period(year, span, first + shift * months)


def named(name: str, today: date, year: Year) -> Period:
    """``this_month``, ``last_quarter``, ... as seen on ``today`` (a local date)."""
    if name not in NAMED:
        raise PeriodError(f"period must be one of {', '.join(NAMED)}, not {name!r}")
    span, shift = NAMED[name]
    return _containing(year, span, today, shift)


def planned(name: str, today: date, year: Year) -> Period:
    """The period a quota, a forecast or a forecast call is for: a name relative to today (``this_quarter``,
    ``next_quarter``, ...) or a month's, quarter's or year's label as the reports name it."""
    if name in NAMED or name in AHEAD:
        span, shift = NAMED.get(name) or AHEAD[name]
        return _containing(year, span, today, shift)
    found = LABEL.match(name)
    if found is None:
        raise PeriodError(
            f"period must be one of {', '.join([*NAMED, *AHEAD])} or a label such as 2026-03, 2026-Q3 or "
            f"2026, not {name!r}"
        )
    if found["month_year"]:
        month = int(found["month"])
        if not 1 <= month <= 12:
            raise PeriodError(f"period: {name!r} has no month {month}")
        period = _month_period(year, Span.MONTH, int(found["month_year"]) * 12 + month - 1)
    else:
        fiscal = year.fiscal_start_month != 1
        if bool(found["fy"]) != fiscal:
            hint = "FY<year>" if fiscal else "<year> without FY"
            starts = year.fiscal_start_month
            raise PeriodError(f"period: {name!r}; the fiscal year starts in month {starts}: {hint}")
        first = int(found["year"]) * 12 + year.fiscal_start_month - 1
        if found["quarter"]:
            period = _month_period(year, Span.QUARTER, first + (int(found["quarter"]) - 1) * 3)
        else:
            period = _month_period(year, Span.YEAR, first)
    if not EARLIEST <= period.start <= LATEST:
        raise PeriodError(f"period: {name!r} is out of range")
    return period


def between(first: date, last: date) -> Period:
    """The days ``first`` to ``last``, both included."""
    for name, day in (("from", first), ("to", last)):
        if not EARLIEST <= day <= LATEST:
            raise PeriodError(f"{name} ({day}) must be between {EARLIEST} and {LATEST}")
    if last < first:
        raise PeriodError(f"to ({last}) is before from ({first})")
    end = last + timedelta(days=1)
    if end - first > LONGEST_RANGE:
        raise PeriodError(f"from..to spans {(end - first).days} days; at most {LONGEST_RANGE.days}")
    return Period(Span.DAYS, first, end, f"{first.isoformat()}..{last.isoformat()}")


def before(period: Period, year: Year) -> Period:
    """The period just before ``period``, of the same span (as many days, for explicit dates)."""
    if period.span is Span.DAYS:
        length = timedelta(days=period.days)
        start = period.start - length
        return Period(Span.DAYS, start, period.start, f"{start}..{period.start - timedelta(days=1)}")
    return _containing(year, period.span, period.start, -1)


def trailing(period: Period, year: Year, count: int = 4) -> list[Period]:
    """The ``count`` periods before ``period``, nearest first: the trailing average's periods."""
    periods: list[Period] = []
    current = period
    for _ in range(count):
        current = before(current, year)
        periods.append(current)
    return periods
