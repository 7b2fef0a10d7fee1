"""The deal (opportunity): where it stands in its pipeline, what it is worth, how it got there.

A deal raises its own events: ``DealOpened`` when opened, ``StageChanged`` on every move, then
``DealWon`` or ``DealLost`` when the move closed it. Its use case publishes them with the change."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from kariz_deals.domain.pipeline import LOST, WON, DealFacts, DealType, Direction, Pipeline, Stage
from kariz_deals.domain.rfp import RfpDecision, RfpDetails
from kariz_shared.contracts.aggregate import Aggregate
from kariz_shared.contracts.errors import Conflict, RuleViolation
from kariz_shared.contracts.events import (
    DealFieldChange,
    DealLost,
    DealOpened,
    DealStalled,
    DealUpdated,
    DealWon,
    RfpResponseDue,
    StageChanged,
)
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
    accepted_quote_id: str | None = None
    contract_status: str | None = None
    blocking_objections: int = 0
    # --- what a sales team keeps on a deal (PATCH /deals/{id}) ---
    expected_close_date: date | None = None
    next_step: str | None = None
    deal_type: DealType = DealType.NEW_BUSINESS
    product_line: str | None = None
    decision_maker: str | None = None
    win_reason: str | None = None
    competitor: str | None = None
    #: The exit criteria's checklist items done on this deal.
    checklist: frozenset[str] = frozenset()
    #: When the deal stalls in its stage unless it moves (or an activity starts the clock again); None:
    #: its stage has no rot limit, or the deal is closed.
    rots_at: datetime | None = None
    #: The first activity with the customer after the win (the hand-over's start).
    first_contact_after_win_at: datetime | None = None
    #: An RFP deal's request: issuer, due time, requirements, go/no-go.
    rfp: RfpDetails | None = None
    #: An upsell, cross-sell or renewal: the account's won deals it builds on.
    linked_deal_ids: tuple[str, ...] = ()

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
        deal_type: DealType = DealType.NEW_BUSINESS,
        expected_close_date: date | None = None,
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
            deal_type=deal_type,
            expected_close_date=expected_close_date,
        )
        deal.start_stall_clock(at)
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
                **deal.forecast_inputs(),
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

    def forecast_inputs(self) -> dict[str, Any]:
        """What the forecast reads of the deal after an event (issue F): its stage's probability and
        category, and its expected close date."""
        return {
            "expected_close_date": self.expected_close_date,
            "probability": self.probability,
            "forecast_category": self.forecast_category,
        }

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
        competitor: str | None = None,
    ) -> StageMove:
        """Move to ``stage`` (forward, back or a jump forward) if its criteria are met; raises
        ``StageChanged``, then ``DealWon`` or ``DealLost`` when the move closes the deal.

        A forward move meets the exit criteria of every stage it leaves (the 422 lists what is missing,
        stage by stage); a move back needs a reason and no criteria; ``reason`` is the win reason of a
        win, the loss reason of a loss. Checks everything before changing anything, so a refused move
        leaves the deal as it was. ``by`` is who moves it (the stage history and the events keep it);
        None for a move by the service.
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
        direction = self.pipeline.direction(self.stage, target.name)
        if direction is Direction.BACK and clean_reason is None:
            raise RuleViolation(f"reason: moving a deal back (to {target.name!r}) needs a reason")
        if (
            self.rfp is not None
            and not self.rfp.decided_go
            and direction is Direction.FORWARD
            and target.name != LOST
        ):
            raise RuleViolation("rfp: decide go or no-go (POST /deals/{id}/rfp-decision) before moving it on")
        unmet = self.pipeline.unmet_exit_criteria(self.stage, target.name, self.facts(new_amount))
        if unmet:
            by_stage = "; ".join(f"{stage}: {', '.join(lacking)}" for stage, lacking in unmet.items())
            raise RuleViolation(
                f"the exit criteria of the stages this move leaves are not met; missing {by_stage}"
            )

        from_stage = self.stage
        move = StageMove(
            from_stage=from_stage,
            to_stage=target.name,
            direction=direction,
            seconds_in_from_stage=self.seconds_in_stage(at),
            amount=new_amount,
            note=note,
            changed_at=at,
            cycle_seconds=self.cycle_seconds(at) if target.is_closed else None,
            reason=clean_reason,
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
            self.competitor = (competitor or "").strip() or self.competitor
        if target.name == WON:
            self.win_reason = clean_reason
        self.start_stall_clock(at)
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
                # A loss's reason is DealLost's; a win's is kept on the deal.
                reason=move.reason if move.direction is Direction.BACK else None,
                **self.forecast_inputs(),
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
        self,
        at: datetime,
        amount: Decimal | None = None,
        note: str | None = None,
        by: Actor | None = None,
        reason: str | None = None,
    ) -> StageMove:
        return self.advance_to(WON, at, amount=amount, note=note, by=by, reason=reason)

    def lose(self, at: datetime, reason: str, note: str | None = None, by: Actor | None = None) -> StageMove:
        return self.advance_to(LOST, at, reason=reason, note=note, by=by)

    # --- exit criteria, edits, the pipeline's new versions, stalling, after the win -------------------

    def facts(self, amount: Decimal | None = None) -> DealFacts:
        """What the exit criteria look at, with ``amount`` (a move's) in place of the deal's if given."""
        return DealFacts(
            amount=amount if amount is not None else self.amount,
            expected_close_date=self.expected_close_date,
            decision_maker=self.decision_maker,
            accepted_quote_id=self.accepted_quote_id,
            contract_status=self.contract_status,
            blocking_objections=self.blocking_objections,
            checklist=self.checklist,
        )

    def update(self, changes: DealChanges, at: datetime, by: Actor | None = None) -> list[DealFieldChange]:
        """Apply an edit; raises ``DealUpdated`` naming each followed field that changed (amount, close
        date, owner, next step, type), old and new. The others change quietly. A closed deal keeps its
        amount and owner (its win or loss was booked with them)."""
        if self.is_closed and (changes.amount is not None or changes.owner is not None):
            raise Conflict(f"deal {self.id} is closed ({self.stage}); its amount and owner stay as booked")
        if changes.amount is not None and changes.amount <= 0:
            raise RuleViolation(f"amount: a deal's amount must be greater than 0, got {changes.amount}")
        before = self._followed()
        for name in DealChanges.FIELDS:
            value = getattr(changes, name)
            if value is not None:
                setattr(self, name, value)
        for name in changes.cleared:
            setattr(self, name, DealType.NEW_BUSINESS if name == "deal_type" else None)
        return self._raise_updated(before, at, by)

    def _raise_updated(
        self, before: dict[str, str | None], at: datetime, by: Actor | None
    ) -> list[DealFieldChange]:
        """``DealUpdated`` naming each followed field that differs from ``before``; what changed."""
        after = self._followed()
        changed = [
            DealFieldChange(field=name, old=before[name], new=after[name])
            for name in before
            if before[name] != after[name]
        ]
        if changed:
            self.raise_event(
                DealUpdated(
                    deal_id=self.id,
                    lead_id=self.lead_id,
                    owner=self.owner,
                    pipeline=self.pipeline.name,
                    stage=self.stage,
                    changes=changed,
                    amount=self.amount,
                    currency=self.currency,
                    updated_at=at,
                    actor=by.who if by else None,
                    **self.forecast_inputs(),
                )
            )
        return changed

    # --- quotes and the contract (issue E, e-quotes) ------------------------------------------------

    def accept_quote(
        self, quote_id: str, amount: Decimal, currency: str, at: datetime, by: Actor | None = None
    ) -> None:
        """The customer accepted quote ``quote_id``: its total is what the deal is worth, in its
        currency, and the deal meets "accepted quote" criteria. ``at`` is when (for DealUpdated, which
        ``DealUpdated`` when the amount changed)."""
        if self.is_closed:
            raise Conflict(f"deal {self.id} is closed ({self.stage}); its quotes cannot change")
        if self.accepted_quote_id is not None and self.accepted_quote_id != quote_id:
            raise Conflict(f"deal {self.id} has an accepted quote already ({self.accepted_quote_id})")
        if amount <= 0:
            raise RuleViolation(f"an accepted quote's total must be greater than 0, got {amount} {currency}")
        before = self._followed()
        self.amount = amount
        self.currency = currency
        self.accepted_quote_id = quote_id
        self._raise_updated(before, at, by)

    def record_contract(self, status: str) -> None:
        """The signature request's status now (sent, viewed, signed, declined), for "signed contract"
        criteria."""
        self.contract_status = status

    def _followed(self) -> dict[str, str | None]:
        def text(value: object) -> str | None:
            if value is None:
                return None
            return value.isoformat() if isinstance(value, date) else str(value)

        return {name: text(getattr(self, name)) for name in FOLLOWED_FIELDS}

    def follow_pipeline(self, pipeline: Pipeline, at: datetime, moved_to: str | None) -> StageMove | None:
        """A new version of the deal's pipeline is in force: the deal follows it. If it removed the deal's
        stage, the deal moves to ``moved_to`` (``StageChanged`` with reason "pipeline changed", no
        criteria: nobody chose the move). The stall clock is set again by the new stage's rot limit."""
        if pipeline.name != self.pipeline.name:
            raise RuleViolation(
                f"deal {self.id} is in pipeline {self.pipeline.name!r}, not {pipeline.name!r}"
            )
        old = self.pipeline
        self.pipeline = pipeline
        if pipeline.has_stage(self.stage):
            if pipeline.rot_days_of(self.stage) != old.rot_days_of(self.stage):
                self.start_stall_clock(self.history[-1].entered_at)
            return None
        if moved_to is None:
            raise RuleViolation(f"stage_mapping: where do the deals in {self.stage!r} go?")
        target = pipeline.stage(moved_to)
        move = StageMove(
            from_stage=self.stage,
            to_stage=target.name,
            direction=Direction.FORWARD if target.order > old.stage(self.stage).order else Direction.BACK,
            seconds_in_from_stage=self.seconds_in_stage(at),
            amount=self.amount,
            note=None,
            changed_at=at,
            reason=PIPELINE_CHANGED,
        )
        self.history[-1].left_at = at
        self.history.append(StageVisit(target.name, at, note=PIPELINE_CHANGED))
        self.stage = target.name
        self.start_stall_clock(at)
        self.raise_event(
            StageChanged(
                deal_id=self.id,
                lead_id=self.lead_id,
                owner=self.owner,
                pipeline=pipeline.name,
                from_stage=move.from_stage,
                to_stage=move.to_stage,
                direction=move.direction.value,
                seconds_in_from_stage=move.seconds_in_from_stage,
                amount=self.amount,
                currency=self.currency,
                changed_at=at,
                reason=PIPELINE_CHANGED,
                **self.forecast_inputs(),
            )
        )
        return move

    def start_stall_clock(self, at: datetime) -> None:
        """The deal stalls ``rot_days`` after ``at`` in its stage (its entry, or the last activity); never
        when the stage has no rot limit or the deal is closed."""
        rot_days = self.current_stage.rot_days
        self.rots_at = None if rot_days is None or self.is_closed else at + timedelta(days=rot_days)

    def stall_timer_key(self) -> str:
        return f"deal:{self.id}:stalled"

    def is_stalled(self, at: datetime) -> bool:
        return self.rots_at is not None and self.rots_at <= at

    def stall_event(self) -> DealStalled | None:
        """The event its stall timer emits (armed with the deal as it is now); None: nothing to arm."""
        if self.rots_at is None:
            return None
        entered = self.history[-1].entered_at
        return DealStalled(
            deal_id=self.id,
            lead_id=self.lead_id,
            owner=self.owner,
            pipeline=self.pipeline.name,
            stage=self.stage,
            days_in_stage=round(seconds_between(entered, self.rots_at) / 86400, 2),
            rot_days=self.current_stage.rot_days or 0,
            amount=self.amount,
            currency=self.currency,
            entered_stage_at=entered,
            stalled_at=self.rots_at,
        )

    def activity_logged(self, at: datetime) -> bool:
        """An activity was logged for the deal at ``at``: an open deal whose pipeline says so starts its
        stall clock again; a won deal's first contact after the win is kept. True when it changed."""
        if self.stage == WON:
            if self.first_contact_after_win_at is not None or self.closed_at is None or at < self.closed_at:
                return False
            self.first_contact_after_win_at = at
            return True
        if self.is_closed or not self.pipeline.activity_rearms or self.rots_at is None:
            return False
        before = self.rots_at
        # A backdated activity (logged late) never brings the stall closer than it was.
        self.start_stall_clock(max(at, self.history[-1].entered_at))
        if self.rots_at is not None and self.rots_at < before:
            self.rots_at = before
        return self.rots_at != before

    @property
    def seconds_from_win_to_first_contact(self) -> float | None:
        if self.first_contact_after_win_at is None or self.closed_at is None:
            return None
        return seconds_between(self.closed_at, self.first_contact_after_win_at)


#: The reason of a move made because a new version of the pipeline removed the deal's stage.
PIPELINE_CHANGED = "pipeline changed"
#: The fields whose change raises ``DealUpdated``.
FOLLOWED_FIELDS = ("amount", "expected_close_date", "owner", "next_step", "deal_type")


@dataclass(frozen=True)
class DealChanges:
    """An edit of a deal: each field given is set (None: left as it is); ``cleared`` names those emptied."""

    FIELDS = (
        "amount",
        "expected_close_date",
        "owner",
        "next_step",
        "deal_type",
        "product_line",
        "decision_maker",
        "competitor",
        "checklist",
    )

    amount: Decimal | None = None
    expected_close_date: date | None = None
    owner: str | None = None
    next_step: str | None = None
    deal_type: DealType | None = None
    product_line: str | None = None
    decision_maker: str | None = None
    competitor: str | None = None
    checklist: frozenset[str] | None = None
    cleared: frozenset[str] = frozenset()


# --- RFPs -------------------------------------------------------------------------------------------


def rfp_timer_keys(deal_id: str) -> tuple[str, str]:
    """The reminder before an RFP's response is due, and its overdue timer."""
    return f"deal:{deal_id}:rfp-reminder", f"deal:{deal_id}:rfp-overdue"


def rfp_due_events(deal: Deal) -> list[tuple[str, datetime, RfpResponseDue]]:
    """The timers an open RFP deal keeps (key, due time, event): none once it is closed or a no-go."""
    rfp = deal.rfp
    if rfp is None or deal.is_closed or rfp.decision is RfpDecision.NO_GO:
        return []
    reminder, overdue = rfp_timer_keys(deal.id)

    def due(kind: str) -> RfpResponseDue:
        return RfpResponseDue(
            deal_id=deal.id,
            lead_id=deal.lead_id,
            owner=deal.owner,
            account_id=deal.account.id,
            account_name=deal.account.name,
            issuer=rfp.issuer,
            response_due_at=rfp.response_due_at,
            kind=kind,
            decision=rfp.decision.value if rfp.decision else None,
        )

    return [(reminder, rfp.remind_at, due("reminder")), (overdue, rfp.response_due_at, due("overdue"))]
