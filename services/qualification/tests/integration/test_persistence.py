"""Against the real database: start-up seeding and indexes, and the MongoDB repositories — their
documents, their queries and the batching of a consumed batch (one read of its leads, one read of the
rule set, one insert of its new leads)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection

from kariz_qualification.adapters.mongo.indexes import prepare
from kariz_qualification.adapters.mongo.unit_of_work import MongoQualificationUnitOfWork
from kariz_qualification.domain.lead import Lead
from kariz_qualification.domain.queries import LeadsByStatus
from kariz_qualification.domain.rule_versions import SEEDED_BY, UNRECORDED, RuleSetVersion
from kariz_qualification.domain.rules import DEFAULT_RULES, RuleSet
from kariz_qualification.service_layer import handlers, views
from kariz_qualification.service_layer.commands import RecordAnswers, ReplaceRules
from kariz_qualification.settings import QualificationSettings
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.errors import Conflict
from kariz_shared.contracts.events import (
    BantAnswers,
    Company,
    Contact,
    Event,
    LeadCaptured,
    LeadQualified,
    LeadsMerged,
    LeadSource,
)
from kariz_shared.messaging.inbox import handle_once
from kariz_shared.persistence.store import Store, Transaction
from kariz_shared.persistence.unit_of_work import MongoUnitsOfWork
from kariz_shared.runtime.clock import FakeClock
from kariz_shared.runtime.logging import correlation_id

REP = "alex@kariz.example"

pytestmark = pytest.mark.integration

Units = MongoUnitsOfWork[MongoQualificationUnitOfWork]
CAPTURED_AT = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
ADMIN = "admin@kariz.test"


def captured(
    lead_id: str, *, size: int = 500, owner: str = "rep@kariz.test", captured_at: datetime = CAPTURED_AT
) -> LeadCaptured:
    """software 20 + DE 10 + VP 15 + referral 15, and 20 for 200-999 employees (80: qualified) or 5 for
    10-49 (65: nurture)."""
    return LeadCaptured(
        lead_id=lead_id,
        contact=Contact(first_name="Ada", last_name="Lovelace", email="ada@example.com", title="VP Sales"),
        company=Company(name=f"Acme {lead_id}", industry="software", size=size, country="DE"),
        source=LeadSource.REFERRAL,
        owner=owner,
        assigned_by="round_robin",
        captured_at=captured_at,
    )


@pytest.fixture
async def store(settings_for: Callable[..., Any]) -> AsyncIterator[Store]:
    store = Store(settings_for(QualificationSettings, service_name="qualification"))
    try:
        yield store
    finally:
        await store.client.drop_database(store.db.name)
        await store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 5, 9, 0, tzinfo=UTC))


@pytest.fixture
async def units(store: Store, clock: FakeClock) -> Units:
    await store.ensure_indexes()
    await prepare(store, clock)
    return MongoUnitsOfWork(store, clock, MongoQualificationUnitOfWork)


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[tuple[str, str]]]:
    """Counts the database commands by (method, collection)."""
    counts: Counter[tuple[str, str]] = Counter()
    for method in ("find", "find_one", "insert_one", "insert_many", "update_one"):
        real = getattr(AsyncCollection, method)

        def counting(
            self: AsyncCollection[Any], *args: Any, _real: Any = real, _m: str = method, **kw: Any
        ) -> Any:
            counts[(_m, self.name)] += 1
            return _real(self, *args, **kw)

        monkeypatch.setattr(AsyncCollection, method, counting)
    yield counts


async def consume(store: Store, units: Units, *events: Event) -> list[bool]:
    """Apply ``events`` as one consumed batch, as the consumer does."""
    handle = units.handler(handlers.capture_lead)

    async def work(envelope: Envelope[Event], tx: Transaction) -> None:
        assert isinstance(envelope.event, LeadCaptured)
        token = correlation_id.set(envelope.correlation_id)  # as the consumer does, per event
        try:
            await handle(envelope.event, tx)
        finally:
            correlation_id.reset(token)

    envelopes = [
        Envelope(event=e, source="/kariz/leads", correlation_id=f"corr-{i}") for i, e in enumerate(events)
    ]
    return await handle_once(store, "qualification-test", envelopes, work)


async def test_start_up_seeds_defaults_once_and_creates_the_indexes(
    store: Store, units: Units, clock: FakeClock
) -> None:
    assert await views.current_rules(units) == RuleSetVersion(0, DEFAULT_RULES, clock.now(), SEEDED_BY)
    edited = RuleSet.model_validate({**DEFAULT_RULES.model_dump(mode="json"), "country": {"SE": 10}})
    await handlers.replace_rules(units, ReplaceRules(edited, ADMIN))

    await prepare(store, units.clock)  # a restart keeps what was edited
    in_force = await views.current_rules(units)
    assert (in_force.number, in_force.rules, in_force.actor) == (1, edited, ADMIN)
    docs = await store.db.rule_set_versions.find({}).sort("_id", 1).to_list()
    assert [(d["_id"], d["actor"], d["changed"]) for d in docs] == [
        (0, SEEDED_BY, None),
        (1, ADMIN, ["country"]),
    ]
    names = {index["name"] async for index in await store.db.leads.list_indexes()}
    assert {"status_captured", "status_owner_captured"} <= names


def with_country(**points: int) -> RuleSet:
    return RuleSet.model_validate({**DEFAULT_RULES.model_dump(mode="json"), "country": points})


async def test_two_concurrent_edits_of_one_version_make_one_version_and_one_conflict(
    store: Store, units: Units, clock: FakeClock
) -> None:
    edits = [
        ReplaceRules(with_country(SE=10), "ada@kariz.test", edited_version=0),
        ReplaceRules(with_country(NO=10), "lee@kariz.test", edited_version=0),
    ]
    outcomes = await asyncio.gather(
        *(handlers.replace_rules(units, e) for e in edits), return_exceptions=True
    )

    [won] = [o for o in outcomes if isinstance(o, RuleSetVersion)]
    [lost] = [o for o in outcomes if not isinstance(o, RuleSetVersion)]
    assert isinstance(lost, Conflict), lost
    assert "version 1" in str(lost)
    assert won.number == 1

    # A new unit of work on a new connection reads the versions as they were committed.
    again = Store(store.settings)
    try:
        fresh = MongoUnitsOfWork(again, clock, MongoQualificationUnitOfWork)
        versions, total = await views.rule_set_versions(fresh, 50, 0)
        assert ([v.number for v in versions], total) == ([1, 0], 2)
        assert await views.current_rules(fresh) == won
        assert await views.rule_set_version(fresh, 0) == RuleSetVersion(
            0, DEFAULT_RULES, clock.now(), SEEDED_BY
        )
        # The loser edits the version in force now, and becomes version 2; version 1 stays as it was.
        clock.advance(timedelta(minutes=1))
        loser = next(e for e in edits if e.actor != won.actor)
        redone = await handlers.replace_rules(fresh, replace(loser, edited_version=1))
        assert (redone.number, redone.actor, redone.took_effect_at) == (2, loser.actor, clock.now())
        assert await views.rule_set_version(fresh, 1) == won
    finally:
        await again.close()


async def test_two_concurrent_replacements_without_a_version_each_get_their_own_number(units: Units) -> None:
    edits = [
        ReplaceRules(with_country(SE=10), "ada@kariz.test"),
        ReplaceRules(with_country(NO=10), "lee@kariz.test"),
    ]
    done = await asyncio.gather(*(handlers.replace_rules(units, e) for e in edits))

    assert sorted(v.number for v in done) == [1, 2]
    versions, _ = await views.rule_set_versions(units, 50, 0)
    assert {(v.number, v.actor) for v in versions[:2]} == {(v.number, v.actor) for v in done}


async def test_a_rule_set_from_before_versions_is_carried_over_as_its_number(
    store: Store, clock: FakeClock
) -> None:
    # A database of the previous release: seeded at 1, replaced twice, so its counter says 3.
    edited_at = clock.now() - timedelta(days=30)
    legacy = with_country(SE=10)
    await store.db.rule_sets.insert_one(
        {"_id": "current", "rules": legacy.model_dump(mode="json"), "version": 3, "updated_at": edited_at}
    )
    await prepare(store, clock)
    await prepare(store, clock)  # a second start-up (or replica) carries nothing over again
    units = MongoUnitsOfWork(store, clock, MongoQualificationUnitOfWork)

    assert await views.current_rules(units) == RuleSetVersion(2, legacy, edited_at, UNRECORDED)
    assert (await views.rule_set_versions(units, 50, 0))[1] == 1
    replaced = await handlers.replace_rules(units, ReplaceRules(DEFAULT_RULES, ADMIN, edited_version=2))
    assert (replaced.number, replaced.changed) == (3, ("country",))
    # The old document is left as it was: a previous release rolled back to still finds its rule set.
    assert (await store.db.rule_sets.find_one({"_id": "current"}) or {}).get("version") == 3


async def test_a_batch_reads_its_leads_and_the_rules_once_and_inserts_its_new_leads_at_once(
    store: Store, units: Units, commands: Counter[tuple[str, str]]
) -> None:
    await consume(store, units, captured("L-0"))
    commands.clear()

    # L-0 is known from an earlier batch; L-1 comes twice (a re-publication); L-2 and L-3 are new.
    batch = [
        captured("L-0", size=20),
        captured("L-1"),
        captured("L-1", size=20),
        captured("L-2"),
        captured("L-3", size=20),
    ]
    assert await consume(store, units, *batch) == [True] * 5

    assert commands[("find", "leads")] == 1 and commands[("find_one", "leads")] == 0
    assert commands[("find_one", "rule_set_versions")] == 1
    assert commands[("insert_many", "leads")] == 1 and commands[("insert_one", "leads")] == 0
    docs = {doc["_id"]: doc async for doc in store.db.leads.find({})}
    assert {k: (d["status"], d["score"], d["version"]) for k, d in docs.items()} == {
        "L-0": ("qualified", 80, 1),
        "L-1": ("qualified", 80, 1),
        "L-2": ("qualified", 80, 1),
        "L-3": ("nurture", 65, 1),
    }
    outbox = await store.db.outbox.find({}).sort("order", 1).to_list()
    assert [(d["key"], d["topic"]) for d in outbox] == [
        ("L-0", LeadQualified.topic()),
        ("L-1", LeadQualified.topic()),
        ("L-2", LeadQualified.topic()),
    ]


async def test_a_lead_round_trips_through_its_document(store: Store, units: Units, clock: FakeClock) -> None:
    await consume(store, units, captured("L-1", size=20))
    clock.advance(timedelta(hours=2))
    answers = BantAnswers(
        budget="confirmed",
        budget_amount="48000.50",
        authority="influencer",
        need="confirmed",
        timeline="later",
    )
    recorded = await handlers.record_answers(units, RecordAnswers("L-1", answers, by=REP))

    loaded = await views.qualification_of(units, "L-1")
    assert loaded == recorded
    assert isinstance(loaded, Lead) and loaded.version == 2
    assert (loaded.status, [s.trigger for s in loaded.scorings], loaded.correlation_id) == (
        "qualified",
        ["captured", "bant"],
        "corr-0",
    )
    assert loaded.decision is not None and loaded.decision.at == clock.now()
    assert [s.rules_version for s in loaded.scorings] == [0, 0]
    doc = await store.db.leads.find_one({"_id": "L-1"})
    assert doc is not None and (doc["status"], doc["score"], doc["version"]) == ("qualified", 100, 2)

    # A lead stored before scorings named their rule-set version still loads.
    await store.db.leads.update_one({"_id": "L-1"}, {"$unset": {"scorings.$[].rules_version": ""}})
    old = await views.qualification_of(units, "L-1")
    assert [s.rules_version for s in old.scorings] == [None, None]
    assert [s.score for s in old.scorings] == [s.score for s in loaded.scorings]
    # A lead stored before checklists were kept: its BANT answers are its checklist, by its decider.
    assert doc["methodology"] == "bant" and [a["item"] for a in doc["checklist"]][:2] == [
        "budget",
        "budget_amount",
    ]
    await store.db.leads.update_one({"_id": "L-1"}, {"$unset": {"checklist": "", "methodology": ""}})
    older = await views.qualification_of(units, "L-1")
    assert (older.methodology, older.checklist) == ("bant", loaded.checklist)
    [event] = await store.db.outbox.find({"key": "L-1"}).to_list()
    # Emitted under the lead's own story (its capture's), not the HTTP request's.
    assert event["headers"]["ce_correlationid"] == "corr-0"


async def test_a_stale_copy_is_refused(store: Store, units: Units) -> None:
    await consume(store, units, captured("L-1", size=20))
    stale = await views.qualification_of(units, "L-1")
    await handlers.record_answers(
        units,
        RecordAnswers(
            "L-1",
            BantAnswers(budget="unknown", authority="unknown", need="unknown", timeline="unknown"),
            by=REP,
        ),
    )

    stale.disqualify("too late", stale.captured_at)
    with pytest.raises(Conflict, match="changed by another request"):
        await units.run(lambda uow: uow.leads.save(stale))
    doc = await store.db.leads.find_one({"_id": "L-1"})
    assert doc is not None and (doc["status"], doc["version"]) == ("nurture", 2)


async def test_the_review_queue_query(store: Store, units: Units) -> None:
    hour = timedelta(hours=1)
    events = [
        captured(f"N-{i}", size=20, owner=owner, captured_at=CAPTURED_AT + i * hour)
        for i, owner in enumerate(["a@kariz.test", "b@kariz.test", "a@kariz.test", "a@kariz.test"])
    ]
    await consume(store, units, *events, captured("Q-1"))

    rows, total = await views.leads_by_status(units, LeadsByStatus(), 50, 0)
    assert ([r.lead_id for r in rows], total) == (["N-3", "N-2", "N-1", "N-0"], 4)
    rows, total = await views.leads_by_status(units, LeadsByStatus("nurture", "a@kariz.test"), 2, 1)
    assert ([r.lead_id for r in rows], total) == (["N-2", "N-0"], 3)
    [row], total = await views.leads_by_status(units, LeadsByStatus("qualified"), 50, 0)
    assert (row.lead_id, row.owner, row.company, row.status, row.score, total) == (
        "Q-1",
        "rep@kariz.test",
        "Acme Q-1",
        "qualified",
        80,
        1,
    )
    assert row.captured_at == CAPTURED_AT and row.decided_at == units.clock.now()


async def test_a_merge_on_mongodb_folds_the_better_verdict_and_a_late_capture_of_the_duplicate(
    store: Store, units: Units
) -> None:
    """``LeadsMerged`` in the consumer's transaction: the survivor's document takes the better verdict,
    the duplicate's is merged; a merge heard of before the duplicate's capture is remembered and that
    capture (one batch with another lead) folded in, no verdict published for the merge itself."""
    follow = units.handler(handlers.follow_merge)

    async def merge(survivor: str, duplicate: str) -> None:
        event = LeadsMerged(
            lead_id=survivor,
            merged_lead_id=duplicate,
            owner="rep@kariz.test",
            merged_owner="rep@kariz.test",
            merged_at=CAPTURED_AT,
        )
        await store.transaction(lambda tx: follow(event, tx), correlation_id="corr-merge")

    await consume(store, units, captured("S", size=20), captured("D"))  # nurture 65, qualified 80
    published = await store.db.outbox.count_documents({})
    await merge("S", "D")
    await merge("S", "D")  # redelivered
    docs = {doc["_id"]: doc async for doc in store.db.leads.find({})}
    assert (docs["S"]["status"], docs["S"]["score"], docs["S"]["merged_from"]) == ("qualified", 80, ["D"])
    assert (docs["D"]["status"], docs["D"]["merged_into"]) == ("merged", "S")
    assert await store.db.outbox.count_documents({}) == published

    await consume(store, units, captured("T", size=20))
    await merge("T", "LATE")  # its capture is still on its way
    assert await store.db.lead_merges.find_one({"_id": "LATE"}) is not None
    await consume(store, units, captured("OTHER", size=20), captured("LATE"))
    late = await views.qualification_of(units, "LATE")
    assert (late.status, late.merged_into) == ("merged", "T")
    assert (await views.qualification_of(units, "T")).status == "qualified"
    assert (await views.qualification_of(units, "OTHER")).merged_into is None
