"""What a subscriber downstream sees: when each lead's ``LeadQualified`` (or ``LeadDisqualified``) and
``DealOpened`` arrive on Kafka, on the benchmark's clock. Reads every partition from the end offsets
at the start, outside any consumer group, so it takes nothing from the services."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from kariz_shared.contracts.events import DealOpened, LeadDisqualified, LeadQualified

WATCHED = {
    LeadQualified.topic(): "qualified",
    LeadDisqualified.topic(): "disqualified",
    DealOpened.topic(): "deal",
}


@dataclass
class Arrivals:
    """First arrival per lead id, per kind (``qualified``, ``disqualified``, ``deal``)."""

    at: dict[str, dict[str, float]] = field(default_factory=lambda: {kind: {} for kind in WATCHED.values()})
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def count(self, kind: str, among: set[str]) -> int:
        return len(among & self.at[kind].keys())

    async def until(self, kind: str, among: set[str], *, stall_s: float) -> float:
        """Wait until every lead in ``among`` arrived as ``kind``; the time of the last arrival. Gives up
        when nothing new arrives for ``stall_s`` (a benchmark must end, and say what it saw)."""
        last_progress, seen, shown = time.monotonic(), -1, time.monotonic()
        while (now_seen := self.count(kind, among)) < len(among):
            if now_seen != seen:
                seen, last_progress = now_seen, time.monotonic()
            if time.monotonic() - shown >= 10:
                shown = time.monotonic()
                qualified = self.count("qualified", among)
                print(
                    f"  ... qualified {qualified:,}, {kind} {now_seen:,} of {len(among):,}", file=sys.stderr
                )
            elif time.monotonic() - last_progress > stall_s:
                raise TimeoutError(
                    f"{kind}: {now_seen} of {len(among)} arrived; nothing more for {stall_s:.0f}s"
                )
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=1.0)
        return max(self.at[kind][lead] for lead in among)


class Observer:
    def __init__(self, bootstrap: str) -> None:
        # A short fetch wait: the embedded broker holds a fetch for all of it even when records arrive, which
        # would add its wait to every latency measured (real Kafka answers at once either way).
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, fetch_max_wait_ms=20
        )
        self.arrivals = Arrivals()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Observer:
        await self.consumer.start()
        partitions = [
            TopicPartition(topic, p)
            for topic in WATCHED
            for p in sorted(self.consumer.partitions_for_topic(topic) or await self._partitions(topic))
        ]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolve the end offsets now: only what happens from here on counts
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._read())
        return self

    async def _partitions(self, topic: str) -> set[int]:
        await self.consumer._client.force_metadata_update()
        return self.consumer.partitions_for_topic(topic) or set()

    async def _read(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=200, max_records=5000)
            now = time.monotonic()
            for tp, records in batches.items():
                kind = WATCHED[tp.topic]
                seen = self.arrivals.at[kind]
                for record in records:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        seen.setdefault(json.loads(record.value)["lead_id"], now)
            if batches:
                self.arrivals.changed.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()
