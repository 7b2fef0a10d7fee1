"""Quotes over HTTP: ``/deals/{id}/quotes`` (numbered versions), their approval, sending and the
customer's answer, and the printable document (HTML).

Whoever sees the deal (its owner, their manager, an admin) reads and changes its quotes; the discount of
a quote over the limit is approved or refused by a manager who sees the deal, or an admin. The document
is HTML rendered with Jinja2 (autoescaped: product names and terms are other people's text); print it
to PDF from the browser (README, "Pipelines, quotes and objections", says why there is no PDF here).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from babel.numbers import format_currency
from fastapi import APIRouter, Depends, Path, status
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from kariz_deals.domain.quote import LineRequest, Quote
from kariz_deals.service_layer import quotes
from kariz_deals.service_layer.quotes import ChangeQuote, DrawUpQuote, Managers, QuotePolicy
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_shared.contracts.identity import PEOPLE, Role
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate

Percent = Annotated[Decimal, Field(ge=0, le=100, max_digits=7, decimal_places=4)]
Number = Annotated[int, Path(ge=1, le=1_000_000, description="The quote's version number on the deal")]

DOCUMENTS = Environment(
    loader=PackageLoader("kariz_deals.entrypoints", "templates"),
    autoescape=select_autoescape(["html"]),
)


class LineBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sku: str = Field(min_length=1, max_length=64)
    quantity: Decimal = Field(gt=0, max_digits=12, decimal_places=3)
    unit_price: Decimal | None = Field(
        default=None,
        ge=0,
        max_digits=18,
        decimal_places=3,
        description="Overrides the price book's (or list) price of the product",
    )
    discount_pct: Percent = Decimal(0)
    tax_pct: Percent = Decimal(0)


class QuoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    lines: list[LineBody] = Field(min_length=1, max_length=200)
    currency: str | None = Field(
        default=None, pattern="^[A-Z]{3}$", description="Default: the price book's, else the deal's currency"
    )
    price_book: str | None = Field(default=None, max_length=64, description="Unit prices from this book")
    terms: str | None = Field(default=None, max_length=10_000)
    valid_until: AwareDatetime | None = Field(default=None, description="Default: the configured validity")


class NoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: str | None = Field(default=None, max_length=2000)


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=2000)


class OptionalReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str | None = Field(default=None, max_length=2000)


class LineView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sku: str
    name: str
    unit: str
    quantity: Decimal
    unit_price: Decimal
    price_overridden: bool
    discount_pct: Decimal
    tax_pct: Decimal
    gross: Decimal
    discount: Decimal
    net: Decimal
    tax: Decimal
    total: Decimal


class TotalsView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    gross: Decimal
    discount: Decimal
    net: Decimal
    tax: Decimal
    total: Decimal


class StatusChangeView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_status: str | None
    to_status: str
    at: datetime
    by: str | None
    note: str | None


class QuoteView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    deal_id: str
    number: int
    owner: str
    status: str
    currency: str
    price_book: str | None
    lines: list[LineView]
    totals: TotalsView
    terms: str | None
    valid_until: datetime
    needs_approval: bool
    discount_limit_pct: Decimal
    created_at: datetime
    created_by: str | None
    history: list[StatusChangeView]

    @classmethod
    def of(cls, quote: Quote) -> QuoteView:
        return cls.model_validate(quote)


ERRORS: dict[int | str, dict[str, str]] = {
    403: {"description": "The caller's role may not make this change"},
    404: {"description": "No such deal or quote"},
    409: {"description": "The quote is not in a status that allows this"},
    422: {"description": "An invalid body, product or price"},
}


def router(units: UnitsOfWork[DealsUnitOfWork], policy: QuotePolicy, managers: Managers) -> APIRouter:
    api = APIRouter(tags=["quotes"], dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    def change(deal_id: str, number: int, caller: Authenticated, note: str | None = None) -> ChangeQuote:
        return ChangeQuote(deal_id=deal_id, number=number, seen=caller.seen, by=caller.as_actor, note=note)

    @api.get(
        "/deals/{deal_id}/quotes",
        summary="The deal's quotes, by version number",
        responses={404: ERRORS[404]},
    )
    async def list_quotes(deal_id: str, caller: Authenticated) -> list[QuoteView]:
        caller.require(*PEOPLE)
        return [QuoteView.of(q) for q in await quotes.quotes_of(units, deal_id, caller.seen)]

    @api.post(
        "/deals/{deal_id}/quotes",
        summary="Draw up the deal's next quote version from the catalogue",
        status_code=status.HTTP_201_CREATED,
        responses=ERRORS,
    )
    async def draw_up(deal_id: str, body: QuoteRequest, caller: Authenticated) -> QuoteView:
        caller.require(*PEOPLE)
        command = DrawUpQuote(
            deal_id=deal_id,
            lines=[
                LineRequest(
                    sku=ln.sku,
                    quantity=ln.quantity,
                    discount_pct=ln.discount_pct,
                    tax_pct=ln.tax_pct,
                    unit_price=ln.unit_price,
                )
                for ln in body.lines
            ],
            seen=caller.seen,
            by=caller.as_actor,
            currency=body.currency,
            price_book=body.price_book,
            terms=body.terms or None,
            valid_until=body.valid_until,
        )
        return QuoteView.of(await quotes.draw_up_quote(units, command, policy, managers))

    @api.get("/deals/{deal_id}/quotes/{number}", summary="One quote version", responses={404: ERRORS[404]})
    async def get_quote(deal_id: str, number: Number, caller: Authenticated) -> QuoteView:
        caller.require(*PEOPLE)
        quote, _ = await quotes.quote_of(units, deal_id, number, caller.seen)
        return QuoteView.of(quote)

    @api.get(
        "/deals/{deal_id}/quotes/{number}/document",
        summary="The printable quote (HTML): its line items and totals",
        response_class=HTMLResponse,
        responses={404: ERRORS[404]},
    )
    async def quote_document(deal_id: str, number: Number, caller: Authenticated) -> HTMLResponse:
        caller.require(*PEOPLE)
        quote, deal = await quotes.quote_of(units, deal_id, number, caller.seen)

        def money(amount: Decimal) -> str:
            return format_currency(amount, quote.currency, locale="en")

        html = DOCUMENTS.get_template("quote.html").render(
            quote=quote, deal=deal, totals=quote.totals, money=money
        )
        return HTMLResponse(html)

    @api.post(
        "/deals/{deal_id}/quotes/{number}/approve",
        summary="Approve the quote's discount (the owner's manager, or an admin)",
        responses=ERRORS,
    )
    async def approve(
        deal_id: str, number: Number, caller: Authenticated, body: NoteBody | None = None
    ) -> QuoteView:
        caller.require(Role.MANAGER, Role.ADMIN)
        note = body.note if body else None
        return QuoteView.of(await quotes.approve_quote(units, change(deal_id, number, caller, note)))

    @api.post(
        "/deals/{deal_id}/quotes/{number}/refuse",
        summary="Refuse the quote's discount (the owner's manager, or an admin)",
        responses=ERRORS,
    )
    async def refuse(deal_id: str, number: Number, body: ReasonBody, caller: Authenticated) -> QuoteView:
        caller.require(Role.MANAGER, Role.ADMIN)
        return QuoteView.of(await quotes.refuse_quote(units, change(deal_id, number, caller, body.reason)))

    @api.post(
        "/deals/{deal_id}/quotes/{number}/send", summary="Send the quote to the customer", responses=ERRORS
    )
    async def send(deal_id: str, number: Number, caller: Authenticated) -> QuoteView:
        caller.require(*PEOPLE)
        return QuoteView.of(await quotes.send_quote(units, change(deal_id, number, caller)))

    @api.post(
        "/deals/{deal_id}/quotes/{number}/accept",
        summary="The customer accepted the quote: it sets the deal's amount",
        responses=ERRORS,
    )
    async def accept(deal_id: str, number: Number, caller: Authenticated) -> QuoteView:
        caller.require(*PEOPLE)
        return QuoteView.of(await quotes.accept_quote(units, change(deal_id, number, caller)))

    @api.post(
        "/deals/{deal_id}/quotes/{number}/reject", summary="The customer rejected the quote", responses=ERRORS
    )
    async def reject(
        deal_id: str, number: Number, caller: Authenticated, body: OptionalReasonBody | None = None
    ) -> QuoteView:
        caller.require(*PEOPLE)
        reason = body.reason if body else None
        return QuoteView.of(await quotes.reject_quote(units, change(deal_id, number, caller, reason)))

    return api
