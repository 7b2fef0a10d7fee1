"""The response SLA: a new lead's owner acts within a set time of its capture, or the lead is overdue.

From capture on a timer runs under the lead's :meth:`~kariz_leads.domain.lead.Lead.response_timer_key`;
when it fires, ``LeadResponseOverdue`` is published. It is stopped when the lead leaves ``new``, so the
timer never needs to look at the lead when it fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from kariz_leads.domain.lead import Lead
from kariz_shared.contracts.events import LeadResponseOverdue


@dataclass(frozen=True)
class ResponseTimer:
    """The timer a lead should have running: at ``due_at`` it emits ``overdue``."""

    key: str
    due_at: datetime
    overdue: LeadResponseOverdue


@dataclass(frozen=True)
class ResponseSla:
    within: timedelta

    def __post_init__(self) -> None:
        if self.within <= timedelta(0):
            raise ValueError(f"a response SLA is a positive time, got {self.within}")

    def timer_for(self, lead: Lead) -> ResponseTimer | None:
        """The lead's response timer, counted from its capture; None once the lead left ``new`` (its
        timer is to be stopped). A repeated capture (a touch) does not restart it."""
        if not lead.awaits_response:
            return None
        due_at = lead.created_at + self.within
        return ResponseTimer(
            key=lead.response_timer_key(),
            due_at=due_at,
            overdue=LeadResponseOverdue(
                lead_id=lead.id,
                owner=lead.owner,
                source=lead.source,
                captured_at=lead.created_at,
                due_at=due_at,
            ),
        )
