"""State topics: a compacted topic read whole into memory, by every replica of a service.

A state topic (``Event.compacted``; the roster's ``kariz.reps.v1``) says what is true now: the newest
record of a key is the key's state. Every replica needs all of it, so no consumer group shares it out:
the :class:`StateReader` assigns itself every partition, starts at the beginning, and keeps following.
It commits nothing; after a reconnection it goes on from the offsets it reached, and a restarted
process reads the topic again (compaction keeps that short). Partitions added to the topic later are
read from the next start.

Records are read as the consumers read them (:func:`kariz_shared.messaging.consumer.read_record`:
CloudEvents headers, the event model, the one publisher's ``ce_source``). One that cannot be read is
logged, counted and sent to the topic's dead letters like a consumer's, and the reader goes on: the
key keeps its previous value. A record without a value (a tombstone) deletes its key.

The reader knows when it has *caught up*: read every partition up to the end offsets it saw when it
first started. Readiness waits for that, at most ``state_catch_up_s`` (:meth:`StateReader.ready`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker

from kariz_shared.contracts.deadletters import DeadLetterReason
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import Event
from kariz_shared.messaging.broker import kafka_client_options, send_to_dead_letters
from kariz_shared.messaging.consumer import read_record, record_headers
from kariz_shared.runtime.metrics import dead_letters, state_caught_up, state_keys, state_records
from kariz_shared.runtime.settings import ServiceSettings
from kariz_shared.system import source_of

E = TypeVar("E", bound=Event)

log = logging.getLogger(__name__)

#: ``(record, reader, reason, error)``: publish the record to its topic's dead letters, naming the reader.
DeadLetters = Callable[[ConsumerRecord[bytes, bytes], str, DeadLetterReason, str], Awaitable[None]]


@dataclass(frozen=True)
class Unreadable:
    """A record that is not an event of the topic, and why (its dead letter's reason and error)."""

    reason: DeadLetterReason
    error: str


class StateReader(Generic[E]):
    """Follows one state topic: the newest event per key in :attr:`latest`, each change also given to
    ``on_change(key, event or None)`` (None: the key was deleted)."""

    def __init__(
        self,
        event_cls: type[E],
        settings: ServiceSettings,
        *,
        dead_letter: DeadLetters,
        on_change: Callable[[str, E | None], None] | None = None,
    ) -> None:
        if not event_cls.compacted:
            raise ValueError(f"{event_cls.__name__} is not a state topic's event (Event.compacted)")
        self.event_cls = event_cls
        self.settings = settings
        self.topic = event_cls.topic()
        self.owner = source_of(event_cls)
        self.service = settings.service_name
        #: Names this reader in its dead letters' dlq_consumer_group; no group of that name is joined.
        self.reader = settings.consumer_group(f"{event_cls.kebab_name()}.state")
        self.latest: dict[str, E] = {}
        #: Set once every partition was read up to the end offsets seen when reading started.
        self.caught_up = asyncio.Event()
        self._dead_letter = dead_letter
        self._on_change = on_change
        # Next offset to read per partition: a reconnection goes on from here, not from the beginning
        # (reading the old records again would put old states back for a while).
        self._positions: dict[int, int] = {}
        self._targets: dict[int, int] | None = None
        self._started_at: float | None = None
        self._waited_out = False
        for outcome in ("applied", "removed", "dead_lettered"):
            state_records.labels(self.service, self.topic, outcome)
        for known in DeadLetterReason:
            dead_letters.labels(self.service, self.topic, known.value)
        state_caught_up.labels(self.service, self.topic).set(0)
        state_keys.labels(self.service, self.topic).set(0)

    # --- folding (no I/O) ------------------------------------------------------------------------

    def fold(self, raw: ConsumerRecord[bytes, bytes]) -> Unreadable | None:
        """Take one record into :attr:`latest` (and ``on_change``), or say why it cannot be taken.
        Records come in the topic's order, so the last one read of a key is the newest."""
        if raw.value is None:  # a tombstone: compaction will drop the key, and so does the reader
            key = raw.key.decode(errors="backslashreplace") if raw.key is not None else None
            if key is None:
                return Unreadable(DeadLetterReason.INVALID_ENVELOPE, "a record with neither key nor value")
            self.latest.pop(key, None)
            self._changed(key, None, "removed")
            return None
        envelope = read_record(self.topic, self.owner, raw)
        if not isinstance(envelope, Envelope):
            reason, error = envelope
            return Unreadable(reason, error)
        event: E = envelope.event  # read_record read it as the topic's event model
        self.latest[envelope.key] = event
        self._changed(envelope.key, event, "applied")
        return None

    def _changed(self, key: str, event: E | None, outcome: str) -> None:
        state_records.labels(self.service, self.topic, outcome).inc()
        state_keys.labels(self.service, self.topic).set(len(self.latest))
        if self._on_change is None:
            return
        try:
            self._on_change(key, event)
        except Exception:
            # A fault of the view fed, not of the record: reading on keeps every later record coming.
            log.exception("a state change could not be applied", extra={"topic": self.topic, "key": key})

    async def take(self, raw: ConsumerRecord[bytes, bytes]) -> None:
        """:meth:`fold` one record; dead-letter it when it cannot be read (a failure to publish the dead
        letter raises, and the record is read again after the reconnection)."""
        unreadable = self.fold(raw)
        if unreadable is None:
            return
        await self._dead_letter(raw, self.reader, unreadable.reason, unreadable.error)
        dead_letters.labels(self.service, self.topic, unreadable.reason.value).inc()
        state_records.labels(self.service, self.topic, "dead_lettered").inc()
        log.error(
            "dead-lettered a state record; its key keeps its previous value",
            extra={
                "topic": self.topic,
                "partition": raw.partition,
                "offset": raw.offset,
                "reason": unreadable.reason.value,
                "error": unreadable.error,
            },
        )

    # --- readiness -------------------------------------------------------------------------------

    def ready(self) -> bool:
        """Caught up, or waited ``state_catch_up_s`` since reading started: a topic that does not exist
        yet, or a broker that does not answer this reader, must not keep the service out of work for
        ever (it serves with what it has, the seed, and says so once in the log)."""
        if self.caught_up.is_set():
            return True
        if self._started_at is None:
            return False
        if time.monotonic() - self._started_at < self.settings.state_catch_up_s:
            return False
        if not self._waited_out:
            self._waited_out = True
            log.warning(
                "a state topic is not read up to its end yet; ready without it",
                extra={"topic": self.topic, "waited_s": self.settings.state_catch_up_s},
            )
        return True

    def _note_position(self, partition: int, position: int) -> None:
        self._positions[partition] = position
        if self.caught_up.is_set() or self._targets is None:
            return
        if all(self._positions.get(p, 0) >= end for p, end in self._targets.items()):
            self.caught_up.set()
            state_caught_up.labels(self.service, self.topic).set(1)
            log.info("read a state topic to its end", extra={"topic": self.topic, "keys": len(self.latest)})

    # --- following -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the topic until cancelled; a failure of the broker reconnects, with backoff."""
        self._started_at = time.monotonic()
        delay = self.settings.startup_retry_initial_s
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "reading a state topic failed; reconnecting",
                    extra={"topic": self.topic, "error": f"{type(exc).__name__}: {exc}"},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.startup_retry_max_s)

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **kafka_client_options(self.settings),
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id=f"kariz-{self.service}-state",
            group_id=None,  # every replica reads every partition; nothing is committed
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
        )

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """The topic's partitions, once the broker has the topic (Strimzi may create it after us)."""
        warned = False
        while True:
            await consumer.topics()  # fetches the cluster's metadata; partitions_for_topic reads it
            found = consumer.partitions_for_topic(self.topic)
            if found:
                return [TopicPartition(self.topic, p) for p in sorted(found)]
            if not warned:
                warned = True
                log.warning("a state topic does not exist yet; waiting for it", extra={"topic": self.topic})
            await asyncio.sleep(self.settings.state_topic_retry_s)

    async def _follow(self) -> None:
        consumer = self._consumer()
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            if self._targets is None:
                # Asked before any partition is assigned: once one is, a fetch is in flight, and the broker
                # answers the offsets only after it (a whole fetch_max_wait_ms on an idle topic).
                ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
                self._targets = {tp.partition: end for tp, end in ends.items()}
            consumer.assign(partitions)
            fresh = [tp for tp in partitions if tp.partition not in self._positions]
            for tp in partitions:
                if tp.partition in self._positions:
                    consumer.seek(tp, self._positions[tp.partition])
            if fresh:
                await consumer.seek_to_beginning(*fresh)
            for tp in partitions:
                self._note_position(tp.partition, await consumer.position(tp))
            while True:
                batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = await consumer.getmany(
                    timeout_ms=1000, max_records=500
                )
                for tp, records in batches.items():
                    for raw in records:
                        await self.take(raw)
                        self._positions[tp.partition] = raw.offset + 1
                    # The position can be past the last record (compacted away, or a control record).
                    self._note_position(tp.partition, await consumer.position(tp))
        finally:
            await consumer.stop()


def dead_letters_to(broker: KafkaBroker) -> DeadLetters:
    """Dead letters published with ``broker`` (the service's), as its consumers' are."""

    async def send(
        raw: ConsumerRecord[bytes, bytes], reader: str, reason: DeadLetterReason, error: str
    ) -> None:
        await send_to_dead_letters(
            broker,
            topic=raw.topic,
            partition=raw.partition,
            offset=raw.offset,
            key=raw.key,
            value=raw.value or b"",
            headers=record_headers(raw),
            consumer_group=reader,
            reason=reason,
            error=error,
            attempts=1,
        )

    return send
