"""The deal (opportunity): where it stands in its pipeline, what it is worth, how it got there.

A deal raises its own events: ``DealOpened`` when opened, ``StageChanged`` on every move, then
``DealWon`` or ``DealLost`` when the move closed it. Its use case publishes them with the change."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from kariz_deals.domain.pipeline import LOST, WON, Direction, Pipeline, Stage
from kariz_shared.contracts.aggregate import Aggregate
from kariz_shared.contracts.errors import Conflict, RuleViolation
from kariz_shared.contracts.events import DealLost, DealOpened, DealWon, StageChanged
from kariz_shared.contracts.identity import Actor

CENT = Decimal("0.01")


def to_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)


def seconds_between(start: datetime, end: datetime) -> float:
    # Two replicas' clocks may disagree by a little; a duration is never negative.
    return max((end - start).total_seconds(), 0.0)


def new_deal_id() -> str:
    return f"D-{uuid.uuid4().hex}"


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
    #: Who moved the deal into the stage (None for the first: deals opened it on the lead's qualification).
    by: str | None = None


@dataclass(frozen=True)
class StageMove:
    """What one move did (the metrics count it)."""

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
    #: Who made the move (a person, or key:<id>); None for the service's own.
    by: str | None = None

    @property
    def won(self) -> bool:
        return self.to_stage == WON

    @property
    def lost(self) -> bool:
        return self.to_stage == LOST


@dataclass
class Deal(Aggregate):
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
    #: The lead whose qualification opened it: ``lead_id`` until a merge in leads moved the deal to the
    #: survivor. Unique: one deal per qualified lead, whatever the merges (None: the same as lead_id).
    opened_for: str | None = None
    #: Open objections with status "blocking" (kept by the objections' use cases; an exit criterion).
    blocking_objections: int = 0

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
        pipeline: Pipeline,
        contact: dict[str, str | None] | None = None,
        source: str | None = None,
        opened_for: str | None = None,
    ) -> Deal:
        if amount is not None and amount <= 0:
            raise RuleViolation(f"a deal's amount must be greater than 0, got {amount}")
        first = pipeline.first
        deal = cls(
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
            opened_for=opened_for or lead_id,
        )
        deal.raise_event(
            DealOpened(
                deal_id=deal.id,
                lead_id=deal.lead_id,
                account_id=deal.account.id,
                account_name=deal.account.name,
                owner=deal.owner,
                pipeline=deal.pipeline.name,
                stage=deal.stage,
                amount=deal.amount,
                currency=deal.currency,
                opened_at=deal.opened_at,
            )
        )
        return deal

    @property
    def qualified_lead(self) -> str:
        """The lead whose qualification opened the deal."""
        return self.opened_for or self.lead_id

    def follow_merge(self, survivor_id: str) -> bool:
        """Its lead was merged into ``survivor_id`` in leads: the deal is that lead's from now on, so the
        survivor's later events reach it. Owner, stage and history stay. False when it is already."""
        if self.lead_id == survivor_id:
            return False
        self.opened_for = self.qualified_lead
        self.lead_id = survivor_id
        return True

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
        by: Actor | None = None,
    ) -> StageMove:
        """Move to ``stage`` (forward, back or a jump forward) if its criteria are met; raises
        ``StageChanged``, then ``DealWon`` or ``DealLost`` when the move closes the deal.

        Checks everything before changing anything, so a refused move leaves the deal as it was. ``by``
        is who moves it (the stage history and the events keep it); None for a move by the service.
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
            by=by.who if by else None,
        )
        self.history[-1].left_at = at
        self.history.append(StageVisit(target.name, at, note=note, by=move.by))
        self.stage = target.name
        self.amount = new_amount
        if target.is_closed:
            self.closed_at = at
        if target.name == LOST:
            self.lost_reason = clean_reason
        self._raise_events_of(move)
        return move

    def _raise_events_of(self, move: StageMove) -> None:
        self.raise_event(
            StageChanged(
                deal_id=self.id,
                lead_id=self.lead_id,
                owner=self.owner,
                pipeline=self.pipeline.name,
                from_stage=move.from_stage,
                to_stage=move.to_stage,
                direction=move.direction.value,
                seconds_in_from_stage=move.seconds_in_from_stage,
                amount=move.amount,
                currency=self.currency,
                note=move.note,
                changed_at=move.changed_at,
                actor=move.by,
            )
        )
        if move.won:
            # advance_to refused a win without an amount; a closing move always has its cycle time.
            assert move.amount is not None and move.cycle_seconds is not None
            self.raise_event(
                DealWon(
                    deal_id=self.id,
                    lead_id=self.lead_id,
                    account_id=self.account.id,
                    account_name=self.account.name,
                    owner=self.owner,
                    amount=move.amount,
                    currency=self.currency,
                    cycle_seconds=move.cycle_seconds,
                    won_at=move.changed_at,
                    actor=move.by,
                )
            )
        elif move.lost:
            assert move.reason is not None and move.cycle_seconds is not None
            self.raise_event(
                DealLost(
                    deal_id=self.id,
                    lead_id=self.lead_id,
                    account_id=self.account.id,
                    account_name=self.account.name,
                    owner=self.owner,
                    reason=move.reason,
                    lost_at_stage=move.from_stage,
                    amount=move.amount,
                    currency=self.currency,
                    cycle_seconds=move.cycle_seconds,
                    lost_at=move.changed_at,
                    actor=move.by,
                )
            )

    def win(
        self, at: datetime, amount: Decimal | None = None, note: str | None = None, by: Actor | None = None
    ) -> StageMove:
        return self.advance_to(WON, at, amount=amount, note=note, by=by)

    def lose(self, at: datetime, reason: str, note: str | None = None, by: Actor | None = None) -> StageMove:
        return self.advance_to(LOST, at, reason=reason, note=note, by=by)
