"""The deal (opportunity): where it stands in its pipeline, what it is worth, how it got there."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from kariz_deals.domain.pipeline import DEFAULT_PIPELINE, LOST, WON, Direction, Pipeline, Stage
from kariz_shared.contracts.errors import Conflict, RuleViolation

CENT = Decimal("0.01")


def to_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def seconds_between(start: datetime, end: datetime) -> float:
    # Two replicas' clocks may disagree by a little; a duration is never negative.
    return max((end - start).total_seconds(), 0.0)


@dataclass(frozen=True)
class AccountRef:
    id: str
    name: str
    domain: str | None = None


@dataclass
class StageVisit:
    stage: str
    entered_at: datetime
    left_at: datetime | None = None
    note: str | None = None


@dataclass(frozen=True)
class StageMove:
    """What one move did; the service layer turns it into events."""

    from_stage: str
    to_stage: str
    direction: Direction
    seconds_in_from_stage: float
    amount: Decimal | None
    note: str | None
    changed_at: datetime
    # Set when the move closed the deal.
    cycle_seconds: float | None = None
    reason: str | None = None

    @property
    def won(self) -> bool:
        return self.to_stage == WON

    @property
    def lost(self) -> bool:
        return self.to_stage == LOST


@dataclass
class Deal:
    id: str
    lead_id: str
    account: AccountRef
    owner: str
    pipeline: Pipeline
    stage: str
    amount: Decimal | None
    currency: str
    correlation_id: str
    opened_at: datetime
    history: list[StageVisit]
    closed_at: datetime | None = None
    lost_reason: str | None = None
    # Bumped on every save; the repository refuses a save over a newer version.
    version: int = 0
    contact: dict[str, str | None] = field(default_factory=dict)
    source: str | None = None

    @classmethod
    def open(
        cls,
        *,
        deal_id: str,
        lead_id: str,
        account: AccountRef,
        owner: str,
        amount: Decimal | None,
        currency: str,
        correlation_id: str,
        at: datetime,
        pipeline: Pipeline = DEFAULT_PIPELINE,
        contact: dict[str, str | None] | None = None,
        source: str | None = None,
    ) -> Deal:
        if amount is not None and amount <= 0:
            raise RuleViolation(f"a deal's amount must be greater than 0, got {amount}")
        first = pipeline.first
        return cls(
            id=deal_id,
            lead_id=lead_id,
            account=account,
            owner=owner,
            pipeline=pipeline,
            stage=first.name,
            amount=amount,
            currency=currency,
            correlation_id=correlation_id,
            opened_at=at,
            history=[StageVisit(first.name, at)],
            contact=contact or {},
            source=source,
        )

    # --- what the deal is worth now ----------------------------------------------------------------

    @property
    def current_stage(self) -> Stage:
        return self.pipeline.stage(self.stage)

    @property
    def is_closed(self) -> bool:
        return self.current_stage.is_closed

    @property
    def probability(self) -> Decimal:
        return self.current_stage.probability

    @property
    def forecast_category(self) -> str:
        return self.current_stage.forecast_category.value

    @property
    def weighted_amount(self) -> Decimal | None:
        return None if self.amount is None else to_cents(self.amount * self.probability)

    def seconds_in_stage(self, at: datetime) -> float:
        return seconds_between(self.history[-1].entered_at, at)

    def cycle_seconds(self, at: datetime) -> float:
        return seconds_between(self.opened_at, at)

    # --- moves -------------------------------------------------------------------------------------

    def advance_to(
        self,
        stage: str,
        at: datetime,
        amount: Decimal | None = None,
        reason: str | None = None,
        note: str | None = None,
    ) -> StageMove:
        """Move to ``stage`` (forward, back or a jump forward) if its criteria are met.

        Checks everything before changing anything, so a refused move leaves the deal as it was.
        """
        target = self.pipeline.stage(stage)
        if self.is_closed:
            raise Conflict(f"deal {self.id} is closed ({self.stage}); a closed deal cannot move")
        if target.name == self.stage:
            raise Conflict(f"deal {self.id} is already in stage {self.stage!r}")
        if amount is not None and amount <= 0:
            raise RuleViolation(f"a deal's amount must be greater than 0, got {amount}")
        new_amount = amount if amount is not None else self.amount
        if target.needs_amount and new_amount is None:
            raise RuleViolation(
                f"a proposal needs an amount: moving to {target.name!r} needs an amount, "
                "give one in the request (none is on the deal yet)"
            )
        clean_reason = (reason or "").strip() or None
        if target.name == LOST and clean_reason is None:
            raise RuleViolation("a lost deal needs a reason: say why it was lost")

        from_stage = self.stage
        move = StageMove(
            from_stage=from_stage,
            to_stage=target.name,
            direction=self.pipeline.direction(from_stage, target.name),
            seconds_in_from_stage=self.seconds_in_stage(at),
            amount=new_amount,
            note=note,
            changed_at=at,
            cycle_seconds=self.cycle_seconds(at) if target.is_closed else None,
            reason=clean_reason if target.name == LOST else None,
        )
        self.history[-1].left_at = at
        self.history.append(StageVisit(target.name, at, note=note))
        self.stage = target.name
        self.amount = new_amount
        if target.is_closed:
            self.closed_at = at
        if target.name == LOST:
            self.lost_reason = clean_reason
        return move

    def win(self, at: datetime, amount: Decimal | None = None, note: str | None = None) -> StageMove:
        return self.advance_to(WON, at, amount=amount, note=note)

    def lose(self, at: datetime, reason: str, note: str | None = None) -> StageMove:
        return self.advance_to(LOST, at, reason=reason, note=note)
