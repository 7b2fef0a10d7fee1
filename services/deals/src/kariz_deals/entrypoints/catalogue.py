"""The catalogue over HTTP: ``/products`` and ``/price-books``. Anyone signed in reads it (a rep prices
quotes from it); an admin defines its entries (``PUT``, the whole entry, as an admin edits it). Each
entry's version is its ETag; a ``PUT`` with ``If-Match`` is refused (409) when it edited an older one."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from kariz_deals.domain.catalogue import PriceBook, Product
from kariz_deals.service_layer import catalogue
from kariz_deals.service_layer.unit_of_work import DealsUnitOfWork
from kariz_shared.contracts.errors import found
from kariz_shared.contracts.identity import PEOPLE, Role
from kariz_shared.persistence.unit_of_work import UnitsOfWork
from kariz_shared.runtime.auth import SIGN_IN_ERRORS, Authenticated, authenticate
from kariz_shared.runtime.http import IF_MATCH, Limit, Offset, Page, edited_version, version_etag

#: A price in the catalogue: not negative, at most 3 decimals (the most any currency has; the
#: currency's own minor units are checked by the domain).
Price = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=3)]
Currency = Annotated[str, Field(pattern="^[A-Z]{3}$", description="ISO 4217, e.g. EUR")]
SkuPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="The product's SKU")]
BookPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="The price book's name")]
Sku = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
IfMatch = Annotated[
    str | None,
    Header(
        pattern=IF_MATCH,
        description='The ETag of the version edited (from its GET, e.g. "3"): refused with 409 if another '
        "admin's edit came first. Without it, whatever is defined is replaced",
    ),
]
WRITE_ERRORS: dict[int | str, dict[str, str]] = {
    403: {"description": "Not an admin"},
    409: {"description": "If-Match names a version no longer in force"},
    422: {"description": "An invalid price, currency or SKU"},
}


class ProductRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    unit: str = Field(min_length=1, max_length=30, description="What a quantity counts, e.g. seat, licence")
    list_prices: dict[Currency, Price] = Field(min_length=1, max_length=50, examples=[{"EUR": "100.00"}])
    description: str | None = Field(default=None, max_length=2000)
    active: bool = Field(default=True, description="False: no new quote line may use it")


class ProductView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sku: str
    name: str
    unit: str
    list_prices: dict[str, Decimal]
    description: str | None
    active: bool
    updated_at: datetime
    updated_by: str | None
    version: int = Field(description="The entry's version, also its ETag")

    @classmethod
    def of(cls, product: Product) -> ProductView:
        return cls.model_validate(product)


class PriceBookRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    currency: Currency
    prices: dict[Sku, Price] = Field(max_length=10_000, description="Price per SKU; others at list price")
    segment: str | None = Field(default=None, max_length=100, examples=["enterprise"])
    region: str | None = Field(default=None, max_length=100, examples=["DACH"])
    description: str | None = Field(default=None, max_length=2000)


class PriceBookView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    currency: str
    prices: dict[str, Decimal]
    segment: str | None
    region: str | None
    description: str | None
    updated_at: datetime
    updated_by: str | None
    version: int = Field(description="The entry's version, also its ETag")

    @classmethod
    def of(cls, book: PriceBook) -> PriceBookView:
        return cls.model_validate(book)


def router(units: UnitsOfWork[DealsUnitOfWork]) -> APIRouter:
    api = APIRouter(tags=["catalogue"], dependencies=[Depends(authenticate)], responses=SIGN_IN_ERRORS)

    @api.get("/products", summary="The catalogue's products, by SKU")
    async def list_products(
        caller: Authenticated, limit: Limit = 50, offset: Offset = 0
    ) -> Page[ProductView]:
        caller.require(*PEOPLE)
        products, total = await units.read(lambda uow: uow.products.page(limit=limit, offset=offset))
        return Page[ProductView](
            items=[ProductView.of(p) for p in products], total=total, limit=limit, offset=offset
        )

    @api.get("/products/{sku}", summary="One product", responses={404: {"description": "No such product"}})
    async def get_product(sku: SkuPath, caller: Authenticated, response: Response) -> ProductView:
        caller.require(*PEOPLE)
        product = found(await units.read(lambda uow: uow.products.get(sku)), f"no product {sku!r}")
        response.headers["ETag"] = version_etag(product.version)
        return ProductView.of(product)

    @api.put(
        "/products/{sku}",
        summary="Define a product (admin): its name, unit and list prices",
        responses=WRITE_ERRORS,
    )
    async def put_product(
        sku: SkuPath,
        body: ProductRequest,
        caller: Authenticated,
        response: Response,
        if_match: IfMatch = None,
    ) -> ProductView:
        caller.require(Role.ADMIN)
        command = catalogue.DefineProduct(
            sku=sku,
            name=body.name,
            unit=body.unit,
            list_prices=dict(body.list_prices),
            by=caller.as_actor,
            description=body.description,
            active=body.active,
            edited=edited_version(if_match),
        )
        product = await catalogue.define_product(units, command)
        response.headers["ETag"] = version_etag(product.version)
        return ProductView.of(product)

    @api.get("/price-books", summary="The price books, by name")
    async def list_price_books(
        caller: Authenticated, limit: Limit = 50, offset: Offset = 0
    ) -> Page[PriceBookView]:
        caller.require(*PEOPLE)
        books, total = await units.read(lambda uow: uow.price_books.page(limit=limit, offset=offset))
        return Page[PriceBookView](
            items=[PriceBookView.of(b) for b in books], total=total, limit=limit, offset=offset
        )

    @api.get(
        "/price-books/{name}", summary="One price book", responses={404: {"description": "No such book"}}
    )
    async def get_price_book(name: BookPath, caller: Authenticated, response: Response) -> PriceBookView:
        caller.require(*PEOPLE)
        book = found(await units.read(lambda uow: uow.price_books.get(name)), f"no price book {name!r}")
        response.headers["ETag"] = version_etag(book.version)
        return PriceBookView.of(book)

    @api.put(
        "/price-books/{name}",
        summary="Define a price book (admin): a segment's or region's prices in one currency",
        responses=WRITE_ERRORS,
    )
    async def put_price_book(
        name: BookPath,
        body: PriceBookRequest,
        caller: Authenticated,
        response: Response,
        if_match: IfMatch = None,
    ) -> PriceBookView:
        caller.require(Role.ADMIN)
        command = catalogue.DefinePriceBook(
            name=name,
            currency=body.currency,
            prices=dict(body.prices),
            by=caller.as_actor,
            segment=body.segment,
            region=body.region,
            description=body.description,
            edited=edited_version(if_match),
        )
        book = await catalogue.define_price_book(units, command)
        response.headers["ETag"] = version_etag(book.version)
        return PriceBookView.of(book)

    return api
