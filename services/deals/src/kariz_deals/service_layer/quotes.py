"""The use cases of quotes: draw one up from the catalogue, have its discount approved, send it, and
hear the customer's answer or its expiry. One function per command and per consumed event.

A quote's events continue its deal's story (the deal's correlation id), whoever made the change. Only
those who see the deal change its quotes: its owner, their manager, an admin (``seen``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from kariz_deals.domain import Deal
from kariz_deals.domain.catalogue import Pricing, known_currency
from kariz_deals.domain.quote import LineRequest, Quote, StatusChange, expiry_timer
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_shared.contracts.errors import Conflict, RuleViolation, found
from kariz_shared.contracts.events import QuoteExpired
from kariz_shared.contracts.identity import Actor, Owners
from kariz_shared.persistence.unit_of_work import UnitsOfWork

log = logging.getLogger(__name__)


class Managers(Protocol):
    """Who manages a rep (the live roster's newest profile of them)."""

    def manager_of(self, email: str) -> str | None: ...


@dataclass(frozen=True)
class QuotePolicy:
    """The settings quotes follow: the discount a line may give without approval, and how long a quote
    made without a validity date is valid."""

    discount_limit_pct: Decimal = Decimal(20)
    validity: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class DrawUpQuote:
    deal_id: str
    lines: list[LineRequest]
    seen: Owners
    by: Actor
    currency: str | None = None
    price_book: str | None = None
    terms: str | None = None
    valid_until: datetime | None = None


@dataclass(frozen=True)
class ChangeQuote:
    """A step of a quote's life the caller asks for (approve, refuse, send, accept, reject)."""

    deal_id: str
    number: int
    seen: Owners
    by: Actor
    note: str | None = None


def _publish(uow: DealsUnitOfWork, quote: Quote, deal: Deal) -> None:
    for event in quote.pull_events():
        uow.emit(event, correlation_id=deal.correlation_id)
    # What a step changed on the deal itself (an accepted quote's amount: DealUpdated).
    uow.publish(deal)


def _count(uow: DealsUnitOfWork, *changes: StatusChange) -> None:
    metrics = uow.metrics
    for change in changes:
        before = change.from_status.value if change.from_status else None
        uow.after_commit(lambda b=before, to=change.to_status.value: metrics.quote_moved(b, to))


async def _deal_in_reach(uow: DealsUnitOfWork, deal_id: str, seen: Owners) -> Deal:
    missing = f"no deal {deal_id!r}"
    deal = found(await uow.deals.get(deal_id), missing)
    seen.sees(deal.owner, missing)
    return deal


async def draw_up_quote(
    units: UnitsOfWork[DealsUnitOfWork], command: DrawUpQuote, policy: QuotePolicy, managers: Managers
) -> Quote:
    """The deal's next quote version, priced from the catalogue: a draft, or awaiting the owner's
    manager when a line's discount is over the limit (``QuoteApprovalRequested`` names the manager)."""

    async def work(uow: DealsUnitOfWork) -> Quote:
        deal = await _deal_in_reach(uow, command.deal_id, command.seen)
        if deal.is_closed:
            raise Conflict(f"deal {deal.id} is closed ({deal.stage}); it takes no new quote")
        book = None
        if command.price_book is not None:
            book = await uow.price_books.get(command.price_book)
            if book is None:
                raise RuleViolation(f"price_book: no price book {command.price_book!r}")
        currency = known_currency(command.currency or (book.currency if book else deal.currency))
        products = await uow.products.of_skus({line.sku for line in command.lines})
        now = uow.clock.now()
        earlier = await uow.quotes.of_deal(deal.id)
        quote = Quote.draw_up(
            deal_id=deal.id,
            number=max((q.number for q in earlier), default=0) + 1,
            owner=deal.owner,
            lines=command.lines,
            pricing=Pricing(currency, book, products),
            terms=command.terms,
            valid_until=command.valid_until or now + policy.validity,
            discount_limit_pct=policy.discount_limit_pct,
            at=now,
            by=command.by,
            manager=managers.manager_of(deal.owner),
        )
        uow.quotes.add(quote)
        _publish(uow, quote, deal)
        _count(uow, quote.last_change)
        log.info(
            "quote drawn up", extra={"deal_id": deal.id, "quote": quote.number, "status": quote.status.value}
        )
        return quote

    return await units.run(work)


Step = Callable[[DealsUnitOfWork, Quote, Deal, datetime], StatusChange]


async def _change_in(uow: DealsUnitOfWork, command: ChangeQuote, step: Step) -> tuple[Quote, Deal]:
    """Apply ``step`` to the deal's quote of that number and save the quote; the deal it is on, as
    loaded (a step may change it too)."""
    deal = await _deal_in_reach(uow, command.deal_id, command.seen)
    quote = found(
        await uow.quotes.numbered(deal.id, command.number),
        f"no quote {command.number} on deal {command.deal_id!r}",
    )
    change = step(uow, quote, deal, uow.clock.now())
    await uow.quotes.save(quote)
    _publish(uow, quote, deal)
    _count(uow, change)
    return quote, deal


async def _change(units: UnitsOfWork[DealsUnitOfWork], command: ChangeQuote, step: Step) -> Quote:
    async def work(uow: DealsUnitOfWork) -> Quote:
        quote, _ = await _change_in(uow, command, step)
        return quote

    return await units.run(work)


async def approve_quote(units: UnitsOfWork[DealsUnitOfWork], command: ChangeQuote) -> Quote:
    """The owner's manager (a manager who sees the deal) or an admin allows the quote's discount."""
    return await _change(
        units, command, lambda _, quote, __, now: quote.approve(now, command.by, command.note)
    )


async def refuse_quote(units: UnitsOfWork[DealsUnitOfWork], command: ChangeQuote) -> Quote:
    """The manager refuses the discount: this version is done (a new version may give less)."""
    return await _change(
        units, command, lambda _, quote, __, now: quote.refuse(now, command.by, command.note or "")
    )


async def send_quote(units: UnitsOfWork[DealsUnitOfWork], command: ChangeQuote) -> Quote:
    """Send the quote (``QuoteSent``) and arm its expiry at ``valid_until`` (``QuoteExpired``)."""

    def send(uow: DealsUnitOfWork, quote: Quote, deal: Deal, now: datetime) -> StatusChange:
        if deal.is_closed:
            raise Conflict(f"deal {deal.id} is closed ({deal.stage}); its quotes are not sent")
        change = quote.send(now, command.by)
        uow.timers.arm(
            expiry_timer(quote.id),
            quote.valid_until,
            quote.expiry_event(),
            correlation_id=deal.correlation_id,
        )
        return change

    return await _change(units, command, send)


async def accept_quote(units: UnitsOfWork[DealsUnitOfWork], command: ChangeQuote) -> Quote:
    """The customer accepted the quote (``QuoteAccepted``): its total is the deal's amount, the deal
    has an accepted quote, and the expiry timer is disarmed."""

    def accept(uow: DealsUnitOfWork, quote: Quote, deal: Deal, now: datetime) -> StatusChange:
        change = quote.accept(now, command.by)
        deal.accept_quote(quote.id, quote.totals.total, quote.currency, now, command.by)
        uow.timers.cancel(expiry_timer(quote.id))
        return change

    async def work(uow: DealsUnitOfWork) -> Quote:
        quote, deal = await _change_in(uow, command, accept)
        await uow.deals.save(deal)
        return quote

    return await units.run(work)


async def reject_quote(units: UnitsOfWork[DealsUnitOfWork], command: ChangeQuote) -> Quote:
    """The customer said no; the expiry timer is disarmed."""

    def reject(uow: DealsUnitOfWork, quote: Quote, _: Deal, now: datetime) -> StatusChange:
        uow.timers.cancel(expiry_timer(quote.id))
        return quote.reject(now, command.by, command.note)

    return await _change(units, command, reject)


async def expire_quote(uow: DealsUnitOfWork, event: QuoteExpired) -> Quote | None:
    """Deals heard its own expiry timer: a quote still sent is expired. One answered in the meantime, or
    a repeat of the event, changes nothing."""
    quote = await uow.quotes.get(event.quote_id)
    if quote is None:
        log.warning(
            "an expired quote is unknown", extra={"deal_id": event.deal_id, "quote_id": event.quote_id}
        )
        return None
    change = quote.expire(uow.clock.now())
    if change is None:
        return None
    await uow.quotes.save(quote)
    _count(uow, change)
    return quote


# --- reads ----------------------------------------------------------------------------------------


async def quotes_of(units: UnitsOfWork[DealsUnitOfWork], deal_id: str, seen: Owners) -> list[Quote]:
    """The deal's quotes by number, for a caller who sees the deal."""

    async def query(uow: DealsUnitOfWork) -> list[Quote]:
        deal = await _deal_in_reach(uow, deal_id, seen)
        return await uow.quotes.of_deal(deal.id)

    return await units.read(query)


async def quote_of(
    units: UnitsOfWork[DealsUnitOfWork], deal_id: str, number: int, seen: Owners
) -> tuple[Quote, Deal]:
    """The deal's quote of that number and the deal, for a caller who sees the deal."""

    async def query(uow: DealsUnitOfWork) -> tuple[Quote, Deal]:
        deal = await _deal_in_reach(uow, deal_id, seen)
        quote = found(await uow.quotes.numbered(deal.id, number), f"no quote {number} on deal {deal_id!r}")
        return quote, deal

    return await units.read(query)
