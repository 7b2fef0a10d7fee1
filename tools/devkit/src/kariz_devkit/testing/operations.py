"""For the operations tests (tests/operations): Debian's Prometheus tools, the metric names a PromQL
expression uses, and a consumer-lag exporter standing in for kafka-exporter."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from kariz_shared.contracts.events import EVENTS


def debian_tool(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``; `make test` installs them first (`make prometheus`)."""
    path = shutil.which(name)
    assert path, f"{name} is not installed: run `make prometheus` (apt-get install prometheus)"
    return path


# --- the metric names in a PromQL expression -----------------------------------------------------------

_NOT_METRICS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: not functions, keywords, label names or label values."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (label values, regexes)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word, before = match.group(0), text[: match.start()]
        if before and (before[-1].isdigit() or before[-1] == "."):
            continue  # the exponent or unit of a number (1e3, 5m)
        if text[match.end() :].lstrip().startswith("(") or word.lower() in _NOT_METRICS:
            continue
        names.add(word)
    return names


# --- consumer lag, as kafka-exporter reports it --------------------------------------------------------


class ConsumerLagExporter:
    """Serves ``kafka_consumergroup_lag{consumergroup,topic,partition}`` and ``kafka_consumergroup_lag_sum
    {consumergroup,topic}``: the names and labels of kafka-exporter (danielqsj/kafka_exporter, which
    Strimzi's ``spec.kafkaExporter`` deploys), computed from the real broker's committed and end offsets.

    kafka-exporter itself is a Go binary no package registry here ships, so the operations test uses this
    stand-in to check that the dashboards' and alerts' lag queries work on those series.
    """

    def __init__(self, bootstrap: str, group_prefix: str, port: int) -> None:
        self.bootstrap = bootstrap
        self.group_prefix = group_prefix
        self.port = port
        self.registry = CollectorRegistry()
        self.lag = Gauge(
            "kafka_consumergroup_lag",
            "Current approximate lag of a consumer group at topic/partition",
            ["consumergroup", "topic", "partition"],
            registry=self.registry,
        )
        self.lag_sum = Gauge(
            "kafka_consumergroup_lag_sum",
            "Current approximate lag of a consumer group at topic for all partitions",
            ["consumergroup", "topic"],
            registry=self.registry,
        )

    async def measure(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            groups = [
                g for g, _ in await admin.list_consumer_groups() if g.startswith(f"{self.group_prefix}-")
            ]
        finally:
            await admin.close()
        by_kebab = {cls.kebab_name(): cls for cls in EVENTS.values()}
        for group in groups:
            event = by_kebab.get(group.rsplit(".", 1)[-1])
            if event is None:
                continue
            topic = event.topic()
            # A consumer that never subscribes does not join the group: it only reads its commits.
            reader = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False
            )
            await reader.start()
            try:
                partitions = reader.partitions_for_topic(topic)
                if not partitions:
                    await reader._client.force_metadata_update()
                    partitions = reader.partitions_for_topic(topic) or set()
                tps = [TopicPartition(topic, p) for p in sorted(partitions)]
                reader.assign(tps)
                ends = await reader.end_offsets(tps)
                total = 0
                for tp in tps:
                    lag = max(ends[tp] - (await reader.committed(tp) or 0), 0)
                    total += lag
                    self.lag.labels(group, topic, str(tp.partition)).set(lag)
                self.lag_sum.labels(group, topic).set(total)
            finally:
                await reader.stop()

    @contextlib.asynccontextmanager
    async def serving(self, interval_s: float = 1.0) -> AsyncIterator[None]:
        server, thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)

        async def loop() -> None:
            while True:
                with contextlib.suppress(Exception):
                    await self.measure()
                await asyncio.sleep(interval_s)

        task = asyncio.create_task(loop())
        try:
            yield
        finally:
            task.cancel()
            # A measure cancelled inside aiokafka's consumer stop may not end (seen with 60 groups: the
            # module's teardown hung until the test timeout); the exporter is a test's, so stop waiting.
            await asyncio.wait([task], timeout=10)
            server.shutdown()
            thread.join()
