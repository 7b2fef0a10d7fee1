"""What the topics retain, read again: every record of some event topics published since a time, up to
the ends the topics had when the reading began (a subscription's replay, issue G).

Records are read as the consumers read them (:func:`kariz_shared.messaging.consumer.read_record`: the
event model, the one publisher's ``ce_source``); one that cannot be read is logged and skipped, as it
went to the dead letters when it was consumed. No consumer group: nothing is committed, and no
service's consumers are disturbed. The start is each partition's first offset whose record timestamp
(when the outbox published it) is at or after ``since`` (Kafka's ``offsets_for_times``; records before
``since`` are skipped as well, since a broker's time index may start a little early); within a
partition the records come in order, across partitions and topics in no particular order.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import Event
from kariz_shared.messaging.broker import kafka_client_options
from kariz_shared.messaging.consumer import read_record
from kariz_shared.runtime.settings import ServiceSettings
from kariz_shared.system import source_of

log = logging.getLogger(__name__)


class TopicHistory:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **kafka_client_options(self.settings),
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id=f"kariz-{self.settings.service_name}-history",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
        )

    async def since(self, kinds: Sequence[type[Event]], since: datetime) -> AsyncIterator[Envelope[Any]]:
        """The envelopes of ``kinds``' topics published at or after ``since``, up to the topics' ends now."""
        owners = {kind.topic(): source_of(kind) for kind in kinds}
        consumer = self._consumer()
        await consumer.start()
        try:
            await consumer.topics()
            partitions = [
                TopicPartition(topic, p)
                for topic in sorted(owners)
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            if not partitions:
                return
            ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
            since_ms = max(0, int(since.timestamp() * 1000))  # before 1970: from the start
            starts = await consumer.offsets_for_times(dict.fromkeys(partitions, since_ms))
            left = {
                tp: ends[tp]
                for tp in partitions
                if starts.get(tp) is not None and starts[tp].offset < ends[tp]
            }
            if not left:
                return
            consumer.assign(list(left))
            for tp in left:
                consumer.seek(tp, starts[tp].offset)
            while left:
                batches = await consumer.getmany(*left, timeout_ms=1000, max_records=500)
                for tp, records in batches.items():
                    for raw in records:
                        if tp not in left or raw.offset >= left[tp]:
                            break
                        if raw.timestamp < since_ms:
                            continue
                        read = read_record(tp.topic, owners[tp.topic], raw)
                        if isinstance(read, Envelope):
                            yield read
                        else:
                            log.warning(
                                "an unreadable record in a topic's history; skipped",
                                extra={"topic": tp.topic, "offset": raw.offset, "reason": read[0].value},
                            )
                for tp in list(left):
                    if await consumer.position(tp) >= left[tp]:
                        del left[tp]
        finally:
            await consumer.stop()
