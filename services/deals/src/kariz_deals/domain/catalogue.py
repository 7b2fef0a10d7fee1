"""The catalogue: products with their list prices, and price books that price them for a segment or a
region. Money is Decimal, rounded to the currency's minor units (ISO 4217, from babel's CLDR data:
2 for EUR, 0 for JPY, 3 for BHD), half to even as the deal's amounts are.

An admin keeps the catalogue; a quote's line takes its unit price from the price book the quote names
(or the product's list price in the quote's currency) unless the line overrides it. No I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from babel.numbers import get_currency_precision, list_currencies

from kariz_shared.contracts.errors import RuleViolation

#: A product's stock-keeping unit as the catalogue keys it: letters, digits, dot, dash, underscore.
SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: A price book's name, as its path names it.
PRICE_BOOK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

_KNOWN_CURRENCIES = frozenset(list_currencies())


def known_currency(code: str) -> str:
    """``code`` if it is an ISO 4217 currency, else a RuleViolation naming it."""
    if code not in _KNOWN_CURRENCIES:
        raise RuleViolation(f"currency {code!r} is not an ISO 4217 currency code")
    return code


def minor_unit(currency: str) -> Decimal:
    """The smallest amount of ``currency`` (0.01 EUR, 1 JPY, 0.001 BHD)."""
    return Decimal(1).scaleb(-get_currency_precision(known_currency(currency)))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded to the currency's minor units, half to even (banker's rounding, as a deal's
    weighted amount is), so sums of many lines do not drift upwards."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_EVEN)


def checked_price(price: Decimal, currency: str, what: str) -> Decimal:
    """A price as the catalogue keeps it: not negative, and in the currency's minor units (a list price
    of 9.999 EUR is a typing error, not something to round silently)."""
    if price < 0:
        raise RuleViolation(f"{what}: a price cannot be negative, got {price} {currency}")
    if price != round_money(price, currency):
        raise RuleViolation(
            f"{what}: {price} has more decimals than {currency} has minor units "
            f"({get_currency_precision(currency)})"
        )
    return price


@dataclass
class Product:
    """Something the company sells: its SKU, name, the unit it is sold by and its list price per currency."""

    sku: str
    name: str
    unit: str
    list_prices: dict[str, Decimal]
    updated_at: datetime
    updated_by: str | None = None
    description: str | None = None
    #: A product no longer sold stays for the quotes that name it, but no new line may use it.
    active: bool = True
    #: How many times it was defined: 1 when first defined; an edit names the one it edited (If-Match).
    version: int = 1

    @classmethod
    def define(
        cls,
        *,
        sku: str,
        name: str,
        unit: str,
        list_prices: dict[str, Decimal],
        at: datetime,
        by: str | None,
        description: str | None = None,
        active: bool = True,
        version: int = 1,
    ) -> Product:
        if not SKU.match(sku):
            raise RuleViolation(f"sku {sku!r}: letters, digits, '.', '-' or '_', at most 64")
        if not list_prices:
            raise RuleViolation("list_prices: a product needs a list price in at least one currency")
        prices = {
            known_currency(c): checked_price(p, c, f"list_prices.{c}") for c, p in sorted(list_prices.items())
        }
        return cls(sku, name, unit, prices, at, by, description, active, version)

    def list_price(self, currency: str) -> Decimal | None:
        return self.list_prices.get(currency)


@dataclass
class PriceBook:
    """Prices of a segment's or a region's customers (an enterprise book, a DACH book) in one currency:
    a SKU it does not list is sold at the product's list price."""

    name: str
    currency: str
    prices: dict[str, Decimal]
    updated_at: datetime
    segment: str | None = None
    region: str | None = None
    updated_by: str | None = None
    description: str | None = None
    version: int = 1

    @classmethod
    def define(
        cls,
        *,
        name: str,
        currency: str,
        prices: dict[str, Decimal],
        at: datetime,
        by: str | None,
        segment: str | None = None,
        region: str | None = None,
        description: str | None = None,
        version: int = 1,
    ) -> PriceBook:
        if not PRICE_BOOK_NAME.match(name):
            raise RuleViolation(f"name {name!r}: lower-case letters, digits, '-' or '_', at most 64")
        known_currency(currency)
        for sku in prices:
            if not SKU.match(sku):
                raise RuleViolation(f"prices.{sku}: not a SKU (letters, digits, '.', '-' or '_')")
        checked = {sku: checked_price(p, currency, f"prices.{sku}") for sku, p in sorted(prices.items())}
        return cls(name, currency, checked, at, segment, region, by, description, version)

    def price_of(self, sku: str) -> Decimal | None:
        return self.prices.get(sku)


@dataclass(frozen=True)
class Pricing:
    """Where a quote's unit prices come from: its currency and, optionally, a price book in it."""

    currency: str
    price_book: PriceBook | None = None
    products: dict[str, Product] = field(default_factory=dict)

    def __post_init__(self) -> None:
        book = self.price_book
        if book is not None and book.currency != self.currency:
            raise RuleViolation(
                f"price_book: {book.name!r} prices in {book.currency}, the quote is in {self.currency}"
            )

    def product(self, sku: str) -> Product:
        product = self.products.get(sku)
        if product is None:
            raise RuleViolation(f"no product {sku!r} in the catalogue")
        return product

    def unit_price(self, sku: str) -> Decimal:
        """The price book's price of ``sku``, else its list price in the quote's currency."""
        product = self.product(sku)
        booked = self.price_book.price_of(sku) if self.price_book is not None else None
        price = booked if booked is not None else product.list_price(self.currency)
        if price is None:
            raise RuleViolation(
                f"product {sku!r} has no price in {self.currency}: give the line a unit_price, or add "
                f"a {self.currency} list price or price book entry"
            )
        return price
