"""The pipeline's totals (deals and value per pipeline, currency, owner and stage), kept as the deals
change rather than counted over every deal on each read.

Counting was an aggregate over the whole ``deals`` collection for every gauge refresh and every
``GET /pipeline``: its cost grows with every deal ever opened, and on the embedded database (one busy
thread) it held up every other command for 0.5 s at 20,000 deals. Now:

- each transaction that opens or changes a deal inserts a *delta* (``pipeline_deltas``): minus the
  deal's old line, plus its new one. An insert of a new document never conflicts with another
  transaction, so deal writes do not contend for a shared counter;
- :func:`compact` (the gauge refresh, every ``KARIZ_METRICS_REFRESH_INTERVAL_S``) folds the deltas into
  ``pipeline_totals`` and deletes them, in one transaction: two replicas compacting at once conflict
  and one retries against what the other wrote;
- a read takes the totals and the deltas not yet folded from one snapshot;
- :func:`build` counts the deals once where no totals were ever built (a database of an earlier
  version); deltas the count already covers are deleted with it, later ones are kept.

The repositories and the read side (:mod:`kariz_deals.adapters.mongo.repositories`) use this module,
and bootstrap runs :func:`build` at start-up: the use cases save deals and read summaries, and never see
a delta.
"""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase

from kariz_deals.adapters.mongo.documents import DEALS
from kariz_deals.domain import PipelineScope, StageTotal
from kariz_shared.persistence.store import Store, Transaction
from kariz_shared.runtime.clock import Clock

TOTALS = "pipeline_totals"
DELTAS = "pipeline_deltas"
BUILT = "built"  # the _id of the marker in TOTALS: the deals were counted once
LINE_FIELDS = ("pipeline", "currency", "owner", "stage")
# Deltas folded per compaction; more wait for the next round (a read still counts them).
COMPACT_BATCH = 5_000

Document = dict[str, Any]
Key = tuple[str, str, str, str]


def _key(doc: Document) -> Key:
    return (doc["pipeline"], doc["currency"], doc["owner"], doc["stage"])


def _line(doc: Document, sign: int) -> Document:
    return {
        **{f: doc[f] for f in LINE_FIELDS},
        "count": sign,
        "value": Decimal(sign) * (doc.get("amount") or Decimal(0)),
    }


def record_change(tx: Transaction, before: Document | None, after: Document) -> None:
    """Add to this transaction's delta the change of a deal from ``before`` (``None``: it is new) to
    ``after``; nothing when neither its line nor its amount changed (a note, say). One delta document a
    transaction, however many deals a consumed batch opens."""
    if before is not None and _key(before) == _key(after) and before.get("amount") == after.get("amount"):
        return
    queued = tx.queued(DELTAS)
    if queued:
        delta = queued[0]
    else:
        delta = {"_id": ObjectId(), "lines": []}
        tx.insert_later(DELTAS, delta)
    for change in ([_line(before, -1)] if before is not None else []) + [_line(after, 1)]:
        same = next((line for line in delta["lines"] if _key(line) == _key(change)), None)
        if same is None:
            delta["lines"].append(change)
        else:
            same["count"] += change["count"]
            same["value"] += change["value"]


def _matches(line: Document, where: Document) -> bool:
    return all(line[field] == value for field, value in where.items())


def _add(into: dict[Key, list[Any]], key: Key, count: int, value: Decimal) -> None:
    total = into.setdefault(key, [0, Decimal(0)])
    total[0] += count
    total[1] += value


async def stage_totals(db: AsyncDatabase[Document], scope: PipelineScope) -> dict[str, StageTotal]:
    """Deals and value per stage of the deals in ``scope``."""
    where: Document = {"pipeline": scope.pipeline, "currency": scope.currency}
    if scope.owner is not None:
        where["owner"] = scope.owner
    by_stage: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    # One snapshot: a compaction committing between the two reads would count its deltas twice or not
    # at all.
    async with db.client.start_session() as session:
        async with await session.start_transaction():
            async for total in db[TOTALS].find(where, session=session):
                # The totals are a few per owner and stage: whose are seen is decided here, not with
                # an $in (slow on the embedded database).
                if not scope.seen.include(total["owner"]):
                    continue
                by_stage[total["stage"]][0] += total["count"]
                by_stage[total["stage"]][1] += total["value"]
            async for delta in db[DELTAS].find({}, session=session):
                for line in delta["lines"]:
                    if _matches(line, where) and scope.seen.include(line["owner"]):
                        by_stage[line["stage"]][0] += line["count"]
                        by_stage[line["stage"]][1] += line["value"]
    return {stage: StageTotal(count, value) for stage, (count, value) in by_stage.items() if count}


def _total_doc(key: Key, count: int, value: Decimal) -> Document:
    return {
        "_id": json.dumps(key),
        **dict(zip(LINE_FIELDS, key, strict=True)),
        "count": count,
        "value": value,
    }


async def compact(store: Store) -> int:
    """Fold the oldest deltas into the totals. Returns how many were folded."""

    async def fold(tx: Transaction) -> int:
        deltas = (
            await tx.db[DELTAS].find({}, sort=[("_id", ASCENDING)], session=tx.session).to_list(COMPACT_BATCH)
        )
        if not deltas:
            return 0
        change: dict[Key, list[Any]] = {}
        for delta in deltas:
            for line in delta["lines"]:
                _add(change, _key(line), line["count"], line["value"])
        # All the totals (a few per owner and stage): an $in of many values is slow on the embedded
        # database.
        async for total in tx.db[TOTALS].find({"pipeline": {"$exists": True}}, session=tx.session):
            if _key(total) in change:
                _add(change, _key(total), total["count"], total["value"])
        await tx.db[TOTALS].bulk_write(
            [
                ReplaceOne({"_id": json.dumps(key)}, _total_doc(key, count, value), upsert=True)
                for key, (count, value) in change.items()
            ],
            session=tx.session,
        )
        # By range, not by an $in of hundreds of ids (seconds on the embedded database). Exactly the
        # deltas read: this snapshot does not see those committed after it began, whatever their ids.
        await tx.db[DELTAS].delete_many({"_id": {"$lte": deltas[-1]["_id"]}}, session=tx.session)
        return len(deltas)

    return await store.transaction(fold, timeout_s=60)


async def compact_all(store: Store) -> None:
    """Fold every delta there is, a batch per transaction."""
    while await compact(store) == COMPACT_BATCH:
        pass


async def build(store: Store, clock: Clock) -> bool:
    """Count the deals into the totals where that was never done. Returns whether it counted."""
    if await store.db[TOTALS].find_one({"_id": BUILT}) is not None:
        return False

    async def count(tx: Transaction) -> bool:
        if await tx.db[TOTALS].find_one({"_id": BUILT}, session=tx.session) is not None:
            return False  # another replica counted meanwhile
        group = {f: f"${f}" for f in LINE_FIELDS}
        cursor = await tx.db[DEALS].aggregate(
            [{"$group": {"_id": group, "count": {"$sum": 1}, "value": {"$sum": "$amount"}}}],
            session=tx.session,
        )
        rows: list[Document] = await cursor.to_list()
        totals = [
            _total_doc(_key(row["_id"]), int(row["count"]), Decimal(str(row["value"] or 0))) for row in rows
        ]
        # The deltas this snapshot sees are in the deals just counted; those committed after it are not.
        await tx.db[DELTAS].delete_many({}, session=tx.session)
        await tx.db[TOTALS].delete_many({}, session=tx.session)
        await tx.db[TOTALS].insert_many(
            [*totals, {"_id": BUILT, "built_at": clock.now()}], session=tx.session
        )
        return True

    return await store.transaction(count, timeout_s=300)
