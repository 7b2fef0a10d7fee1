"""Dead letters: bounded retries, reasons, outages retried rather than dead-lettered, and `kariz-dlq`
listing and replaying against the real broker and database."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect, ExecutionTimeout, ServerSelectionTimeoutError

from kariz_devkit.testing import Backends, Record, eventually, publish, publish_raw, reading, running, unique
from kariz_ops.deadletters import at_offsets, replay, select
from kariz_shared.contracts.deadletters import (
    ADDED_HEADERS,
    REPLAYED_FROM,
    DeadLetter,
    DeadLetterError,
    DeadLetterReason,
    dead_letter_headers,
)
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.errors import RejectedEvent
from kariz_shared.contracts.events import LeadCaptured, dead_letter_topic
from kariz_shared.persistence.store import Transaction
from kariz_shared.runtime.settings import ServiceSettings
from kariz_shared.service import Service

from .test_envelope import captured

TOPIC = LeadCaptured.topic()
DLQ = dead_letter_topic(TOPIC)


# --- the headers and the choosing, without a broker --------------------------------------------------


def letter(partition: int, offset: int, headers: dict[str, str], key: bytes | None = b"L-1") -> DeadLetter:
    return DeadLetter(
        topic=DLQ,
        partition=partition,
        offset=offset,
        key=key,
        value=b"{}",
        raw_headers=tuple((k, v.encode()) for k, v in headers.items()),
    )


def test_dead_letter_headers_name_the_origin_and_reason_and_replace_those_of_an_earlier_failure() -> None:
    original = {"ce_id": "e-1", "dlq_reason": "rejected", "dlq_error": "old", REPLAYED_FROM: f"{DLQ}:0:3"}
    headers = dead_letter_headers(
        original,
        topic=TOPIC,
        partition=2,
        offset=41,
        consumer_group="kariz-qualification.lead-captured",
        reason=DeadLetterReason.HANDLER_FAILED,
        error="x" * 5000,
        attempts=5,
        failed_at=datetime(2025, 1, 2, tzinfo=UTC),
        client_headers=("ce_id", "correlation_id"),
    )
    assert headers == {
        "ce_id": "e-1",
        REPLAYED_FROM: f"{DLQ}:0:3",
        "dlq_original_topic": TOPIC,
        "dlq_original_partition": "2",
        "dlq_original_offset": "41",
        "dlq_consumer_group": "kariz-qualification.lead-captured",
        "dlq_reason": "handler_failed",
        "dlq_error": "x" * 2000,
        "dlq_attempts": "5",
        "dlq_failed_at": "2025-01-02T00:00:00+00:00",
        ADDED_HEADERS: "correlation_id",
    }


def test_a_replay_carries_the_original_headers_only_and_says_where_it_came_from() -> None:
    dead = letter(
        1,
        7,
        {
            "ce_id": "e-1",
            "correlation_id": "added-by-the-client",
            REPLAYED_FROM: f"{DLQ}:0:3",
            "dlq_reason": "rejected",
            ADDED_HEADERS: "correlation_id",
            "content-type": "application/json",
        },
    )
    assert dead.replay_headers() == [
        ("ce_id", b"e-1"),
        ("content-type", b"application/json"),
        (REPLAYED_FROM, f"{DLQ}:1:7".encode()),
    ]


def test_choosing_by_offset_reason_and_group() -> None:
    a = letter(0, 5, {"dlq_reason": "rejected", "dlq_consumer_group": "g1"})
    b = letter(1, 5, {"dlq_reason": "not_json", "dlq_consumer_group": "g2"})
    c = letter(1, 6, {"dlq_reason": "rejected", "dlq_consumer_group": "g2"})
    letters = [a, b, c]
    assert at_offsets(letters, ["1:5", "6"]) == [b, c]
    with pytest.raises(DeadLetterError, match="several partitions"):
        at_offsets(letters, ["5"])
    with pytest.raises(DeadLetterError, match="no dead letter at 2:5"):
        at_offsets(letters, ["2:5"])
    with pytest.raises(DeadLetterError, match="is not OFFSET or PARTITION:OFFSET"):
        at_offsets(letters, ["x"])
    assert select(letters, reason="rejected") == [a, c]
    assert select(letters, reason="rejected", group="g2") == [c]
    assert select(letters, topic=TOPIC) == letters  # the original topic's name names its .dlq
    assert select(letters, topic="kariz.deal-won.v1") == []


async def test_a_record_dead_lettered_by_several_groups_is_replayed_once() -> None:
    origin = {"dlq_original_topic": TOPIC, "dlq_original_partition": "2", "dlq_original_offset": "9"}
    by_deals = letter(0, 1, {**origin, "dlq_consumer_group": "deals"})
    by_leads = letter(1, 1, {**origin, "dlq_consumer_group": "leads"})
    other = letter(1, 2, {**origin, "dlq_original_offset": "10"})
    results = await replay("unused:9092", [by_deals, by_leads, other], enable_idempotence=False, dry_run=True)
    assert [(r.letter, r.action) for r in results] == [
        (by_deals, "would replay"),
        (by_leads, "skipped"),
        (other, "would replay"),
    ]
    assert f"same original record as {DLQ}:0:1" in results[1].describe()


# --- against the real broker and database -------------------------------------------------------------

Handler = Callable[[LeadCaptured, Transaction], Awaitable[None]]


def probe(settings: ServiceSettings, handler: Handler, group: str) -> Service:
    service = Service(settings, title="probe", description="dead-letter probe")
    service.subscribe(LeadCaptured, handler, group_id=group)
    return service


def event(lead_id: str, **changes: Any) -> Envelope[LeadCaptured]:
    return Envelope(
        event=captured(lead_id).model_copy(update=changes), source="/kariz/leads", correlation_id=unique("c")
    )


def dead_letter_of(group: str, *keys: str) -> Callable[[Record], bool]:
    """This group's dead letters of these keys: a new group reads the topic from the start, so it also
    meets what earlier tests published."""
    return lambda r: r.topic == DLQ and r.headers.get("dlq_consumer_group") == group and r.key in keys


@pytest.mark.integration
async def test_outages_are_retried_not_dead_lettered_and_a_poison_message_does_not_stop_the_partition(
    settings_for: Any, backends: Backends
) -> None:
    settings = settings_for(
        ServiceSettings, service_name="probe", consumer_max_attempts=2, consumer_retry_backoff_s=0.01
    )
    group = unique("probe")
    lead = unique("L")  # one key: every record below is in one partition, in this order
    outage_once = event(lead)
    outage_twice = event(lead)
    outage_timed_out = event(lead)
    always_fails = event(lead)
    after = event(lead)
    outages: dict[str, Exception] = {
        outage_once.id: AutoReconnect("connection reset"),
        outage_twice.id: ServerSelectionTimeoutError("no primary"),
        # Store.transaction's own limit ran out while the database was away.
        outage_timed_out.id: ExecutionTimeout("operation exceeded time limit", 50),
    }
    # Outages last longer than the bound on attempts: they must still not be dead-lettered.
    outage_calls = settings.consumer_max_attempts + 2
    calls: Counter[str] = Counter()

    async def handle(evt: LeadCaptured, tx: Transaction) -> None:
        if evt.lead_id != lead:
            return  # a new group reads the topic from the start: earlier tests' events are not this one's
        event_id = tx.causation_id or ""
        calls[event_id] += 1
        if event_id in outages and calls[event_id] <= outage_calls:
            raise outages[event_id]
        if event_id == always_fails.id:
            raise ValueError("a bug that fails the same way every time")
        await tx.db.seen.insert_one({"_id": event_id}, session=tx.session)

    db = AsyncMongoClient(backends.mongodb_uri)[settings.database_name]
    async with reading(backends.kafka_bootstrap, DLQ) as dlq, running(probe(settings, handle, group)) as http:
        await publish(backends.kafka_bootstrap, outage_once)
        await publish(backends.kafka_bootstrap, outage_twice)
        await publish(backends.kafka_bootstrap, outage_timed_out)
        await publish_raw(backends.kafka_bootstrap, TOPIC, lead.encode(), b"{oops", outage_once.headers())
        await publish(backends.kafka_bootstrap, always_fails)
        await publish(backends.kafka_bootstrap, after)
        await eventually(lambda: db.seen.find_one({"_id": after.id}))
        dead = await dlq.wait_for(dead_letter_of(group, lead), count=2)
        metrics = (await http.get("/metrics")).text

    seen = {doc["_id"] async for doc in db.seen.find()}
    assert seen == {outage_once.id, outage_twice.id, outage_timed_out.id, after.id}
    # A failing batch is rolled back and handled again whole, so a handler can be called more often than
    # its own failures; each outage was retried past the bound on attempts, and none was dead-lettered.
    assert min(calls[outage_once.id], calls[outage_twice.id], calls[outage_timed_out.id]) > outage_calls
    # The failing one: its batch's try, then the bounded tries on its own (dlq_attempts below).
    assert calls[always_fails.id] >= settings.consumer_max_attempts
    assert [(r.headers["ce_id"], r.headers["dlq_reason"], r.headers["dlq_attempts"]) for r in dead] == [
        (outage_once.id, "not_json", "1"),  # the poison record carried the first event's headers
        (always_fails.id, "handler_failed", "2"),
    ]
    assert "ValueError: a bug that fails the same way every time" in dead[1].headers["dlq_error"]
    assert dead[0].value == b"{oops"
    counted = {
        sample.labels["reason"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "kariz_dead_letters_total" and sample.labels["service"] == "probe"
    }
    assert counted.keys() >= {"not_json", "handler_failed"}  # other probes of this session count too


@pytest.mark.integration
async def test_a_batch_with_bad_records_applies_the_good_ones_once_and_dead_letters_each_bad_one_once(
    settings_for: Any, backends: Backends
) -> None:
    """Records that arrive together are applied in one transaction; a rejected event rolls that back, and
    the batch is handled again one event at a time: the good ones applied once, the bad ones dead-lettered
    once each, in order. A header that is not UTF-8 (FastStream cannot build a batch with it) too."""
    settings = settings_for(ServiceSettings, service_name="probe", consumer_batch_max_records=50)
    group = unique("batch")
    lead = unique("L")  # one key, one partition: the records below come in this order
    good = [event(lead) for _ in range(4)]
    rejected = event(lead)

    async def handle(evt: LeadCaptured, tx: Transaction) -> None:
        if evt.lead_id != lead:
            return  # a new group reads the topic from the start: earlier tests' events
        if tx.causation_id == rejected.id:
            raise RejectedEvent("this lead cannot be taken")
        await tx.db.seen.insert_one({"_id": tx.causation_id, "at": datetime.now(UTC)}, session=tx.session)

    # Published before the consumer starts, so it finds them waiting and takes them as one batch.
    await publish(backends.kafka_bootstrap, good[0])
    await publish(backends.kafka_bootstrap, good[1])
    await publish(backends.kafka_bootstrap, rejected)
    bad_header = [(k, v.encode()) for k, v in good[0].headers().items()] + [("x-origin", b"\xff\xfe")]
    producer = AIOKafkaProducer(bootstrap_servers=backends.kafka_bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(TOPIC, good[0].value(), key=lead.encode(), headers=bad_header)
    finally:
        await producer.stop()
    await publish(backends.kafka_bootstrap, good[2])
    await publish(backends.kafka_bootstrap, good[3])

    db = AsyncMongoClient(backends.mongodb_uri)[settings.database_name]
    async with reading(backends.kafka_bootstrap, DLQ) as dlq, running(probe(settings, handle, group)):
        await eventually(lambda: db.seen.find_one({"_id": good[3].id}))
        dead = await dlq.wait_for(dead_letter_of(group, lead), count=1)
        await asyncio.sleep(1.0)  # a second dead letter of the same record would have come by now
        dead = [r for r in dlq.records if dead_letter_of(group, lead)(r)]

    assert sorted([doc["_id"] async for doc in db.seen.find()]) == sorted(e.id for e in good)
    # The record with the bad header repeats good[0]'s id: a duplicate, dropped by its handled marker.
    assert [(r.headers["ce_id"], r.headers["dlq_reason"]) for r in dead] == [(rejected.id, "rejected")]


async def kariz_dlq(backends: Backends, *args: str) -> tuple[int, str, str]:
    """Run the installed console script against the test broker, as an operator would."""
    env = {
        **os.environ,
        "KARIZ_KAFKA_BOOTSTRAP_SERVERS": backends.kafka_bootstrap,
        "KARIZ_KAFKA_ENABLE_IDEMPOTENCE": str(backends.kafka_idempotence).lower(),
    }
    proc = await asyncio.create_subprocess_exec(
        os.path.join(os.path.dirname(sys.executable), "kariz-dlq"),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.integration
async def test_dead_letters_are_listed_and_once_fixed_replayed_and_handled_exactly_once(
    settings_for: Any, backends: Backends
) -> None:
    settings = settings_for(ServiceSettings, service_name="probe")
    group = unique("probe")
    rep = f"{unique('rep')}@kariz.test"
    db = AsyncMongoClient(backends.mongodb_uri)[settings.database_name]
    await db.reps.insert_one({"_id": "known@kariz.test"})

    async def handle(evt: LeadCaptured, tx: Transaction) -> None:
        # Caused by data: a lead for a rep this service does not know yet can never be applied as it is.
        if await tx.db.reps.find_one({"_id": evt.owner}, session=tx.session) is None:
            raise RejectedEvent(f"owner {evt.owner} is not a known rep")
        await tx.db.seen.insert_one({"event_id": tx.causation_id, "lead_id": evt.lead_id}, session=tx.session)

    lead = unique("L")
    unknown_rep = event(lead, owner=rep)
    fine = event(unique("L"), owner="known@kariz.test")
    garbled = unique("L")
    async with reading(backends.kafka_bootstrap, DLQ, TOPIC) as reader:
        async with running(probe(settings, handle, group)):
            await publish(backends.kafka_bootstrap, unknown_rep)
            await publish_raw(backends.kafka_bootstrap, TOPIC, garbled.encode(), b"\x00\x01", fine.headers())
            await publish(backends.kafka_bootstrap, fine)
            await eventually(lambda: db.seen.find_one({"event_id": fine.id}))
            await reader.wait_for(dead_letter_of(group, lead, garbled), count=2)

            code, out, err = await kariz_dlq(backends, "list", "--topic", TOPIC, "--group", group, "--json")
            assert code == 0, err
            every = [json.loads(line) for line in out.splitlines()]
            assert f"{len(every)} dead letter(s)" in err
            listed = [d for d in every if d["key"] in (lead, garbled)]
            assert {d["consumer_group"] for d in every} == {group}
            by_reason = {d["reason"]: d for d in listed}
            assert set(by_reason) == {"rejected", "not_json"}
            rejected = by_reason["rejected"]
            original = reader.of(TOPIC, lead)[0]
            assert rejected == {
                **rejected,
                "dlq_topic": DLQ,
                "original_topic": TOPIC,
                "original_partition": original.partition,
                "original_offset": original.offset,
                "consumer_group": group,
                "attempts": 1,
                "event_id": unknown_rep.id,
                "type": "kariz.lead-captured.v1",
                "key": lead,
                "error": f"RejectedEvent: owner {rep} is not a known rep",
                "replayed_from": None,
            }
            assert by_reason["not_json"]["key"] == garbled
            assert by_reason["not_json"]["error"].startswith("value is not JSON")

            code, out, _ = await kariz_dlq(backends, "list", "--topic", DLQ, "--group", group)
            header, *rows = out.splitlines()
            assert header.split()[:4] == ["DEAD", "LETTER", "ORIGINAL", "GROUP"]
            assert len(rows) == len(every)
            [row] = [row for row in rows if row.startswith(f"{rejected['ref']} ")]
            assert row.split()[1:7] == [
                f"{TOPIC}:{original.partition}:{original.offset}",
                group,
                "rejected",
                "1",
                rejected["failed_at"],
                unknown_rep.id,
            ]

            # Nothing changes on a dry run; then the cause is fixed and the dead letter replayed.
            code, out, _ = await kariz_dlq(
                backends, "replay", "--topic", DLQ, "--group", group, "--reason", "rejected", "--dry-run"
            )
            assert code == 0
            assert f"would replay: {rejected['ref']} -> {TOPIC}:{original.partition} (key {lead}" in out
            await db.reps.insert_one({"_id": rep})
            position = f"{rejected['dlq_partition']}:{rejected['dlq_offset']}"
            code, out, err = await kariz_dlq(backends, "replay", "--topic", DLQ, "--offset", position)
            assert code == 0, err
            assert out.startswith(f"replayed: {rejected['ref']} -> {TOPIC}:{original.partition}")
            await eventually(lambda: db.seen.find_one({"event_id": unknown_rep.id}))

            # A replay of what was handled changes nothing. A later event of the same lead (same partition)
            # shows the consumer has read past it.
            code, out, err = await kariz_dlq(backends, "replay", "--topic", DLQ, "--offset", position)
            assert code == 0, err
            later = event(lead, owner=rep)
            await publish(backends.kafka_bootstrap, later)
            await eventually(lambda: db.seen.find_one({"event_id": later.id}))

            code, _, err = await kariz_dlq(backends, "replay", "--topic", DLQ, "--offset", "99999")
            assert (code, "no dead letter at 99999" in err) == (2, True)

        records = await reader.wait_for(lambda r: r.topic == TOPIC and r.key == lead, count=4)
        assert [r.headers.get(REPLAYED_FROM) for r in records] == [
            None,
            rejected["ref"],
            rejected["ref"],
            None,
        ]
        first, replayed = records[0], records[1]
        assert (replayed.key, replayed.value, replayed.partition) == (first.key, first.value, first.partition)
        assert {k: v for k, v in replayed.headers.items() if k != REPLAYED_FROM} == first.headers
        assert len([r for r in reader.records if dead_letter_of(group, lead)(r)]) == 1

    assert await db.seen.count_documents({"event_id": unknown_rep.id}) == 1
    assert await db.processed_events.count_documents({"event_id": unknown_rep.id}) == 1
    assert await db.seen.count_documents({"lead_id": lead}) == 2
