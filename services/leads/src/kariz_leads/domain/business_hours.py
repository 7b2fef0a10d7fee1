"""Business hours: when a team works, in its own time zone, and the time arithmetic of an SLA in them.

A :class:`BusinessHours` is a working window (``opens`` to ``closes`` local time, e.g. 09:00 to 17:00)
on some weekdays, in an IANA time zone (``Europe/Berlin``), minus holidays (local dates). An SLA counted
in it (:meth:`BusinessHours.add`) starts at the next working moment (a capture on Saturday counts from
Monday's opening), steps whole days as business days (``P1D``: the same time of day, the next working
day) and the rest as working time, which only passes inside the window.

All arithmetic on instants is done in UTC and the local wall clock is read through ``zoneinfo``, so a
day on which the clocks change is as long as it really is: a window that contains the change (say one
open round the clock) is an hour shorter or longer that day.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY = timedelta(days=1)
#: How far ahead a calendar looks for a working day before it calls itself unworkable.
HORIZON_DAYS = 3 * 366

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def time_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``Europe/Berlin``); ``ValueError`` naming it when it is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone (e.g. Europe/Berlin, America/New_York)") from exc


def weekday(name: str | int) -> int:
    """An ISO weekday (1 = Monday ... 7 = Sunday) from its number or English name (``mon``, ``Monday``)."""
    if isinstance(name, int) and not isinstance(name, bool):
        if 1 <= name <= 7:
            return name
        raise ValueError(f"a weekday is 1 (Monday) to 7 (Sunday), got {name}")
    text = str(name).strip().lower()[:3]
    if text in WEEKDAYS:
        return WEEKDAYS.index(text) + 1
    raise ValueError(f"{name!r} is not a weekday (mon, tue, wed, thu, fri, sat, sun)")


def time_of_day(text: str) -> timedelta:
    """``HH:MM`` as the time since local midnight; ``24:00`` is the end of the day."""
    if text.strip() == "24:00":
        return DAY
    try:
        parsed = time.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a time of day HH:MM (00:00 to 24:00)") from exc
    return timedelta(hours=parsed.hour, minutes=parsed.minute, seconds=parsed.second)


@dataclass(frozen=True)
class BusinessHours:
    """The working window ``opens``..``closes`` (times since local midnight) on ``days`` (ISO weekdays),
    in ``zone``, except on ``holidays`` (local dates)."""

    zone: ZoneInfo
    days: frozenset[int]
    opens: timedelta
    closes: timedelta
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if not self.days:
            raise ValueError("business hours need at least one working day")
        if not self.days <= set(range(1, 8)):
            raise ValueError(f"working days are ISO weekdays 1..7, got {sorted(self.days)}")
        if not timedelta(0) <= self.opens < self.closes <= DAY:
            raise ValueError("business hours open before they close, within one day (e.g. 09:00 to 17:00)")

    @classmethod
    def of(
        cls,
        *,
        time_zone_name: str = "UTC",
        days: Iterable[str | int] = ("mon", "tue", "wed", "thu", "fri"),
        start: str = "09:00",
        end: str = "17:00",
        holidays: Iterable[date] = (),
    ) -> BusinessHours:
        """Built from configuration's words: a zone name, weekday names or numbers, ``HH:MM`` times."""
        return cls(
            zone=time_zone(time_zone_name),
            days=frozenset(weekday(d) for d in days),
            opens=time_of_day(start),
            closes=time_of_day(end),
            holidays=frozenset(holidays),
        )

    @classmethod
    def around_the_clock(cls) -> BusinessHours:
        """Every hour of every day counts (UTC): an SLA is plain elapsed time."""
        return cls(zone=ZoneInfo("UTC"), days=frozenset(range(1, 8)), opens=timedelta(0), closes=DAY)

    # --- the calendar ---------------------------------------------------------------------------

    def is_working_day(self, day: date) -> bool:
        return day.isoweekday() in self.days and day not in self.holidays

    def window(self, day: date) -> tuple[datetime, datetime]:
        """The working window of a local ``day``, as UTC instants (whether or not it is a working day)."""
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.zone)
        # Aware + timedelta moves the wall clock; astimezone then reads the real instant of that wall time.
        return (midnight + self.opens).astimezone(UTC), (midnight + self.closes).astimezone(UTC)

    def _working_days_from(self, day: date) -> Iterable[date]:
        for n in range(HORIZON_DAYS):
            candidate = day + n * DAY
            if self.is_working_day(candidate):
                yield candidate
        raise ValueError(f"no working day within {HORIZON_DAYS} days of {day}")

    def next_working_moment(self, moment: datetime) -> datetime:
        """``moment`` itself when it falls in working hours, else the next opening (UTC)."""
        moment = moment.astimezone(UTC)
        # The window of the local day before can reach past midnight only when it closes at 24:00,
        # which is midnight itself: starting from the moment's own local date is enough.
        for day in self._working_days_from(moment.astimezone(self.zone).date()):
            opens, closes = self.window(day)
            if moment < closes:
                return max(moment, opens)
        raise AssertionError("unreachable")  # pragma: no cover

    def add(self, start: datetime, within: timedelta) -> datetime:
        """When ``within`` of business time has passed since ``start`` (UTC): whole days of ``within``
        are business days (the same time of day that many working days on), the rest working time."""
        if within < timedelta(0):
            raise ValueError(f"business time runs forward, got {within}")
        moment = self.next_working_moment(start)
        if within.days:
            moment = self._add_business_days(moment, within.days)
        return self._add_working_time(moment, within - timedelta(days=within.days))

    def _add_business_days(self, moment: datetime, days: int) -> datetime:
        local = moment.astimezone(self.zone)
        since_midnight = local - datetime(local.year, local.month, local.day, tzinfo=self.zone)
        day = local.date()
        for _ in range(days):
            day = next(iter(self._working_days_from(day + DAY)))
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.zone)
        return (midnight + since_midnight).astimezone(UTC)

    def _add_working_time(self, moment: datetime, remaining: timedelta) -> datetime:
        while True:
            moment = self.next_working_moment(moment)
            _, closes = self.window(moment.astimezone(self.zone).date())
            if remaining <= closes - moment:
                return moment + remaining
            remaining -= closes - moment
            moment = closes
