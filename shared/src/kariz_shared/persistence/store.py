"""MongoDB: one client per service, the unit of work (a transaction that also writes the outbox), and
"handle each event once" for consumers.

A state change and the events it causes are written in one MongoDB transaction: the events go to
the ``outbox`` collection and :class:`kariz_shared.messaging.outbox.OutboxRelay` publishes them. A consumer
records the id of each event it handled in ``processed_events`` in the same transaction as the
effect, so a redelivered event changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import pymongo
from bson.codec_options import TypeCodec, TypeRegistry
from bson.decimal128 import Decimal128
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import Event
from kariz_shared.contracts.paging import Cursor
from kariz_shared.runtime.logging import actor as current_actor
from kariz_shared.runtime.logging import correlation_id as current_correlation_id
from kariz_shared.runtime.logging import on_behalf_of as current_on_behalf_of
from kariz_shared.runtime.metrics import units_retried
from kariz_shared.runtime.settings import ServiceSettings

T = TypeVar("T")
log = logging.getLogger(__name__)

OUTBOX = "outbox"
PROCESSED_EVENTS = "processed_events"
TIMERS = "timers"
DUPLICATE_KEY = 11000


class DecimalCodec(TypeCodec):
    """Money stays exact: Python ``Decimal`` <-> BSON ``Decimal128``."""

    python_type = Decimal
    bson_type = Decimal128

    def transform_python(self, value: Decimal) -> Decimal128:
        return Decimal128(value)

    def transform_bson(self, value: Decimal128) -> Decimal:
        return value.to_decimal()


def security_options(settings: ServiceSettings) -> dict[str, Any]:
    """The client's TLS and credentials from the settings. Only what is set is passed: a keyword overrides
    the URI's own option, so the URI's user and ``ssl=`` stand unless the settings say otherwise."""
    options: dict[str, Any] = {}
    if settings.mongodb_tls:
        options["tls"] = True
    if settings.mongodb_tls_ca_file:
        options["tlsCAFile"] = settings.mongodb_tls_ca_file
    if settings.mongodb_tls_certificate_key_file:
        options["tlsCertificateKeyFile"] = settings.mongodb_tls_certificate_key_file
    if settings.mongodb_username:
        options["username"] = settings.mongodb_username
        options["password"] = settings.mongodb_password.get_secret_value()
        options["authSource"] = settings.mongodb_auth_source
    return options


def connect(settings: ServiceSettings) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(
        settings.mongodb_uri,
        type_registry=TypeRegistry([DecimalCodec()]),
        tz_aware=True,
        serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
        connectTimeoutMS=settings.mongodb_timeout_ms,
        appname=f"kariz-{settings.service_name}",
        **security_options(settings),
    )


async def find_page(
    collection: AsyncCollection[dict[str, Any]],
    query: dict[str, Any],
    *,
    sort: list[tuple[str, int]],
    limit: int,
    offset: int,
    projection: dict[str, Any] | None = None,
    session: AsyncClientSession | None = None,
    hint: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """One page of a query's documents and how many match in all, for the list endpoints' ``Page``.
    Two reads: a write between them can make the total run ahead of the items. ``hint`` names the index
    to read along (see :func:`find_after`)."""
    cursor = collection.find(query, projection=projection, session=session).sort(sort)
    if hint is not None:
        cursor = cursor.hint(hint)
    docs = await cursor.skip(offset).limit(limit).to_list()
    counted = {"hint": hint} if hint is not None else {}
    return docs, await collection.count_documents(query, session=session, **counted)


async def find_after(
    collection: AsyncCollection[dict[str, Any]],
    query: dict[str, Any],
    *,
    order: str,
    after: Cursor | None,
    limit: int,
    projection: dict[str, Any] | None = None,
    session: AsyncClientSession | None = None,
    hint: str | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """Keyset paging: up to ``limit`` documents of ``query`` after the cursor, ``order`` (a time) then
    ``_id`` descending, and whether more follow. The cost does not grow with the depth of the page, and
    a document inserted at the head meanwhile neither repeats nor hides one.

    The index it reads along ends with ``(order, -1), ("_id", -1)`` and ``hint`` names it. Two reads
    rather than one ``$or`` (``order < t`` or ``order == t and _id < id``): the documents of the
    cursor's own instant, then the older ones. An ``$or`` (or ``$and``) makes the embedded SecantusDB
    scan the collection, and its planner takes no index unless every field of the query is in the
    index's key (the hint makes it read the chosen one, residual criteria filtered). The bounds are strict,
    which is what the embedded database reads right on a compound index (see the leads' ``selector``)."""

    def read(extra: dict[str, Any], count: int) -> Any:
        cursor = collection.find(_both(query, extra), projection=projection, session=session)
        cursor = cursor.sort([(order, pymongo.DESCENDING), ("_id", pymongo.DESCENDING)])
        if hint is not None:
            cursor = cursor.hint(hint)
        return cursor.limit(count).to_list()

    wanted = limit + 1  # one more tells whether a next page exists
    if after is None:
        docs: list[dict[str, Any]] = await read({}, wanted)
    else:
        docs = await read({order: after.at, "_id": {"$lt": after.id}}, wanted)
        if len(docs) < wanted:
            docs += await read({order: {"$lt": after.at}}, wanted - len(docs))
    return docs[:limit], len(docs) > limit


_RANGE = frozenset({"$gt", "$gte", "$lt", "$lte"})
_LOWER = {"$gt": max, "$gte": max, "$lt": min, "$lte": min}
NOTHING: dict[str, Any] = {"$in": []}


def _both(query: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``query`` and ``extra`` in one document, without ``$and`` where the conditions on a field merge
    (see :func:`find_after`): an equality and bounds, or bounds and bounds (the tighter holds)."""
    both = dict(query)
    rest: list[dict[str, Any]] = []
    for key, condition in extra.items():
        merged = _merged(both[key], condition) if key in both else condition
        if merged is None:
            rest.append({key: condition})
        else:
            both[key] = merged
    return {"$and": [both, *rest]} if rest else both


def _merged(kept: Any, new: Any) -> Any | None:
    """One condition meaning both, or None when they do not merge simply."""
    a, b = _operators(kept), _operators(new)
    if a is None or b is None:
        return None
    ops = dict(a)
    for op, value in b.items():
        if op not in ops:
            ops[op] = value
        elif op in _LOWER:
            ops[op] = _LOWER[op](ops[op], value)
        elif ops[op] != value:
            return NOTHING  # two different equalities
    if "$eq" not in ops:
        return ops
    value = ops.pop("$eq")
    tests = {"$gt": value.__gt__, "$gte": value.__ge__, "$lt": value.__lt__, "$lte": value.__le__}
    return value if all(tests[op](bound) is True for op, bound in ops.items()) else NOTHING


def _operators(condition: Any) -> dict[str, Any] | None:
    if isinstance(condition, dict):
        return condition if condition and set(condition) <= _RANGE else None
    if isinstance(condition, list):
        return None
    return {"$eq": condition}


_last_order = 0


def outbox_order() -> int:
    """The outbox's publishing order: microseconds since the epoch, strictly growing within a process.

    Two changes of one aggregate are serialised by their write conflict, and the later one takes its
    order after the earlier one committed, so per-key order holds across replicas as long as their
    clocks agree to within a commit's round trip (NTP keeps them far closer). Computed when the outbox
    is written, i.e. in the attempt that commits, never in one that was retried.
    """
    global _last_order
    _last_order = max(time.time_ns() // 1000, _last_order + 1)
    return _last_order


@dataclass
class _BatchRead:
    """One read for a batch (:meth:`Transaction.find_one_for_batch`): the values asked for and not yet
    answered, and the documents found, by value."""

    unused: set[Any]
    found: dict[Any, dict[str, Any]] = field(default_factory=dict)


class Transaction:
    """What a piece of work sees inside one MongoDB transaction."""

    def __init__(
        self,
        session: AsyncClientSession | None,
        db: AsyncDatabase[dict[str, Any]],
        source: str,
        correlation_id: str | None,
        causation_id: str | None,
    ) -> None:
        self.session = session
        self.db = db
        self.source = source
        self.correlation_id = correlation_id
        self.causation_id = causation_id
        self.emitted: list[Envelope[Event]] = []
        self.after_commit_actions: list[Callable[[], None]] = []
        self._before_commit: list[Callable[[], Awaitable[None]]] = []
        # The events this transaction applies, in order (set by kariz_shared.messaging.inbox; none for an
        # HTTP write).
        self.events: list[Event] = []
        self._inserts: dict[str, list[dict[str, Any]]] = {}
        self._unless_present: set[str] = set()
        self._memo: dict[str, Any] = {}
        self._batch_reads: dict[tuple[str, str], _BatchRead] = {}
        # By collection and _id: the document that replaces the stored one, or None to delete it.
        self._replacements: dict[str, dict[Any, dict[str, Any] | None]] = {}
        #: The earliest due time of a timer this transaction armed (the timer worker wakes for it).
        self.armed_due: datetime | None = None

    def after_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` once this transaction committed (e.g. count a metric); never if it aborts."""
        self.after_commit_actions.append(action)

    def before_commit(self, write: Callable[[], Awaitable[None]]) -> None:
        """Await ``write`` in this transaction just before it commits, with the queued inserts: a
        repository that gathers a batch's changes (e.g. counters many events move) writes them once. A
        retried attempt is a new transaction, so nothing gathered by a failed one is written."""
        self._before_commit.append(write)

    def insert_later(
        self, collection: str, document: dict[str, Any], *, unless_present: bool = False
    ) -> None:
        """Insert ``document`` into ``collection`` just before commit, in one ``insert_many`` with the other
        documents queued for it: a batch of events then costs one round trip per collection rather than
        one per document (an insert is ~4 ms in a transaction on the embedded database, ~0.1 ms in a bulk
        one). A conflict (a duplicate key) still fails the transaction, only later, unless ``unless_present``:
        then a document whose ``_id`` is already stored, or queued before it, is left out. Reads in this
        transaction do not see queued documents: a repository that must find its own looks in
        :meth:`queued`."""
        self._inserts.setdefault(collection, []).append(document)
        if unless_present:
            self._unless_present.add(collection)

    def replace_later(self, collection: str, document: dict[str, Any]) -> None:
        """Store ``document`` in place of the one with its ``_id``, or as a new one, just before commit:
        the documents replaced or deleted in a batch cost one ``delete_many`` and one ``insert_many``
        between them, not a command each. The last word on an ``_id`` wins, over a queued insert too."""
        self._unqueue(collection, document["_id"])
        self._replacements.setdefault(collection, {})[document["_id"]] = document

    def delete_later(self, collection: str, document_id: Any) -> None:
        """Delete the document ``document_id`` just before commit (see :meth:`replace_later`)."""
        self._unqueue(collection, document_id)
        self._replacements.setdefault(collection, {})[document_id] = None

    def _unqueue(self, collection: str, document_id: Any) -> None:
        queued = self._inserts.get(collection)
        if queued:
            queued[:] = [d for d in queued if d.get("_id") != document_id]

    def replaced(self, collection: str, document_id: Any) -> tuple[bool, dict[str, Any] | None]:
        """Whether this transaction replaced or deleted ``document_id`` and, if so, what it will be."""
        pending = self._replacements.get(collection, {})
        return (document_id in pending), pending.get(document_id)

    def queued(self, collection: str) -> list[dict[str, Any]]:
        """The documents queued for ``collection`` by :meth:`insert_later` and not yet written."""
        return self._inserts.get(collection, [])

    async def once(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        """``load()``'s value, read once per transaction: a batch of events shares a read that each event
        would otherwise repeat (e.g. the scoring rules)."""
        if key not in self._memo:
            self._memo[key] = await load()
        value: T = self._memo[key]
        return value

    async def find_one_for_batch(
        self, collection: str, by: str, value: Any, *, of_event: Callable[[Event], Any]
    ) -> dict[str, Any] | None:
        """The stored document of ``collection`` whose top-level field ``by``, unique in it, equals
        ``value``, read for the whole batch at once: the first call reads the documents for
        ``of_event(event)`` of every event this transaction applies with one ``$in``, and each later
        call answers its value from that read, which costs the embedded database a command per event
        otherwise. A value is answered from the batch read once; asked again, it is read anew, so a
        handler that writes a document after reading it sees its own write the next time. (A document
        written in this transaction before its first read would be missed: read before you write.)"""
        if "." in by:
            raise ValueError(f"a batch read is by a top-level field, not {by!r}")
        read = self._batch_reads.get((collection, by))
        if read is None:
            wanted = [of_event(event) for event in self.events]
            values = list(dict.fromkeys([value, *(v for v in wanted if v is not None)]))
            read = self._batch_reads[(collection, by)] = _BatchRead(set(values))
            async for doc in self.db[collection].find({by: {"$in": values}}, session=self.session):
                read.found.setdefault(doc[by], doc)
        if value in read.unused:
            read.unused.discard(value)
            return read.found.get(value)
        return await self.db[collection].find_one({by: value}, session=self.session)

    async def _flush_replacements(self) -> None:
        for collection, pending in self._replacements.items():
            if not pending:
                continue
            await self.db[collection].delete_many({"_id": {"$in": list(pending)}}, session=self.session)
            documents = [d for d in pending.values() if d is not None]
            if documents:
                await self.db[collection].insert_many(documents, session=self.session, ordered=True)
        self._replacements.clear()

    async def _flush_inserts(self) -> None:
        for collection, queued in self._inserts.items():
            documents = queued
            if collection in self._unless_present:
                ids = [d["_id"] for d in queued]
                present = {
                    d["_id"]
                    async for d in self.db[collection].find(
                        {"_id": {"$in": ids}}, projection={"_id": 1}, session=self.session
                    )
                }
                documents = []
                for document in queued:
                    if document["_id"] not in present:
                        present.add(document["_id"])
                        documents.append(document)
            if documents:
                try:
                    await self.db[collection].insert_many(documents, session=self.session, ordered=True)
                except BulkWriteError as exc:
                    # Fail as the single insert it stands for would have, so callers see one error type.
                    first = (exc.details.get("writeErrors") or [{}])[0]
                    if first.get("code") == DUPLICATE_KEY:
                        raise DuplicateKeyError(first.get("errmsg", str(exc)), DUPLICATE_KEY, first) from exc
                    raise
        self._inserts.clear()

    def emit(self, event: Event, *, correlation_id: str | None = None) -> Envelope[Event]:
        """Queue an event; it is written to the outbox in this transaction and published after commit."""
        cid = correlation_id or self.correlation_id or current_correlation_id.get()
        if not cid:
            raise ValueError("an event needs a correlation id: pass one, or work within a request or event")
        envelope: Envelope[Event] = Envelope(
            event=event,
            source=self.source,
            correlation_id=cid,
            causation_id=self.causation_id,
            actor=current_actor.get() or self.source,
            on_behalf_of=current_on_behalf_of.get(),
        )
        self.emitted.append(envelope)
        return envelope

    async def _flush_outbox(self) -> None:
        if not self.emitted:
            return
        now = datetime.now(UTC)
        docs = [
            {**env.to_document(), "order": outbox_order(), "created_at": now, "published_at": None}
            for env in self.emitted
        ]
        await self.db[OUTBOX].insert_many(docs, session=self.session, ordered=True)


class Alarm:
    """Wakes the timer worker when a timer is armed earlier than the worker planned to wake."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.planned: datetime | None = None

    def listen(self) -> None:
        """Before the worker reads its next due time: from now on every arming wakes it."""
        self.wake.clear()
        self.planned = None

    def plan(self, at: datetime) -> None:
        """The worker will wake at ``at``: only an earlier arming wakes it before."""
        self.planned = at

    def note(self, due_at: datetime) -> None:
        if self.planned is None or due_at < self.planned:
            self.wake.set()


#: How long ending a transaction left open may take before the server's own reaping is left to do it.
LEFT_OPEN_KILL_S = 5.0


def _may_be_left_open(exc: BaseException) -> bool:
    """A failure after which the transaction may still be open on the server (see
    :meth:`Store._end_left_open`): the time limit ran out, or the task was cancelled."""
    if isinstance(exc, asyncio.CancelledError):
        return True
    return isinstance(exc, PyMongoError) and exc.timeout


class Store:
    """A service's database, and the only way its code writes to it."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.client = connect(settings)
        self.db: AsyncDatabase[dict[str, Any]] = self.client[settings.database_name]
        self.source = f"/kariz/{settings.service_name}"
        # Set after a commit that wrote events, so the relay publishes at once instead of at its next poll.
        self.outbox_signal = asyncio.Event()
        #: Told of timers armed by this process's transactions, so the timer worker wakes for them.
        self.timer_alarm = Alarm()
        self._retried = units_retried.labels(settings.service_name)

    async def ping(self) -> bool:
        try:
            await self.client.admin.command("ping")
            return True
        except Exception:
            return False

    async def ensure_indexes(self) -> None:
        await self.db[OUTBOX].create_index([("published_at", ASCENDING), ("order", ASCENDING)])
        await self.db[TIMERS].create_index([("due_at", ASCENDING)])

    async def transaction(
        self,
        work: Callable[[Transaction], Awaitable[T]],
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        timeout_s: float | None = None,
    ) -> T:
        """Run ``work`` in one transaction with its outbox writes; retried whole on transient conflicts,
        for at most ``timeout_s`` (default: the HTTP-friendly ``mongodb_transaction_timeout_s``)."""
        result: list[T] = []
        last: list[Transaction] = []
        attempts = 0

        async def attempt(session: AsyncClientSession) -> None:
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                self._retried.inc()
            # A retried attempt starts over: only the attempt that commits counts.
            result.clear()
            last.clear()
            tx = Transaction(session, self.db, self.source, correlation_id, causation_id)
            value = await work(tx)
            for write in tx._before_commit:
                await write()
            await tx._flush_replacements()
            await tx._flush_inserts()
            await tx._flush_outbox()
            result.append(value)
            last.append(tx)

        async with self.client.start_session() as session:
            try:
                # The limit covers every retry: during an outage the caller gets a timeout, not a
                # two-minute hang.
                with pymongo.timeout(timeout_s or self.settings.mongodb_transaction_timeout_s):
                    await session.with_transaction(attempt)
            except BaseException as exc:
                if _may_be_left_open(exc):
                    await asyncio.shield(self._end_left_open(session))
                raise
        committed = last[0]
        if committed.emitted:
            self.outbox_signal.set()
        if committed.armed_due is not None:
            self.timer_alarm.note(committed.armed_due)
        for action in committed.after_commit_actions:
            action()
        return result[0]

    async def _end_left_open(self, session: AsyncClientSession) -> None:
        """End on the server the transaction a timeout or a cancellation left open there.

        The driver aborts a failed transaction itself, but not once the time limit has run out (it has
        no time left to send the abort) nor when the task is cancelled: the transaction then stays open
        on the server, with its uncommitted writes, until the server's lifetime limit (60 s) reaps it.
        A retried capture of the same addresses meets those writes as a write conflict at every attempt
        for that minute, while the database serves every other transaction slowly behind them: the
        stall of issue H (README, Performance). Killing the session ends it now. Done before the session
        goes back to the driver's pool, so no later unit has started a transaction on it yet."""
        try:
            with pymongo.timeout(LEFT_OPEN_KILL_S):
                await self.client.admin.command("killSessions", [session.session_id])
        except PyMongoError as exc:
            log.warning(
                "a transaction left open by a timeout could not be ended; the server reaps it",
                extra={"error": f"{type(exc).__name__}: {exc}"},
            )

    async def close(self) -> None:
        await self.client.close()
