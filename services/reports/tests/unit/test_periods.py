"""Period arithmetic with fixed dates: month, quarter and fiscal-year edges, weeks, the Persian calendar."""

from __future__ import annotations

from datetime import date

import pytest

from kariz_reports.domain.periods import (
    Calendar,
    PeriodError,
    Span,
    Year,
    before,
    between,
    named,
    trailing,
)

GREGORIAN = Year()
APRIL_FY = Year(Calendar.GREGORIAN, fiscal_start_month=4)
PERSIAN = Year(Calendar.PERSIAN)


def days(p) -> tuple[date, date]:  # type: ignore[no-untyped-def]
    return p.start, p.end


def test_the_last_day_of_a_month_is_in_that_month() -> None:
    assert days(named("this_month", date(2026, 1, 31), GREGORIAN)) == (date(2026, 1, 1), date(2026, 2, 1))
    assert days(named("last_month", date(2026, 3, 1), GREGORIAN)) == (date(2026, 2, 1), date(2026, 3, 1))
    # A leap February.
    assert days(named("this_month", date(2028, 2, 29), GREGORIAN)) == (date(2028, 2, 1), date(2028, 3, 1))


def test_last_quarter_crosses_the_new_year() -> None:
    q = named("last_quarter", date(2026, 1, 1), GREGORIAN)
    assert (days(q), q.label) == ((date(2025, 10, 1), date(2026, 1, 1)), "2025-Q4")
    assert days(named("this_quarter", date(2026, 3, 31), GREGORIAN)) == (date(2026, 1, 1), date(2026, 4, 1))
    assert days(named("this_quarter", date(2026, 4, 1), GREGORIAN)) == (date(2026, 4, 1), date(2026, 7, 1))


def test_a_fiscal_year_starting_in_april() -> None:
    year = named("this_year", date(2026, 3, 31), APRIL_FY)
    assert (days(year), year.label) == ((date(2025, 4, 1), date(2026, 4, 1)), "FY2025")
    assert named("this_year", date(2026, 4, 1), APRIL_FY).label == "FY2026"
    q = named("this_quarter", date(2026, 3, 15), APRIL_FY)
    assert (days(q), q.label) == ((date(2026, 1, 1), date(2026, 4, 1)), "FY2025-Q4")
    q1 = named("this_quarter", date(2026, 4, 2), APRIL_FY)
    assert (days(q1), q1.label) == ((date(2026, 4, 1), date(2026, 7, 1)), "FY2026-Q1")
    assert days(named("last_year", date(2026, 5, 1), APRIL_FY)) == (date(2025, 4, 1), date(2026, 4, 1))


def test_weeks_start_on_monday_and_persian_weeks_on_saturday() -> None:
    # 2026-03-04 is a Wednesday.
    assert days(named("this_week", date(2026, 3, 4), GREGORIAN)) == (date(2026, 3, 2), date(2026, 3, 9))
    assert days(named("last_week", date(2026, 3, 2), GREGORIAN)) == (date(2026, 2, 23), date(2026, 3, 2))
    assert days(named("this_week", date(2026, 3, 4), PERSIAN)) == (date(2026, 2, 28), date(2026, 3, 7))


def test_persian_months_and_years() -> None:
    # Nowruz 1405 is 2026-03-21: Esfand 1404 ends the day before.
    esfand = named("this_month", date(2026, 3, 20), PERSIAN)
    assert (days(esfand), esfand.label) == ((date(2026, 2, 20), date(2026, 3, 21)), "1404-12")
    farvardin = named("this_month", date(2026, 3, 21), PERSIAN)
    assert (days(farvardin), farvardin.label) == ((date(2026, 3, 21), date(2026, 4, 21)), "1405-01")
    year = named("this_year", date(2026, 12, 3), PERSIAN)
    assert (days(year), year.label) == ((date(2026, 3, 21), date(2027, 3, 21)), "1405")
    # Farvardin to Khordad is the first quarter; the one before it is the last of 1404.
    assert named("last_quarter", date(2026, 4, 1), PERSIAN).label == "1404-Q4"
    assert days(named("this_quarter", date(2026, 4, 1), PERSIAN)) == (date(2026, 3, 21), date(2026, 6, 22))


def test_a_leap_esfand_has_thirty_days() -> None:
    # 1403 is a leap year in the Solar Hijri calendar: Esfand 30 is 2025-03-20.
    esfand = named("this_month", date(2025, 3, 20), PERSIAN)
    assert (esfand.label, esfand.days) == ("1403-12", 30)


def test_the_trailing_periods_are_the_four_before_nearest_first() -> None:
    q = named("this_quarter", date(2026, 2, 10), GREGORIAN)
    assert [p.label for p in trailing(q, GREGORIAN)] == ["2025-Q4", "2025-Q3", "2025-Q2", "2025-Q1"]
    assert before(q, GREGORIAN) == trailing(q, GREGORIAN)[0]
    months = trailing(named("this_month", date(2026, 2, 10), PERSIAN), PERSIAN)
    assert [p.label for p in months] == ["1404-10", "1404-09", "1404-08", "1404-07"]


def test_explicit_dates_compare_with_as_many_days_before() -> None:
    p = between(date(2026, 3, 1), date(2026, 3, 10))
    assert (p.span, p.days, p.end) == (Span.DAYS, 10, date(2026, 3, 11))
    prior = before(p, GREGORIAN)
    assert days(prior) == (date(2026, 2, 19), date(2026, 3, 1))


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: between(date(2026, 3, 2), date(2026, 3, 1)), "before from"),
        (lambda: between(date(2020, 1, 1), date(2026, 1, 1)), "at most"),
        (lambda: named("next_month", date(2026, 3, 1), GREGORIAN), "period must be one of"),
        (lambda: between(date(1, 1, 1), date(1, 1, 2)), "from"),
        (lambda: between(date(2026, 1, 1), date(9999, 12, 31)), "to"),
        (lambda: Year(fiscal_start_month=13), "fiscal_start_month"),
    ],
)
def test_impossible_periods_say_why(make, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PeriodError, match=words):
        make()
