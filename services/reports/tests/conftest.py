"""Builders for the events the reports consume, shared by the unit and integration tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from kariz_shared.contracts.events import (
    ActivityChannel,
    ActivityDirection,
    ActivityLogged,
    ActivityOutcome,
    Company,
    Contact,
    DealLost,
    DealOpened,
    DealWon,
    LeadCaptured,
    LeadDisqualified,
    LeadQualified,
    LeadResponseOverdue,
    LeadSource,
    StageChanged,
)

NOW = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
REP = "alex@kariz.test"


def captured(lead_id: str = "L-1", owner: str = REP, **changes: Any) -> LeadCaptured:
    values: dict[str, Any] = {
        "lead_id": lead_id,
        "contact": Contact(first_name="Ada", last_name="Lovelace", email=f"{lead_id}@analytical.example"),
        "company": Company(name="Analytical", industry="software", size=120, country="GB"),
        "source": LeadSource.REFERRAL,
        "campaign": "spring",
        "owner": owner,
        "assigned_by": "round_robin",
        "captured_at": NOW,
    }
    return LeadCaptured(**{**values, **changes})


def qualified(lead_id: str = "L-1", owner: str = REP, **changes: Any) -> LeadQualified:
    values: dict[str, Any] = {
        "lead_id": lead_id,
        "owner": owner,
        "contact": Contact(first_name="Ada", last_name="Lovelace", email=f"{lead_id}@analytical.example"),
        "company": Company(name="Analytical", industry="software", size=120, country="GB"),
        "source": LeadSource.REFERRAL,
        "score": 72,
        "threshold": 60,
        "breakdown": [],
        "qualified_at": NOW + timedelta(hours=2),
    }
    return LeadQualified(**{**values, **changes})


def disqualified(lead_id: str = "L-2", owner: str = REP, **changes: Any) -> LeadDisqualified:
    values: dict[str, Any] = {
        "lead_id": lead_id,
        "owner": owner,
        "reason": "no budget",
        "score": 3,
        "breakdown": [],
        "disqualified_at": NOW + timedelta(hours=2),
    }
    return LeadDisqualified(**{**values, **changes})


def activity(
    lead_id: str = "L-1", activity_id: str = "A-1", owner: str = REP, reaching: bool = True, **changes: Any
) -> ActivityLogged:
    values: dict[str, Any] = {
        "activity_id": activity_id,
        "lead_id": lead_id,
        "owner": owner,
        "channel": ActivityChannel.CALL,
        "direction": ActivityDirection.OUTBOUND,
        "outcome": ActivityOutcome.REACHED if reaching else ActivityOutcome.NO_ANSWER,
        "reaching": reaching,
        "occurred_at": NOW + timedelta(hours=1),
        "logged_at": NOW + timedelta(hours=1),
    }
    return ActivityLogged(**{**values, **changes})


def overdue(lead_id: str = "L-1", owner: str = REP, **changes: Any) -> LeadResponseOverdue:
    values: dict[str, Any] = {
        "lead_id": lead_id,
        "owner": owner,
        "source": LeadSource.REFERRAL,
        "captured_at": NOW,
        "due_at": NOW + timedelta(minutes=30),
    }
    return LeadResponseOverdue(**{**values, **changes})


def opened(deal_id: str = "D-1", lead_id: str = "L-1", owner: str = REP, **changes: Any) -> DealOpened:
    values: dict[str, Any] = {
        "deal_id": deal_id,
        "lead_id": lead_id,
        "account_id": "AC-1",
        "account_name": "Analytical",
        "owner": owner,
        "pipeline": "default",
        "stage": "qualification",
        "opened_at": NOW + timedelta(hours=3),
    }
    return DealOpened(**{**values, **changes})


def moved(
    deal_id: str = "D-1",
    from_stage: str = "qualification",
    to_stage: str = "discovery",
    days_in: float = 2,
    lead_id: str = "L-1",
    owner: str = REP,
    **changes: Any,
) -> StageChanged:
    values: dict[str, Any] = {
        "deal_id": deal_id,
        "lead_id": lead_id,
        "owner": owner,
        "pipeline": "default",
        "from_stage": from_stage,
        "to_stage": to_stage,
        "direction": "forward",
        "seconds_in_from_stage": days_in * 86400,
        "changed_at": NOW + timedelta(hours=3, days=days_in),
    }
    return StageChanged(**{**values, **changes})


def won(
    deal_id: str = "D-1", lead_id: str = "L-1", owner: str = REP, cycle_days: float = 10, **changes: Any
) -> DealWon:
    values: dict[str, Any] = {
        "deal_id": deal_id,
        "lead_id": lead_id,
        "account_id": "AC-1",
        "account_name": "Analytical",
        "owner": owner,
        "amount": Decimal("48000"),
        "cycle_seconds": cycle_days * 86400,
        "won_at": NOW + timedelta(days=cycle_days),
    }
    return DealWon(**{**values, **changes})


def lost(
    deal_id: str = "D-2", lead_id: str = "L-3", owner: str = REP, cycle_days: float = 4, **changes: Any
) -> DealLost:
    values: dict[str, Any] = {
        "deal_id": deal_id,
        "lead_id": lead_id,
        "account_id": "AC-2",
        "account_name": "Initech",
        "owner": owner,
        "reason": "chose a competitor",
        "lost_at_stage": "proposal",
        "amount": Decimal("12000"),
        "cycle_seconds": cycle_days * 86400,
        "lost_at": NOW + timedelta(days=cycle_days),
    }
    return DealLost(**{**values, **changes})


class Events:
    """The builders as a fixture (test modules import no conftest)."""

    now = NOW
    rep = REP
    captured = staticmethod(captured)
    qualified = staticmethod(qualified)
    disqualified = staticmethod(disqualified)
    activity = staticmethod(activity)
    overdue = staticmethod(overdue)
    opened = staticmethod(opened)
    moved = staticmethod(moved)
    won = staticmethod(won)
    lost = staticmethod(lost)


@pytest.fixture
def events() -> type[Events]:
    return Events
