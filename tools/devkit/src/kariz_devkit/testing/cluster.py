"""The four services as separate processes, with an SMTP server and a webhook receiver that record
every delivery (:mod:`kariz_devkit.sinks`), for the end-to-end and fault tests. Processes can be killed
(SIGKILL) and restarted.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kariz_devkit.devstack import ServiceProcess, start_service, wait_ready
from kariz_devkit.embedded import free_port
from kariz_devkit.sinks import DELIVERY_ID, Hooks, Inbox, Sinks
from kariz_devkit.testing import Backends, unique
from kariz_shared.system import SERVICE_NAMES

# The tests import these from here.
__all__ = [
    "DELIVERY_ID",
    "SERVICES",
    "Cluster",
    "Hooks",
    "Inbox",
    "Sinks",
    "standard_environment",
]

SERVICES = SERVICE_NAMES


@dataclass
class Cluster:
    """The four services as processes on ``backends``, each with a database of its own."""

    backends: Backends
    logs: Path
    environment: dict[str, str]
    databases: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    kills: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for name in SERVICES:
            self.databases[name] = unique(f"cluster_{name}")
            self.ports[name] = free_port()

    @property
    def urls(self) -> dict[str, str]:
        return {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}

    def start(self, name: str) -> ServiceProcess:
        env = {**self.environment, "KARIZ_MONGODB_DATABASE": self.databases[name]}
        self.processes[name] = start_service(name, self.ports[name], env, self.logs)
        return self.processes[name]

    async def start_all(self) -> None:
        for name in SERVICES:
            self.start(name)
        await wait_ready(list(self.processes.values()))

    def kill(self, name: str) -> None:
        """SIGKILL: no graceful shutdown, no flush; what was in flight is where the crash left it."""
        self.processes[name].kill()
        self.kills[name] += 1

    async def ready(self) -> None:
        await wait_ready(list(self.processes.values()))

    async def stop_all(self) -> dict[str, int | None]:
        codes = {}
        for name, process in self.processes.items():
            codes[name] = await asyncio.to_thread(process.stop)
        return codes

    async def chaos(
        self,
        rng: random.Random,
        *,
        kills: int,
        progress: Callable[[], float],
        down_s: tuple[float, float],
    ) -> None:
        """SIGKILL ``kills`` services at evenly spaced points of the traffic's ``progress`` (0 to 1), each
        restarted a moment later. Spacing by progress, not by the clock, keeps the kills inside the
        traffic however fast the run is. Every service is killed once before any is killed twice."""
        order = rng.sample(SERVICES, len(SERVICES))
        victims = [order[n % len(order)] for n in range(kills)]
        for n, victim in enumerate(victims, start=1):
            while progress() < n / (kills + 1):
                await asyncio.sleep(0.1)
            self.kill(victim)
            await asyncio.sleep(rng.uniform(*down_s))
            self.start(victim)


def standard_environment(backends: Backends, sinks: Sinks, reps: list[str]) -> dict[str, str]:
    """What every service of a test cluster runs with: short polls and leases, so crashes heal fast."""
    return {
        **backends.env(),
        "KARIZ_LOG_LEVEL": "INFO",
        "KARIZ_KAFKA_GROUP_PREFIX": unique("cluster"),
        "KARIZ_OUTBOX_POLL_INTERVAL_S": "1.0",
        "KARIZ_OUTBOX_LEASE_S": "3",
        "KARIZ_REPS": json.dumps(reps),
        "KARIZ_TEAM_EMAILS": json.dumps(["team@kariz.test"]),
        "KARIZ_HANDOVER_EMAILS": json.dumps(["onboarding@kariz.test"]),
        "KARIZ_DELIVERY_BACKOFF_S": "0.2",
        "KARIZ_DELIVERY_LEASE_S": "5",
        "KARIZ_SMTP_TIMEOUT_S": "3",
        # A whole send ends before its (short) lease runs out, or notifications refuses to start.
        "KARIZ_SMTP_DEADLINE_S": "4",
        "KARIZ_WEBHOOK_TIMEOUT_S": "3",
        **sinks.environment(["DealWon"]),
    }
