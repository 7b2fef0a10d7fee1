"""An RFP or RFI a customer issued: who issued it, when the response is due, what it asks for, and the
go/no-go decision taken before effort is spent on it. Its timers remind the owner before the due time
and say it is overdue after (``RfpResponseDue``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from kariz_shared.contracts.errors import Conflict, RuleViolation

#: The reminder before a response is due, unless the request names another.
DEFAULT_REMINDER = timedelta(days=2)


class RfpDecision(StrEnum):
    GO = "go"
    NO_GO = "no_go"


@dataclass(frozen=True)
class RfpDetails:
    issuer: str
    response_due_at: datetime
    requirements: tuple[str, ...] = ()
    reminder_before: timedelta = DEFAULT_REMINDER
    decision: RfpDecision | None = None
    decided_at: datetime | None = None
    decided_by: str | None = None

    @classmethod
    def issued(
        cls,
        issuer: str,
        response_due_at: datetime,
        requirements: tuple[str, ...],
        at: datetime,
        reminder_before: timedelta = DEFAULT_REMINDER,
    ) -> RfpDetails:
        if not issuer.strip():
            raise RuleViolation("rfp.issuer: say who issued the RFP")
        if response_due_at <= at:
            raise RuleViolation("rfp.response_due_at: the response must be due in the future")
        return cls(issuer.strip(), response_due_at, requirements, reminder_before)

    @property
    def remind_at(self) -> datetime:
        return self.response_due_at - self.reminder_before

    @property
    def decided_go(self) -> bool:
        return self.decision is RfpDecision.GO

    def decided(self, decision: RfpDecision, at: datetime, by: str | None) -> RfpDetails:
        if self.decision is not None:
            raise Conflict(f"the go/no-go of this RFP was decided already ({self.decision.value})")
        return replace(self, decision=decision, decided_at=at, decided_by=by)
