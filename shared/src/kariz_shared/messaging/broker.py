"""Kafka: the broker, the topics, and the dead letters."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLScram512

from kariz_shared.contracts.deadletters import DeadLetterReason, dead_letter_headers
from kariz_shared.contracts.events import EVENTS_BY_TOPIC, all_topics, dead_letter_topic
from kariz_shared.runtime.metrics import registry
from kariz_shared.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)

#: Headers FastStream puts on every record it publishes, whether or not the caller gave them.
FASTSTREAM_HEADERS = ("content-type", "correlation_id")


def kafka_tls_context(settings: ServiceSettings) -> ssl.SSLContext | None:
    """The TLS the brokers are spoken to with, or None for plaintext. Certificates and host names are
    verified (the default context): against the given CA, else the system's."""
    if not settings.kafka_tls:
        return None
    context = ssl.create_default_context(cafile=settings.kafka_tls_ca_file or None)
    if settings.kafka_tls_cert_file:
        context.load_cert_chain(settings.kafka_tls_cert_file, settings.kafka_tls_key_file or None)
    return context


def kafka_security(settings: ServiceSettings) -> BaseSecurity | None:
    """FastStream's security for the settings: SCRAM-SHA-512 (over TLS when it is on), TLS alone, or
    None: plaintext without authentication, as the embedded broker speaks."""
    context = kafka_tls_context(settings)
    if settings.kafka_sasl_username:
        return SASLScram512(
            settings.kafka_sasl_username,
            settings.kafka_sasl_password.get_secret_value(),
            ssl_context=context,
            use_ssl=context is not None,
        )
    if context is not None:
        return BaseSecurity(ssl_context=context)
    return None


def kafka_client_options(settings: ServiceSettings) -> dict[str, Any]:
    """The same security as keyword arguments of a plain aiokafka client (the topic admin, ``kariz-dlq``)."""
    return parse_security(kafka_security(settings))


async def start_consuming(broker: KafkaBroker) -> None:
    """``KafkaBroker.start`` (connect, then every subscriber, then the publishers) with the subscribers
    started together: aiokafka's ``start`` of a group consumer waits for its partitions (a join and a
    sync, about 2 s on the embedded broker), so one after the other a service with eight consumers took
    16 s to start, and every restart in the fault tests paid it again."""
    await broker.connect()
    await asyncio.gather(*(subscriber.start() for subscriber in broker.subscribers))
    for publisher in broker.publishers:
        await publisher.start()
    broker.running = True


def make_broker(settings: ServiceSettings) -> KafkaBroker:
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"kariz-{settings.service_name}",
        security=kafka_security(settings),
        enable_idempotence=settings.kafka_enable_idempotence,
        acks="all",
        # Topics are created on purpose (dev stack, Strimzi), never as a side effect of a typo.
        allow_auto_create_topics=False,
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=f"kariz-{settings.service_name}")],
        logger=logging.getLogger(f"kariz.{settings.service_name}.kafka"),
        log_level=logging.DEBUG,
        graceful_timeout=settings.shutdown_grace_s,
    )


def topic_configs(topic: str) -> dict[str, str]:
    """A state topic (``Event.compacted``) keeps the newest record per key; every other topic deletes
    after its retention. Dead-letter topics are never compacted: each dead letter counts."""
    event = EVENTS_BY_TOPIC.get(topic)
    return {"cleanup.policy": "compact" if event is not None and event.compacted else "delete"}


async def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str] | None = None,
    *,
    partitions: int = 3,
    replication_factor: int = 1,
    client_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet. Returns the ones created. ``client_options``: the
    cluster's security (:func:`kafka_client_options`)."""
    wanted = list(topics if topics is not None else all_topics())
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id="kariz-topics", **(client_options or {})
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            try:
                await admin.create_topics(
                    [
                        NewTopic(
                            t,
                            num_partitions=partitions,
                            replication_factor=replication_factor,
                            topic_configs=topic_configs(t),
                        )
                        for t in missing
                    ]
                )
            except TopicAlreadyExistsError:
                pass  # created by someone else in between: that is what we wanted
        return missing
    finally:
        await admin.close()


async def send_to_dead_letters(
    broker: KafkaBroker,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes,
    headers: dict[str, str],
    consumer_group: str,
    reason: DeadLetterReason,
    error: str,
    attempts: int,
) -> None:
    """Publish a message that cannot be handled to ``<topic>.dlq``, with headers naming why and where from.

    The original key, value and headers are kept so the message can be replayed (``kariz-dlq replay``).
    """
    dlq_headers = dead_letter_headers(
        headers,
        topic=topic,
        partition=partition,
        offset=offset,
        consumer_group=consumer_group,
        reason=reason,
        error=error,
        attempts=attempts,
        client_headers=FASTSTREAM_HEADERS,
    )
    # FastStream sets these two on every record: keep the original's values when it had them.
    await broker.publish(
        value,
        dead_letter_topic(topic),
        key=key,
        headers=dlq_headers,
        correlation_id=headers.get("correlation_id"),
    )
