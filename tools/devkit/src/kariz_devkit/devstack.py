"""``kariz-dev``: the whole of Kariz on one machine (``make run``), or just its backends (``make backends``).

``kariz-dev run`` starts the embedded broker and one embedded database per service (unless
``KARIZ_KAFKA_BOOTSTRAP_SERVERS`` and ``KARIZ_MONGODB_URI`` point at real ones), creates the topics,
starts a mail sink and a webhook sink so notifications can be seen, starts the four services as separate
processes, waits until every ``/readyz`` answers, prints where everything is, and on Ctrl-C stops it all
cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from kariz_devkit.embedded import ChildProcess, EmbeddedBackends
from kariz_devkit.issuer import LocalIssuer
from kariz_devkit.orphans import guarded
from kariz_devkit.sinks import WEBHOOK_PATH, Sinks
from kariz_devkit.testing import EMBEDDED_CONSUMER_TUNING
from kariz_shared.contracts.identity import Role
from kariz_shared.messaging.broker import ensure_topics
from kariz_shared.system import SERVICES, service

SERVICE_PORTS = {entry.name: entry.port for entry in SERVICES}
KAFKA_PORT = 9092
MONGODB_PORT = 27017  # the first service's database; each next one of SERVICES the next port
SMTP_PORT = 8025
WEBHOOK_PORT = 8005
ISSUER_PORT = 8090
ISSUER_FILE = "issuer.json"  # the dev issuer's keys, so `kariz-dev token` signs for the running stack
# Who is on which team in dev: a manager of "emea" sees Alex's and Sam's leads and deals.
DEV_TEAMS = {"emea": ["alex@kariz.example", "sam@kariz.example"]}
# The dev sink's secret (at least 32 bytes, as every subscriber's); real subscribers configure their own.
WEBHOOK_SECRET = "kariz-dev-webhook-secret-0123456789"
DEFAULT_DATA_DIR = ".kariz-data"


@dataclass
class ServiceProcess(ChildProcess):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 20.0) -> int | None:
        return super().stop(timeout)


def start_service(name: str, port: int, env: dict[str, str], log_dir: Path) -> ServiceProcess:
    """Start one service as its own process, as ``python -m kariz_<name>`` (what ``kariz-<name>`` runs)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = (log_dir / f"{name}.log").open("ab")
    full_env = {**os.environ, **env, "KARIZ_HTTP_PORT": str(port)}
    process = subprocess.Popen(
        guarded([sys.executable, "-m", service(name).package]),
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return ServiceProcess(name, process, log, port=port)


async def wait_ready(services: list[ServiceProcess], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    pending = {s.name: s for s in services}
    async with httpx.AsyncClient(timeout=2.0) as client:
        while pending:
            for name, svc in list(pending.items()):
                if svc.process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {svc.process.returncode}; see its log")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{svc.url}/readyz")).status_code == 200:
                        del pending[name]
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout:.0f}s: {', '.join(pending)}")
            await asyncio.sleep(0.25)


# --- the commands -------------------------------------------------------------------------------


def database_ports(first: int) -> dict[str, int]:
    """A database of its own for each service of the registry, on ``first``, ``first + 1``, ..."""
    return {entry.name: first + n for n, entry in enumerate(SERVICES)}


def _backends_wanted() -> bool:
    return not (os.environ.get("KARIZ_KAFKA_BOOTSTRAP_SERVERS") and os.environ.get("KARIZ_MONGODB_URI"))


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _run(args: argparse.Namespace, with_services: bool) -> None:
    data = Path(args.data_dir).resolve()
    embedded: EmbeddedBackends | None = None
    services: list[ServiceProcess] = []
    sinks: Sinks | None = None
    issuer: LocalIssuer | None = None
    try:
        if _backends_wanted():
            db_ports = database_ports(args.mongodb_port)
            listed = ", ".join(f"{name} :{port}" for name, port in db_ports.items())
            print(f"starting the embedded broker (:{args.kafka_port}) and databases ({listed}) ...")
            # A developer's data survives a killed `make run` (the databases sync each commit). Each
            # service has a database process of its own: one process is one core at most.
            embedded = EmbeddedBackends(
                kafka_port=args.kafka_port,
                mongodb_port=args.mongodb_port,
                data_dir=data,
                sync_on_commit=True,
                service_databases=db_ports,
            )
            await asyncio.to_thread(embedded.start)
            databases = embedded.mongodb_uris
            env = {
                "KARIZ_KAFKA_BOOTSTRAP_SERVERS": embedded.kafka_bootstrap,
                "KARIZ_KAFKA_ENABLE_IDEMPOTENCE": "false",  # Tansu has no InitProducerId
                **{f"KARIZ_{k.upper()}": str(v) for k, v in EMBEDDED_CONSUMER_TUNING.items()},
            }
        else:
            print("using the Kafka and MongoDB from KARIZ_KAFKA_BOOTSTRAP_SERVERS / KARIZ_MONGODB_URI")
            env, databases = {}, {}
        bootstrap = env.get("KARIZ_KAFKA_BOOTSTRAP_SERVERS") or os.environ["KARIZ_KAFKA_BOOTSTRAP_SERVERS"]
        created = await ensure_topics(bootstrap, partitions=args.partitions)
        print(f"topics ready ({len(created)} created)")

        if with_services:
            issuer = LocalIssuer(port=args.issuer_port).start()
            issuer.save(data / ISSUER_FILE)
            env |= issuer.environment() | {
                "KARIZ_TEAMS": json.dumps(DEV_TEAMS),
                "KARIZ_API_DOCS": "true",
                "KARIZ_WEBHOOK_ALLOW_HTTP": "true",  # the dev webhook sink is local, plain http
                # Content e-mails carry signed unsubscribe links; without a key none is sent.
                "KARIZ_UNSUBSCRIBE_SECRET": "dev-unsubscribe-links-only-not-for-production",
            }
            ports = {"smtp_port": args.smtp_port, "webhook_port": args.webhook_port}
            sinks = await Sinks(WEBHOOK_SECRET, **ports, folder=data, echo=True).start()
            env |= sinks.environment(subscriber="dev-sink")
            for name, port in SERVICE_PORTS.items():
                own = {"KARIZ_MONGODB_URI": databases[name]} if name in databases else {}
                services.append(start_service(name, port, env | own, data / "logs"))
            print(f"starting {', '.join(SERVICE_PORTS)} ...")
            await wait_ready(services)

        _print_summary(data, bootstrap, env, databases, services, args, with_services)
        await _until_stopped()
        print("\nstopping ...")
    finally:
        for svc in reversed(services):
            await asyncio.to_thread(svc.stop)
        if sinks is not None:
            await sinks.stop()
        if issuer is not None:
            issuer.stop()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        print("stopped")


def _print_summary(
    data: Path,
    bootstrap: str,
    env: dict[str, str],
    databases: dict[str, str],
    services: list[ServiceProcess],
    args: argparse.Namespace,
    with_services: bool,
) -> None:
    print("\nKariz is running.\n" if with_services else "\nThe broker and the databases are running.\n")
    for svc in services:
        print(f"  {svc.name:<14} {svc.url}   (log: {data / 'logs' / (svc.name + '.log')})")
    print(f"  {'kafka':<14} {bootstrap}")
    for name, uri in databases.items():
        print(f"  {'mongodb':<14} {uri}   ({name})")
    if not databases:
        print(f"  {'mongodb':<14} {os.environ.get('KARIZ_MONGODB_URI')}")
    if with_services:
        print(f"  {'mail sink':<14} smtp://127.0.0.1:{args.smtp_port}  -> {data / 'mail'}")
        hook_url = f"http://127.0.0.1:{args.webhook_port}{WEBHOOK_PATH}"
        print(f"  {'webhook sink':<14} {hook_url}  -> {data / 'webhooks'}")
        print(f"  {'sign-in':<14} {env.get('KARIZ_AUTH_ISSUER')}  (a local issuer; tokens from it:)")
        print("                 kariz-dev token --user alex@kariz.example --role rep --team emea")
    print(f"  {'data':<14} {data}\n\nCtrl-C stops everything.", flush=True)


async def _tail(bootstrap: str, topics: list[str], follow: bool) -> None:
    """Print each record of the topics from the beginning: key, headers and value."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for r in records:
                    headers = {k: v.decode(errors="backslashreplace") for k, v in r.headers}
                    print(
                        json.dumps(
                            {
                                "topic": r.topic,
                                "partition": r.partition,
                                "offset": r.offset,
                                "key": r.key.decode() if r.key else None,
                                "headers": headers,
                                "value": json.loads(r.value or b"null"),
                            }
                        ),
                        flush=True,
                    )
            if not batches and not follow:
                return
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="kariz-dev", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "command",
        choices=["run", "backends", "tail", "token"],
        help="run: everything; backends: broker + one database per service; tail TOPIC...: print records; "
        "token: print a bearer token from the running stack's issuer",
    )
    parser.add_argument("topics", nargs="*", help="with tail: the topics to print")
    parser.add_argument("--follow", action="store_true", help="with tail: keep waiting for new records")
    parser.add_argument("--data-dir", default=os.environ.get("KARIZ_DATA_DIR", DEFAULT_DATA_DIR))
    parser.add_argument("--kafka-port", type=int, default=KAFKA_PORT)
    parser.add_argument(
        "--mongodb-port",
        type=int,
        default=MONGODB_PORT,
        help="the first service's database; the others on the next ports, in the registry's order",
    )
    parser.add_argument("--smtp-port", type=int, default=SMTP_PORT)
    parser.add_argument("--webhook-port", type=int, default=WEBHOOK_PORT)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--issuer-port", type=int, default=ISSUER_PORT)
    parser.add_argument("--user", default="alex@kariz.example", help="with token: who signs in")
    parser.add_argument(
        "--role", action="append", choices=[r.value for r in Role], help="with token: a role (repeatable)"
    )
    parser.add_argument("--team", default=None, help="with token: the user's team, e.g. emea")
    parser.add_argument("--ttl", type=float, default=8 * 3600, help="with token: seconds it is valid")
    args = parser.parse_args()
    if args.command == "token":
        saved = Path(args.data_dir) / ISSUER_FILE
        if not saved.exists():
            parser.error(f"no dev issuer at {saved}: start the stack first (make run)")
        issuer = LocalIssuer.load(saved)
        print(issuer.token(args.user, args.role or [Role.REP.value], team=args.team, ttl_s=args.ttl))
        return
    if args.command == "tail":
        bootstrap = os.environ.get("KARIZ_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{args.kafka_port}")
        asyncio.run(_tail(bootstrap, args.topics or ["kariz.deal-won.v1"], args.follow))
        return
    asyncio.run(_run(args, with_services=args.command == "run"))


if __name__ == "__main__":
    main()
