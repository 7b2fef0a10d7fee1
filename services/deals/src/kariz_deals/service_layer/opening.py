"""Deals opened by hand beyond a qualified lead (``POST /deals``): an RFP/RFI with its response timers
and go/no-go step, and an upsell, cross-sell or renewal for an existing customer, linked to the
account's won deals. By B's rules a rep opens deals for accounts they or their team own (an account's
owners are those of its deals), a manager for their team's, an admin for any."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from kariz_deals.domain import (
    WON,
    AccountRef,
    Deal,
    DealProfile,
    DealType,
    Pipeline,
    Segment,
    new_deal_id,
    route,
)
from kariz_deals.domain.deal import rfp_due_events, rfp_timer_keys
from kariz_deals.domain.rfp import RfpDecision, RfpDetails
from kariz_deals.service_layer.pipelines import keep_stall_timer
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_shared.contracts.errors import Forbidden, RuleViolation, found
from kariz_shared.contracts.identity import EVERYONE, Actor, Owners
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.logging import correlation_id as current_correlation_id

log = logging.getLogger(__name__)

#: Deal types that build on a customer's won deals.
FOR_CUSTOMERS = frozenset({DealType.UPSELL, DealType.CROSS_SELL, DealType.RENEWAL})


@dataclass(frozen=True)
class OpenDeal:
    account_id: str
    deal_type: DealType
    owner: str
    currency: str
    #: Whose accounts the asker may open deals for: an account with a deal of one of them.
    reach: Owners = EVERYONE
    amount: Decimal | None = None
    expected_close_date: date | None = None
    product_line: str | None = None
    next_step: str | None = None
    rfp: RfpDetails | None = None
    by: Actor | None = field(default=None, kw_only=True)


def keep_rfp_timers(uow: DealsUnitOfWork, deal: Deal, *, first: bool = False) -> None:
    """Arm the RFP's reminder and overdue timers while the deal is open and not a no-go, else disarm
    them (a timer whose time has passed fires at once: a reminder armed late is still a reminder)."""
    armed = rfp_due_events(deal)
    for key, due_at, event in armed:
        uow.timers.arm(key, due_at, event, first=first, correlation_id=deal.correlation_id)
    if not armed and deal.rfp is not None:
        for key in rfp_timer_keys(deal.id):
            uow.timers.cancel(key)


async def open_deal(units: UnitsOfWork[DealsUnitOfWork], command: OpenDeal, *, default: Pipeline) -> Deal:
    async def work(uow: DealsUnitOfWork) -> Deal:
        missing = f"no account {command.account_id!r}"
        account = found(await uow.accounts.get(command.account_id), missing)
        deals = await uow.deals.of_account(account.id)
        if not any(command.reach.include(d.owner) for d in deals):
            # Accounts out of reach are not there for the asker, as records out of reach are not.
            raise found(None, missing)
        if command.deal_type is DealType.NEW_BUSINESS:
            raise RuleViolation("deal_type: new business comes from a qualified lead; open rfp, upsell, …")
        if command.deal_type is DealType.RFP and command.rfp is None:
            raise RuleViolation("rfp: an RFP deal needs its issuer and response due time")
        if command.deal_type is not DealType.RFP and command.rfp is not None:
            raise RuleViolation("rfp: only an RFP deal has RFP details")
        won = [d.id for d in deals if d.stage == WON]
        if command.deal_type in FOR_CUSTOMERS and not won:
            raise RuleViolation(
                f"account_id: {account.name} has no won deal; an {command.deal_type.value} is for a customer"
            )
        now = uow.clock.now()
        profile = DealProfile(
            command.deal_type, Segment.of_size(account.size), command.product_line, account.country
        )
        in_force = [v.pipeline for v in await uow.pipelines.all_in_force()]
        pipeline = route(in_force, profile) or next((p for p in in_force if p.name == default.name), default)
        # The account's newest deal names its lead, so the lead's activities reach this deal too.
        newest = max(deals, key=lambda d: (d.opened_at, d.id))
        deal_id = new_deal_id()
        deal = Deal.open(
            deal_id=deal_id,
            lead_id=newest.lead_id,
            # Not opened by a qualification: it takes its own id where a qualified lead's would be.
            opened_for=f"deal:{deal_id}",
            account=AccountRef(account.id, account.name, account.domain),
            owner=command.owner,
            amount=command.amount,
            currency=command.currency,
            correlation_id=current_correlation_id.get() or str(uuid.uuid4()),
            at=now,
            pipeline=pipeline,
            contact=dict(newest.contact),
            source=command.deal_type.value,
            deal_type=command.deal_type,
            expected_close_date=command.expected_close_date,
        )
        deal.product_line = command.product_line
        deal.next_step = command.next_step
        deal.rfp = command.rfp
        deal.linked_deal_ids = tuple(won) if command.deal_type in FOR_CUSTOMERS else ()
        uow.deals.add(deal)
        uow.publish(deal)
        keep_stall_timer(uow, deal, had_one=False, first=True)
        keep_rfp_timers(uow, deal, first=True)
        uow.after_commit(uow.metrics.opened)
        log.info("deal opened by hand", extra={"deal_id": deal.id, "deal_type": command.deal_type.value})
        return deal

    return await units.run(work)


@dataclass(frozen=True)
class DecideRfp:
    deal_id: str
    decision: RfpDecision
    reason: str | None = None
    seen: Owners = EVERYONE
    by: Actor | None = None


async def decide_rfp(units: UnitsOfWork[DealsUnitOfWork], command: DecideRfp) -> Deal:
    """Go: the deal may move on. No-go: it is lost with the reason (no effort spent), its timers stop."""

    async def work(uow: DealsUnitOfWork) -> Deal:
        missing = f"no deal {command.deal_id!r}"
        deal = found(await uow.deals.get(command.deal_id), missing)
        command.seen.sees(deal.owner, missing)
        if deal.rfp is None:
            raise RuleViolation(f"deal {deal.id} is no RFP; only an RFP has a go/no-go")
        now = uow.clock.now()
        if command.decision is RfpDecision.NO_GO and not (command.reason or "").strip():
            raise RuleViolation("reason: a no-go needs a reason")
        deal.rfp = deal.rfp.decided(command.decision, now, command.by.who if command.by else None)
        if command.decision is RfpDecision.NO_GO:
            move = deal.lose(now, f"no_go: {command.reason}", by=command.by)
            metrics = uow.metrics
            uow.after_commit(lambda: metrics.moved(move))
        await uow.deals.save(deal)
        uow.publish(deal)
        keep_stall_timer(uow, deal)
        keep_rfp_timers(uow, deal)
        return deal

    return await units.run(work)


def require_reach(reach: Owners, owner: str) -> None:
    """A deal opened for another owner: only one the asker may hand deals to (403 naming the field)."""
    if not reach.include(owner):
        raise Forbidden(f"owner: {owner} is not in your team")
