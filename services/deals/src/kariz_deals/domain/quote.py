"""A quote on a deal: line items priced from the catalogue, totals in the currency's minor units, terms
and a validity date; the deal's quotes are numbered versions 1, 2, 3…

A quote is not edited: a changed offer is a new version. Its life:

    draft ──send──▶ sent ──▶ accepted | rejected | expired
      │               ▲
      └─(a discount over the limit)─▶ awaiting_approval ──approve──▶ approved ──send──┘
                                                         └─refuse──▶ refused

A quote raises ``QuoteApprovalRequested`` when it is made awaiting approval, ``QuoteSent`` and
``QuoteAccepted``; ``QuoteExpired`` is what its expiry timer emits at ``valid_until`` (armed when it is
sent), which deals hears to mark the quote expired. No I/O.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from kariz_deals.domain.catalogue import Pricing, round_money
from kariz_shared.contracts.aggregate import Aggregate
from kariz_shared.contracts.errors import Conflict, Forbidden, RuleViolation
from kariz_shared.contracts.events import QuoteAccepted, QuoteApprovalRequested, QuoteExpired, QuoteSent
from kariz_shared.contracts.identity import Actor

HUNDRED = Decimal(100)


def new_quote_id() -> str:
    return f"Q-{uuid.uuid4().hex}"


def expiry_timer(quote_id: str) -> str:
    """The key of a sent quote's expiry timer."""
    return f"quote:{quote_id}:expiry"


class QuoteStatus(StrEnum):
    DRAFT = "draft"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    REFUSED = "refused"
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"


#: Where a quote may go from each status (the metrics' transitions are these).
TRANSITIONS: dict[QuoteStatus, frozenset[QuoteStatus]] = {
    QuoteStatus.DRAFT: frozenset({QuoteStatus.SENT}),
    QuoteStatus.AWAITING_APPROVAL: frozenset({QuoteStatus.APPROVED, QuoteStatus.REFUSED}),
    QuoteStatus.APPROVED: frozenset({QuoteStatus.SENT}),
    QuoteStatus.REFUSED: frozenset(),
    QuoteStatus.SENT: frozenset({QuoteStatus.ACCEPTED, QuoteStatus.REJECTED, QuoteStatus.EXPIRED}),
    QuoteStatus.ACCEPTED: frozenset(),
    QuoteStatus.REJECTED: frozenset(),
    QuoteStatus.EXPIRED: frozenset(),
}


@dataclass(frozen=True)
class LineRequest:
    """A line as a rep asks for it: the product, how many, and optionally its own unit price."""

    sku: str
    quantity: Decimal
    discount_pct: Decimal = Decimal(0)
    tax_pct: Decimal = Decimal(0)
    unit_price: Decimal | None = None


@dataclass(frozen=True)
class QuoteLine:
    """One priced line: what the product costs, less its discount, plus its tax, each rounded to the
    currency's minor units (a line's figures are what the printed quote shows, so they add up)."""

    sku: str
    name: str
    unit: str
    quantity: Decimal
    unit_price: Decimal
    #: The rep gave the price; otherwise it is the price book's or the list price.
    price_overridden: bool
    discount_pct: Decimal
    tax_pct: Decimal
    gross: Decimal
    discount: Decimal
    net: Decimal
    tax: Decimal
    total: Decimal

    @classmethod
    def priced(cls, line: LineRequest, pricing: Pricing, position: int) -> QuoteLine:
        where = f"lines[{position}]"
        if line.sku not in pricing.products:
            raise RuleViolation(f"{where}.sku: no product {line.sku!r} in the catalogue")
        product = pricing.product(line.sku)
        if not product.active:
            raise RuleViolation(f"{where}.sku: product {line.sku!r} is no longer sold")
        if line.quantity <= 0:
            raise RuleViolation(f"{where}.quantity: must be greater than 0, got {line.quantity}")
        for name, pct in (("discount_pct", line.discount_pct), ("tax_pct", line.tax_pct)):
            if not Decimal(0) <= pct <= HUNDRED:
                raise RuleViolation(f"{where}.{name}: a percentage from 0 to 100, got {pct}")
        currency = pricing.currency
        if line.unit_price is not None:
            if line.unit_price < 0 or line.unit_price != round_money(line.unit_price, currency):
                raise RuleViolation(
                    f"{where}.unit_price: {line.unit_price} is not an amount of {currency} (0 or more, "
                    "in its minor units)"
                )
            unit_price = line.unit_price
        else:
            unit_price = pricing.unit_price(line.sku)
        gross = round_money(line.quantity * unit_price, currency)
        discount = round_money(gross * line.discount_pct / HUNDRED, currency)
        net = gross - discount
        tax = round_money(net * line.tax_pct / HUNDRED, currency)
        return cls(
            sku=product.sku,
            name=product.name,
            unit=product.unit,
            quantity=line.quantity,
            unit_price=unit_price,
            price_overridden=line.unit_price is not None,
            discount_pct=line.discount_pct,
            tax_pct=line.tax_pct,
            gross=gross,
            discount=discount,
            net=net,
            tax=tax,
            total=net + tax,
        )


@dataclass(frozen=True)
class Totals:
    gross: Decimal
    discount: Decimal
    net: Decimal
    tax: Decimal
    total: Decimal

    @classmethod
    def of(cls, lines: list[QuoteLine]) -> Totals:
        def add(amounts: list[Decimal]) -> Decimal:
            return sum(amounts, Decimal(0))

        return cls(
            gross=add([ln.gross for ln in lines]),
            discount=add([ln.discount for ln in lines]),
            net=add([ln.net for ln in lines]),
            tax=add([ln.tax for ln in lines]),
            total=add([ln.total for ln in lines]),
        )


@dataclass(frozen=True)
class StatusChange:
    """One step of a quote's life (the metrics count it, the quote keeps them)."""

    from_status: QuoteStatus | None
    to_status: QuoteStatus
    at: datetime
    by: str | None = None
    note: str | None = None


@dataclass
class Quote(Aggregate):
    id: str
    deal_id: str
    number: int
    owner: str
    currency: str
    lines: list[QuoteLine]
    terms: str | None
    valid_until: datetime
    status: QuoteStatus
    needs_approval: bool
    created_at: datetime
    created_by: str | None
    history: list[StatusChange]
    price_book: str | None = None
    #: The discount limit in force when the quote was made (a later change of the setting does not
    #: reopen an approval already given).
    discount_limit_pct: Decimal = Decimal(0)
    version: int = 0

    @classmethod
    def draw_up(
        cls,
        *,
        deal_id: str,
        number: int,
        owner: str,
        lines: list[LineRequest],
        pricing: Pricing,
        terms: str | None,
        valid_until: datetime,
        discount_limit_pct: Decimal,
        at: datetime,
        by: Actor | None,
        manager: str | None = None,
    ) -> Quote:
        """A new version of the deal's quote. Over the discount limit it awaits the owner's manager
        (``QuoteApprovalRequested``); otherwise it is a draft, ready to send."""
        if not lines:
            raise RuleViolation("lines: a quote needs at least one line")
        if valid_until <= at:
            raise RuleViolation(f"valid_until: {valid_until.isoformat()} is not in the future")
        priced = [QuoteLine.priced(line, pricing, i) for i, line in enumerate(lines)]
        needs_approval = max(ln.discount_pct for ln in priced) > discount_limit_pct
        status = QuoteStatus.AWAITING_APPROVAL if needs_approval else QuoteStatus.DRAFT
        who = by.who if by else None
        quote = cls(
            id=new_quote_id(),
            deal_id=deal_id,
            number=number,
            owner=owner,
            currency=pricing.currency,
            lines=priced,
            terms=terms,
            valid_until=valid_until,
            status=status,
            needs_approval=needs_approval,
            created_at=at,
            created_by=who,
            history=[StatusChange(None, status, at, who)],
            price_book=pricing.price_book.name if pricing.price_book else None,
            discount_limit_pct=discount_limit_pct,
        )
        if needs_approval:
            quote.raise_event(
                QuoteApprovalRequested(
                    deal_id=deal_id,
                    quote_id=quote.id,
                    quote_number=number,
                    owner=owner,
                    manager=manager,
                    currency=quote.currency,
                    total=quote.totals.total,
                    max_discount_pct=quote.max_discount_pct,
                    discount_limit_pct=discount_limit_pct,
                    requested_at=at,
                    actor=who,
                )
            )
        return quote

    # --- what it says ------------------------------------------------------------------------------

    @property
    def totals(self) -> Totals:
        return Totals.of(self.lines)

    @property
    def max_discount_pct(self) -> Decimal:
        return max(ln.discount_pct for ln in self.lines)

    @property
    def last_change(self) -> StatusChange:
        return self.history[-1]

    # --- its life ----------------------------------------------------------------------------------

    def _move(self, to: QuoteStatus, at: datetime, by: str | None, note: str | None = None) -> StatusChange:
        if to not in TRANSITIONS[self.status]:
            raise Conflict(
                f"quote {self.number} of deal {self.deal_id} is {self.status.value}; it cannot be {to.value}"
            )
        change = StatusChange(self.status, to, at, by, note)
        self.status = to
        self.history.append(change)
        return change

    def approve(self, at: datetime, by: Actor, note: str | None = None) -> StatusChange:
        """The owner's manager (or an admin) allows the discount; the quote may be sent. Nobody
        approves their own quote's discount."""
        self._refuse_self_approval(by)
        return self._move(QuoteStatus.APPROVED, at, by.who, note)

    def refuse(self, at: datetime, by: Actor, reason: str) -> StatusChange:
        """The manager does not allow the discount: this version is done, a new one may follow."""
        self._refuse_self_approval(by)
        if not reason.strip():
            raise RuleViolation("reason: say why the discount is refused")
        return self._move(QuoteStatus.REFUSED, at, by.who, reason.strip())

    def _refuse_self_approval(self, by: Actor) -> None:
        if self.status is QuoteStatus.AWAITING_APPROVAL and by.who in (self.owner, self.created_by):
            raise Forbidden(
                f"{by.who} made or owns quote {self.number}: another manager approves its discount"
            )

    def send(self, at: datetime, by: Actor | None) -> StatusChange:
        """Send it to the customer (a quote over the discount limit only once approved)."""
        if self.status is QuoteStatus.AWAITING_APPROVAL:
            raise Conflict(
                f"quote {self.number} gives a {self.max_discount_pct} % discount, over the "
                f"{self.discount_limit_pct} % limit: it cannot be sent before the owner's manager approves it"
            )
        if self.valid_until <= at:
            raise Conflict(
                f"quote {self.number} was valid until {self.valid_until.isoformat()}: make a new version"
            )
        change = self._move(QuoteStatus.SENT, at, by.who if by else None)
        self.raise_event(
            QuoteSent(
                deal_id=self.deal_id,
                quote_id=self.id,
                quote_number=self.number,
                owner=self.owner,
                currency=self.currency,
                total=self.totals.total,
                valid_until=self.valid_until,
                sent_at=at,
                actor=change.by,
            )
        )
        return change

    def accept(self, at: datetime, by: Actor | None) -> StatusChange:
        """The customer accepted it, within its validity."""
        if self.status is QuoteStatus.SENT and self.valid_until <= at:
            raise Conflict(
                f"quote {self.number} was valid until {self.valid_until.isoformat()}; it cannot be accepted"
            )
        change = self._move(QuoteStatus.ACCEPTED, at, by.who if by else None)
        self.raise_event(
            QuoteAccepted(
                deal_id=self.deal_id,
                quote_id=self.id,
                quote_number=self.number,
                owner=self.owner,
                currency=self.currency,
                total=self.totals.total,
                accepted_at=at,
                actor=change.by,
            )
        )
        return change

    def reject(self, at: datetime, by: Actor | None, reason: str | None) -> StatusChange:
        """The customer said no."""
        return self._move(QuoteStatus.REJECTED, at, by.who if by else None, (reason or "").strip() or None)

    def expire(self, at: datetime) -> StatusChange | None:
        """Its expiry timer fired: a quote still sent is expired (``QuoteExpired``); one answered since
        (the timer raced the answer) stays as it is: None."""
        if self.status is not QuoteStatus.SENT:
            return None
        return self._move(QuoteStatus.EXPIRED, at, None)

    def expiry_event(self) -> QuoteExpired:
        """What the expiry timer emits when it fires at ``valid_until``."""
        return QuoteExpired(
            deal_id=self.deal_id,
            quote_id=self.id,
            quote_number=self.number,
            owner=self.owner,
            valid_until=self.valid_until,
        )
