"""The use cases of the catalogue: an admin defines (or redefines) a product or a price book. The
caller's role is checked at the edge; these check the catalogue's rules (the domain's).

Each definition is the entry's next version; an admin who names the version they edited (If-Match) is
refused (409) when another admin's edit came first, rather than silently undoing it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from kariz_deals.domain.catalogue import PriceBook, Product
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_shared.contracts.errors import RuleViolation
from kariz_shared.contracts.identity import Actor
from kariz_shared.contracts.versions import next_version
from kariz_shared.persistence.unit_of_work import UnitsOfWork


@dataclass(frozen=True)
class DefineProduct:
    sku: str
    name: str
    unit: str
    list_prices: dict[str, Decimal]
    by: Actor
    description: str | None = None
    active: bool = True
    #: The version the admin edited (If-Match); None: replace whatever is defined.
    edited: int | None = None


@dataclass(frozen=True)
class DefinePriceBook:
    name: str
    currency: str
    prices: dict[str, Decimal]
    by: Actor
    segment: str | None = None
    region: str | None = None
    description: str | None = None
    edited: int | None = None


async def define_product(units: UnitsOfWork[DealsUnitOfWork], command: DefineProduct) -> Product:
    """The product as it is sold from now on; quotes made before keep the prices they were made with."""

    async def work(uow: DealsUnitOfWork) -> Product:
        defined = await uow.products.get(command.sku)
        in_force = defined.version if defined is not None else 0
        product = Product.define(
            sku=command.sku,
            name=command.name,
            unit=command.unit,
            list_prices=command.list_prices,
            at=uow.clock.now(),
            by=command.by.who,
            description=command.description,
            active=command.active,
            version=next_version(f"product {command.sku!r}", in_force, command.edited),
        )
        await uow.products.put(product)
        return product

    return await units.run(work)


async def define_price_book(units: UnitsOfWork[DealsUnitOfWork], command: DefinePriceBook) -> PriceBook:
    """The price book as quotes price from it from now on; it prices only products of the catalogue."""

    async def work(uow: DealsUnitOfWork) -> PriceBook:
        known = await uow.products.of_skus(set(command.prices))
        unknown = sorted(set(command.prices) - set(known))
        if unknown:
            raise RuleViolation(f"prices.{unknown[0]}: no product {unknown[0]!r} in the catalogue")
        defined = await uow.price_books.get(command.name)
        in_force = defined.version if defined is not None else 0
        book = PriceBook.define(
            name=command.name,
            currency=command.currency,
            prices=command.prices,
            at=uow.clock.now(),
            by=command.by.who,
            segment=command.segment,
            region=command.region,
            description=command.description,
            version=next_version(f"price book {command.name!r}", in_force, command.edited),
        )
        await uow.price_books.put(book)
        return book

    return await units.run(work)
