"""Which queries the services made had no index behind them (``kariz-bench --plans``).

Every service database's profiler records each command (``profile: 2``); afterwards each distinct
filter shape (its fields and operators, not its values) is explained, and those the database answers
with a collection scan are listed with how often they ran and how big the collection was. On
SecantusDB a collection scan is a loop in Python over every document: a cost that grows with the data.

SecantusDB's ``explain`` says COLLSCAN for any filter with a field no index covers, but its executor
still goes straight to the documents of an ``_id`` equality or ``$in`` (measured: 0.55 to 0.7 ms for an
update by ``_id`` plus a guard field among 5,000 documents, the same as by ``_id`` alone). So each scan
is also run once, timed: ``ms`` says whether it really reads the whole collection.

The profiler costs the database CPU itself, so a run with ``--plans`` is for finding scans, not for
its figures.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymongo import AsyncMongoClient

#: Collections of the server itself, and the profiler's own.
SKIPPED = ("system.",)


def shape(value: Any) -> Any:
    """A filter with its values replaced by their type: ``{"_id": {"$in": [1, 2]}, "s": "x"}`` ->
    ``{"_id": {"$in": ["int"]}, "s": "str"}``. Operators and field names stay."""
    if isinstance(value, Mapping):
        return {key: shape(item) for key, item in sorted(value.items())}
    if isinstance(value, list | tuple):
        shapes = {json.dumps(shape(item), sort_keys=True, default=str) for item in value}
        return [json.loads(s) for s in sorted(shapes)]
    return type(value).__name__


def filters_of(entry: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(collection, filter) of each statement of one profiler entry that selects documents."""
    command: Mapping[str, Any] = entry.get("command") or {}
    if "find" in command:
        return [(command["find"], dict(command.get("filter") or {}))]
    if "update" in command:
        return [(command["update"], dict(u.get("q") or {})) for u in command.get("updates") or []]
    if "delete" in command:
        return [(command["delete"], dict(d.get("q") or {})) for d in command.get("deletes") or []]
    if "findAndModify" in command:
        return [(command["findAndModify"], dict(command.get("query") or {}))]
    if "count" in command:
        return [(command["count"], dict(command.get("query") or {}))]
    if "aggregate" in command and isinstance(command["aggregate"], str):
        pipeline = command.get("pipeline") or []
        first = pipeline[0] if pipeline else {}
        return [(command["aggregate"], dict(first.get("$match") or {}))]
    return []


@dataclass
class Scan:
    """A filter shape the database answered with a collection scan."""

    service: str
    collection: str
    shape: str
    times: int
    documents: int
    example: str
    #: One run of the filter now (find, ids only), on the collection as the run left it.
    ms: float


async def enable(uris: Mapping[str, str], databases: Mapping[str, str]) -> None:
    """Turn each service database's profiler on (every command)."""
    for service, name in databases.items():
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uris[service])
        try:
            await client[name].command({"profile": 2})
        finally:
            await client.close()


async def collection_scans(uris: Mapping[str, str], databases: Mapping[str, str]) -> list[Scan]:
    """Explain every filter shape the profiler saw; the scans, most frequent first. An empty filter (a
    whole collection on purpose: a count, a drain) is not listed."""
    scans: list[Scan] = []
    for service, name in databases.items():
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uris[service])
        try:
            db = client[name]
            await db.command({"profile": 0})
            seen: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
            async for entry in db["system.profile"].find({}):
                for collection, selector in filters_of(entry):
                    if not selector or collection.startswith(SKIPPED):
                        continue
                    key = (collection, json.dumps(shape(selector), sort_keys=True))
                    times, example = seen.get(key, (0, selector))
                    seen[key] = (times + 1, example)
            for (collection, shaped), (times, example) in seen.items():
                plan = await db.command({"explain": {"find": collection, "filter": example}})
                if "COLLSCAN" in json.dumps(plan.get("queryPlanner", {}).get("winningPlan", {}), default=str):
                    documents = await db[collection].estimated_document_count()
                    started = time.perf_counter()
                    await db[collection].find(example, {"_id": 1}).to_list(None)
                    ms = round((time.perf_counter() - started) * 1000, 2)
                    example_text = json.dumps(example, default=str)
                    scans.append(Scan(service, collection, shaped, times, documents, example_text, ms))
        finally:
            await client.close()
    return sorted(scans, key=lambda s: (-s.times * s.ms, s.service, s.collection))
