"""Reading and replaying dead letters (``kariz-dlq``): the records of ``<topic>.dlq`` read from the
beginning without a consumer group, so looking commits nothing, and chosen ones put back on their
original topic and partition. Safe to replay: every consumer group drops an event id it already has."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from kariz_shared.contracts.deadletters import DLQ_SUFFIX, DeadLetter, DeadLetterError, dead_letter_topic_of


async def read_dead_letters(
    bootstrap_servers: str,
    topics: Iterable[str] | None = None,
    *,
    timeout_s: float = 60.0,
    client_options: Mapping[str, Any] | None = None,
) -> list[DeadLetter]:
    """Every record of the given dead-letter topics (default: every ``*.dlq`` topic), read from the
    beginning up to the end offsets seen at the start. No consumer group: nothing is committed.
    ``client_options``: the cluster's security (``kafka_client_options`` of the settings)."""
    consumer = AIOKafkaConsumer(
        **(client_options or {}),
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="kariz-dlq",
    )
    try:
        await consumer.start()
        available = await consumer.topics()
        if topics is None:
            wanted = sorted(t for t in available if t.endswith(DLQ_SUFFIX))
        else:
            wanted = sorted({dead_letter_topic_of(t) for t in topics})
            unknown = [t for t in wanted if t not in available]
            if unknown:
                raise DeadLetterError(f"no such topic: {', '.join(unknown)}")
        partitions = [
            TopicPartition(t, p) for t in wanted for p in sorted(consumer.partitions_for_topic(t) or ())
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if await consumer.position(tp) < ends[tp]}
        letters: list[DeadLetter] = []
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise DeadLetterError(
                    f"gave up after {timeout_s:.0f}s reading {sorted(str(tp) for tp in remaining)}"
                )
            batches = await consumer.getmany(*remaining, timeout_ms=500)
            for tp, records in batches.items():
                letters.extend(DeadLetter.of(r) for r in records if r.offset < ends[tp])
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return sorted(letters, key=lambda d: (d.topic, d.partition, d.offset))
    finally:
        await consumer.stop()


def select(
    letters: Sequence[DeadLetter],
    *,
    topic: str | None = None,
    reason: str | None = None,
    group: str | None = None,
) -> list[DeadLetter]:
    """The dead letters of one topic (original or ``.dlq`` name), reason and consumer group."""
    wanted_topic = dead_letter_topic_of(topic) if topic else None
    return [
        d
        for d in letters
        if (wanted_topic is None or d.topic == wanted_topic)
        and (reason is None or d.reason == reason)
        and (group is None or d.consumer_group == group)
    ]


def at_offsets(letters: Sequence[DeadLetter], offsets: Sequence[str]) -> list[DeadLetter]:
    """The dead letters named by ``PARTITION:OFFSET`` (or a bare ``OFFSET`` when only one partition has
    a dead letter there), in the order asked for."""
    chosen: list[DeadLetter] = []
    for spec in offsets:
        partition_text, _, offset_text = spec.rpartition(":")
        try:
            offset = int(offset_text)
            partition = int(partition_text) if partition_text else None
        except ValueError:
            raise DeadLetterError(f"{spec!r} is not OFFSET or PARTITION:OFFSET") from None
        found = [d for d in letters if d.offset == offset and (partition is None or d.partition == partition)]
        if not found:
            raise DeadLetterError(f"no dead letter at {spec}")
        if len(found) > 1:
            raise DeadLetterError(
                f"offset {offset} is in several partitions ({', '.join(d.ref for d in found)}): "
                "say PARTITION:OFFSET"
            )
        chosen.append(found[0])
    return chosen


@dataclass(frozen=True)
class Replay:
    """What ``replay`` did with one dead letter."""

    letter: DeadLetter
    action: str  # "replayed", "would replay", or "skipped"
    detail: str

    def describe(self) -> str:
        return f"{self.action}: {self.letter.ref} -> {self.detail}"


async def replay(
    bootstrap_servers: str,
    letters: Sequence[DeadLetter],
    *,
    enable_idempotence: bool,
    dry_run: bool = False,
    client_options: Mapping[str, Any] | None = None,
) -> list[Replay]:
    """Publish each dead letter to its original topic and partition, once per original record.

    Several consumer groups may have dead-lettered the same record (one topic, many services); one
    replay reaches all of them, and the groups that had handled it drop it by its ``ce_id``.
    """
    results: list[Replay] = []
    first_of: dict[tuple[str, int | None, int | None], DeadLetter] = {}
    producer: AIOKafkaProducer | None = None
    if not dry_run and letters:
        producer = AIOKafkaProducer(
            **(client_options or {}),
            bootstrap_servers=bootstrap_servers,
            enable_idempotence=enable_idempotence,
            acks="all",
            client_id="kariz-dlq",
        )
        await producer.start()
    try:
        for letter in letters:
            position = letter.original_position
            if position[1] is not None and position[2] is not None and position in first_of:
                results.append(Replay(letter, "skipped", f"same original record as {first_of[position].ref}"))
                continue
            first_of[position] = letter
            target = f"{letter.original_topic}:{letter.original_partition}"
            what = (
                f"{target} (key {_text(letter.key)}, ce_id {letter.header('ce_id')}, reason {letter.reason})"
            )
            if producer is None:
                results.append(Replay(letter, "would replay", what))
                continue
            partitions = await producer.partitions_for(letter.original_topic)
            partition = letter.original_partition if letter.original_partition in partitions else None
            meta = await producer.send_and_wait(
                letter.original_topic,
                letter.value,
                key=letter.key,
                partition=partition,
                headers=letter.replay_headers(),
            )
            results.append(Replay(letter, "replayed", f"{what} at offset {meta.offset}"))
    finally:
        if producer is not None:
            await producer.stop()
    return results


def _text(value: bytes | None) -> str:
    return value.decode(errors="backslashreplace") if value is not None else "-"
