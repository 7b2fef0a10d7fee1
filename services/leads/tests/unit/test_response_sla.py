"""The response SLA: business-hours arithmetic (pure), which SLA a lead gets, and its timers on the
in-memory unit of work."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kariz_leads.adapters.in_memory import InMemoryLeadsUnitOfWork
from kariz_leads.domain import ResponseSla, SalesTeam
from kariz_leads.domain.business_hours import BusinessHours
from kariz_leads.domain.response import Calendars
from kariz_leads.entrypoints import kafka
from kariz_leads.service_layer import activities, handlers
from kariz_leads.service_layer.activities import LogActivity
from kariz_leads.service_layer.commands import CaptureLead
from kariz_leads.settings import LeadsSettings
from kariz_shared.contracts.events import (
    ActivityChannel,
    ActivityOutcome,
    Company,
    Contact,
    LeadCaptured,
    LeadDisqualified,
    LeadPriority,
    LeadResponseEscalationDue,
    LeadResponseOverdue,
    LeadSource,
)
from kariz_shared.contracts.identity import EVERYONE, Actor
from kariz_shared.persistence.in_memory import InMemoryUnitsOfWork
from kariz_shared.runtime.clock import FakeClock

Units = InMemoryUnitsOfWork[InMemoryLeadsUnitOfWork]

UTC_OFFICE = BusinessHours.of()  # Monday to Friday, 09:00 to 17:00, UTC
BERLIN = BusinessHours.of(time_zone_name="Europe/Berlin")
BERLIN_TZ = ZoneInfo("Europe/Berlin")
# 2026-03-06 is a Friday.
FRIDAY = date(2026, 3, 6)


def at(day: date, hour: int, minute: int = 0, tz: Any = UTC) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)


def plus(day: date, days: int) -> date:
    return day + timedelta(days=days)


# --- business hours (pure) ------------------------------------------------------------------------


def test_friday_afternoon_plus_four_business_hours_is_monday_late_morning() -> None:
    # Half an hour on Friday, three and a half from Monday's opening.
    assert UTC_OFFICE.add(at(FRIDAY, 16, 30), timedelta(hours=4)) == at(plus(FRIDAY, 3), 12, 30)
    # With a day until 18:00: an hour and a half on Friday, two and a half on Monday.
    until_six = BusinessHours.of(end="18:00")
    assert until_six.add(at(FRIDAY, 16, 30), timedelta(hours=4)) == at(plus(FRIDAY, 3), 11, 30)


def test_a_capture_on_saturday_counts_from_monday_opening() -> None:
    saturday = plus(FRIDAY, 1)
    assert UTC_OFFICE.next_working_moment(at(saturday, 10)) == at(plus(FRIDAY, 3), 9)
    assert UTC_OFFICE.add(at(saturday, 10), timedelta(hours=1)) == at(plus(FRIDAY, 3), 10)


def test_a_lead_captured_friday_evening_is_not_due_saturday_morning() -> None:
    due = UTC_OFFICE.add(at(FRIDAY, 19), timedelta(hours=4))
    assert due == at(plus(FRIDAY, 3), 13)


def test_before_opening_counts_from_opening_and_the_closing_minute_is_due_that_day() -> None:
    monday = plus(FRIDAY, 3)
    assert UTC_OFFICE.add(at(monday, 6), timedelta(hours=2)) == at(monday, 11)
    assert UTC_OFFICE.add(at(monday, 16, 30), timedelta(minutes=30)) == at(monday, 17)
    assert UTC_OFFICE.add(at(monday, 17), timedelta(minutes=1)) == at(plus(monday, 1), 9, 1)
    # Several working days: 20 hours from Monday 10:00 is Wednesday 14:00.
    assert UTC_OFFICE.add(at(monday, 10), timedelta(hours=20)) == at(plus(monday, 2), 14)


def test_whole_days_are_business_days() -> None:
    # P2D: the same time of day, two working days on (over the weekend).
    assert UTC_OFFICE.add(at(FRIDAY, 11), timedelta(days=2)) == at(plus(FRIDAY, 4), 11)
    # P1DT2H from Thursday 16:00: Friday 16:00, then two working hours: Monday 10:00.
    assert UTC_OFFICE.add(at(plus(FRIDAY, -1), 16), timedelta(days=1, hours=2)) == at(plus(FRIDAY, 3), 10)


def test_holidays_do_not_count() -> None:
    monday = plus(FRIDAY, 3)
    hours = BusinessHours.of(holidays=[monday])
    assert hours.add(at(FRIDAY, 16, 30), timedelta(hours=4)) == at(plus(monday, 1), 12, 30)


def test_hours_are_those_of_the_zone() -> None:
    # 09:00 to 17:00 in Berlin is 08:00 to 16:00 UTC in March before the change (CET, UTC+1).
    monday = plus(FRIDAY, 3)
    due = BERLIN.add(at(FRIDAY, 15, 30), timedelta(hours=4))  # 16:30 in Berlin
    assert due == at(monday, 12, 30, BERLIN_TZ) == at(monday, 11, 30)
    # Tokyo's working day is over before London's starts.
    tokyo = BusinessHours.of(time_zone_name="Asia/Tokyo")
    assert tokyo.add(at(monday, 9), timedelta(hours=1)) == at(plus(monday, 1), 10, tz=ZoneInfo("Asia/Tokyo"))


def test_across_the_spring_change_a_business_day_keeps_the_wall_clock() -> None:
    # Berlin moves to summer time on Sunday 2026-03-29: Friday 16:00 CET + 4 h is Monday 12:00 CEST,
    # which is 10:00 UTC (the Friday was 15:00 UTC).
    friday = date(2026, 3, 27)
    due = BERLIN.add(at(friday, 16, tz=BERLIN_TZ), timedelta(hours=4))
    assert due == at(plus(friday, 3), 12, tz=BERLIN_TZ) == at(plus(friday, 3), 10)
    assert BERLIN.add(at(friday, 10, tz=BERLIN_TZ), timedelta(days=1)) == at(
        plus(friday, 3), 10, tz=BERLIN_TZ
    )


def test_a_day_open_round_the_clock_is_as_long_as_it_really_is_on_change_days() -> None:
    every_hour = BusinessHours.of(
        time_zone_name="Europe/Berlin", days=range(1, 8), start="00:00", end="24:00"
    )
    spring = date(2026, 3, 29)  # 23 hours long in Berlin
    assert every_hour.add(at(spring, 0, tz=BERLIN_TZ), timedelta(hours=23)) == at(
        plus(spring, 1), 0, tz=BERLIN_TZ
    )
    autumn = date(2026, 10, 25)  # 25 hours long
    assert every_hour.add(at(autumn, 0, tz=BERLIN_TZ), timedelta(hours=23)) == at(autumn, 22, tz=BERLIN_TZ)
    # Elapsed time, as around the clock in UTC.
    assert BusinessHours.around_the_clock().add(at(FRIDAY, 19), timedelta(hours=4)) == at(FRIDAY, 23)


@pytest.mark.parametrize(
    ("hours", "why"),
    [
        ({"time_zone_name": "Mars/Olympus"}, "not an IANA time zone"),
        ({"days": []}, "at least one working day"),
        ({"days": ["funday"]}, "not a weekday"),
        ({"days": [8]}, "1 \\(Monday\\) to 7"),
        ({"start": "17:00", "end": "09:00"}, "open before they close"),
        ({"start": "9am"}, "not a time of day"),
    ],
)
def test_bad_business_hours_are_refused(hours: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        BusinessHours.of(**hours)


def test_a_calendar_of_nothing_but_holidays_says_so() -> None:
    # Only Mondays, and every Monday for years is a holiday.
    mondays = [date(2026, 3, 9) + timedelta(weeks=n) for n in range(52 * 4)]
    hours = BusinessHours.of(days=["mon"], holidays=mondays)
    with pytest.raises(ValueError, match="no working day"):
        hours.add(at(FRIDAY, 10), timedelta(hours=1))


# --- which SLA a lead gets ------------------------------------------------------------------------

REPS = ("alex@kariz.example", "sam@kariz.example")
TEAM = SalesTeam.of(REPS)
BY_SOURCE = {
    LeadSource.FREE_TRIAL: timedelta(hours=1),
    LeadSource.WEB_FORM: timedelta(hours=4),
    LeadSource.PURCHASED_LIST: timedelta(days=2),
}
SLA = ResponseSla(
    timedelta(hours=8),
    by_source=BY_SOURCE,
    by_priority={LeadPriority.HIGH: timedelta(hours=2)},
    calendars=Calendars.of(UTC_OFFICE),
    escalate_after=timedelta(hours=4),
)


def a_lead(
    email: str = "ada@analytical.example",
    *,
    source: LeadSource = LeadSource.WEB_FORM,
    priority: LeadPriority = LeadPriority.NORMAL,
    country: str | None = None,
) -> CaptureLead:
    return CaptureLead(
        contact=Contact(first_name="Ada", last_name="Lovelace", email=email),
        company=Company(name="Analytical Engines", country=country),
        source=source,
        consent=True,
        priority=priority,
    )


async def capture(units: Units, command: CaptureLead, sla: ResponseSla = SLA) -> handlers.Captured:
    return await handlers.capture_lead(
        units, TEAM, sla, command, correlation_id="c-1", by=Actor("alex@kariz.example")
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at(FRIDAY, 16, 30))


@pytest.fixture
def units(clock: FakeClock) -> Units:
    return InMemoryUnitsOfWork(InMemoryLeadsUnitOfWork(clock))


@pytest.mark.parametrize(
    ("source", "priority", "due"),
    [
        (LeadSource.FREE_TRIAL, LeadPriority.NORMAL, at(plus(FRIDAY, 3), 9, 30)),  # 1 h
        (LeadSource.WEB_FORM, LeadPriority.NORMAL, at(plus(FRIDAY, 3), 12, 30)),  # 4 h
        (LeadSource.PURCHASED_LIST, LeadPriority.NORMAL, at(plus(FRIDAY, 4), 16, 30)),  # 2 business days
        (LeadSource.REFERRAL, LeadPriority.NORMAL, at(plus(FRIDAY, 3), 16, 30)),  # the default, 8 h
        (LeadSource.REFERRAL, LeadPriority.HIGH, at(plus(FRIDAY, 3), 10, 30)),  # high: 2 h
        (LeadSource.FREE_TRIAL, LeadPriority.HIGH, at(plus(FRIDAY, 3), 9, 30)),  # the shorter, 1 h
        (LeadSource.PURCHASED_LIST, LeadPriority.HIGH, at(plus(FRIDAY, 3), 10, 30)),  # the shorter, 2 h
        (LeadSource.REFERRAL, LeadPriority.LOW, at(plus(FRIDAY, 3), 16, 30)),  # none for low: default
    ],
)
async def test_the_sla_is_picked_by_source_and_priority_and_counted_in_business_hours(
    units: Units, source: LeadSource, priority: LeadPriority, due: datetime
) -> None:
    lead = (await capture(units, a_lead(source=source, priority=priority))).lead
    assert lead.priority is priority
    timer = await units.uow.timers.get(lead.response_timer_key())
    assert timer is not None and timer.due_at == due
    assert isinstance(timer.event, LeadResponseOverdue) and timer.event.due_at == due
    [captured] = units.of_type(LeadCaptured)
    assert captured.priority is priority


async def test_a_priority_longer_than_its_source_does_not_relax_it(units: Units) -> None:
    relaxed = ResponseSla(
        timedelta(hours=4), by_source=BY_SOURCE, by_priority={LeadPriority.LOW: timedelta(days=3)}
    )
    trial = (
        await capture(units, a_lead(source=LeadSource.FREE_TRIAL, priority=LeadPriority.LOW), relaxed)
    ).lead
    other = (
        await capture(
            units, a_lead("b@x.example", source=LeadSource.REFERRAL, priority=LeadPriority.LOW), relaxed
        )
    ).lead
    assert relaxed.sla_of(trial) == timedelta(hours=1)
    assert relaxed.sla_of(other) == timedelta(days=3)


def test_the_calendar_is_the_owners_team_then_the_territory_then_the_default() -> None:
    tokyo = BusinessHours.of(time_zone_name="Asia/Tokyo")
    calendars = Calendars.of(
        UTC_OFFICE,
        by_team={"dach": BERLIN},
        by_country={"jp": tokyo},
        teams={"dach": ["Jonas@kariz.example"], "emea": ["alex@kariz.example"]},
    )
    assert calendars.for_lead("jonas@kariz.example", "JP") is BERLIN
    assert calendars.for_lead("alex@kariz.example", "JP") is tokyo
    assert calendars.for_lead("alex@kariz.example", "FR") is UTC_OFFICE
    assert calendars.for_lead("kim@kariz.example", None) is UTC_OFFICE


# --- the timers -----------------------------------------------------------------------------------


async def test_overdue_fires_at_the_business_hours_due_time_and_not_at_the_elapsed_one(
    units: Units, clock: FakeClock
) -> None:
    lead = (await capture(units, a_lead())).lead  # Friday 16:30, web form: 4 business hours
    clock.set(at(plus(FRIDAY, 1), 10))  # Saturday morning: 17.5 hours later, not overdue
    assert await units.fire_due_timers() == []
    clock.set(at(plus(FRIDAY, 3), 12, 29))
    assert await units.fire_due_timers() == []
    clock.set(at(plus(FRIDAY, 3), 12, 30))
    [overdue] = await units.fire_due_timers()
    assert isinstance(overdue, LeadResponseOverdue)
    assert (overdue.lead_id, overdue.owner, overdue.due_at) == (lead.id, lead.owner, clock.now())


async def test_a_verdict_stops_the_overdue_and_the_escalation_timers(units: Units, clock: FakeClock) -> None:
    lead = (await capture(units, a_lead())).lead
    assert await units.uow.timers.get(lead.escalation_timer_key()) is not None
    clock.set(at(plus(FRIDAY, 3), 10))
    await units.handle(
        kafka.on_lead_disqualified,
        LeadDisqualified(
            lead_id=lead.id,
            owner=lead.owner,
            reason="no budget",
            score=5,
            breakdown=[],
            disqualified_at=clock.now(),
        ),
    )
    assert await units.uow.timers.get(lead.response_timer_key()) is None
    assert await units.uow.timers.get(lead.escalation_timer_key()) is None
    clock.advance(timedelta(days=10))
    assert await units.fire_due_timers() == []


async def test_the_escalation_is_due_its_business_time_after_the_response(units: Units) -> None:
    lead = (await capture(units, a_lead())).lead  # response due Monday 12:30
    timer = await units.uow.timers.get(lead.escalation_timer_key())
    assert timer is not None and timer.due_at == at(plus(FRIDAY, 3), 16, 30)
    assert timer.event == LeadResponseEscalationDue(
        lead_id=lead.id,
        owner=lead.owner,
        source=LeadSource.WEB_FORM,
        captured_at=lead.created_at,
        due_at=timer.due_at,
    )
    assert timer.correlation_id == lead.correlation_id


async def test_without_an_escalation_setting_no_escalation_timer_is_armed(units: Units) -> None:
    lead = (await capture(units, a_lead(), ResponseSla(timedelta(hours=4)))).lead
    assert await units.uow.timers.get(lead.escalation_timer_key()) is None


# --- settings -------------------------------------------------------------------------------------


def test_the_settings_make_the_sla_with_its_business_hours(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KARIZ_LEAD_RESPONSE_SLA", "PT6H")
    monkeypatch.setenv("KARIZ_LEAD_RESPONSE_SLA_BY_SOURCE", '{"free_trial": "PT1H", "purchased_list": "P2D"}')
    monkeypatch.setenv("KARIZ_LEAD_RESPONSE_SLA_BY_PRIORITY", '{"high": 1800}')
    monkeypatch.setenv("KARIZ_LEAD_RESPONSE_ESCALATION", "PT4H")
    monkeypatch.setenv("KARIZ_TEAMS", '{"dach": ["jonas@kariz.example"]}')
    monkeypatch.setenv(
        "KARIZ_BUSINESS_HOURS",
        '{"time_zone": "Europe/London", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:30",'
        ' "end": "17:30", "holidays": ["2026-12-25"], "teams": {"dach": {"time_zone": "Europe/Berlin"}},'
        ' "territories": {"jp": {"time_zone": "Asia/Tokyo", "start": "10:00"}}}',
    )
    sla = LeadsSettings().response_sla()
    assert sla.within == timedelta(hours=6)
    assert sla.by_source == {
        LeadSource.FREE_TRIAL: timedelta(hours=1),
        LeadSource.PURCHASED_LIST: timedelta(days=2),
    }
    assert sla.by_priority == {LeadPriority.HIGH: timedelta(minutes=30)}
    assert sla.escalate_after == timedelta(hours=4)
    default = sla.calendars.default
    assert (default.zone.key, default.opens, default.closes) == (
        "Europe/London",
        timedelta(hours=8.5),
        timedelta(hours=17.5),
    )
    assert default.holidays == {date(2026, 12, 25)}
    dach = sla.calendars.by_team["dach"]
    assert (dach.zone.key, dach.opens, dach.holidays) == (
        "Europe/Berlin",
        timedelta(hours=8.5),
        default.holidays,
    )
    assert (sla.calendars.by_country["JP"].zone.key, sla.calendars.by_country["JP"].opens) == (
        "Asia/Tokyo",
        timedelta(hours=10),
    )


def test_without_business_hours_every_hour_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KARIZ_BUSINESS_HOURS", "KARIZ_LEAD_RESPONSE_ESCALATION", "KARIZ_LEAD_RESPONSE_SLA"):
        monkeypatch.delenv(name, raising=False)
    sla = LeadsSettings().response_sla()
    assert sla.calendars.default == BusinessHours.around_the_clock()
    assert (sla.within, sla.escalate_after) == (timedelta(hours=4), None)


@pytest.mark.parametrize(
    ("env", "value", "why"),
    [
        (
            "KARIZ_BUSINESS_HOURS",
            '{"time_zone": "Europe/Brlin"}',
            "KARIZ_BUSINESS_HOURS: 'Europe/Brlin' is not",
        ),
        ("KARIZ_BUSINESS_HOURS", '{"start": "18:00"}', "open before they close"),
        ("KARIZ_BUSINESS_HOURS", '{"teams": {"nowhere": {}}}', "KARIZ_TEAMS does not list"),
        ("KARIZ_BUSINESS_HOURS", '{"territories": {"Atlantis": {}}}', "country"),
        ("KARIZ_BUSINESS_HOURS", '{"time_zone": "UTC", "weekend": true}', "Extra inputs"),
        ("KARIZ_LEAD_RESPONSE_SLA_BY_SOURCE", '{"carrier_pigeon": "PT1H"}', "web_form"),
        ("KARIZ_LEAD_RESPONSE_SLA_BY_SOURCE", '{"free_trial": "PT0S"}', "source free_trial is a positive"),
        ("KARIZ_LEAD_RESPONSE_SLA_BY_PRIORITY", '{"urgent": "PT1H"}', "high"),
        ("KARIZ_LEAD_RESPONSE_ESCALATION", "PT0S", "escalation is a positive"),
        ("KARIZ_LEAD_RESPONSE_ESCALATION", "soon", "valid timedelta"),
    ],
)
def test_a_bad_sla_or_calendar_setting_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, why: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ValueError, match=why):
        LeadsSettings()


async def test_a_first_contact_attempt_stops_the_overdue_and_the_escalation_timers(
    units: Units, clock: FakeClock
) -> None:
    lead = (await capture(units, a_lead())).lead
    other = (await capture(units, a_lead("other@acme.example"))).lead
    clock.set(at(plus(FRIDAY, 3), 9, 15))
    await activities.log_activity(
        units,
        lead.id,
        LogActivity(channel=ActivityChannel.CALL, outcome=ActivityOutcome.NO_ANSWER),
        seen=EVERYONE,
        by=Actor("alex@kariz.example"),
    )
    assert await units.uow.timers.get(lead.response_timer_key()) is None
    assert await units.uow.timers.get(lead.escalation_timer_key()) is None
    clock.advance(timedelta(days=7))
    assert {
        (type(e).__name__, e.lead_id) for e in await units.fire_due_timers() if hasattr(e, "lead_id")
    } == {
        ("LeadResponseOverdue", other.id),
        ("LeadResponseEscalationDue", other.id),
    }
