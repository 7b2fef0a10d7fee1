"""Dead letters: what a consumer could not handle, why, and how to put it back once the cause is fixed.

A consumer that gives up on a record publishes it to ``<topic>.dlq`` with the original key, value and
headers, plus ``dlq_*`` headers saying where it came from and why (see :func:`dead_letter_headers`).
``dlq_reason`` is one word of :class:`DeadLetterReason`, for dashboards and for choosing what to replay.

:func:`read_dead_letters` reads the dead-letter topics from the beginning without a consumer group, so
looking commits nothing. :func:`replay` publishes chosen dead letters to their original topic and
partition, with their original key, value and headers (less the ``dlq_*`` ones) and a
``kariz_replayed_from`` header. That is safe: every consumer group records the ``ce_id`` of each event
it handled in the same transaction as the effect, and drops an id it already has.
``kariz-dlq`` (:mod:`kariz_shared.dlq`) is the command line over these.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from kariz_shared.events import dead_letter_topic

DLQ_SUFFIX = ".dlq"
DLQ_HEADER_PREFIX = "dlq_"
ORIGINAL_TOPIC = "dlq_original_topic"
ORIGINAL_PARTITION = "dlq_original_partition"
ORIGINAL_OFFSET = "dlq_original_offset"
CONSUMER_GROUP = "dlq_consumer_group"
REASON = "dlq_reason"
ERROR = "dlq_error"
ATTEMPTS = "dlq_attempts"
FAILED_AT = "dlq_failed_at"
#: Headers the publishing client added that the original record did not have (comma-separated);
#: a replay leaves them out again.
ADDED_HEADERS = "dlq_added_headers"
#: Set on a replayed record: ``<dlq topic>:<partition>:<offset>`` of the dead letter it came from.
REPLAYED_FROM = "kariz_replayed_from"

ERROR_LIMIT = 2000


class DeadLetterReason(StrEnum):
    """Why a record went to the dead letters. Also the ``reason`` label of ``kariz_dead_letters_total``."""

    NOT_JSON = "not_json"
    """The value is not JSON (or not UTF-8)."""
    INVALID_SCHEMA = "invalid_schema"
    """JSON, but not the event model of the topic's version."""
    UNKNOWN_VERSION = "unknown_version"
    """``ce_type`` names another version of the topic's event, or ``ce_specversion`` is not 1.0."""
    INVALID_ENVELOPE = "invalid_envelope"
    """Missing or malformed CloudEvents headers, another event's ``ce_type``, or a key that is not the
    aggregate id."""
    REJECTED = "rejected"
    """The handler raised ``RejectedEvent``: the event can never be applied as it is."""
    HANDLER_FAILED = "handler_failed"
    """The handler failed ``KARIZ_CONSUMER_MAX_ATTEMPTS`` times with an error that is not an outage."""


def dead_letter_headers(
    headers: dict[str, str],
    *,
    topic: str,
    partition: int,
    offset: int,
    consumer_group: str,
    reason: DeadLetterReason,
    error: str,
    attempts: int,
    failed_at: datetime | None = None,
    client_headers: Iterable[str] = (),
) -> dict[str, str]:
    """The original headers plus the ``dlq_*`` ones. Earlier ``dlq_*`` headers (a replay that failed again)
    are replaced, so each dead letter describes its own failure. ``client_headers`` are the headers the
    publishing client sets on every record: those the original lacked are named in ``dlq_added_headers``."""
    added = sorted(h for h in client_headers if h not in headers)
    return {
        **{k: v for k, v in headers.items() if not k.startswith(DLQ_HEADER_PREFIX)},
        ORIGINAL_TOPIC: topic,
        ORIGINAL_PARTITION: str(partition),
        ORIGINAL_OFFSET: str(offset),
        CONSUMER_GROUP: consumer_group,
        REASON: reason.value,
        ERROR: error[:ERROR_LIMIT],
        ATTEMPTS: str(attempts),
        FAILED_AT: (failed_at or datetime.now(UTC)).isoformat(),
        **({ADDED_HEADERS: ",".join(added)} if added else {}),
    }


class DeadLetterError(Exception):
    """A dead-letter command that cannot be carried out (unknown topic, offset that does not exist)."""


@dataclass(frozen=True)
class DeadLetter:
    """One record of a ``*.dlq`` topic, headers kept as the broker gave them."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    raw_headers: tuple[tuple[str, bytes], ...]

    @classmethod
    def of(cls, record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value or b"",
            raw_headers=tuple((k, bytes(v)) for k, v in (record.headers or ())),
        )

    @property
    def ref(self) -> str:
        """``<dlq topic>:<partition>:<offset>``: names this dead letter for ``replay`` and in a replay."""
        return f"{self.topic}:{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        for k, v in self.raw_headers:
            if k == name:
                return v.decode(errors="backslashreplace")
        return None

    @property
    def original_topic(self) -> str:
        return self.header(ORIGINAL_TOPIC) or self.topic.removesuffix(DLQ_SUFFIX)

    @property
    def original_partition(self) -> int | None:
        value = self.header(ORIGINAL_PARTITION)
        return int(value) if value and value.isdigit() else None

    @property
    def original_offset(self) -> int | None:
        value = self.header(ORIGINAL_OFFSET)
        return int(value) if value and value.isdigit() else None

    @property
    def consumer_group(self) -> str | None:
        return self.header(CONSUMER_GROUP)

    @property
    def reason(self) -> str | None:
        return self.header(REASON)

    @property
    def attempts(self) -> int | None:
        value = self.header(ATTEMPTS)
        return int(value) if value and value.isdigit() else None

    @property
    def original_position(self) -> tuple[str, int | None, int | None]:
        return (self.original_topic, self.original_partition, self.original_offset)

    def to_dict(self) -> dict[str, Any]:
        """What ``kariz-dlq list --json`` prints: the dead letter's own position, the original's, and why."""
        return {
            "ref": self.ref,
            "dlq_topic": self.topic,
            "dlq_partition": self.partition,
            "dlq_offset": self.offset,
            "original_topic": self.original_topic,
            "original_partition": self.original_partition,
            "original_offset": self.original_offset,
            "consumer_group": self.consumer_group,
            "reason": self.reason,
            "attempts": self.attempts,
            "failed_at": self.header(FAILED_AT),
            "event_id": self.header("ce_id"),
            "type": self.header("ce_type"),
            "key": self.key.decode(errors="backslashreplace") if self.key is not None else None,
            "error": self.header(ERROR),
            "replayed_from": self.header(REPLAYED_FROM),
        }

    def replay_headers(self) -> list[tuple[str, bytes]]:
        """The original headers (byte for byte, without ``dlq_*``) and where this replay came from."""
        added = set(filter(None, (self.header(ADDED_HEADERS) or "").split(",")))
        kept = [
            (k, v)
            for k, v in self.raw_headers
            if not k.startswith(DLQ_HEADER_PREFIX) and k != REPLAYED_FROM and k not in added
        ]
        return [*kept, (REPLAYED_FROM, self.ref.encode())]


def dead_letter_topic_of(topic: str) -> str:
    """``kariz.lead-captured.v1`` or ``kariz.lead-captured.v1.dlq`` -> ``kariz.lead-captured.v1.dlq``."""
    return topic if topic.endswith(DLQ_SUFFIX) else dead_letter_topic(topic)


async def read_dead_letters(
    bootstrap_servers: str, topics: Iterable[str] | None = None, *, timeout_s: float = 60.0
) -> list[DeadLetter]:
    """Every record of the given dead-letter topics (default: every ``*.dlq`` topic), read from the
    beginning up to the end offsets seen at the start. No consumer group: nothing is committed."""
    consumer = AIOKafkaConsumer(
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
