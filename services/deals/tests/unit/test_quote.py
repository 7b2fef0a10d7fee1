"""Quotes, the catalogue and the contract as the domain has them: prices and totals in the currency's
minor units, the approval rule, the life of a quote, and a contract's status that never goes back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from kariz_deals.domain.catalogue import PriceBook, Pricing, Product, minor_unit, round_money
from kariz_deals.domain.contract import Contract, ContractStatus
from kariz_deals.domain.quote import LineRequest, Quote, QuoteStatus
from kariz_shared.contracts.errors import Conflict, Forbidden, RuleViolation
from kariz_shared.contracts.events import QuoteAccepted, QuoteApprovalRequested, QuoteSent
from kariz_shared.contracts.identity import Actor

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
REP, MANAGER = Actor("rep@kariz.test"), Actor("maria@kariz.test")


def product(sku: str, **prices: str) -> Product:
    return Product.define(
        sku=sku,
        name=f"Product {sku}",
        unit="seat",
        list_prices={c: Decimal(p) for c, p in prices.items()},
        at=T0,
        by="admin@kariz.test",
    )


CATALOGUE = {
    "CRM-SEAT": product("CRM-SEAT", EUR="49.99", JPY="7500"),
    "ONBOARD": product("ONBOARD", EUR="1200.00"),
    "SUPPORT": product("SUPPORT", EUR="0.35"),
}


def draw_up(lines: list[LineRequest], pricing: Pricing | None = None, limit: str = "20") -> Quote:
    return Quote.draw_up(
        deal_id="D-1",
        number=1,
        owner="rep@kariz.test",
        lines=lines,
        pricing=pricing or Pricing("EUR", None, CATALOGUE),
        terms="Net 30",
        valid_until=T0 + timedelta(days=30),
        discount_limit_pct=Decimal(limit),
        at=T0,
        by=REP,
        manager="maria@kariz.test",
    )


def test_money_is_rounded_to_the_currencys_minor_units_half_to_even() -> None:
    assert (minor_unit("EUR"), minor_unit("JPY"), minor_unit("BHD")) == (
        Decimal("0.01"),
        Decimal("1"),
        Decimal("0.001"),
    )
    assert round_money(Decimal("0.125"), "EUR") == Decimal("0.12")
    assert round_money(Decimal("0.135"), "EUR") == Decimal("0.14")
    assert round_money(Decimal("7500.5"), "JPY") == Decimal("7500")
    with pytest.raises(RuleViolation, match="not an ISO 4217"):
        minor_unit("XYZ")


def test_a_catalogue_price_must_fit_its_currency() -> None:
    with pytest.raises(RuleViolation, match=r"list_prices.JPY: 7500.5 has more decimals than JPY"):
        product("X", JPY="7500.5")
    with pytest.raises(RuleViolation, match="cannot be negative"):
        product("X", EUR="-1")
    with pytest.raises(RuleViolation, match="sku"):
        product("no spaces")


def test_lines_are_priced_from_the_book_or_the_list_or_the_rep_and_add_up() -> None:
    book = PriceBook.define(
        name="enterprise",
        currency="EUR",
        prices={"CRM-SEAT": Decimal("45.00")},
        at=T0,
        by=None,
        segment="ent",
    )
    quote = draw_up(
        [
            LineRequest("CRM-SEAT", Decimal(120), discount_pct=Decimal("12.5"), tax_pct=Decimal(19)),
            LineRequest("ONBOARD", Decimal(1), unit_price=Decimal("999.00"), tax_pct=Decimal(19)),
            LineRequest("SUPPORT", Decimal("333"), discount_pct=Decimal("3"), tax_pct=Decimal("7")),
        ],
        Pricing("EUR", book, CATALOGUE),
    )
    seats, onboarding, support = quote.lines
    # The book's price, 120 x 45.00 = 5400.00, 12.5 % off = 675.00, 19 % tax on 4725.00 = 897.75.
    assert (seats.unit_price, seats.gross, seats.discount, seats.net, seats.tax, seats.total) == (
        Decimal("45.00"),
        Decimal("5400.00"),
        Decimal("675.00"),
        Decimal("4725.00"),
        Decimal("897.75"),
        Decimal("5622.75"),
    )
    assert onboarding.price_overridden and onboarding.total == Decimal("1188.81")
    # The list price: 333 x 0.35 = 116.55, 3 % = 3.4965 -> 3.50, 7 % of 113.05 = 7.9135 -> 7.91.
    assert (support.unit_price, support.discount, support.net, support.tax) == (
        Decimal("0.35"),
        Decimal("3.50"),
        Decimal("113.05"),
        Decimal("7.91"),
    )
    totals = quote.totals
    assert totals.total == seats.total + onboarding.total + support.total == Decimal("6932.52")
    assert totals.net + totals.tax == totals.total and totals.gross - totals.discount == totals.net
    assert (quote.status, quote.needs_approval, quote.price_book) == (QuoteStatus.DRAFT, False, "enterprise")
    assert quote.pull_events() == []


def test_yen_lines_have_no_minor_units() -> None:
    quote = draw_up(
        [LineRequest("CRM-SEAT", Decimal(3), discount_pct=Decimal("3.3"), tax_pct=Decimal(10))],
        Pricing("JPY", None, CATALOGUE),
    )
    line = quote.lines[0]
    # 22500 less 3.3 % (742.5 -> 742, half to even) = 21758, 10 % tax = 2175.8 -> 2176.
    assert (line.gross, line.discount, line.net, line.tax, line.total) == (
        Decimal(22500),
        Decimal(742),
        Decimal(21758),
        Decimal(2176),
        Decimal(23934),
    )


def test_a_line_without_a_price_or_product_is_refused_naming_the_line() -> None:
    with pytest.raises(RuleViolation, match=r"lines\[1\].sku: no product 'NOPE'"):
        draw_up([LineRequest("CRM-SEAT", Decimal(1)), LineRequest("NOPE", Decimal(1))])
    with pytest.raises(RuleViolation, match="has no price in USD"):
        draw_up([LineRequest("ONBOARD", Decimal(1))], Pricing("USD", None, CATALOGUE))
    with pytest.raises(RuleViolation, match=r"lines\[0\].unit_price"):
        draw_up([LineRequest("ONBOARD", Decimal(1), unit_price=Decimal("1.001"))])
    with pytest.raises(RuleViolation, match="prices in EUR, the quote is in JPY"):
        Pricing("JPY", PriceBook.define(name="b", currency="EUR", prices={}, at=T0, by=None), CATALOGUE)


def test_a_discount_over_the_limit_waits_for_the_manager_before_it_is_sent() -> None:
    quote = draw_up([LineRequest("CRM-SEAT", Decimal(10), discount_pct=Decimal(25))])
    assert (quote.status, quote.needs_approval) == (QuoteStatus.AWAITING_APPROVAL, True)
    (requested,) = quote.pull_events()
    assert isinstance(requested, QuoteApprovalRequested)
    assert (requested.manager, requested.max_discount_pct, requested.discount_limit_pct) == (
        "maria@kariz.test",
        Decimal(25),
        Decimal(20),
    )
    # 499.90 less 25 %: the discount 124.975 rounds half to even to 124.98.
    assert requested.total == Decimal("374.92") and requested.key() == "D-1"

    with pytest.raises(Conflict, match="cannot be sent before the owner's manager approves it"):
        quote.send(T0, REP)
    with pytest.raises(Forbidden, match="another manager approves"):
        quote.approve(T0, REP)
    quote.approve(T0 + timedelta(hours=1), MANAGER, "strategic account")
    quote.send(T0 + timedelta(hours=2), REP)
    quote.accept(T0 + timedelta(days=2), REP)
    assert [type(e) for e in quote.pull_events()] == [QuoteSent, QuoteAccepted]
    assert [(c.from_status, c.to_status) for c in quote.history] == [
        (None, QuoteStatus.AWAITING_APPROVAL),
        (QuoteStatus.AWAITING_APPROVAL, QuoteStatus.APPROVED),
        (QuoteStatus.APPROVED, QuoteStatus.SENT),
        (QuoteStatus.SENT, QuoteStatus.ACCEPTED),
    ]
    assert quote.history[1].by == "maria@kariz.test" and quote.history[1].note == "strategic account"


def test_a_refused_discount_ends_the_version_and_a_late_answer_is_refused() -> None:
    refused = draw_up([LineRequest("CRM-SEAT", Decimal(10), discount_pct=Decimal(40))])
    with pytest.raises(RuleViolation, match="reason"):
        refused.refuse(T0, MANAGER, "  ")
    refused.refuse(T0, MANAGER, "too deep")
    with pytest.raises(Conflict, match="is refused; it cannot be sent"):
        refused.send(T0, REP)

    sent = draw_up([LineRequest("CRM-SEAT", Decimal(10))])
    sent.send(T0, REP)
    with pytest.raises(Conflict, match="cannot be accepted"):
        sent.accept(T0 + timedelta(days=30), REP)
    assert sent.expire(T0 + timedelta(days=30)) is not None and sent.status is QuoteStatus.EXPIRED
    assert sent.expire(T0 + timedelta(days=31)) is None  # a repeat of the timer's event


def test_a_contracts_status_never_goes_back_and_a_signed_one_is_not_replaced() -> None:
    contract = Contract.requested(
        deal_id="D-1", request_id="env-1", status=ContractStatus.SENT, provider="docusign", at=T0, by="rep"
    )
    assert contract.record(request_id="env-1", status=ContractStatus.SIGNED, at=T0, by="e-sign:docusign")
    # The provider's late "viewed", and a repeat of "signed", change nothing.
    assert not contract.record(request_id="env-1", status=ContractStatus.VIEWED, at=T0, by="e-sign:docusign")
    assert not contract.record(request_id="env-1", status=ContractStatus.SIGNED, at=T0, by="e-sign:docusign")
    with pytest.raises(Conflict, match="cannot become declined"):
        contract.record(request_id="env-1", status=ContractStatus.DECLINED, at=T0, by="rep")
    with pytest.raises(Conflict, match="is signed"):
        contract.record(request_id="env-2", status=ContractStatus.SENT, at=T0, by="rep")
    assert [e.status for e in contract.history] == [ContractStatus.SENT, ContractStatus.SIGNED]

    declined = Contract.requested(
        deal_id="D-2", request_id="env-1", status=ContractStatus.DECLINED, provider=None, at=T0, by="rep"
    )
    assert declined.record(request_id="env-2", status=ContractStatus.SENT, at=T0, by="rep")
    assert (declined.request_id, declined.status) == ("env-2", ContractStatus.SENT)
