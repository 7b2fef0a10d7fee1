"""An activity: something a rep did with a lead's contact (a call, an e-mail, a meeting, ...) or a note
about them, with what came of it and what was agreed. Logged once, never changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from kariz_leads.domain.history import LeadChange, LeadChangeKind
from kariz_shared.contracts.aggregate import Aggregate
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.events import (
    REACHING,
    ActivityChannel,
    ActivityDirection,
    ActivityLogged,
    ActivityOutcome,
)
from kariz_shared.contracts.identity import Actor

#: How far in the future an activity's time may be (clocks of phones and laptops differ a little).
CLOCK_SKEW = timedelta(minutes=5)


@dataclass
class Activity(Aggregate):
    id: str
    lead_id: str
    deal_id: str | None
    #: The lead's owner when it was logged.
    owner: str
    channel: ActivityChannel
    direction: ActivityDirection
    outcome: ActivityOutcome
    duration_s: int | None
    note: str | None
    agreed: str | None
    occurred_at: datetime
    logged_at: datetime
    logged_by: Actor

    @classmethod
    def log(
        cls,
        *,
        activity_id: str,
        lead_id: str,
        lead_captured_at: datetime,
        owner: str,
        channel: ActivityChannel,
        direction: ActivityDirection,
        outcome: ActivityOutcome,
        duration_s: int | None,
        note: str | None,
        agreed: str | None,
        deal_id: str | None,
        occurred_at: datetime | None,
        at: datetime,
        by: Actor,
    ) -> Activity:
        """A new activity (``occurred_at`` absent: now); it raises ``ActivityLogged``. An activity after
        now (beyond a small clock skew) or before the lead was captured breaks a rule."""
        occurred = occurred_at or at
        if occurred > at + CLOCK_SKEW:
            raise RuleViolation(
                f"occurred_at: {occurred.isoformat()} is in the future (it is {at.isoformat()} now)"
            )
        if occurred < lead_captured_at:
            raise RuleViolation(
                f"occurred_at: {occurred.isoformat()} is before the lead was captured "
                f"({lead_captured_at.isoformat()})"
            )
        activity = cls(
            id=activity_id,
            lead_id=lead_id,
            deal_id=deal_id,
            owner=owner,
            channel=channel,
            direction=direction,
            outcome=outcome,
            duration_s=duration_s,
            note=note,
            agreed=agreed,
            occurred_at=occurred,
            logged_at=at,
            logged_by=by,
        )
        activity.raise_event(activity.logged())
        return activity

    @property
    def is_contact(self) -> bool:
        """An attempt to reach the contact (every channel but a note): it counts as an attempt and answers
        the lead's response SLA."""
        return self.channel is not ActivityChannel.NOTE

    @property
    def reaching(self) -> bool:
        """The rep got through to the contact: a contact with a reaching outcome (a note reaches nobody)."""
        return self.is_contact and self.outcome in REACHING

    def logged(self) -> ActivityLogged:
        return ActivityLogged(
            activity_id=self.id,
            lead_id=self.lead_id,
            deal_id=self.deal_id,
            owner=self.owner,
            channel=self.channel,
            direction=self.direction,
            outcome=self.outcome,
            reaching=self.reaching,
            duration_s=self.duration_s,
            note=self.note,
            agreed=self.agreed,
            occurred_at=self.occurred_at,
            logged_at=self.logged_at,
            actor=self.logged_by.who,
        )

    def change(self) -> LeadChange:
        """The activity as its lead's timeline shows it, where it happened (``occurred_at``)."""
        return LeadChange(
            self.lead_id,
            LeadChangeKind.ACTIVITY_LOGGED,
            self.occurred_at,
            self.logged_by,
            {
                "activity_id": self.id,
                "channel": self.channel.value,
                "direction": self.direction.value,
                "outcome": self.outcome.value,
                "reaching": self.reaching,
                "duration_s": self.duration_s,
                "note": self.note,
                "agreed": self.agreed,
                "deal_id": self.deal_id,
                "logged_at": self.logged_at.isoformat(),
            },
        )
