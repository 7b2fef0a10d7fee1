"""The consumer wrapper: how every Kariz service takes events from Kafka.

For each record: read the envelope (CloudEvents headers + JSON value) into the event model; apply the
handler once, in one transaction with the "handled" marker and any events it emits; then commit the
offset. What cannot be read, or what the handler rejects, goes to ``<topic>.dlq`` with the reason (a
``dlq_reason`` header, see :class:`kariz_shared.deadletters.DeadLetterReason`) and the partition keeps
flowing. A failure of the database or the broker is retried, with backoff, until it passes; any other
failure is retried ``consumer_max_attempts`` times, then dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError

from kariz_shared.deadletters import DeadLetterReason
from kariz_shared.envelope import Envelope, InvalidEnvelope, decode
from kariz_shared.errors import RejectedEvent
from kariz_shared.events import Event, dead_letter_topic
from kariz_shared.logging import correlation_id
from kariz_shared.messaging import send_to_dead_letters
from kariz_shared.metrics import dead_letters, event_handle_seconds, events_consumed
from kariz_shared.persistence import Transaction

if TYPE_CHECKING:
    from kariz_shared.service import Service

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


async def _raw_body(msg: StreamMessage[Any]) -> bytes:
    """Leave the value as bytes: FastStream would parse a JSON ``content-type`` itself and fail before the
    wrapper sees the record, so a value that is not JSON would be retried for ever instead of
    dead-lettered."""
    return bytes(msg.body)


def subscribe(
    service: Service, event_cls: type[E], handler: Handler[E], *, group_id: str | None = None
) -> None:
    """Register ``handler`` for ``event_cls`` on ``service``'s broker, wrapped as described above."""
    settings = service.settings
    topic = event_cls.topic()
    group = group_id or settings.consumer_group(event_cls.kebab_name())
    name = settings.service_name
    failures: dict[tuple[int, int], int] = {}
    # Every series exists from the start at 0, so increase() and alerts see the first dead letter.
    for known in DeadLetterReason:
        dead_letters.labels(name, topic, known.value)

    async def dead_letter(msg: Any, reason: DeadLetterReason, error: str, attempts: int) -> None:
        raw: ConsumerRecord[bytes, bytes] = msg.raw_message
        await send_to_dead_letters(
            service.broker,
            topic=topic,
            partition=raw.partition,
            offset=raw.offset,
            key=raw.key,
            value=msg.body,
            headers={
                k: (v.decode(errors="backslashreplace") if isinstance(v, bytes) else str(v))
                for k, v in (raw.headers or [])
            },
            consumer_group=group,
            reason=reason,
            error=error,
            attempts=attempts,
        )
        dead_letters.labels(name, topic, reason.value).inc()
        events_consumed.labels(name, topic, "dead_lettered").inc()
        log.error(
            "dead-lettered a message",
            extra={
                "topic": topic,
                "partition": raw.partition,
                "offset": raw.offset,
                "reason": reason.value,
                "attempts": attempts,
                "error": error,
            },
        )

    # Declared so the AsyncAPI document shows where this consumer's dead letters go.
    service.broker.publisher(
        dead_letter_topic(topic),
        title=f"{dead_letter_topic(topic)}:{group}",
        description=f"Dead letters of {group}: original key, value and headers plus dlq_* headers "
        "(original topic, partition, offset, consumer group, reason, error, attempts, failed_at)",
    )

    @service.broker.subscriber(
        topic,
        group_id=group,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        # The offset is committed only after the transaction committed; a raise seeks back and retries.
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_raw_body,
        title=f"{topic}:{group}",
        description=f"{settings.service_name} handles {event_cls.__name__}",
    )
    async def consume(msg: KafkaMessage) -> None:
        raw: ConsumerRecord[bytes, bytes] = msg.raw_message  # never a batch: batch=False
        position = (raw.partition, raw.offset)
        headers = {k: v for k, v in (raw.headers or [])}
        try:
            envelope: Envelope[Any] = decode(topic, raw.key, msg.body, headers)
        except InvalidEnvelope as exc:
            await dead_letter(msg, exc.reason, str(exc), 1)
            return
        except Exception as exc:
            # Reading a record is pure: what fails once fails every time, so retrying would only stop
            # the partition.
            await dead_letter(msg, DeadLetterReason.INVALID_ENVELOPE, f"{type(exc).__name__}: {exc}", 1)
            return
        token = correlation_id.set(envelope.correlation_id)
        started = time.perf_counter()
        try:
            handled = await service.store.handle_once(group, envelope, lambda tx: handler(envelope.event, tx))
            outcome = "processed" if handled else "duplicate"
            events_consumed.labels(name, topic, outcome).inc()
            log.debug("handled an event", extra={"topic": topic, "event_id": envelope.id, "outcome": outcome})
            failures.pop(position, None)
        except RejectedEvent as exc:
            await dead_letter(msg, DeadLetterReason.REJECTED, f"{type(exc).__name__}: {exc}", 1)
            failures.pop(position, None)
        except Exception as exc:
            attempts = failures.get(position, 0) + 1
            transient = is_transient(exc)
            if not transient and attempts >= settings.consumer_max_attempts:
                # Forgotten only once the dead letter is out: if publishing it fails, the record is
                # retried and dead-lettered at its next failure rather than after a fresh round of tries.
                await dead_letter(
                    msg, DeadLetterReason.HANDLER_FAILED, f"{type(exc).__name__}: {exc}", attempts
                )
                failures.pop(position, None)
                return
            failures[position] = attempts
            events_consumed.labels(name, topic, "retried").inc()
            log.warning(
                "handling failed; retrying",
                extra={"topic": topic, "offset": raw.offset, "attempt": attempts, "transient": transient},
                exc_info=not transient,
            )
            await asyncio.sleep(min(settings.consumer_retry_backoff_s * 2 ** min(attempts, 6), 10.0))
            raise
        finally:
            event_handle_seconds.labels(name, topic).observe(time.perf_counter() - started)
            correlation_id.reset(token)
