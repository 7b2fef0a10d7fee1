"""The response SLA on the real database: a capture's timers are due in business hours of the team's
time zone, and a first call stops them (both, the escalation too) in its own transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from kariz_devkit.testing import unique
from kariz_leads.adapters.mongo.unit_of_work import MongoLeadsUnitOfWork
from kariz_leads.domain import ResponseSla, SalesTeam
from kariz_leads.domain.business_hours import BusinessHours
from kariz_leads.domain.response import Calendars
from kariz_leads.service_layer import activities, handlers
from kariz_leads.service_layer.activities import LogActivity
from kariz_leads.service_layer.commands import CaptureLead
from kariz_shared.contracts.events import (
    ActivityChannel,
    ActivityOutcome,
    Company,
    Contact,
    LeadResponseEscalationDue,
    LeadResponseOverdue,
    LeadSource,
)
from kariz_shared.contracts.identity import EVERYONE, Actor
from kariz_shared.persistence.unit_of_work import MongoUnitsOfWork
from kariz_shared.runtime.clock import FakeClock

from .conftest import Leads

pytestmark = pytest.mark.integration

BERLIN = ZoneInfo("Europe/Berlin")
# Berlin's office hours, a web form answered within 4 business hours, escalated 2 after that.
SLA = ResponseSla(
    timedelta(hours=8),
    by_source={LeadSource.WEB_FORM: timedelta(hours=4)},
    calendars=Calendars.of(BusinessHours.of(time_zone_name="Europe/Berlin")),
    escalate_after=timedelta(hours=2),
)
TEAM = SalesTeam.of(["alex@kariz.example"])
# A Friday a year ahead, 16:30 in Berlin: the service's own timer worker (on the real clock) leaves them be.
FRIDAY_EVENING = datetime(2027, 3, 5, 16, 30, tzinfo=BERLIN)


def a_lead() -> CaptureLead:
    return CaptureLead(
        contact=Contact(first_name="Ada", last_name="Lovelace", email=f"{unique('sla')}@acme.example"),
        company=Company(name="Analytical Engines"),
        source=LeadSource.WEB_FORM,
    )


async def test_a_friday_evening_lead_is_due_on_monday_and_a_first_call_stops_its_timers(leads: Leads) -> None:
    clock = FakeClock(FRIDAY_EVENING)
    units = MongoUnitsOfWork(leads.service.store, clock, MongoLeadsUnitOfWork)
    rep = Actor("alex@kariz.example")
    answered, waiting = [
        (await handlers.capture_lead(units, TEAM, SLA, a_lead(), correlation_id=unique("c"), by=rep)).lead
        for _ in range(2)
    ]
    for lead in (answered, waiting):
        overdue = await leads.db.timers.find_one({"_id": f"lead:{lead.id}:response"})
        escalation = await leads.db.timers.find_one({"_id": f"lead:{lead.id}:response-escalation"})
        assert overdue is not None and escalation is not None
        # Half an hour on Friday, three and a half from Monday 09:00 in Berlin (CET, UTC+1).
        assert overdue["due_at"] == datetime(2027, 3, 8, 12, 30, tzinfo=BERLIN).astimezone(UTC)
        assert overdue["topic"] == LeadResponseOverdue.topic()
        assert escalation["due_at"] == datetime(2027, 3, 8, 14, 30, tzinfo=BERLIN).astimezone(UTC)
        assert escalation["topic"] == LeadResponseEscalationDue.topic()

    clock.set(datetime(2027, 3, 8, 9, 15, tzinfo=BERLIN))
    await activities.log_activity(
        units,
        answered.id,
        LogActivity(channel=ActivityChannel.CALL, outcome=ActivityOutcome.REACHED),
        seen=EVERYONE,
        by=rep,
    )
    assert await leads.db.timers.find_one({"_id": f"lead:{answered.id}:response"}) is None
    assert await leads.db.timers.find_one({"_id": f"lead:{answered.id}:response-escalation"}) is None
    assert await leads.db.timers.count_documents({"_id": {"$regex": f"^lead:{waiting.id}:"}}) == 2
