"""The reports' storage on MongoDB (``kariz_reports``), in generations.

A generation is three collections, ``g<N>_leads`` and ``g<N>_deals`` (the facts, one small document
per lead and deal) and ``g<N>_figures`` (the daily rows reports read). ``generations`` says which one
the reports read (``active``) and which one a rebuild is filling (``building``): while one is, the
consumers apply each event to both, so the new generation misses nothing that arrived after the rebuild
read the topics' ends. The service's database user may write only ``kariz_reports``: a generation is a
set of collections there, not a database of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter
from pymongo import ASCENDING, DESCENDING, UpdateOne

from kariz_reports.domain.facts import FORECAST_CATEGORIES, Contribution, DealFacts, LeadFacts
from kariz_reports.domain.figures import Bump, DailyFigure, RowKey, bumps, gather
from kariz_reports.domain.plans import CallKind, ForecastCall, Quota, QuotaChange
from kariz_reports.domain.snapshots import Snapshot, SnapshotLine
from kariz_reports.service_layer.unit_of_work import PlansUnitOfWork, ReportsUnitOfWork, Teams
from kariz_shared.persistence.store import Store, Transaction
from kariz_shared.persistence.unit_of_work import MongoUnitOfWork
from kariz_shared.runtime.clock import Clock

GENERATIONS = "generations"
STATE_ID = "state"
#: The reports' own records, beside the generations (a rebuild leaves them).
QUOTAS = "quotas"
FORECAST_CALLS = "forecast_calls"
FORECAST_SNAPSHOTS = "forecast_snapshots"
FORECAST_SNAPSHOT_DEALS = "forecast_snapshot_deals"

_LEAD = TypeAdapter(LeadFacts)
_DEAL = TypeAdapter(DealFacts)


def leads_of(generation: int) -> str:
    return f"g{generation}_leads"


def deals_of(generation: int) -> str:
    return f"g{generation}_deals"


def figures_of(generation: int) -> str:
    return f"g{generation}_figures"


def field_name(text: str) -> str:
    """``text`` as one MongoDB field name: no dot (a path), no dollar (an operator), not empty (a lone
    ``%``, which escaping never makes)."""
    if not text:
        return "%"
    return text.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def from_field_name(name: str) -> str:
    if name == "%":
        return ""
    return name.replace("%2E", ".").replace("%24", "$").replace("%25", "%")


@dataclass(frozen=True)
class Generations:
    active: int = 1
    building: int | None = None
    #: The rebuild's progress: records still to read of the topics' ends it started from.
    rebuild_lag: int = 0
    rebuild_started_at: datetime | None = None
    switched_at: datetime | None = None

    @property
    def written(self) -> list[int]:
        """The generations every event goes to."""
        return [self.active] if self.building is None else [self.active, self.building]

    @classmethod
    def from_document(cls, doc: dict[str, Any] | None) -> Generations:
        if not doc:
            return cls()
        return cls(
            active=doc["active"],
            building=doc.get("building"),
            rebuild_lag=doc.get("rebuild_lag", 0),
            rebuild_started_at=doc.get("rebuild_started_at"),
            switched_at=doc.get("switched_at"),
        )


async def read_generations(db: Any, session: Any = None) -> Generations:
    return Generations.from_document(await db[GENERATIONS].find_one({"_id": STATE_ID}, session=session))


class MongoFacts:
    def __init__(self, tx: Transaction, generation: int) -> None:
        self.tx = tx
        self.leads = tx.db[leads_of(generation)]
        self.deals = tx.db[deals_of(generation)]

    async def lead(self, lead_id: str) -> LeadFacts | None:
        doc = await self.leads.find_one({"_id": lead_id}, session=self.tx.session)
        return _LEAD.validate_python(doc["facts"]) if doc else None

    async def deal(self, deal_id: str) -> DealFacts | None:
        doc = await self.deals.find_one({"_id": deal_id}, session=self.tx.session)
        return _DEAL.validate_python(doc["facts"]) if doc else None

    async def deals_of(self, lead_id: str) -> list[DealFacts]:
        return [
            _DEAL.validate_python(doc["facts"])
            async for doc in self.deals.find({"lead_id": lead_id}, session=self.tx.session)
        ]

    async def deals_by_id(self, deal_ids: Sequence[str]) -> list[DealFacts]:
        found = self.deals.find({"_id": {"$in": list(deal_ids)}}, session=self.tx.session)
        return [_DEAL.validate_python(doc["facts"]) async for doc in found]

    async def forecast_deals(self, start: date | None, end: date | None) -> list[DealFacts]:
        close: dict[str, Any] = {"$ne": None}
        if start is not None:
            close["$gte"] = start.isoformat()
        if end is not None:
            close["$lt"] = end.isoformat()
        query = {
            "facts.standing.expected_close": close,
            "facts.standing.category": {"$in": list(FORECAST_CATEGORIES)},
            "facts.won": None,
            "facts.lost": None,
        }
        return [
            _DEAL.validate_python(doc["facts"])
            async for doc in self.deals.find(query, session=self.tx.session)
        ]

    async def keep_lead(self, facts: LeadFacts) -> None:
        doc = {"_id": facts.lead_id, "facts": _LEAD.dump_python(facts, mode="json")}
        await self.leads.replace_one({"_id": facts.lead_id}, doc, upsert=True, session=self.tx.session)

    async def keep_deal(self, facts: DealFacts) -> None:
        doc = {"_id": facts.deal_id, "lead_id": facts.lead_id, "facts": _DEAL.dump_python(facts, mode="json")}
        await self.deals.replace_one({"_id": facts.deal_id}, doc, upsert=True, session=self.tx.session)


def _update(key: RowKey, bump: Bump) -> UpdateOne:
    day, metric, scope, dim, value = key
    inc: dict[str, Any] = {"count": bump.count, "amount": bump.amount}
    for facet, n in bump.facets.items():
        if n:
            inc[f"facets.{field_name(facet)}"] = n
    update: dict[str, Any] = {
        "$setOnInsert": {
            "day": day.isoformat(),
            "metric": metric,
            "scope": scope,
            "dim": dim,
            "value": value,
        },
        "$inc": inc,
    }
    if bump.samples_set:
        update["$set"] = {
            f"samples.{field_name(f)}.{field_name(k)}": v for (f, k), v in bump.samples_set.items()
        }
    if bump.samples_unset:
        update["$unset"] = {f"samples.{field_name(f)}.{field_name(k)}": "" for f, k in bump.samples_unset}
    return UpdateOne({"_id": _row_id(day, metric, scope, dim, value)}, update, upsert=True)


def _row_id(day: date, metric: str, scope: str, dim: str, value: str) -> str:
    return f"{day.isoformat()}|{metric}|{scope}|{dim}|{value}"


class MongoFigures:
    def __init__(self, tx: Transaction, generation: int) -> None:
        self.tx = tx
        self.rows_of = tx.db[figures_of(generation)]

    async def change(self, retract: Sequence[Contribution], add: Sequence[Contribution]) -> None:
        # Gathered for the whole transaction (a consumed batch) and written once before it commits: the
        # events of a batch move many of the same rows (today's, the whole's), each upsert costs the
        # embedded database alike, and no handler reads figures.
        pending = await self.tx.once(f"figure-bumps:{self.rows_of.name}", self._gathering)
        gather(pending, bumps(retract, add))

    async def _gathering(self) -> dict[RowKey, Bump]:
        pending: dict[RowKey, Bump] = {}

        async def write() -> None:
            updates = [_update(key, bump) for key, bump in pending.items() if not bump.empty]
            if updates:
                await self.rows_of.bulk_write(updates, ordered=False, session=self.tx.session)

        self.tx.before_commit(write)
        return pending

    async def rows(
        self, metrics: Sequence[str], scope: str, dim: str, start: date | None, end: date
    ) -> list[DailyFigure]:
        days: dict[str, str] = {"$lt": end.isoformat()}
        if start is not None:
            days["$gte"] = start.isoformat()
        query = {"scope": scope, "dim": dim, "metric": {"$in": list(metrics)}, "day": days}
        return [
            DailyFigure(
                day=date.fromisoformat(doc["day"]),
                metric=doc["metric"],
                scope=doc["scope"],
                dim=doc["dim"],
                value=doc["value"],
                count=doc.get("count", 0),
                amount=Decimal(str(doc.get("amount", 0))),
                facets={from_field_name(k): n for k, n in (doc.get("facets") or {}).items()},
                samples={
                    from_field_name(f): {from_field_name(k): v for k, v in values.items()}
                    for f, values in (doc.get("samples") or {}).items()
                },
            )
            async for doc in self.rows_of.find(query, session=self.tx.session)
        ]


def _quota_change_doc(c: QuotaChange) -> dict[str, Any]:
    return {"amount": str(c.amount), "currency": c.currency, "set_by": c.set_by, "set_at": c.set_at}


def _quota_from(doc: dict[str, Any]) -> Quota:
    return Quota(
        period=doc["period"],
        whom=doc["whom"],
        amount=Decimal(doc["amount"]),
        currency=doc["currency"],
        set_by=doc["set_by"],
        set_at=doc["set_at"].astimezone(UTC),
        history=tuple(
            QuotaChange(Decimal(h["amount"]), h["currency"], h["set_by"], h["set_at"].astimezone(UTC))
            for h in doc.get("history", [])
        ),
    )


class MongoQuotas:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db[QUOTAS]

    async def get(self, period: str, whom: str) -> Quota | None:
        doc = await self.collection.find_one({"_id": f"{period}|{whom}"}, session=self.tx.session)
        return _quota_from(doc) if doc else None

    async def put(self, quota: Quota) -> None:
        doc = {
            "_id": f"{quota.period}|{quota.whom}",
            "period": quota.period,
            "whom": quota.whom,
            **_quota_change_doc(QuotaChange(quota.amount, quota.currency, quota.set_by, quota.set_at)),
            "history": [_quota_change_doc(h) for h in quota.history],
        }
        await self.collection.replace_one({"_id": doc["_id"]}, doc, upsert=True, session=self.tx.session)

    async def of_period(self, period: str) -> list[Quota]:
        found = self.collection.find({"period": period}, session=self.tx.session).sort("whom", ASCENDING)
        return [_quota_from(doc) async for doc in found]


class MongoForecastCalls:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.collection = tx.db[FORECAST_CALLS]

    async def add(self, call: ForecastCall) -> None:
        doc = {
            "_id": call.id,
            "period": call.period,
            "whom": call.whom,
            "kind": call.kind.value,
            "commit": str(call.commit),
            "best_case": str(call.best_case),
            "note": call.note,
            "by": call.by,
            "at": call.at,
        }
        await self.collection.insert_one(doc, session=self.tx.session)

    async def of_period(self, period: str) -> list[ForecastCall]:
        found = self.collection.find({"period": period}, session=self.tx.session).sort(
            [("at", DESCENDING), ("_id", DESCENDING)]
        )
        return [
            ForecastCall(
                id=doc["_id"],
                period=doc["period"],
                whom=doc["whom"],
                kind=CallKind(doc["kind"]),
                commit=Decimal(doc["commit"]),
                best_case=Decimal(doc["best_case"]),
                note=doc["note"],
                by=doc["by"],
                at=doc["at"].astimezone(UTC),
            )
            async for doc in found
        ]


def _snapshot_from(doc: dict[str, Any]) -> Snapshot:
    return Snapshot(
        id=doc["_id"],
        schedule=doc["schedule"],
        due_at=doc["due_at"].astimezone(UTC),
        taken_at=doc["taken_at"].astimezone(UTC),
        deals=doc["deals"],
    )


def _decimal(text: str | None) -> Decimal | None:
    return Decimal(text) if text is not None else None


class MongoForecastSnapshots:
    def __init__(self, tx: Transaction) -> None:
        self.tx = tx
        self.snapshots = tx.db[FORECAST_SNAPSHOTS]
        self.deals = tx.db[FORECAST_SNAPSHOT_DEALS]

    async def get(self, snapshot_id: str) -> Snapshot | None:
        doc = await self.snapshots.find_one({"_id": snapshot_id}, session=self.tx.session)
        return _snapshot_from(doc) if doc else None

    async def add(self, snapshot: Snapshot, lines: Sequence[SnapshotLine]) -> None:
        # Its id is the due event's: a second taking of one snapshot fails on the _id, never doubles it.
        await self.snapshots.insert_one(
            {
                "_id": snapshot.id,
                "schedule": snapshot.schedule,
                "due_at": snapshot.due_at,
                "taken_at": snapshot.taken_at,
                "deals": snapshot.deals,
            },
            session=self.tx.session,
        )
        if lines:
            await self.deals.insert_many(
                [
                    {
                        "_id": f"{snapshot.id}|{line.deal_id}",
                        "snapshot": snapshot.id,
                        "deal_id": line.deal_id,
                        "rep": line.rep,
                        "team": line.team,
                        "close": line.close.isoformat(),
                        "category": line.category,
                        "amount": str(line.amount) if line.amount is not None else None,
                        "weighted": str(line.weighted) if line.weighted is not None else None,
                    }
                    for line in lines
                ],
                session=self.tx.session,
            )

    async def newest(self, before: datetime | None = None) -> Snapshot | None:
        query = {"due_at": {"$lt": before}} if before is not None else {}
        doc = await self.snapshots.find_one(query, sort=[("due_at", DESCENDING)], session=self.tx.session)
        return _snapshot_from(doc) if doc else None

    async def listing(self, limit: int) -> list[Snapshot]:
        found = self.snapshots.find({}, session=self.tx.session).sort("due_at", DESCENDING).limit(limit)
        return [_snapshot_from(doc) async for doc in found]

    async def lines(self, snapshot_id: str, start: date, end: date) -> list[SnapshotLine]:
        query = {"snapshot": snapshot_id, "close": {"$gte": start.isoformat(), "$lt": end.isoformat()}}
        return [
            SnapshotLine(
                deal_id=doc["deal_id"],
                rep=doc["rep"],
                team=doc["team"],
                close=date.fromisoformat(doc["close"]),
                category=doc["category"],
                amount=_decimal(doc["amount"]),
                weighted=_decimal(doc["weighted"]),
            )
            async for doc in self.deals.find(query, session=self.tx.session)
        ]


class MongoPlansUnitOfWork(MongoUnitOfWork, PlansUnitOfWork):
    """The unit of work of a quota or a forecast call: the reports' own records, no generation."""

    def __init__(self, tx: Transaction, clock: Clock) -> None:
        super().__init__(tx, clock)
        self.quotas = MongoQuotas(tx)
        self.calls = MongoForecastCalls(tx)
        self.snapshots = MongoForecastSnapshots(tx)


class MongoReportsUnitOfWork(MongoUnitOfWork, ReportsUnitOfWork):
    """The unit of work on one generation of the projections."""

    def __init__(self, tx: Transaction, clock: Clock, generation: int, teams: Teams, zone: tzinfo) -> None:
        super().__init__(tx, clock)
        self.generation = generation
        self.facts = MongoFacts(tx, generation)
        self.figures = MongoFigures(tx, generation)
        self.quotas = MongoQuotas(tx)
        self.calls = MongoForecastCalls(tx)
        self.snapshots = MongoForecastSnapshots(tx)
        self.teams = teams
        self.zone = zone


async def ensure_generation_indexes(store: Store, generation: int) -> None:
    # Reports: one scope and dimension, some metrics, a range of days.
    await store.db[figures_of(generation)].create_index(
        [("scope", ASCENDING), ("dim", ASCENDING), ("metric", ASCENDING), ("day", ASCENDING)]
    )
    # A lead's deals, when a dimension of the lead is learnt after them.
    await store.db[deals_of(generation)].create_index([("lead_id", ASCENDING)])
    # The open deals of a forecast period (the snapshots and their changes).
    await store.db[deals_of(generation)].create_index([("facts.standing.expected_close", ASCENDING)])


async def ensure_indexes(store: Store) -> None:
    # A period's quotas and calls (a forecast reads them whole: a few per rep and team).
    await store.db[QUOTAS].create_index([("period", ASCENDING), ("whom", ASCENDING)])
    await store.db[FORECAST_CALLS].create_index([("period", ASCENDING), ("at", DESCENDING)])
    await store.db[FORECAST_SNAPSHOTS].create_index([("due_at", DESCENDING)])
    await store.db[FORECAST_SNAPSHOT_DEALS].create_index([("snapshot", ASCENDING), ("close", ASCENDING)])
    generations = await read_generations(store.db)
    for generation in generations.written:
        await ensure_generation_indexes(store, generation)
