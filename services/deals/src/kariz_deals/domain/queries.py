"""What the read side asks for: which deals a list shows, and whose deals a pipeline's totals count.

Plain criteria: the MongoDB adapter translates them into filters, the in-memory one applies
``matches``/``counts`` to each deal. Both must select the same deals."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from kariz_deals.domain.deal import Deal
from kariz_deals.domain.pipeline import Pipeline
from kariz_shared.contracts.identity import EVERYONE, Caller, Owners


@dataclass(frozen=True)
class DealCriteria:
    """Deals of one lead, owner, stage or account (each optional, all must hold); newest first."""

    lead_id: str | None = None
    owner: str | None = None
    stage: str | None = None
    account_id: str | None = None
    #: Whose deals the asker may see: applied in the query.
    seen: Owners = EVERYONE
    #: Only the deals stalled at this time (``GET /deals?stalled=true`` asks at the clock's now).
    stalled_at: datetime | None = None

    def seen_by(self, caller: Caller) -> DealCriteria:
        return replace(self, seen=caller.seen.narrowed_to(self.owner))

    def checked_against(self, pipeline: Pipeline, *others: Pipeline) -> DealCriteria:
        """These criteria, if their stage is one of ``pipeline``'s (or of an admin's ``others``): an
        unknown stage is a mistake, not an empty page (a RuleViolation that lists ``pipeline``'s stages)."""
        if self.stage is not None and not any(p.has_stage(self.stage) for p in others):
            pipeline.stage(self.stage)
        return self

    def matches(self, deal: Deal) -> bool:
        wanted = (
            (self.lead_id, deal.lead_id),
            (self.owner, deal.owner),
            (self.stage, deal.stage),
            (self.account_id, deal.account.id),
        )
        stalled = self.stalled_at is None or deal.is_stalled(self.stalled_at)
        return (
            stalled
            and self.seen.include(deal.owner)
            and all(want is None or want == have for want, have in wanted)
        )


@dataclass(frozen=True)
class PipelineScope:
    """The deals a pipeline summary adds up: one pipeline, one currency, optionally one owner."""

    pipeline: str
    currency: str
    owner: str | None = None
    #: Whose deals the asker may see: a manager's summary adds up their team's.
    seen: Owners = EVERYONE

    def counts(self, deal: Deal) -> bool:
        return (
            deal.pipeline.name == self.pipeline
            and deal.currency == self.currency
            and (self.owner is None or deal.owner == self.owner)
            and self.seen.include(deal.owner)
        )
