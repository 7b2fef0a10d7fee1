"""What the review queues ask for: leads by status (and owner), and the summary each row shows."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from kariz_qualification.domain.lead import Lead, Status
from kariz_shared.contracts.identity import EVERYONE, Caller, Owners


@dataclass(frozen=True)
class LeadsByStatus:
    """Leads in one status, optionally of one owner; newest capture first."""

    status: Status = "nurture"
    owner: str | None = None
    #: Whose leads the asker may see: applied in the query.
    seen: Owners = EVERYONE

    def seen_by(self, caller: Caller) -> LeadsByStatus:
        return replace(self, seen=caller.seen.narrowed_to(self.owner))

    def matches(self, lead: Lead) -> bool:
        return (
            lead.status == self.status
            and (self.owner is None or lead.owner == self.owner)
            and self.seen.include(lead.owner)
        )


@dataclass(frozen=True)
class LeadSummary:
    """One row of a review queue."""

    lead_id: str
    owner: str
    company: str
    status: Status
    score: int
    captured_at: datetime
    decided_at: datetime | None

    @classmethod
    def of(cls, lead: Lead) -> LeadSummary:
        return cls(
            lead_id=lead.lead_id,
            owner=lead.owner,
            company=lead.company.name,
            status=lead.status,
            score=lead.score,
            captured_at=lead.captured_at,
            decided_at=None if lead.decision is None else lead.decision.at,
        )
