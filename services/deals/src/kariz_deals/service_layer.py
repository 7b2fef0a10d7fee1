"""Use cases: open a deal for a qualified lead, move a deal through its pipeline, read deals, accounts
and the pipeline. Writes load and save through the repositories inside one ``store.transaction``
together with the events they cause."""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from kariz_deals import metrics
from kariz_deals.adapters.mongo import AccountRepository, DealFilter, DealReader, DealRepository
from kariz_deals.domain import (
    DEFAULT_PIPELINE,
    Account,
    AccountRef,
    Deal,
    PipelineSummary,
    StageMove,
    pipeline_named,
    summarise,
)
from kariz_shared.contracts.errors import NotFound, RuleViolation
from kariz_shared.contracts.events import DealLost, DealOpened, DealWon, Event, LeadQualified, StageChanged
from kariz_shared.persistence.store import Store, Transaction


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


# --- events ---------------------------------------------------------------------------------------


def deal_opened(deal: Deal) -> DealOpened:
    return DealOpened(
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


def events_for_move(deal: Deal, move: StageMove) -> list[Event]:
    """StageChanged for every move, then DealWon or DealLost when the move closed the deal."""
    events: list[Event] = [
        StageChanged(
            deal_id=deal.id,
            lead_id=deal.lead_id,
            owner=deal.owner,
            pipeline=deal.pipeline.name,
            from_stage=move.from_stage,
            to_stage=move.to_stage,
            direction=move.direction.value,
            seconds_in_from_stage=move.seconds_in_from_stage,
            amount=move.amount,
            currency=deal.currency,
            note=move.note,
            changed_at=move.changed_at,
        )
    ]
    if move.won:
        assert move.amount is not None and move.cycle_seconds is not None  # the domain refuses a win without
        events.append(
            DealWon(
                deal_id=deal.id,
                lead_id=deal.lead_id,
                account_id=deal.account.id,
                account_name=deal.account.name,
                owner=deal.owner,
                amount=move.amount,
                currency=deal.currency,
                cycle_seconds=move.cycle_seconds,
                won_at=move.changed_at,
            )
        )
    elif move.lost:
        assert move.reason is not None and move.cycle_seconds is not None
        events.append(
            DealLost(
                deal_id=deal.id,
                lead_id=deal.lead_id,
                account_id=deal.account.id,
                account_name=deal.account.name,
                owner=deal.owner,
                reason=move.reason,
                lost_at_stage=move.from_stage,
                amount=move.amount,
                currency=deal.currency,
                cycle_seconds=move.cycle_seconds,
                lost_at=move.changed_at,
            )
        )
    return events


# --- writes ---------------------------------------------------------------------------------------


async def account_for(tx: Transaction, lead: LeadQualified, at: datetime) -> Account:
    """The lead's company's account: the existing one, or a new one."""
    company = lead.company
    accounts = AccountRepository(tx)
    wanted = Account.for_company(
        account_id=new_id("A"),
        name=company.name,
        domain=company.domain,
        at=at,
        industry=company.industry,
        size=company.size,
        country=company.country,
    )
    existing = await accounts.find_for(wanted.domain, wanted.name_key)
    if existing is not None:
        return existing
    accounts.add(wanted)
    return wanted


async def open_deal(tx: Transaction, lead: LeadQualified, *, currency: str, at: datetime) -> Deal | None:
    """Open the deal for a qualified lead and emit DealOpened; None when the lead already has its deal.

    Runs inside the consumer's transaction, whose correlation id (the lead's) the deal keeps for
    every event it causes later.
    """
    deals = DealRepository(tx)
    if await deals.for_lead(lead.lead_id) is not None:
        # Qualified again under a new event id (e.g. re-sent): the lead's deal already exists.
        return None
    if not tx.correlation_id:
        raise RuleViolation(f"LeadQualified for {lead.lead_id} carries no correlation id")
    account = await account_for(tx, lead, at)
    budget = lead.answers.budget_amount if lead.answers else None
    contact = lead.contact
    deal = Deal.open(
        deal_id=new_id("D"),
        lead_id=lead.lead_id,
        account=AccountRef(account.id, account.name, account.domain),
        owner=lead.owner,
        # A budget of 0 or less is no price to plan with.
        amount=budget if budget is not None and budget > 0 else None,
        currency=currency,
        correlation_id=tx.correlation_id,
        at=at,
        contact={
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "email": contact.email,
            "phone": contact.phone,
            "title": contact.title,
        },
        source=lead.source.value,
    )
    deals.add(deal)
    tx.emit(deal_opened(deal))
    return deal


@dataclass(frozen=True)
class MoveRequest:
    stage: str
    amount: Decimal | None = None
    reason: str | None = None
    note: str | None = None


async def move_deal(store: Store, deal_id: str, request: MoveRequest, *, at: datetime | None = None) -> Deal:
    """Move a deal to another stage; StageChanged (and DealWon/DealLost) go out in the same transaction."""
    at = at or datetime.now(UTC)
    current = await DealReader(store.db).deal(deal_id)
    if current is None:
        raise NotFound(f"no deal {deal_id!r}")
    # Refuse a bad request before opening a transaction; the transaction checks again on fresh data.
    copy.deepcopy(current).advance_to(request.stage, at, request.amount, request.reason, request.note)

    async def work(tx: Transaction) -> Deal:
        deals = DealRepository(tx)
        deal = await deals.get(deal_id)
        if deal is None:
            raise NotFound(f"no deal {deal_id!r}")
        move = deal.advance_to(request.stage, at, request.amount, request.reason, request.note)
        await deals.save(deal)
        for event in events_for_move(deal, move):
            tx.emit(event)
        tx.after_commit(lambda: metrics.record_move(move))
        return deal

    return await store.transaction(work, correlation_id=current.correlation_id)


# --- reads ----------------------------------------------------------------------------------------


async def get_deal(store: Store, deal_id: str) -> Deal:
    deal = await DealReader(store.db).deal(deal_id)
    if deal is None:
        raise NotFound(f"no deal {deal_id!r}")
    return deal


async def find_deals(store: Store, where: DealFilter, *, limit: int, offset: int) -> tuple[list[Deal], int]:
    if where.stage is not None:
        DEFAULT_PIPELINE.stage(where.stage)  # an unknown stage is a mistake, not an empty page
    return await DealReader(store.db).deals(where, limit=limit, offset=offset)


async def get_account(store: Store, account_id: str) -> Account:
    account = await DealReader(store.db).account(account_id)
    if account is None:
        raise NotFound(f"no account {account_id!r}")
    return account


async def pipeline_summary(
    store: Store, *, pipeline: str, currency: str, owner: str | None = None
) -> PipelineSummary:
    known = pipeline_named(pipeline)
    return summarise(known, await DealReader(store.db).stage_totals(known.name, currency, owner))
