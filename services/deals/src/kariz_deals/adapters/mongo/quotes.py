"""The catalogue, quotes and contracts on MongoDB: their documents, repositories and indexes.

Products are keyed by SKU, price books by name, contracts by deal id (one per deal); a quote by its id,
with a unique index on (deal, number), so two reps making "the next version" at once cannot both get
number 3: the second is refused (409) and nothing of it is written.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pymongo import ASCENDING

from kariz_deals.domain.catalogue import PriceBook, Product
from kariz_deals.domain.contract import Contract, ContractEvent, ContractStatus
from kariz_deals.domain.quote import Quote, QuoteLine, QuoteStatus, StatusChange
from kariz_shared.contracts.errors import Conflict
from kariz_shared.contracts.versions import raced
from kariz_shared.persistence.store import Store, Transaction

PRODUCTS = "products"
PRICE_BOOKS = "price_books"
QUOTES = "quotes"
CONTRACTS = "contracts"
#: Backs "one quote per number and deal".
QUOTE_NUMBER = "deal_number_unique"

Document = dict[str, Any]


# --- documents ------------------------------------------------------------------------------------


def product_to_document(product: Product) -> Document:
    return {
        "_id": product.sku,
        "name": product.name,
        "unit": product.unit,
        "list_prices": product.list_prices,
        "updated_at": product.updated_at,
        "updated_by": product.updated_by,
        "description": product.description,
        "active": product.active,
        "version": product.version,
    }


def product_from_document(doc: Document) -> Product:
    return Product(
        sku=doc["_id"],
        name=doc["name"],
        unit=doc["unit"],
        list_prices={c: Decimal(p) for c, p in doc["list_prices"].items()},
        updated_at=doc["updated_at"],
        updated_by=doc.get("updated_by"),
        description=doc.get("description"),
        active=doc.get("active", True),
        version=doc.get("version", 1),
    )


def price_book_to_document(book: PriceBook) -> Document:
    return {
        "_id": book.name,
        "currency": book.currency,
        # A SKU may hold a dot, which MongoDB reads as a path in a key: kept as pairs instead.
        "prices": [{"sku": sku, "price": price} for sku, price in book.prices.items()],
        "updated_at": book.updated_at,
        "segment": book.segment,
        "region": book.region,
        "updated_by": book.updated_by,
        "description": book.description,
        "version": book.version,
    }


def price_book_from_document(doc: Document) -> PriceBook:
    return PriceBook(
        name=doc["_id"],
        currency=doc["currency"],
        prices={p["sku"]: Decimal(p["price"]) for p in doc["prices"]},
        updated_at=doc["updated_at"],
        segment=doc.get("segment"),
        region=doc.get("region"),
        updated_by=doc.get("updated_by"),
        description=doc.get("description"),
        version=doc.get("version", 1),
    )


async def put_version(tx: Transaction, collection: str, doc: Document, what: str) -> None:
    """Store a catalogue entry's version over the one before it: version 1 is inserted (its _id
    refuses a concurrent first definition), a later one replaces its predecessor only."""
    number = doc["version"]
    if number == 1:
        tx.insert_later(collection, doc)
        return
    result = await tx.db[collection].replace_one(
        {"_id": doc["_id"], "version": number - 1}, doc, session=tx.session
    )
    if result.matched_count != 1:
        raise raced(what, number)


_LINE_AMOUNTS = (
    "quantity",
    "unit_price",
    "discount_pct",
    "tax_pct",
    "gross",
    "discount",
    "net",
    "tax",
    "total",
)


def quote_to_document(quote: Quote) -> Document:
    return {
        "_id": quote.id,
        "deal_id": quote.deal_id,
        "number": quote.number,
        "owner": quote.owner,
        "currency": quote.currency,
        "lines": [
            {
                "sku": ln.sku,
                "name": ln.name,
                "unit": ln.unit,
                "price_overridden": ln.price_overridden,
                **{name: getattr(ln, name) for name in _LINE_AMOUNTS},
            }
            for ln in quote.lines
        ],
        "terms": quote.terms,
        "valid_until": quote.valid_until,
        "status": quote.status.value,
        "needs_approval": quote.needs_approval,
        "created_at": quote.created_at,
        "created_by": quote.created_by,
        "history": [
            {
                "from": c.from_status.value if c.from_status else None,
                "to": c.to_status.value,
                "at": c.at,
                "by": c.by,
                "note": c.note,
            }
            for c in quote.history
        ],
        "price_book": quote.price_book,
        "discount_limit_pct": quote.discount_limit_pct,
        "version": quote.version,
    }


def quote_from_document(doc: Document) -> Quote:
    return Quote(
        id=doc["_id"],
        deal_id=doc["deal_id"],
        number=doc["number"],
        owner=doc["owner"],
        currency=doc["currency"],
        lines=[
            QuoteLine(
                sku=ln["sku"],
                name=ln["name"],
                unit=ln["unit"],
                price_overridden=ln["price_overridden"],
                **{name: Decimal(ln[name]) for name in _LINE_AMOUNTS},
            )
            for ln in doc["lines"]
        ],
        terms=doc.get("terms"),
        valid_until=doc["valid_until"],
        status=QuoteStatus(doc["status"]),
        needs_approval=doc["needs_approval"],
        created_at=doc["created_at"],
        created_by=doc.get("created_by"),
        history=[
            StatusChange(
                QuoteStatus(c["from"]) if c.get("from") else None,
                QuoteStatus(c["to"]),
                c["at"],
                c.get("by"),
                c.get("note"),
            )
            for c in doc["history"]
        ],
        price_book=doc.get("price_book"),
        discount_limit_pct=Decimal(doc.get("discount_limit_pct", 0)),
        version=doc.get("version", 0),
    )


def contract_to_document(contract: Contract) -> Document:
    return {
        "_id": contract.deal_id,
        "request_id": contract.request_id,
        "status": contract.status.value,
        "provider": contract.provider,
        "updated_at": contract.updated_at,
        "document_url": contract.document_url,
        "history": [
            {"status": e.status.value, "at": e.at, "by": e.by, "request_id": e.request_id}
            for e in contract.history
        ],
        "version": contract.version,
    }


def contract_from_document(doc: Document) -> Contract:
    return Contract(
        deal_id=doc["_id"],
        request_id=doc["request_id"],
        status=ContractStatus(doc["status"]),
        provider=doc.get("provider"),
        updated_at=doc["updated_at"],
        history=[
            ContractEvent(ContractStatus(e["status"]), e["at"], e.get("by"), e["request_id"])
            for e in doc["history"]
        ],
        document_url=doc.get("document_url"),
        version=doc.get("version", 0),
    )


# --- repositories, inside a transaction -----------------------------------------------------------


class MongoProductRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.products = tx.db[PRODUCTS]

    async def get(self, sku: str) -> Product | None:
        doc = await self.products.find_one({"_id": sku}, session=self.tx.session)
        return product_from_document(doc) if doc else None

    async def of_skus(self, skus: set[str]) -> dict[str, Product]:
        docs = await self.products.find({"_id": {"$in": sorted(skus)}}, session=self.tx.session).to_list()
        return {doc["_id"]: product_from_document(doc) for doc in docs}

    async def page(self, *, limit: int, offset: int) -> tuple[list[Product], int]:
        docs = (
            await self.products.find({}, session=self.tx.session)
            .sort("_id", ASCENDING)
            .skip(offset)
            .limit(limit)
            .to_list()
        )
        total = await self.products.count_documents({}, session=self.tx.session)
        return [product_from_document(d) for d in docs], total

    async def put(self, product: Product) -> None:
        await put_version(self.tx, PRODUCTS, product_to_document(product), f"product {product.sku!r}")


class MongoPriceBookRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.books = tx.db[PRICE_BOOKS]

    async def get(self, name: str) -> PriceBook | None:
        doc = await self.books.find_one({"_id": name}, session=self.tx.session)
        return price_book_from_document(doc) if doc else None

    async def page(self, *, limit: int, offset: int) -> tuple[list[PriceBook], int]:
        docs = (
            await self.books.find({}, session=self.tx.session)
            .sort("_id", ASCENDING)
            .skip(offset)
            .limit(limit)
            .to_list()
        )
        total = await self.books.count_documents({}, session=self.tx.session)
        return [price_book_from_document(d) for d in docs], total

    async def put(self, book: PriceBook) -> None:
        await put_version(self.tx, PRICE_BOOKS, price_book_to_document(book), f"price book {book.name!r}")


class MongoQuoteRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.quotes = tx.db[QUOTES]

    async def get(self, quote_id: str) -> Quote | None:
        doc = await self.quotes.find_one({"_id": quote_id}, session=self.tx.session)
        return quote_from_document(doc) if doc else None

    async def numbered(self, deal_id: str, number: int) -> Quote | None:
        doc = await self.quotes.find_one({"deal_id": deal_id, "number": number}, session=self.tx.session)
        return quote_from_document(doc) if doc else None

    async def of_deal(self, deal_id: str) -> list[Quote]:
        docs = (
            await self.quotes.find({"deal_id": deal_id}, session=self.tx.session)
            .sort("number", ASCENDING)
            .to_list()
        )
        return [quote_from_document(d) for d in docs]

    def add(self, quote: Quote) -> None:
        # The unique (deal, number) index refuses a concurrent quote of the same number at commit.
        self.tx.insert_later(QUOTES, quote_to_document(quote))

    async def save(self, quote: Quote) -> None:
        doc = quote_to_document(quote)
        doc["version"] = quote.version + 1
        result = await self.quotes.replace_one(
            {"_id": quote.id, "version": quote.version}, doc, session=self.tx.session
        )
        if result.matched_count != 1:
            raise Conflict(
                f"quote {quote.number} of deal {quote.deal_id} was changed meanwhile; reload it and try again"
            )
        quote.version += 1


class MongoContractRepository:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.contracts = tx.db[CONTRACTS]

    async def get(self, deal_id: str) -> Contract | None:
        doc = await self.contracts.find_one({"_id": deal_id}, session=self.tx.session)
        return contract_from_document(doc) if doc else None

    async def put(self, contract: Contract) -> None:
        doc = contract_to_document(contract)
        doc["version"] = contract.version + 1
        if contract.version == 0:
            # A new contract: the _id (the deal) refuses a concurrent first request at commit.
            self.tx.insert_later(CONTRACTS, doc)
        else:
            result = await self.contracts.replace_one(
                {"_id": contract.deal_id, "version": contract.version}, doc, session=self.tx.session
            )
            if result.matched_count != 1:
                raise Conflict(f"deal {contract.deal_id}'s contract was changed meanwhile; try again")
        contract.version += 1


async def ensure_indexes(store: Store) -> None:
    quotes = store.db[QUOTES]
    await quotes.create_index([("deal_id", ASCENDING), ("number", ASCENDING)], unique=True, name=QUOTE_NUMBER)
