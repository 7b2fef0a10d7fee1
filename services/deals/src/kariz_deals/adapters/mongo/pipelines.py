"""Pipelines as MongoDB documents: the versions of each (``pipeline_versions``, one document per name and
number, the newest in force) and the definition a deal carries of a pipeline other than the built-in one."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from kariz_deals.domain import (
    DEFAULT_PIPELINE,
    DealType,
    ExitCriteria,
    ForecastCategory,
    Pipeline,
    PipelineVersion,
    Requirement,
    RoutingRule,
    Segment,
    Stage,
)
from kariz_shared.contracts.errors import DuplicateRecord
from kariz_shared.contracts.versions import raced
from kariz_shared.persistence.store import Store, Transaction, find_page
from kariz_shared.runtime.clock import Clock

PIPELINE_VERSIONS = "pipeline_versions"
#: A pipeline's versions, newest first (the one in force is the first).
NAME_NUMBER = "name_number"

Document = dict[str, Any]


def pipeline_to_document(pipeline: Pipeline) -> Document:
    return {
        "name": pipeline.name,
        "activity_rearms": pipeline.activity_rearms,
        "stages": [
            {
                "name": s.name,
                "order": s.order,
                "probability": str(s.probability),
                "forecast_category": s.forecast_category.value,
                "needs_amount": s.needs_amount,
                "required": [r.value for r in s.exit_criteria.required],
                "checklist": list(s.exit_criteria.checklist),
                "rot_days": s.rot_days,
            }
            for s in pipeline.stages
        ],
        "routing": [
            {
                "deal_types": sorted(r.deal_types),
                "segments": sorted(r.segments),
                "product_lines": sorted(r.product_lines),
                "countries": sorted(r.countries),
            }
            for r in pipeline.routing
        ],
    }


def pipeline_from_document(doc: Document) -> Pipeline:
    return Pipeline(
        doc["name"],
        tuple(
            Stage(
                s["name"],
                s["order"],
                Decimal(s["probability"]),
                ForecastCategory(s["forecast_category"]),
                s.get("needs_amount", False),
                ExitCriteria(
                    tuple(Requirement(r) for r in s.get("required", [])), tuple(s.get("checklist", []))
                ),
                s.get("rot_days"),
            )
            for s in doc["stages"]
        ),
        activity_rearms=doc.get("activity_rearms", True),
        routing=tuple(
            RoutingRule(
                frozenset(DealType(t) for t in r.get("deal_types", [])),
                frozenset(Segment(s) for s in r.get("segments", [])),
                frozenset(r.get("product_lines", [])),
                frozenset(r.get("countries", [])),
            )
            for r in doc.get("routing", [])
        ),
    )


def version_to_document(version: PipelineVersion) -> Document:
    return {
        "_id": f"{version.name}:{version.number}",
        "name": version.name,
        "number": version.number,
        "took_effect_at": version.took_effect_at,
        "actor": version.actor,
        "pipeline": pipeline_to_document(version.pipeline),
    }


def version_from_document(doc: Document) -> PipelineVersion:
    return PipelineVersion(
        number=int(doc["number"]),
        pipeline=pipeline_from_document(doc["pipeline"]),
        took_effect_at=doc["took_effect_at"],
        actor=doc["actor"],
    )


class MongoPipelineVersions:
    def __init__(self, tx: Transaction, clock: Clock) -> None:
        self.tx, self.clock = tx, clock
        self.versions = tx.db[PIPELINE_VERSIONS]
        # Read once per unit: a consumed batch routes each of its new deals against the same pipelines.
        self._in_force: list[PipelineVersion] | None = None

    async def in_force(self, name: str) -> PipelineVersion | None:
        doc = await self.versions.find_one(
            {"name": name}, sort=[("number", DESCENDING)], session=self.tx.session
        )
        if doc is not None:
            return version_from_document(doc)
        return PipelineVersion.seeded(self.clock.now()) if name == DEFAULT_PIPELINE.name else None

    async def all_in_force(self) -> list[PipelineVersion]:
        if self._in_force is None:
            newest = self.versions.aggregate(
                [
                    {"$sort": {"name": 1, "number": -1}},
                    {"$group": {"_id": "$name", "doc": {"$first": "$$ROOT"}}},
                    {"$sort": {"_id": 1}},
                ],
                session=self.tx.session,
            )
            found = [version_from_document(d["doc"]) async for d in await newest]
            if not any(v.name == DEFAULT_PIPELINE.name for v in found):
                found.insert(0, PipelineVersion.seeded(self.clock.now()))
            self._in_force = found
        return self._in_force

    async def add(self, version: PipelineVersion) -> None:
        try:
            await self.versions.insert_one(version_to_document(version), session=self.tx.session)
        except DuplicateKeyError as exc:
            raise raced(f"pipeline {version.name!r}", version.number) from exc
        self._in_force = None

    async def page(self, name: str, *, limit: int, offset: int) -> tuple[list[PipelineVersion], int]:
        docs, total = await find_page(
            self.versions,
            {"name": name},
            sort=[("number", DESCENDING)],
            limit=limit,
            offset=offset,
            session=self.tx.session,
        )
        if name == DEFAULT_PIPELINE.name and total == 0:
            return [PipelineVersion.seeded(self.clock.now())][offset : offset + limit], 1
        return [version_from_document(doc) for doc in docs], total


async def ensure_pipeline_indexes(store: Store) -> None:
    await store.db[PIPELINE_VERSIONS].create_index(
        [("name", ASCENDING), ("number", DESCENDING)], unique=True, name=NAME_NUMBER
    )


async def seed_default_pipeline(store: Store, clock: Clock) -> None:
    """Version 0 of the default pipeline (the built-in one), stored once: when the first start put it in
    force."""
    seeded = version_to_document(PipelineVersion.seeded(clock.now()))
    try:
        await store.db[PIPELINE_VERSIONS].update_one(
            {"_id": seeded.pop("_id")}, {"$setOnInsert": seeded}, upsert=True
        )
    except (DuplicateKeyError, DuplicateRecord):
        pass  # another replica seeded it at the same time
