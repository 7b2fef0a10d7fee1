"""What the database needs before the service works: the indexes of its queries, and a rule set in
force (its first version)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from kariz_qualification.adapters.metrics import PrometheusMetrics
from kariz_qualification.adapters.mongo.documents import (
    CALIBRATIONS,
    CURRENT,
    LEADS,
    QUALIFIED_LEADS,
    RULE_SET_VERSIONS,
    RULE_SETS,
    calibration_from_document,
    version_carried_over,
    version_to_document,
)
from kariz_qualification.domain.rule_versions import RuleSetVersion
from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet
from kariz_qualification.service_layer.unit_of_work import QualificationMetrics
from kariz_shared.persistence.store import Store
from kariz_shared.runtime.clock import Clock

log = logging.getLogger(__name__)

Db = AsyncDatabase[dict[str, Any]]


async def ensure_indexes(db: Db) -> None:
    """One index per query: the review queues list leads by status (and owner), newest first. The rule
    set's versions are read by number and newest first: their ``_id`` index serves both."""
    await db[LEADS].create_index([("status", ASCENDING), ("captured_at", DESCENDING)], name="status_captured")
    await db[LEADS].create_index(
        [("status", ASCENDING), ("owner", ASCENDING), ("captured_at", DESCENDING)],
        name="status_owner_captured",
    )
    # POST /engagements names a lead by its contact's address.
    await db[LEADS].create_index([("contact.email", ASCENDING)], name="contact_email")
    # The closed loop counts outcomes by result (a calibration is due every so many closed ones),
    # and a calibration reads the newest closed ones.
    await db[QUALIFIED_LEADS].create_index(
        [("result", ASCENDING), ("closed_at", DESCENDING), ("_id", DESCENDING)], name="result_closed"
    )


async def seed_rules(db: Db, rules: RuleSet, at: datetime) -> bool:
    """Store the first version unless one is stored: the rule set of a database from before versions
    were kept, carried over, or else ``rules`` as version 0. Returns True when it stored one."""
    versions = db[RULE_SET_VERSIONS]
    if await versions.find_one({}, projection={"_id": 1}) is not None:
        return False
    legacy = await db[RULE_SETS].find_one({"_id": CURRENT})
    first = RuleSetVersion.seeded(rules, at) if legacy is None else version_carried_over(legacy, at)
    document = version_to_document(first)
    # An upsert: two replicas starting at once store the same first version once.
    result = await versions.update_one({"_id": document.pop("_id")}, {"$setOnInsert": document}, upsert=True)
    return result.upserted_id is not None


async def prepare(store: Store, clock: Clock, metrics: QualificationMetrics | None = None) -> None:
    """Start-up: indexes, and the first version of the rule set when the database has none (a restart
    keeps the versions stored); the calibration in force shown in the metrics from the start."""
    await ensure_indexes(store.db)
    if await seed_rules(store.db, DEFAULT_RULES, clock.now()):
        log.info("stored the first version of the scoring rule set")
    latest = await store.db[CALIBRATIONS].find_one({}, sort=[("_id", DESCENDING)])
    if latest is not None:
        (metrics or PrometheusMetrics()).calibrated(calibration_from_document(latest))
