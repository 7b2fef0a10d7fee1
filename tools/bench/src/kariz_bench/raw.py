"""The raw ceiling: Kariz's Kafka hops and MongoDB writes from capture to deal opened, done with bare
aiokafka and PyMongo and no business logic, on the same backends, so ``make bench`` can report Kariz / raw.

One process, one asyncio task per service stage (plus one outbox relay per service that publishes),
each service with a database of its own. Kariz batches too (a consumed batch in one transaction, an
import in one, the documents a consumed batch reads with one ``$in`` each, a batch of deliveries
claimed and recorded with one write each), but still writes some documents one by one (a lead's
verdict, ``update_one``). The raw path takes the best batching the backends allow: ``getmany``
batches, one transaction per consumed batch with ``insert_many``/``bulk_write`` only, a produced batch
sent whole before its acknowledgements are awaited, offsets committed after the database commit.

What Kariz does per lead (read from the services' code), and what the raw path mirrors. R = read
(find/find_one), W = document written (insert or update), T = MongoDB transaction, P/C = Kafka record
produced/consumed. "Per batch" means once per ``getmany`` batch (consumers) or per ``batch`` leads.

==================================  =========================================  ============================
step (service, where in the code)   Kariz, per lead                            raw, per batch of n leads
==================================  =========================================  ============================
capture (leads ``capture_lead``)    R leads by e-mail; W turn counter           R leads by e-mail ($in);
                                    (find_one_and_update $inc, no T);           W turn counter ($inc n);
                                    T{R leads by e-mail, W lead, W outbox}      T{R by e-mail, W n leads,
                                                                                W n outbox}
leads relay (``OutboxRelay``)       R unpublished outbox (per relay batch),     same: R, P n, W n
                                    P LeadCaptured, W outbox published_at
                                    (update_many per relay batch)
qualification (LeadCaptured)        C; T{W processed_events, R lead ($in), R    C n; T{W n markers, R leads
                                    rule set, W lead with scoring, W outbox}    ($in), R rule set, W n
                                                                                leads, W q outbox}
qualification relay                 R; P LeadQualified; W published_at          same
deals (LeadQualified)               C; T{W processed_events, R deal of lead     C q; T{W q markers, R deals
                                    ($in), R account by domain ($in), W         ($in), R accounts ($in),
                                    account, W deal, W outbox, W 1 pipeline     W q accounts, W q deals,
                                    delta per batch}                            W q outbox, W 1 delta}
deals relay                         R; P DealOpened; W published_at             same
leads (LeadQualified, beside)       C; T{W processed_events, R lead ($in), W    C q; T{W q markers, R leads
                                    lead verdict (update_one)}                  ($in), W q verdicts
                                                                                (bulk_write)}
notifications (LeadQualified,       C; T{W processed_events, W 1 delivery       C q; T{W q markers, W q
beside)                             (upsert; e-mail to the owner, no webhook    deliveries (bulk_write
                                    subscribers by default)}                    upserts)}
notifications delivery worker       W claim (update_many per batch of 10, read  R pending; W claim
(beside)                            back), SMTP send, W result (bulk_write)     (update_many); W sent
                                                                                (update_many); no send
reports (LeadCaptured, LeadQualified, C; T{W processed_events, R facts, W facts, C; T{W markers, R facts
DealOpened; beside)                 W ~16 daily rows per contribution (upserts:  ($in), W facts, W the
                                    each scope x dimension value)}              batch's rows, summed}
final reader (the bench's own)      C DealOpened                                C q
==================================  =========================================  ============================

Per qualified lead Kariz thus does 3 P, 4 C (plus the bench's reader), 5 T and 19 document writes
(leads 6: turn, lead, outbox, published_at, marker, verdict; qualification 4; deals 5; notifications
4: marker, delivery, claim, result), plus one pipeline delta per deals batch, in 4 databases with the
same 14 collections; a lead that does not qualify at capture (it waits in "nurture") stops after
qualification's transaction, which then writes no outbox document. Every lead qualifies in the raw
path unless ``qualify_share`` says otherwise.
Collections carry Kariz's indexes (``kariz_indexes``), since each one costs on every insert. Documents
and records have Kariz's fields and sizes; their values are synthetic. Not mirrored: the relay lease
and backlog gauges (a few reads and one write a second per service, not per lead), HTTP, and the
capture's duplicate handling (every raw lead is new).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from kariz_shared.messaging.broker import ensure_topics
from kariz_shared.system import SERVICE_NAMES as SERVICES
from kariz_shared.system import SERVICES as ENTRIES

# The services with an outbox of their own: those that publish.
PUBLISHERS = tuple(entry.name for entry in ENTRIES if entry.publishes)

log = logging.getLogger(__name__)

Document = dict[str, Any]
Records = list[ConsumerRecord[bytes, bytes]]

LEAD_CAPTURED, LEAD_QUALIFIED, DEAL_OPENED = "lead-captured", "lead-qualified", "deal-opened"
OUTBOX, PROCESSED_EVENTS = "outbox", "processed_events"
# The scoring lines a default rule set gives a well-fitting lead (industry, size, country, seniority, source).
BREAKDOWN: list[Document] = [
    {"rule": "industry", "matched": "logistics", "points": 20},
    {"rule": "company_size", "matched": "200-999", "points": 15},
    {"rule": "country", "matched": "SE", "points": 10},
    {"rule": "seniority", "matched": "director", "points": 15},
    {"rule": "source", "matched": "trade_show", "points": 10},
]
SCORE, THRESHOLD = sum(line["points"] for line in BREAKDOWN), 60

# Kariz's indexes beyond _id, per database and collection (the services' ``ensure_indexes``).
KARIZ_INDEXES: dict[str, dict[str, list[tuple[list[tuple[str, int]], dict[str, Any]]]]] = {
    "leads": {
        "leads": [
            ([("contact.email", ASCENDING)], {"unique": True}),
            ([("created_at", DESCENDING), ("_id", DESCENDING)], {}),
            *(
                ([(key, ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], {})
                for key in ("source", "status", "owner", "company.industry", "company.country")
            ),
        ],
    },
    "qualification": {
        "leads": [
            ([("status", ASCENDING), ("captured_at", DESCENDING)], {}),
            ([("status", ASCENDING), ("owner", ASCENDING), ("captured_at", DESCENDING)], {}),
        ],
    },
    "deals": {
        "deals": [
            ([("lead_id", ASCENDING)], {"unique": True}),
            ([("opened_at", DESCENDING), ("_id", DESCENDING)], {}),
            *(
                ([(key, ASCENDING), ("opened_at", DESCENDING)], {})
                for key in ("owner", "stage", "account.id")
            ),
        ],
        "accounts": [
            ([("key", ASCENDING)], {"unique": True}),
            ([("name_key", ASCENDING), ("created_at", ASCENDING)], {}),
        ],
    },
    "notifications": {
        "deliveries": [
            ([("status", ASCENDING), ("next_attempt_at", ASCENDING)], {}),
            ([("status", ASCENDING), ("lease_until", ASCENDING)], {}),
            ([("created_at", DESCENDING), ("order", DESCENDING)], {}),
            *(
                ([(key, ASCENDING), ("created_at", DESCENDING), ("order", DESCENDING)], {})
                for key in ("status", "channel", "event_type", "recipient", "subject")
            ),
        ],
        "handovers": [
            ([("created_at", DESCENDING), ("_id", DESCENDING)], {}),
            ([("status", ASCENDING), ("created_at", DESCENDING)], {}),
        ],
    },
}
KARIZ_INDEXES["reports"] = {
    "g1_figures": [
        ([("scope", ASCENDING), ("dim", ASCENDING), ("metric", ASCENDING), ("day", ASCENDING)], {})
    ],
    "g1_deals": [([("lead_id", ASCENDING)], {})],
}
# Collections Kariz has whether or not its indexes are mirrored: the same 14 in all (18 with reports).
COLLECTIONS = {
    "leads": ("leads", "assignment_turns", OUTBOX, PROCESSED_EVENTS),
    "qualification": ("leads", "rule_sets", OUTBOX, PROCESSED_EVENTS),
    "deals": ("deals", "accounts", "pipeline_deltas", OUTBOX, PROCESSED_EVENTS),
    "notifications": ("deliveries", PROCESSED_EVENTS),
    "reports": ("g1_leads", "g1_deals", "g1_figures", PROCESSED_EVENTS),
}
#: The reports' consumers: one group per topic, as Kariz has.
REPORTED = {
    "reports-captured": LEAD_CAPTURED,
    "reports-qualified": LEAD_QUALIFIED,
    "reports-opened": DEAL_OPENED,
}


def _report_rows(kind: str, e: Document, lead: Document | None) -> list[str]:
    """The daily rows one event moves, as the reports service folds it: each contribution in everyone's
    and the rep's scope, under the whole and each dimension value it has."""
    company = lead or e.get("company") or {}
    dims = [("all", "all"), ("rep", e["owner"])]
    if kind == DEAL_OPENED:
        dims += [(k, (lead or {}).get(k)) for k in ("source", "industry", "country")]
        dims.append(("pipeline", e["pipeline"]))
        metrics = ["deal_opened", "stage_reached"]
    else:
        dims += [
            ("source", e["source"]),
            ("industry", company.get("industry")),
            ("country", company.get("country")),
        ]
        if kind == LEAD_CAPTURED:
            dims.append(("campaign", e.get("campaign")))
        metrics = ["captured" if kind == LEAD_CAPTURED else "qualified"]
    day = str(e.get("captured_at") or e.get("qualified_at") or e.get("opened_at"))[:10]
    return [
        f"{day}|{metric}|{scope}|{dim}|{value}"
        for metric in metrics
        for scope in ("*", f"rep:{e['owner']}")
        for dim, value in dims
        if value
    ]


@dataclass
class RawResult:
    """One raw run: how many leads in how long, and what it did to get there (every count measured)."""

    leads: int
    elapsed_s: float
    leads_per_second: float
    deals_opened: int
    produced: dict[str, int] = field(default_factory=dict)  # records per topic
    consumed: dict[str, int] = field(default_factory=dict)  # records per consumer group
    written: dict[str, int] = field(default_factory=dict)  # documents inserted or updated per database
    reads: dict[str, int] = field(default_factory=dict)  # queries per database
    transactions: dict[str, int] = field(default_factory=dict)  # committed transactions per database
    databases: dict[str, str] = field(default_factory=dict)  # service -> database name
    topics: dict[str, str] = field(default_factory=dict)  # event -> topic name


@dataclass
class _Tally:
    produced: Counter[str] = field(default_factory=Counter)
    consumed: Counter[str] = field(default_factory=Counter)
    written: Counter[str] = field(default_factory=Counter)
    reads: Counter[str] = field(default_factory=Counter)
    transactions: Counter[str] = field(default_factory=Counter)


def _now() -> datetime:
    """At MongoDB's precision, as Kariz stores times."""
    t = datetime.now(UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def qualifies(index: int, share: float) -> bool:
    """Whether lead ``index`` qualifies at capture: spread evenly, ``share`` of every run of leads."""
    return int((index + 1) * share) > int(index * share)


def _outbox_document(
    topic: str, key: str, payload: Document, *, source: str, correlation_id: str, causation_id: str | None
) -> Document:
    """What Kariz's ``Envelope.to_document`` stores: CloudEvents headers and the JSON value."""
    event_id = str(uuid.uuid4())
    headers = {
        "ce_id": event_id,
        "ce_source": source,
        "ce_type": f"kariz.{topic.split('.')[-2]}.v1",
        "ce_specversion": "1.0",
        "ce_time": _iso(datetime.now(UTC)),
        "ce_subject": key,
        "ce_correlationid": correlation_id,
        "content-type": "application/json",
    }
    if causation_id:
        headers["ce_causationid"] = causation_id
    return {
        "_id": event_id,
        "topic": topic,
        "key": key,
        "headers": headers,
        "value": json.dumps(payload, separators=(",", ":")).encode(),
        "created_at": datetime.now(UTC),
        "published_at": None,
    }


def _lead_captured(index: int, at: datetime) -> Document:
    """A captured lead's event: fields as Kariz's ``LeadCaptured``, values synthetic but typical in length."""
    return {
        "lead_id": str(uuid.uuid4()),
        "contact": {
            "first_name": "Maria",
            "last_name": "Lindqvist",
            "email": f"maria.lindqvist.{index}@northwind-{index}.example",
            "phone": "+46 8 123 456 78",
            "title": "Director of Operations",
        },
        "company": {
            "name": f"Northwind Logistics {index} AB",
            "domain": f"northwind-{index}.example",
            "industry": "logistics",
            "size": 240,
            "country": "SE",
        },
        "source": "trade_show",
        "campaign": "nordic-logistics-2025",
        "consent": True,
        "owner": "anna.berg@kariz.example",
        "assigned_by": "territory",
        "captured_at": _iso(at),
    }


class _Outbox:
    """Writes a service's outbox documents in a transaction, and relays them as Kariz's ``OutboxRelay``
    does: read a batch of unpublished ones in order, send it whole, await the acks, mark it published."""

    def __init__(
        self, db: AsyncDatabase[Document], producer: AIOKafkaProducer, tally: _Tally, batch: int
    ) -> None:
        self.db = db
        self.producer = producer
        self.tally = tally
        self.batch = batch
        self.signal = asyncio.Event()
        self._order = 0

    async def write(self, docs: list[Document], session: AsyncClientSession) -> None:
        if not docs:
            return
        for doc in docs:
            self._order += 1
            doc["order"] = self._order
        await self.db[OUTBOX].insert_many(docs, session=session, ordered=True)
        self.tally.written[self.db.name] += len(docs)

    async def relay(self) -> None:
        while True:
            # Cleared before reading, so a commit during a batch wakes the next round at once.
            self.signal.clear()
            while await self._publish_pending():
                pass
            try:
                await asyncio.wait_for(self.signal.wait(), timeout=0.5)
            except TimeoutError:
                pass

    async def _publish_pending(self) -> int:
        outbox = self.db[OUTBOX]
        docs = await outbox.find({"published_at": None}).sort("order", 1).limit(self.batch).to_list()
        self.tally.reads[self.db.name] += 1
        if not docs:
            return 0
        sent = [
            await self.producer.send(
                doc["topic"],
                doc["value"],
                key=doc["key"].encode(),
                headers=[(k, v.encode()) for k, v in doc["headers"].items()],
            )
            for doc in docs
        ]
        await asyncio.gather(*sent)
        for doc in docs:
            self.tally.produced[doc["topic"]] += 1
        result = await outbox.update_many(
            {"_id": {"$in": [doc["_id"] for doc in docs]}}, {"$set": {"published_at": datetime.now(UTC)}}
        )
        self.tally.written[self.db.name] += result.modified_count
        return len(docs)


INTERNAL_ERROR = 1


async def _in_transaction(
    client: AsyncMongoClient[Document], work: Callable[[AsyncClientSession], Awaitable[None]]
) -> None:
    # The embedded database now and then answers a large transaction with "internal server error"
    # (nothing was written); Kariz's consumers retry such a batch too, so the raw path does the same.
    for attempt in range(1, 6):
        try:
            async with client.start_session() as session:
                await session.with_transaction(work)
            return
        except OperationFailure as exc:
            if exc.code != INTERNAL_ERROR or attempt == 5:
                raise
            log.warning("raw transaction failed inside the database; again", extra={"attempt": attempt})


def _markers(records: Records, group: str) -> list[Document]:
    """``processed_events`` documents as ``Store.handle_batch`` writes them, one per consumed record."""
    at = datetime.now(UTC)
    docs = []
    for record in records:
        headers = {k: v.decode() for k, v in record.headers}
        docs.append(
            {
                "_id": f"{group}:{headers['ce_id']}",
                "consumer": group,
                "event_id": headers["ce_id"],
                "type": headers["ce_type"],
                "subject": headers["ce_subject"],
                "handled_at": at,
            }
        )
    return docs


Events = list[tuple[Document, dict[str, str]]]


def _events(records: Records) -> Events:
    return [(json.loads(r.value), {k: v.decode() for k, v in r.headers}) for r in records]


class _Run:
    """The stages of one raw run on one broker and one database server."""

    def __init__(
        self,
        bootstrap: str,
        mongodb_uri: str | Mapping[str, str],
        leads: int,
        *,
        batch: int,
        partitions: int,
        qualify_share: float,
        kariz_indexes: bool,
        enable_idempotence: bool,
    ) -> None:
        self.bootstrap = bootstrap
        self.leads = leads
        self.batch = batch
        self.partitions = partitions
        self.qualify_share = qualify_share
        self.kariz_indexes = kariz_indexes
        self.enable_idempotence = enable_idempotence
        self.qualified = sum(qualifies(i, qualify_share) for i in range(leads))
        run = uuid.uuid4().hex[:10]
        self.names = {s: f"raw_{run}_{s}" for s in SERVICES}
        self.topics = {e: f"kariz-raw-{run}.{e}.v1" for e in (LEAD_CAPTURED, LEAD_QUALIFIED, DEAL_OPENED)}
        self.groups = {
            "qualification": f"kariz-raw-{run}-qualification.{LEAD_CAPTURED}",
            "deals": f"kariz-raw-{run}-deals.{LEAD_QUALIFIED}",
            "leads": f"kariz-raw-{run}-leads.{LEAD_QUALIFIED}",
            "notifications": f"kariz-raw-{run}-notifications.{LEAD_QUALIFIED}",
            "reader": f"kariz-raw-{run}-reader.{DEAL_OPENED}",
            **{stage: f"kariz-raw-{run}-reports.{event}" for stage, event in REPORTED.items()},
        }
        self.tally = _Tally()
        # One client per service, as each Kariz service process has its own (on its own server when
        # ``mongodb_uri`` maps services to URIs).
        uris = {s: mongodb_uri if isinstance(mongodb_uri, str) else mongodb_uri[s] for s in SERVICES}
        self.clients: dict[str, AsyncMongoClient[Document]] = {
            s: AsyncMongoClient(uris[s], tz_aware=True, appname=f"kariz-raw-{s}") for s in SERVICES
        }
        self.dbs = {s: self.clients[s][self.names[s]] for s in SERVICES}
        self.producers: dict[str, AIOKafkaProducer] = {}
        self.consumers: dict[str, AIOKafkaConsumer] = {}
        self.outboxes: dict[str, _Outbox] = {}
        # Set when a stage beside the path has handled every qualified lead.
        self.side_done = {s: asyncio.Event() for s in ("leads", "notifications", "deliveries", *REPORTED)}
        self.finished = asyncio.Event()
        self.started = 0.0
        self.ended = 0.0

    # --- set-up -------------------------------------------------------------------------------------

    async def prepare(self) -> None:
        await ensure_topics(self.bootstrap, list(self.topics.values()), partitions=self.partitions)
        for service, collections in COLLECTIONS.items():
            db = self.dbs[service]
            # Created up front: a collection cannot be created inside a multi-document transaction.
            for name in collections:
                await db.create_collection(name)
            for collection, indexes in (KARIZ_INDEXES[service] if self.kariz_indexes else {}).items():
                for keys, options in indexes:
                    await db[collection].create_index(keys, **options)
            if service in PUBLISHERS:
                await db[OUTBOX].create_index([("published_at", ASCENDING), ("order", ASCENDING)])
        # Qualification seeds its rule set at start-up; each transaction reads it.
        await self.dbs["qualification"]["rule_sets"].insert_one(
            {"_id": "current", "rules": {"lines": BREAKDOWN, "qualify": THRESHOLD}, "version": 1}
        )
        for service in PUBLISHERS:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id=f"kariz-raw-{service}",
                acks="all",
                enable_idempotence=self.enable_idempotence,
                linger_ms=5,
            )
            await producer.start()
            self.producers[service] = producer
            self.outboxes[service] = _Outbox(self.dbs[service], producer, self.tally, self.batch)
        subscriptions = {
            "qualification": LEAD_CAPTURED,
            "deals": LEAD_QUALIFIED,
            "leads": LEAD_QUALIFIED,
            "notifications": LEAD_QUALIFIED,
            "reader": DEAL_OPENED,
            **REPORTED,
        }
        for stage, event in subscriptions.items():
            consumer = AIOKafkaConsumer(
                self.topics[event],
                bootstrap_servers=self.bootstrap,
                group_id=self.groups[stage],
                client_id=f"kariz-raw-{stage}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=self.batch,
            )
            await consumer.start()
            self.consumers[stage] = consumer

    async def joined(self, timeout_s: float) -> None:
        """Every consumer holds its partitions, so the clock does not run through group joins (Kariz's
        services are up before its bench starts too)."""
        deadline = time.monotonic() + timeout_s
        pending = dict(self.consumers)
        while pending:
            for stage, consumer in list(pending.items()):
                if len(consumer.assignment()) == self.partitions:
                    del pending[stage]
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumers never got their partitions: {', '.join(pending)}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for consumer in self.consumers.values():
            await consumer.stop()
        for producer in self.producers.values():
            await producer.stop()
        for client in self.clients.values():
            await client.close()

    async def _handle_once(
        self,
        service: str,
        records: Records,
        work: Callable[[AsyncClientSession, Events], Awaitable[None]],
        *,
        reads: int,
        written: int,
        group: str | None = None,
    ) -> None:
        """A consumed batch as a Kariz consumer handles it: one transaction that writes a processed_events
        marker per record, then ``work``; counted as ``reads`` reads and ``written`` documents written."""
        db = self.dbs[service]
        markers = _markers(records, group or self.groups[service])
        events = _events(records)

        async def in_transaction(session: AsyncClientSession) -> None:
            await db[PROCESSED_EVENTS].insert_many(markers, session=session)
            await work(session, events)

        await _in_transaction(self.clients[service], in_transaction)
        if reads:
            self.tally.reads[db.name] += reads
        self.tally.written[db.name] += written
        self.tally.transactions[db.name] += 1

    # --- stages -------------------------------------------------------------------------------------

    async def capture(self) -> None:
        """Leads' capture, ``batch`` leads at a time."""
        for first in range(0, self.leads, self.batch):
            await self._capture(range(first, min(first + self.batch, self.leads)))

    async def _capture(self, indexes: range) -> None:
        db, client, outbox = self.dbs["leads"], self.clients["leads"], self.outboxes["leads"]
        at = _now()
        events = [_lead_captured(i, at) for i in indexes]
        emails = [e["contact"]["email"] for e in events]
        # The duplicate check and the assignment turn, outside the transaction as in Kariz.
        await db["leads"].find({"contact.email": {"$in": emails}}, projection={"_id": 1}).to_list()
        await db["assignment_turns"].find_one_and_update(
            {"_id": "territory:SE"},
            {"$inc": {"taken": len(events)}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        self.tally.reads[db.name] += 1
        self.tally.written[db.name] += 1

        async def work(session: AsyncClientSession) -> None:
            await db["leads"].find({"contact.email": {"$in": emails}}, session=session).to_list()
            docs = [
                {
                    "_id": e["lead_id"],
                    "contact": e["contact"],
                    "company": e["company"],
                    "source": e["source"],
                    "campaign": e["campaign"],
                    "consent": e["consent"],
                    "owner": e["owner"],
                    "assigned_by": e["assigned_by"],
                    "status": "new",
                    "score": None,
                    "disqualification_reason": None,
                    "touches": [{"source": e["source"], "campaign": e["campaign"], "at": at}],
                    "correlation_id": e["lead_id"],
                    "created_at": at,
                    "updated_at": at,
                }
                for e in events
            ]
            await db["leads"].insert_many(docs, session=session)
            await outbox.write(
                [
                    _outbox_document(
                        self.topics[LEAD_CAPTURED],
                        e["lead_id"],
                        e,
                        source="/kariz/leads",
                        correlation_id=e["lead_id"],
                        causation_id=None,
                    )
                    for e in events
                ],
                session,
            )

        await _in_transaction(client, work)
        self.tally.reads[db.name] += 1
        self.tally.written[db.name] += len(events)
        self.tally.transactions[db.name] += 1
        outbox.signal.set()

    async def _consume(self, stage: str, handle: Callable[[Records], Awaitable[None]]) -> None:
        consumer = self.consumers[stage]
        while True:
            polled = await consumer.getmany(timeout_ms=200, max_records=self.batch)
            records = [record for part in polled.values() for record in part]
            if not records:
                continue
            await handle(records)
            self.tally.consumed[self.groups[stage]] += len(records)
            # After the database commit: a crash in between redelivers, and the markers drop the repeat.
            await consumer.commit()

    async def qualification(self) -> None:
        db, outbox = self.dbs["qualification"], self.outboxes["qualification"]
        source = "/kariz/qualification"
        seen = 0

        async def handle(records: Records) -> None:
            nonlocal seen
            first = seen
            seen += len(records)

            async def work(session: AsyncClientSession, events: Events) -> None:
                ids = [e["lead_id"] for e, _ in events]
                await (
                    db["leads"].find({"_id": {"$in": ids}}, projection={"_id": 1}, session=session).to_list()
                )
                await db["rule_sets"].find_one({"_id": "current"}, session=session)
                at = _now()
                docs, emitted = [], []
                for n, (e, headers) in enumerate(events):
                    qualified = qualifies(first + n, self.qualify_share)
                    decision = {"outcome": "qualified", "at": at, "reason": None, "threshold": THRESHOLD}
                    docs.append(
                        {
                            "_id": e["lead_id"],
                            "owner": e["owner"],
                            "contact": e["contact"],
                            "company": e["company"],
                            "source": e["source"],
                            "campaign": e["campaign"],
                            "correlation_id": headers["ce_correlationid"],
                            "captured_at": e["captured_at"],
                            "answers": None,
                            "scorings": [
                                {"at": at, "score": SCORE, "breakdown": BREAKDOWN, "trigger": "captured"}
                            ],
                            "decision": {**decision, "manual": False} if qualified else None,
                            "status": "qualified" if qualified else "nurture",
                            "score": SCORE,
                            "version": 1,
                        }
                    )
                    if qualified:
                        payload = {
                            "lead_id": e["lead_id"],
                            "owner": e["owner"],
                            "contact": e["contact"],
                            "company": e["company"],
                            "source": e["source"],
                            "score": SCORE,
                            "threshold": THRESHOLD,
                            "breakdown": BREAKDOWN,
                            "answers": None,
                            "qualified_at": _iso(at),
                        }
                        emitted.append(
                            _outbox_document(
                                self.topics[LEAD_QUALIFIED],
                                e["lead_id"],
                                payload,
                                source=source,
                                correlation_id=headers["ce_correlationid"],
                                causation_id=headers["ce_id"],
                            )
                        )
                await db["leads"].insert_many(docs, session=session)
                await outbox.write(emitted, session)

            await self._handle_once("qualification", records, work, reads=2, written=2 * len(records))
            outbox.signal.set()

        await self._consume("qualification", handle)

    async def deals(self) -> None:
        db, outbox, source = self.dbs["deals"], self.outboxes["deals"], "/kariz/deals"

        async def handle(records: Records) -> None:
            async def work(session: AsyncClientSession, events: Events) -> None:
                ids = [e["lead_id"] for e, _ in events]
                await (
                    db["deals"]
                    .find({"lead_id": {"$in": ids}}, projection={"_id": 1}, session=session)
                    .to_list()
                )
                keys = [f"domain:{e['company']['domain']}" for e, _ in events]
                await db["accounts"].find({"key": {"$in": keys}}, session=session).to_list()
                at = _now()
                accounts, deals, emitted = [], [], []
                for e, headers in events:
                    company = e["company"]
                    account_id, deal_id = f"A-{uuid.uuid4().hex}", f"D-{uuid.uuid4().hex}"
                    accounts.append(
                        {
                            "_id": account_id,
                            "key": f"domain:{company['domain']}",
                            "name": company["name"],
                            "domain": company["domain"],
                            "name_key": company["name"].lower(),
                            "industry": company["industry"],
                            "size": company["size"],
                            "country": company["country"],
                            "created_at": at,
                        }
                    )
                    account = {"id": account_id, "name": company["name"], "domain": company["domain"]}
                    deals.append(
                        {
                            "_id": deal_id,
                            "lead_id": e["lead_id"],
                            "account": account,
                            "owner": e["owner"],
                            "pipeline": "default",
                            "stage": "discovery",
                            "amount": None,
                            "currency": "EUR",
                            "correlation_id": headers["ce_correlationid"],
                            "opened_at": at,
                            "closed_at": None,
                            "lost_reason": None,
                            "history": [
                                {"stage": "discovery", "entered_at": at, "left_at": None, "note": None}
                            ],
                            "contact": e["contact"],
                            "source": e["source"],
                            "version": 1,
                        }
                    )
                    payload = {
                        "deal_id": deal_id,
                        "lead_id": e["lead_id"],
                        "account_id": account_id,
                        "account_name": company["name"],
                        "owner": e["owner"],
                        "pipeline": "default",
                        "stage": "discovery",
                        "amount": None,
                        "currency": "EUR",
                        "opened_at": _iso(at),
                    }
                    emitted.append(
                        _outbox_document(
                            self.topics[DEAL_OPENED],
                            deal_id,
                            payload,
                            source=source,
                            correlation_id=headers["ce_correlationid"],
                            causation_id=headers["ce_id"],
                        )
                    )
                await db["accounts"].insert_many(accounts, session=session)
                await db["deals"].insert_many(deals, session=session)
                # As Kariz's pipeline totals: one delta document a transaction, summing its new deals.
                await db["pipeline_deltas"].insert_one(
                    {"lines": [{"pipeline": "default", "stage": "discovery", "count": len(deals)}]},
                    session=session,
                )
                await outbox.write(emitted, session)

            await self._handle_once("deals", records, work, reads=2, written=3 * len(records) + 1)
            outbox.signal.set()

        await self._consume("deals", handle)

    async def verdicts(self) -> None:
        """Leads records qualification's verdict (beside the path)."""
        db = self.dbs["leads"]
        handled = 0

        async def handle(records: Records) -> None:
            nonlocal handled

            async def work(session: AsyncClientSession, events: Events) -> None:
                ids = [e["lead_id"] for e, _ in events]
                await db["leads"].find({"_id": {"$in": ids}}, session=session).to_list()
                at = _now()
                updates = [
                    UpdateOne(
                        {"_id": e["lead_id"]},
                        {
                            "$set": {
                                "status": "qualified",
                                "score": e["score"],
                                "disqualification_reason": None,
                                "updated_at": at,
                            }
                        },
                    )
                    for e, _ in events
                ]
                await db["leads"].bulk_write(updates, ordered=True, session=session)

            await self._handle_once("leads", records, work, reads=1, written=2 * len(records))
            handled += len(records)
            if handled >= self.qualified:
                self.side_done["leads"].set()

        await self._consume("leads", handle)

    async def notifications(self) -> None:
        """Notifications records the owner's e-mail for each qualified lead (beside the path)."""
        db = self.dbs["notifications"]
        handled = 0
        recorded = asyncio.Event()

        async def handle(records: Records) -> None:
            nonlocal handled

            async def work(session: AsyncClientSession, events: Events) -> None:
                at = datetime.now(UTC)
                upserts = []
                for e, headers in events:
                    name = f"{e['contact']['first_name']} {e['contact']['last_name']}"
                    body = "\n".join(
                        [
                            f"{name} at {e['company']['name']} reached the qualification threshold and is "
                            "yours to work.",
                            "",
                            f"Lead:      {e['lead_id']}",
                            f"Contact:   {name}, {e['contact']['title']}",
                            f"E-mail:    {e['contact']['email']}",
                            f"Phone:     {e['contact']['phone']}",
                            f"Company:   {e['company']['name']} ({e['company']['industry']})",
                            f"Source:    {e['source']}",
                            f"Score:     {e['score']} (threshold {e['threshold']})",
                            "",
                            "Why:",
                            *(
                                f"  {line['rule']}: {line['matched']} ({line['points']:+d})"
                                for line in BREAKDOWN
                            ),
                        ]
                    )
                    key = f"{headers['ce_id']}:email:{e['owner']}"
                    doc = {
                        "channel": "email",
                        "recipient": e["owner"],
                        "event_type": "LeadQualified",
                        "event_id": headers["ce_id"],
                        "subject": e["lead_id"],
                        "correlation_id": headers["ce_correlationid"],
                        "message": {
                            "to": e["owner"],
                            "subject": f"Lead qualified: {name} at {e['company']['name']}, score {SCORE}",
                            "body": body,
                        },
                        "status": "pending",
                        "next_attempt_at": at,
                        "created_at": at,
                        "order": ObjectId(),
                        "sent_at": None,
                        "attempts": [],
                    }
                    upserts.append(UpdateOne({"_id": key}, {"$setOnInsert": doc}, upsert=True))
                await db["deliveries"].bulk_write(upserts, ordered=True, session=session)

            await self._handle_once("notifications", records, work, reads=0, written=2 * len(records))
            handled += len(records)
            recorded.set()
            if handled >= self.qualified:
                self.side_done["notifications"].set()

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._send_deliveries(recorded))
            tasks.create_task(self._consume("notifications", handle))

    async def reports(self) -> None:
        """The reports' projections (beside the path): per event, its lead's or deal's facts and the
        daily rows it moves, one group per topic."""
        db = self.dbs["reports"]
        wanted = {LEAD_CAPTURED: self.leads, LEAD_QUALIFIED: self.qualified, DEAL_OPENED: self.qualified}

        def stage(name: str, kind: str) -> Callable[[Records], Awaitable[None]]:
            handled = 0

            async def handle(records: Records) -> None:
                nonlocal handled
                rows: Counter[str] = Counter()

                async def work(session: AsyncClientSession, events: Events) -> None:
                    rows.clear()
                    ids = [e["lead_id"] for e, _ in events]
                    facts = "g1_deals" if kind == DEAL_OPENED else "g1_leads"
                    await db[facts].find({"_id": {"$in": ids}}, session=session).to_list()
                    leads = {}
                    if kind == DEAL_OPENED:
                        async for doc in db["g1_leads"].find({"_id": {"$in": ids}}, session=session):
                            leads[doc["_id"]] = doc
                    writes = []
                    for e, _ in events:
                        key = e["deal_id"] if kind == DEAL_OPENED else e["lead_id"]
                        company = e.get("company") or {}
                        doc = {"_id": key, "lead_id": e["lead_id"], "source": e.get("source")}
                        doc.update({k: company.get(k) for k in ("industry", "country")})
                        writes.append(UpdateOne({"_id": key}, {"$set": doc}, upsert=True))
                        rows.update(_report_rows(kind, e, leads.get(e["lead_id"])))
                    await db[facts].bulk_write(writes, ordered=False, session=session)
                    bumps = [
                        UpdateOne({"_id": row}, {"$inc": {"count": n, "amount": 0}}, upsert=True)
                        for row, n in rows.items()
                    ]
                    await db["g1_figures"].bulk_write(bumps, ordered=False, session=session)

                await self._handle_once(
                    "reports", records, work, reads=2, written=2 * len(records), group=self.groups[name]
                )
                self.tally.written[db.name] += len(rows)
                handled += len(records)
                if handled >= wanted[kind]:
                    self.side_done[name].set()

            return handle

        async with asyncio.TaskGroup() as tasks:
            for name, kind in REPORTED.items():
                tasks.create_task(self._consume(name, stage(name, kind)))

    async def _send_deliveries(self, recorded: asyncio.Event) -> None:
        """The delivery worker's database side: claim due deliveries, then record them sent (nothing is
        sent: the raw path has no SMTP server, and Kariz's bench measures its own sending)."""
        deliveries = self.dbs["notifications"]["deliveries"]
        name = self.dbs["notifications"].name
        sent = 0
        while True:
            recorded.clear()
            now = datetime.now(UTC)
            due = (
                await deliveries.find(
                    {"status": "pending", "next_attempt_at": {"$lte": now}}, projection={"_id": 1}
                )
                .sort("next_attempt_at", 1)
                .limit(self.batch)
                .to_list()
            )
            self.tally.reads[name] += 1
            if not due:
                try:
                    await asyncio.wait_for(recorded.wait(), timeout=0.5)
                except TimeoutError:
                    pass
                continue
            ids = [d["_id"] for d in due]
            token = uuid.uuid4().hex
            claimed = await deliveries.update_many(
                {"_id": {"$in": ids}, "status": "pending"},
                {"$set": {"status": "sending", "lease_until": now + timedelta(minutes=1), "token": token}},
            )
            done = await deliveries.update_many(
                {"_id": {"$in": ids}, "token": token},
                {
                    "$set": {"status": "sent", "sent_at": datetime.now(UTC)},
                    "$unset": {"lease_until": "", "token": ""},
                    "$push": {"attempts": {"at": now, "outcome": "sent", "duration_ms": 0}},
                },
            )
            self.tally.written[name] += claimed.modified_count + done.modified_count
            sent += done.modified_count
            if sent >= self.qualified:
                self.side_done["deliveries"].set()

    async def reader(self) -> None:
        """The bench's own reader: the clock stops when the last lead's deal-opened record arrives."""
        opened: set[str] = set()

        async def handle(records: Records) -> None:
            opened.update(json.loads(r.value)["lead_id"] for r in records)
            if len(opened) >= self.qualified and not self.finished.is_set():
                self.ended = time.perf_counter()
                self.finished.set()

        if self.qualified == 0:
            self.finished.set()
        await self._consume("reader", handle)

    # --- the run ------------------------------------------------------------------------------------

    async def run(self, timeout_s: float) -> RawResult:
        stages = {
            "qualification": self.qualification(),
            "deals": self.deals(),
            "verdicts": self.verdicts(),
            "notifications": self.notifications(),
            "reports": self.reports(),
            "reader": self.reader(),
            **{f"{s}-relay": self.outboxes[s].relay() for s in self.outboxes},
        }
        tasks = {asyncio.create_task(coro, name=f"raw-{name}") for name, coro in stages.items()}
        ends = [self.finished, *(self.side_done.values() if self.qualified else ())]
        waiting = asyncio.create_task(_all_set(ends), name="raw-end")
        try:
            self.started = time.perf_counter()
            tasks.add(asyncio.create_task(self.capture(), name="raw-capture"))
            deadline = time.monotonic() + timeout_s
            running = set(tasks)
            while not waiting.done():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"the raw run did not finish in {timeout_s:.0f} s: {self._progress()}")
                done, _ = await asyncio.wait(
                    [waiting, *running], timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done - {waiting}:
                    running.discard(task)
                    task.result()  # a stage's error ends the run; only the capture ends without one
        finally:
            for task in (*tasks, waiting):
                task.cancel()
            await asyncio.gather(*tasks, waiting, return_exceptions=True)
        elapsed = self.ended - self.started
        t = self.tally
        return RawResult(
            leads=self.leads,
            elapsed_s=elapsed,
            leads_per_second=self.leads / elapsed if elapsed > 0 else 0.0,
            deals_opened=self.qualified,
            produced=dict(t.produced),
            consumed=dict(t.consumed),
            written=dict(t.written),
            reads=dict(t.reads),
            transactions=dict(t.transactions),
            databases=dict(self.names),
            topics=dict(self.topics),
        )

    def _progress(self) -> str:
        return f"produced {dict(self.tally.produced)}, consumed {dict(self.tally.consumed)}"


async def _all_set(events: Iterable[asyncio.Event]) -> None:
    for event in events:
        await event.wait()


async def run_raw(
    bootstrap: str,
    mongodb_uri: str | Mapping[str, str],
    leads: int,
    *,
    batch: int = 500,
    partitions: int = 3,
    qualify_share: float = 1.0,
    kariz_indexes: bool = True,
    enable_idempotence: bool = False,
    timeout_s: float = 1800.0,
) -> RawResult:
    """Run ``leads`` leads from capture to deal opened the raw way; the clock runs from the first
    capture write to the last deal-opened record read. ``mongodb_uri`` is one server for every
    service's database, or service -> its server. ``partitions`` as Kariz's topics (3 by default);
    ``enable_idempotence`` must stay off on the embedded broker, which does not support it. The run's
    databases and topics are left in place (named in the result) so their contents can be checked."""
    if leads < 1 or batch < 1:
        raise ValueError("leads and batch must be at least 1")
    if not 0.0 <= qualify_share <= 1.0:
        raise ValueError("qualify_share is a share: from 0 to 1")
    run = _Run(
        bootstrap,
        mongodb_uri,
        leads,
        batch=batch,
        partitions=partitions,
        qualify_share=qualify_share,
        kariz_indexes=kariz_indexes,
        enable_idempotence=enable_idempotence,
    )
    try:
        await run.prepare()
        await run.joined(timeout_s=60.0)
        return await run.run(timeout_s)
    finally:
        await run.close()
