"""Builders for the events notifications consumes, shared by the unit and integration tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from kariz_shared.contracts.events import (
    BantAnswers,
    Company,
    Contact,
    DealLost,
    DealWon,
    FollowUpDue,
    LeadQualified,
    LeadQueued,
    LeadReassigned,
    LeadResponseOverdue,
    LeadSource,
    ScoreLine,
    StageChanged,
    TaskKind,
)

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


class Sample:
    @staticmethod
    def lead_qualified(lead_id: str = "L-1", owner: str = "rep@kariz.test", **changes: Any) -> LeadQualified:
        values: dict[str, Any] = {
            "lead_id": lead_id,
            "owner": owner,
            "contact": Contact(
                first_name="Ada", last_name="Lovelace", email="ada@analytical.example", title="CTO"
            ),
            "company": Company(name="Analytical", industry="software", size=120, country="GB"),
            "source": LeadSource.REFERRAL,
            "score": 72,
            "threshold": 60,
            "breakdown": [
                ScoreLine(rule="industry", matched="software", points=30),
                ScoreLine(rule="source", matched="referral", points=42),
            ],
            "answers": BantAnswers(
                budget="confirmed",
                budget_amount=Decimal("50000"),
                authority="decision_maker",
                need="confirmed",
                pain="manual quoting",
                timeline="within_3_months",
            ),
            "qualified_at": NOW,
        }
        return LeadQualified(**{**values, **changes})

    @staticmethod
    def stage_changed(
        deal_id: str = "D-1", owner: str = "rep@kariz.test", direction: str = "back", **changes: Any
    ) -> StageChanged:
        stages = ("proposal", "discovery") if direction == "back" else ("discovery", "demo")
        values: dict[str, Any] = {
            "deal_id": deal_id,
            "lead_id": "L-1",
            "owner": owner,
            "pipeline": "new-business",
            "from_stage": stages[0],
            "to_stage": stages[1],
            "direction": direction,
            "seconds_in_from_stage": 3 * 86400 + 7200,
            "amount": Decimal("48000"),
            "note": "budget frozen until Q3",
            "changed_at": NOW,
        }
        return StageChanged(**{**values, **changes})

    @staticmethod
    def deal_won(deal_id: str = "D-1", owner: str = "rep@kariz.test", **changes: Any) -> DealWon:
        values: dict[str, Any] = {
            "deal_id": deal_id,
            "lead_id": "L-1",
            "account_id": "A-1",
            "account_name": "Globex",
            "owner": owner,
            "amount": Decimal("48000"),
            "cycle_seconds": 40 * 86400,
            "won_at": NOW,
        }
        return DealWon(**{**values, **changes})

    @staticmethod
    def deal_lost(deal_id: str = "D-1", owner: str = "rep@kariz.test", **changes: Any) -> DealLost:
        values: dict[str, Any] = {
            "deal_id": deal_id,
            "lead_id": "L-1",
            "account_id": "A-1",
            "account_name": "Initech",
            "owner": owner,
            "reason": "chose a competitor",
            "lost_at_stage": "negotiation",
            "amount": Decimal("12500.50"),
            "cycle_seconds": 20 * 86400,
            "lost_at": NOW,
        }
        return DealLost(**{**values, **changes})

    @staticmethod
    def follow_up_due(lead_id: str = "L-1", assignee: str = "rep@kariz.test", **changes: Any) -> FollowUpDue:
        values: dict[str, Any] = {
            "task_id": "T-1",
            "lead_id": lead_id,
            "assignee": assignee,
            "kind": TaskKind.CALL_BACK,
            "title": "Call Ada about the pilot",
            "due_at": NOW,
        }
        return FollowUpDue(**{**values, **changes})

    @staticmethod
    def response_overdue(
        lead_id: str = "L-1", owner: str = "rep@kariz.test", **changes: Any
    ) -> LeadResponseOverdue:
        values: dict[str, Any] = {
            "lead_id": lead_id,
            "owner": owner,
            "source": LeadSource.WEB_FORM,
            "captured_at": NOW - timedelta(hours=4),
            "due_at": NOW,
        }
        return LeadResponseOverdue(**{**values, **changes})

    @staticmethod
    def lead_queued(lead_id: str = "L-1", team: str = "emea", **changes: Any) -> LeadQueued:
        values: dict[str, Any] = {
            "lead_id": lead_id,
            "team": team,
            "queue": f"queue:{team}",
            "rule": "enterprise-emea",
            "reason": "every rep is away or at capacity",
            "queued_at": NOW,
        }
        return LeadQueued(**{**values, **changes})

    @staticmethod
    def lead_reassigned(
        lead_id: str = "L-1", to_owner: str = "new@kariz.test", **changes: Any
    ) -> LeadReassigned:
        values: dict[str, Any] = {
            "lead_id": lead_id,
            "from_owner": "rep@kariz.test",
            "to_owner": to_owner,
            "reason": "response SLA escalation",
            "reassigned_at": NOW,
        }
        return LeadReassigned(**{**values, **changes})


@pytest.fixture
def sample() -> type[Sample]:
    return Sample
