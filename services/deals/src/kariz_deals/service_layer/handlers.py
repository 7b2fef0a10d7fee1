"""One function per command and per consumed event: load through the unit of work's repositories, let
the deal decide, add or save it, publish what it raised, count it once committed."""

from __future__ import annotations

import logging
from datetime import datetime

from kariz_deals.domain import (
    WON,
    Account,
    AccountRef,
    Deal,
    DealProfile,
    DealType,
    Pipeline,
    Segment,
    new_account_id,
    new_deal_id,
    route,
)
from kariz_deals.domain.deal import rfp_timer_keys
from kariz_deals.service_layer.commands import MoveDeal
from kariz_deals.service_layer.pipelines import keep_stall_timer
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_shared.contracts.errors import RuleViolation, found
from kariz_shared.contracts.events import Company, LeadQualified, LeadsMerged
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.logging import correlation_id as current_correlation_id

log = logging.getLogger(__name__)


# --- consumed events ------------------------------------------------------------------------------


async def open_deal_for(
    uow: DealsUnitOfWork, lead: LeadQualified, *, pipeline: Pipeline, currency: str
) -> Deal | None:
    """Open the deal of a qualified lead in ``pipeline``, with its company's account (found or new);
    None when the lead has its deal already.

    A lead merged in leads before its qualification got here (the two events travel on different
    topics) is its survivor: the deal is opened for the survivor, unless the survivor has one (one person,
    one deal from qualification).

    The deal keeps the consumed event's correlation id for every event it raises later.
    """
    if await uow.deals.for_lead(lead.lead_id) is not None:
        # Qualified again under a new event id (e.g. re-sent): the lead's deal already exists.
        log.info("lead already has a deal; nothing to open", extra={"lead_id": lead.lead_id})
        return None
    survivor = await _survivor_of(uow, lead.lead_id)
    if survivor != lead.lead_id and await uow.deals.for_lead(survivor) is not None:
        log.info(
            "merged lead's survivor has a deal; nothing to open",
            extra={"lead_id": lead.lead_id, "survivor": survivor},
        )
        return None
    # The consumer sets the consumed event's correlation id for its handler.
    story = current_correlation_id.get()
    if not story:
        raise RuleViolation(f"LeadQualified for {lead.lead_id} carries no correlation id")
    now = uow.clock.now()
    account = await _account_for(uow, lead.company, now)
    # The top-level budget, whichever methodology's checklist held it; events from before it was there
    # carry it only in their BANT answers.
    budget = lead.budget_amount
    if budget is None and lead.answers is not None:
        budget = lead.answers.budget_amount
    # A budget of 0 or less is no price to plan with; a budget in its own currency is priced in it.
    amount = budget if budget is not None and budget > 0 else None
    priced_in = lead.budget_currency if amount is not None and lead.budget_currency else currency
    contact = lead.contact
    # Qualification found a won deal of the lead's account (issue D): an upsell, linked to this account's
    # won deals here (its account id is qualification's own key, so the account is deals' own).
    deal_type = DealType.UPSELL if lead.existing_customer else DealType.NEW_BUSINESS
    won = (
        sorted(d.id for d in await uow.deals.of_account(account.id) if d.stage == WON)
        if lead.existing_customer
        else []
    )
    pipeline = await _pipeline_for(
        uow,
        DealProfile(deal_type=deal_type, segment=Segment.of_size(account.size), country=account.country),
        pipeline,
    )
    deal = Deal.open(
        deal_id=new_deal_id(),
        lead_id=survivor,
        opened_for=lead.lead_id,
        account=AccountRef(account.id, account.name, account.domain),
        owner=lead.owner,
        amount=amount,
        currency=priced_in,
        correlation_id=story,
        at=now,
        pipeline=pipeline,
        contact={
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "email": contact.email,
            "phone": contact.phone,
            "title": contact.title,
        },
        source=lead.source.value,
        deal_type=deal_type,
    )
    deal.linked_deal_ids = tuple(won)
    uow.deals.add(deal)
    uow.publish(deal)
    keep_stall_timer(uow, deal, had_one=False, first=True)
    uow.after_commit(uow.metrics.opened)
    log.info("opening a deal", extra={"deal_id": deal.id, "lead_id": deal.lead_id, "account_id": account.id})
    return deal


async def follow_merge(uow: DealsUnitOfWork, event: LeadsMerged) -> list[Deal]:
    """Two leads were merged in leads: every deal of the merged one is the survivor's from now on (its
    owner, stage and history stay), and the merge is remembered for a qualification of the merged lead
    still on its way. Idempotent: a redelivery finds no deal of the merged lead left to move."""
    await uow.merges.record(event.merged_lead_id, event.lead_id, event.merged_at)
    # The survivor itself may have been merged since (two merges heard of out of order).
    survivor = await _survivor_of(uow, event.lead_id)
    moved = []
    for deal in await uow.deals.of_lead(event.merged_lead_id):
        if deal.follow_merge(survivor):
            await uow.deals.save(deal)
            moved.append(deal)
    if moved:
        log.info(
            "deals follow the merge",
            extra={"lead_id": survivor, "merged_lead_id": event.merged_lead_id, "deals": len(moved)},
        )
    return moved


async def _pipeline_for(uow: DealsUnitOfWork, deal: DealProfile, default: Pipeline) -> Pipeline:
    """The pipeline a new deal enters: the routing rules' choice, else the default's version in force
    (``default`` when none was ever stored: the built-in one)."""
    in_force = [v.pipeline for v in await uow.pipelines.all_in_force()]
    routed = route(in_force, deal)
    if routed is not None:
        return routed
    return next((p for p in in_force if p.name == default.name), default)


#: How many merges a lead is followed through to its survivor.
MAX_HOPS = 20


async def _survivor_of(uow: DealsUnitOfWork, lead_id: str) -> str:
    """The lead ``lead_id`` lives on in: itself unless deals heard of its merge."""
    for _ in range(MAX_HOPS):
        survivor = await uow.merges.survivor_of(lead_id)
        if survivor is None:
            return lead_id
        lead_id = survivor
    return lead_id


async def _account_for(uow: DealsUnitOfWork, company: Company, at: datetime) -> Account:
    """The company's account: the existing one, or a new one."""
    # Made first: a company without name or domain is refused before anything is looked up.
    wanted = Account.for_company(
        account_id=new_account_id(),
        name=company.name,
        domain=company.domain,
        at=at,
        industry=company.industry,
        size=company.size,
        country=company.country,
    )
    existing = await uow.accounts.of_company(wanted.domain, wanted.name_key)
    if existing is not None:
        return existing
    uow.accounts.add(wanted)
    return wanted


# --- commands -------------------------------------------------------------------------------------


async def move_deal(units: UnitsOfWork[DealsUnitOfWork], command: MoveDeal) -> Deal:
    """Move a deal to another stage; its StageChanged (and DealWon or DealLost) go out with the move."""

    async def work(uow: DealsUnitOfWork) -> Deal:
        missing = f"no deal {command.deal_id!r}"
        deal = found(await uow.deals.get(command.deal_id), missing)
        command.seen.sees(deal.owner, missing)
        had_one = deal.rots_at is not None
        move = deal.advance_to(
            command.stage,
            uow.clock.now(),
            command.amount,
            command.reason,
            command.note,
            command.by,
            competitor=command.competitor,
        )
        await uow.deals.save(deal)
        uow.publish(deal)
        keep_stall_timer(uow, deal, had_one=had_one)
        if deal.rfp is not None and deal.is_closed:
            for key in rfp_timer_keys(deal.id):
                uow.timers.cancel(key)  # a closed RFP deal owes no response
        metrics = uow.metrics
        uow.after_commit(lambda: metrics.moved(move))
        return deal

    return await units.run(work)
