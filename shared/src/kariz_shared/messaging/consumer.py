"""The consumer: how every Kariz service takes events from Kafka.

Records come in batches: whatever has arrived, up to ``consumer_batch_max_records``. For each record,
read the envelope (CloudEvents headers + JSON value) into the event model; apply the handlers of the
whole batch once, in order, in one transaction with their "handled" markers and any events they emit
(:func:`kariz_shared.messaging.inbox.handle_once`); then commit the offsets. A batch that fails is
taken apart and its events handled one per transaction, so one bad event costs only itself. What
cannot be read, or what the handler rejects, goes to ``<topic>.dlq`` with the reason (a
``dlq_reason`` header, see :class:`kariz_shared.contracts.deadletters.DeadLetterReason`) and the
partition keeps flowing. A failure of the database or the broker is retried, with backoff, until it
passes; any other failure is retried ``consumer_max_attempts`` times, then dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from kariz_shared.contracts.deadletters import DeadLetterReason
from kariz_shared.contracts.envelope import Envelope, InvalidEnvelope, decode
from kariz_shared.contracts.errors import RejectedEvent
from kariz_shared.contracts.events import Event, dead_letter_topic
from kariz_shared.messaging.broker import send_to_dead_letters
from kariz_shared.messaging.inbox import handle_once
from kariz_shared.persistence.store import Store, Transaction
from kariz_shared.runtime.logging import correlation_id
from kariz_shared.runtime.metrics import dead_letters, event_handle_seconds, events_consumed
from kariz_shared.runtime.settings import ServiceSettings
from kariz_shared.system import source_of

E = TypeVar("E", bound=Event)
Handler = Callable[[E, Transaction], Awaitable[None]]

log = logging.getLogger(__name__)


def is_transient(exc: BaseException) -> bool:
    """A failure that passes by itself: the database or the broker is away or busy."""
    if isinstance(exc, ConnectionFailure | KafkaError | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, PyMongoError) and (exc.timeout or exc.has_error_label("TransientTransactionError")):
        return True  # a timeout includes Store.transaction's own limit (ExecutionTimeout) during an outage
    return isinstance(exc, OperationFailure) and exc.code in (91, 189, 11600, 11602)  # shutdown, stepdown


async def _raw_records(msg: StreamMessage[Any]) -> Any:
    """Leave the values as bytes: FastStream would parse a JSON ``content-type`` itself and fail before
    the wrapper sees the record, so a value that is not JSON would be retried for ever instead of
    dead-lettered."""
    return msg.raw_message


async def _tolerant_parser(
    records: tuple[ConsumerRecord[bytes, bytes], ...],
    parse: Callable[[tuple[ConsumerRecord[bytes, bytes], ...]], Awaitable[StreamMessage[Any]]],
) -> StreamMessage[Any]:
    """FastStream decodes every header as UTF-8 to build a batch; one record with a header that is not
    would stop the partition for ever. Such values are escaped instead, and the record reaches the wrapper
    like any other: read as an envelope if its CloudEvents headers make one, dead-lettered if not."""
    try:
        return await parse(records)
    except UnicodeDecodeError:
        escaped = tuple(
            replace(
                record,
                headers=[(k, v.decode(errors="backslashreplace").encode()) for k, v in record.headers or []],
            )
            for record in records
        )
        return await parse(escaped)


def read_record(
    topic: str, owner: str, raw: ConsumerRecord[bytes, bytes]
) -> Envelope[Any] | tuple[DeadLetterReason, str]:
    """A record of ``topic`` as its envelope, or why it can never be one: not an event of the topic, or
    not from ``owner`` (its one publisher's ce_source). Reading is pure: what fails once fails every
    time, so retrying would only stop the partition. The consumers and the state readers both read so."""
    headers = {k: v for k, v in (raw.headers or [])}
    try:
        envelope = decode(topic, raw.key, raw.value or b"", headers)
        if envelope.source != owner:
            return DeadLetterReason.INVALID_ENVELOPE, (
                f"ce_source {envelope.source!r} did not publish this: {topic} is written by {owner} only"
            )
        return envelope
    except InvalidEnvelope as exc:
        return exc.reason, str(exc)
    except Exception as exc:
        return DeadLetterReason.INVALID_ENVELOPE, f"{type(exc).__name__}: {exc}"


def record_headers(raw: ConsumerRecord[bytes, bytes]) -> dict[str, str]:
    """A record's headers as text for its dead letter (a value that is not UTF-8 escaped, not lost)."""
    return {
        k: (v.decode(errors="backslashreplace") if isinstance(v, bytes) else str(v))
        for k, v in (raw.headers or [])
    }


class Consumer:
    """One consumer group on one topic: reads, applies once, dead-letters, retries (see the module)."""

    def __init__(
        self,
        broker: KafkaBroker,
        store: Store,
        settings: ServiceSettings,
        event_cls: type[E],
        handler: Handler[E],
        *,
        group_id: str | None = None,
    ) -> None:
        self.broker = broker
        self.store = store
        self.settings = settings
        self.handler: Handler[Any] = handler
        self.event_cls = event_cls
        self.topic = event_cls.topic()
        #: The only service whose events this consumer takes (its ce_source).
        self.owner = source_of(event_cls)
        self.group = group_id or settings.consumer_group(event_cls.kebab_name())
        self.name = settings.service_name
        # Consecutive passing failures at the same batch, for the backoff.
        self.outages: dict[tuple[int, int], int] = {}
        # Events per transaction: a batch is split when transactions of its size time out (see consume).
        self.per_transaction = settings.consumer_batch_max_records
        # Records already dead-lettered: a batch that comes again after a passing failure skips them, so
        # each goes to the dead letters once (bounded; forgetting only risks a repeated dead letter).
        self.dead: set[tuple[int, int]] = set()
        # Every series exists from the start at 0, so increase() and alerts see the first dead letter.
        for known in DeadLetterReason:
            dead_letters.labels(self.name, self.topic, known.value)

    def register(self) -> None:
        """Declare the subscriber (and, for the AsyncAPI document, where its dead letters go)."""
        settings, topic, group = self.settings, self.topic, self.group
        self.broker.publisher(
            dead_letter_topic(topic),
            title=f"{dead_letter_topic(topic)}:{group}",
            description=f"Dead letters of {group}: original key, value and headers plus dlq_* headers "
            "(original topic, partition, offset, consumer group, reason, error, attempts, failed_at)",
        )
        self.broker.subscriber(
            topic,
            group_id=group,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
            # Whatever has arrived, up to max_records, is handled in one transaction (the inbox).
            batch=True,
            max_records=settings.consumer_batch_max_records,
            batch_timeout_ms=settings.consumer_batch_timeout_ms,
            # Offsets are committed only after the transaction committed; a raise seeks back to the
            # batch's first record on each partition and the batch comes again.
            ack_policy=AckPolicy.NACK_ON_ERROR,
            parser=_tolerant_parser,
            decoder=_raw_records,
            title=f"{topic}:{group}",
            description=f"{settings.service_name} handles {self.event_cls.__name__}",
        )(self.consume)

    async def dead_letter(
        self, raw: ConsumerRecord[bytes, bytes], reason: DeadLetterReason, error: str, attempts: int
    ) -> None:
        await send_to_dead_letters(
            self.broker,
            topic=self.topic,
            partition=raw.partition,
            offset=raw.offset,
            key=raw.key,
            value=raw.value or b"",
            headers=record_headers(raw),
            consumer_group=self.group,
            reason=reason,
            error=error,
            attempts=attempts,
        )
        if len(self.dead) > 10_000:
            self.dead.clear()
        self.dead.add((raw.partition, raw.offset))
        dead_letters.labels(self.name, self.topic, reason.value).inc()
        events_consumed.labels(self.name, self.topic, "dead_lettered").inc()
        log.error(
            "dead-lettered a message",
            extra={
                "topic": self.topic,
                "partition": raw.partition,
                "offset": raw.offset,
                "reason": reason.value,
                "attempts": attempts,
                "error": error,
            },
        )

    def read(self, raw: ConsumerRecord[bytes, bytes]) -> Envelope[Any] | tuple[DeadLetterReason, str]:
        """The record's envelope, or why it can never be one (:func:`read_record`)."""
        return read_record(self.topic, self.owner, raw)

    async def apply(self, envelope: Envelope[Any], tx: Transaction) -> None:
        token = correlation_id.set(envelope.correlation_id)
        try:
            await self.handler(envelope.event, tx)
        finally:
            correlation_id.reset(token)
        topic = self.topic

        def logged() -> None:
            # One line per event with its correlation id (FastStream's own lines are per batch), once
            # its transaction committed: an attempt that was rolled back applied nothing.
            token = correlation_id.set(envelope.correlation_id)
            try:
                log.info(
                    "applied an event", extra={"topic": topic, "event_id": envelope.id, "key": envelope.key}
                )
            finally:
                correlation_id.reset(token)

        tx.after_commit(logged)

    async def backoff(self, attempts: int) -> None:
        await asyncio.sleep(min(self.settings.consumer_retry_backoff_s * 2 ** min(attempts, 6), 10.0))

    def counted(self, applied: list[bool], started: float) -> None:
        share = (time.perf_counter() - started) / len(applied)
        for first in applied:
            events_consumed.labels(self.name, self.topic, "processed" if first else "duplicate").inc()
            event_handle_seconds.labels(self.name, self.topic).observe(share)

    async def one_by_one(self, readable: list[tuple[ConsumerRecord[bytes, bytes], Envelope[Any]]]) -> None:
        """A batch that failed, taken apart: each event in a transaction of its own, so only the one that
        is rejected, or keeps failing, goes to the dead letters. A passing failure still retries the
        batch (those already applied here are then duplicates)."""
        for raw, envelope in readable:
            if (raw.partition, raw.offset) in self.dead:
                continue
            attempts = 0
            while True:
                attempts += 1
                started = time.perf_counter()
                try:
                    self.counted(await handle_once(self.store, self.group, [envelope], self.apply), started)
                    break
                except RejectedEvent as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    await self.dead_letter(raw, DeadLetterReason.REJECTED, error, attempts)
                    break
                except Exception as exc:
                    if is_transient(exc):
                        raise
                    if attempts >= self.settings.consumer_max_attempts:
                        error = f"{type(exc).__name__}: {exc}"
                        await self.dead_letter(raw, DeadLetterReason.HANDLER_FAILED, error, attempts)
                        break
                    events_consumed.labels(self.name, self.topic, "retried").inc()
                    log.warning(
                        "handling failed; retrying",
                        extra={"topic": self.topic, "offset": raw.offset, "attempt": attempts},
                        exc_info=True,
                    )
                    await self.backoff(attempts)

    async def consume(self, msg: KafkaMessage) -> None:
        records: tuple[ConsumerRecord[bytes, bytes], ...] = msg.raw_message
        readable: list[tuple[ConsumerRecord[bytes, bytes], Envelope[Any]]] = []
        for raw in records:
            if (raw.partition, raw.offset) in self.dead:
                continue
            envelope = self.read(raw)
            if isinstance(envelope, Envelope):
                readable.append((raw, envelope))
            else:
                reason, error = envelope
                await self.dead_letter(raw, reason, error, 1)
        if not readable:
            return
        try:
            for start in range(0, len(readable), self.per_transaction):
                part = [e for _, e in readable[start : start + self.per_transaction]]
                started = time.perf_counter()
                self.counted(await handle_once(self.store, self.group, part, self.apply), started)
            self.outages.clear()
            # Back towards whole batches, slowly: each timeout costs a whole transaction's time.
            self.per_transaction = min(self.per_transaction + 1, self.settings.consumer_batch_max_records)
            log.debug("handled a batch", extra={"topic": self.topic, "events": len(readable)})
            return
        except Exception as exc:
            if is_transient(exc):
                if isinstance(exc, PyMongoError) and exc.timeout and self.per_transaction > 1:
                    # An overloaded database: a transaction this large may never finish in time, and
                    # retrying it whole would never end. Halve it (the parts already done are skipped
                    # as duplicates when the batch comes again).
                    self.per_transaction = max(1, self.per_transaction // 2)
                    log.warning("transaction timed out; smaller ones", extra={"events": self.per_transaction})
                await self.retry_later(exc, readable)
                raise
            log.info(
                "a batch failed; handling its events one by one",
                extra={"topic": self.topic, "events": len(readable), "error": repr(exc)},
            )
        try:
            await self.one_by_one(readable)
            self.outages.clear()
        except Exception as exc:
            await self.retry_later(exc, readable)
            raise

    async def retry_later(
        self, exc: Exception, readable: list[tuple[ConsumerRecord[bytes, bytes], Any]]
    ) -> None:
        """The database or the broker is away or busy: the batch comes again after a pause, for as long
        as that lasts (nothing is dead-lettered for an outage)."""
        position = (readable[0][0].partition, readable[0][0].offset)
        attempts = self.outages.get(position, 0) + 1
        self.outages.clear()
        self.outages[position] = attempts
        events_consumed.labels(self.name, self.topic, "retried").inc(len(readable))
        log.warning(
            "handling failed; retrying",
            extra={"topic": self.topic, "offset": position[1], "attempt": attempts, "error": repr(exc)},
        )
        await self.backoff(attempts)
