"""``kariz-reports rebuild``: the projections made again from the retained topics, then switched to.

It reads every consumed topic from its beginning up to the ends it finds when it starts (no consumer
group: it commits nothing and takes no partition from the running consumers), folds each event into a
new generation with the same handlers, and, once it has read every partition to those ends, makes that
generation the one the reports read, in one write. While it runs, the service's consumers apply each
new event to the new generation too (see :mod:`kariz_reports.adapters.mongo`), so nothing that arrives
meanwhile is missed; applying an event twice changes no figure (the facts are idempotent). Its lag, the
records still to read, is ``kariz_reports_rebuild_lag_records`` on every replica's ``/metrics`` (from
the ``generations`` document). A rebuild that dies leaves ``building`` set; the next one starts that
generation afresh. The generation switched from stays until the next rebuild (a consumer's transaction
may still write it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from kariz_reports.adapters import metrics
from kariz_reports.adapters.mongo import (
    GENERATIONS,
    STATE_ID,
    Generations,
    MongoReportsUnitOfWork,
    deals_of,
    ensure_generation_indexes,
    figures_of,
    leads_of,
    read_generations,
)
from kariz_reports.service_layer.unit_of_work import ReportsUnitOfWork, Teams
from kariz_shared.contracts.envelope import Envelope
from kariz_shared.contracts.events import Event
from kariz_shared.messaging.broker import kafka_client_options
from kariz_shared.messaging.consumer import read_record
from kariz_shared.persistence.store import Store, Transaction
from kariz_shared.runtime.clock import Clock
from kariz_shared.runtime.settings import ServiceSettings
from kariz_shared.system import source_of

log = logging.getLogger(__name__)

Handle = Callable[[ReportsUnitOfWork, Any], Awaitable[None]]


@dataclass(frozen=True)
class Rebuilt:
    generation: int
    applied: int
    unreadable: int


async def drop_generation(store: Store, generation: int) -> None:
    for name in (leads_of(generation), deals_of(generation), figures_of(generation)):
        await store.db[name].drop()


class Rebuild:
    def __init__(
        self,
        store: Store,
        settings: ServiceSettings,
        clock: Clock,
        teams: Teams,
        zone: tzinfo,
        table: dict[type[Event], Handle],
        *,
        progress_every: int = 1000,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.teams = teams
        self.zone = zone
        self.table = table
        self.progress_every = progress_every

    async def _set(self, values: dict[str, Any]) -> None:
        # Before any rebuild the document may not exist: the projections are then generation 1.
        first = {} if "active" in values else {"$setOnInsert": {"active": 1}}
        await self.store.db[GENERATIONS].update_one({"_id": STATE_ID}, {"$set": values, **first}, upsert=True)

    async def _begin(self) -> int:
        state = await read_generations(self.store.db)
        new = state.building if state.building is not None else state.active + 1
        # The generation before the active one stayed after the last switch (a consumer's transaction
        # begun before it may still have written there); it goes now, as does a dead rebuild's.
        for old in range(1, state.active):
            await drop_generation(self.store, old)
        await drop_generation(self.store, new)
        await ensure_generation_indexes(self.store, new)
        # Set before the topics' ends are read: every event past those ends then reaches ``new`` through
        # the running consumers (their transactions read this document).
        await self._set(
            {
                "active": state.active,
                "building": new,
                "rebuild_lag": 0,
                "rebuild_started_at": self.clock.now(),
            }
        )
        metrics.rebuilding.set(1)
        return new

    async def _apply(self, generation: int, envelopes: list[Envelope[Any]]) -> None:
        async def work(tx: Transaction) -> None:
            for envelope in envelopes:
                uow = MongoReportsUnitOfWork(tx, self.clock, generation, self.teams, self.zone)
                await self.table[type(envelope.event)](uow, envelope.event)

        await self.store.transaction(work, timeout_s=max(60.0, self.settings.mongodb_transaction_timeout_s))

    async def run(self) -> Rebuilt:
        generation = await self._begin()
        owners = {cls.topic(): source_of(cls) for cls in self.table}
        consumer = AIOKafkaConsumer(
            **kafka_client_options(self.settings),
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id="kariz-reports-rebuild",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        applied = unreadable = 0
        try:
            await consumer.topics()
            partitions = [
                TopicPartition(topic, p)
                for topic in owners
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions) if partitions else {}
            pending = [tp for tp in partitions if ends[tp] > 0]
            if pending:
                consumer.assign(pending)
                await consumer.seek_to_beginning(*pending)
            positions = {tp: 0 for tp in pending}
            since_progress = 0
            while any(positions[tp] < ends[tp] for tp in pending):
                batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = await consumer.getmany(
                    timeout_ms=1000, max_records=500
                )
                envelopes: list[Envelope[Any]] = []
                for tp, records in batches.items():
                    for raw in records:
                        if raw.offset >= ends[tp]:
                            continue  # arrived after the start: the consumers bring it to this generation
                        read = read_record(tp.topic, owners[tp.topic], raw)
                        if isinstance(read, Envelope):
                            envelopes.append(read)
                        else:
                            unreadable += 1  # its consumer dead-lettered it when it first came
                    positions[tp] = await consumer.position(tp)
                if envelopes:
                    await self._apply(generation, envelopes)
                    applied += len(envelopes)
                    since_progress += len(envelopes)
                lag = sum(max(0, ends[tp] - positions[tp]) for tp in pending)
                metrics.rebuild_lag.set(lag)
                if since_progress >= self.progress_every or lag == 0:
                    since_progress = 0
                    await self._set({"rebuild_lag": lag})
                    log.info("rebuilding the reports", extra={"generation": generation, "lag": lag})
        finally:
            await consumer.stop()
        await self.store.db[GENERATIONS].update_one(
            {"_id": STATE_ID},
            {
                "$set": {
                    "active": generation,
                    "building": None,
                    "rebuild_lag": 0,
                    "switched_at": self.clock.now(),
                }
            },
        )
        metrics.rebuilding.set(0)
        metrics.generation.set(generation)
        log.info("the reports switched to a rebuilt generation", extra={"generation": generation})
        return Rebuilt(generation, applied, unreadable)


async def refresh_gauges(store: Store) -> None:
    state: Generations = await read_generations(store.db)
    metrics.generation.set(state.active)
    metrics.rebuilding.set(1 if state.building is not None else 0)
    metrics.rebuild_lag.set(state.rebuild_lag if state.building is not None else 0)
