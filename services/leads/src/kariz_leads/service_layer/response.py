"""The response SLA's timers as the use cases run them: armed at capture, stopped by what answers the
lead (a verdict, a first contact activity), so the timer worker never needs to look at the lead."""

from __future__ import annotations

from kariz_leads.domain.lead import Lead
from kariz_leads.service_layer.unit_of_work import LeadsUnitOfWork


def stop_response_timers_if_answered(uow: LeadsUnitOfWork, lead: Lead) -> None:
    """Stop the lead's response timers once it no longer awaits a response; called by every change
    that can answer a lead."""
    if not lead.awaits_response:
        uow.timers.cancel(lead.response_timer_key())
