"""``kariz-bench`` (``make bench``): in one run on one set of backends,

1. the raw ceiling: the same Kafka hops and MongoDB writes with bare aiokafka and PyMongo;
2. Kariz's sustained throughput, leads/s from capture to deal opened, one replica of each service;
3. latency from capture to ``LeadQualified`` and to deal opened at half that throughput;
4. the same throughput with two replicas of each consuming service;
5. a CSV import of ``--import-rows`` generated rows (``POST /imports``), rows/s to done;
6. (``--phases reports``, not by default) the reports' answer times over ``--report-deals`` deals while
   new deals' events keep arriving;

with peak memory per service and CPU seconds per lead, printed as a table and written as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from kariz_bench.csv_import import CsvImportRun, csv_import
from kariz_bench.observer import Observer
from kariz_bench.picture import draw
from kariz_bench.plans import collection_scans
from kariz_bench.stack import PARTITIONS, Backend, Meter, Stack, Usage, backends, drop_databases
from kariz_bench.traffic import Sent, capture_all, capture_at_rate, hot_leads, import_all
from kariz_devkit.testing.cluster import Sinks
from kariz_shared.system import SERVICE_NAMES


@dataclass
class Throughput:
    replicas: int
    leads: int
    ingest: str
    captured_s: float
    elapsed_s: float
    leads_per_second: float
    capture_per_second: float
    requests: int
    retries: int
    usage: dict[str, Usage] = field(default_factory=dict)
    #: Deals opened in each second from the first lead sent: a stall or a slowdown shows as a dip.
    deals_per_second: list[int] = field(default_factory=list)
    #: Capture (its import sent) -> deal opened, ms: the 0th to 100th percentile, for the picture.
    to_deal_opened_distribution_ms: list[float] = field(default_factory=list)

    @property
    def cpu_s_per_lead(self) -> float:
        return sum(u.cpu_s for u in self.usage.values()) / self.leads


@dataclass
class Latency:
    offered_per_second: float
    leads: int
    to_qualified_ms: dict[str, float]
    to_deal_opened_ms: dict[str, float]
    deals_per_second: list[int] = field(default_factory=list)
    to_deal_opened_distribution_ms: list[float] = field(default_factory=list)


def percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p95": round(cuts[94], 1), "p99": round(cuts[98], 1)}


def distribution(values: list[float]) -> list[float]:
    """The 0th, 1st, ... 100th percentile of ``values``: the latency curve, 101 points whatever the run."""
    ordered = sorted(values)
    if len(ordered) < 2:  # quantiles need two; one lead is its own curve
        return [round(v, 1) for v in ordered]
    return [
        round(ordered[0], 1),
        *(round(c, 1) for c in statistics.quantiles(ordered, n=100, method="inclusive")),
        round(ordered[-1], 1),
    ]


def per_second(started: float, times: list[float]) -> list[int]:
    """How many of ``times`` fell in each whole second from ``started`` (none before it)."""
    if not times:
        return []
    counts = [0] * (int(max(times) - started) + 1)
    for t in times:
        counts[max(0, int(t - started))] += 1
    return counts


def to_deal_opened(sent: Sent, observer: Observer) -> tuple[list[int], list[float]]:
    """The deals opened per second from the first lead sent and the capture -> deal opened times (ms)."""
    deals = observer.arrivals.at["deal"]
    started = min(sent.at.values())
    return (
        per_second(started, [deals[i] for i in sent.at]),
        distribution([(deals[i] - t) * 1000 for i, t in sent.at.items()]),
    )


async def ingest(
    http: httpx.AsyncClient, stack: Stack, bodies: list[dict[str, Any]], args: argparse.Namespace
) -> Sent:
    if args.ingest == "import":
        return await import_all(http, stack.leads_url, bodies, chunk=args.chunk, in_flight=args.in_flight)
    return await capture_all(http, stack.leads_url, bodies, concurrency=args.concurrency)


def end_to_end_s(started: float, captured_s: float, last_deal: float) -> float:
    """From the first import sent to the last deal opened, and not before the last import was answered:
    an import retried after a lost answer (its first try committed) has its deals out before its answer
    comes back, and the sender has not seen its leads taken until then."""
    return max(last_deal - started, captured_s)


async def throughput(
    http: httpx.AsyncClient,
    stack: Stack,
    observer: Observer,
    bodies: list[dict[str, Any]],
    args: argparse.Namespace,
) -> Throughput:
    # Warm-up, not measured: every consumer group has settled (all replicas joined, partitions assigned)
    # and every path has run once before the clock starts.
    warm = await import_all(http, stack.leads_url, bodies[: args.warmup], chunk=args.warmup, in_flight=1)
    await observer.arrivals.until("deal", warm.ids, stall_s=args.stall_s)
    bodies = bodies[args.warmup :]
    with stack.meter() as meter:
        started = time.monotonic()
        sent = await ingest(http, stack, bodies, args)
        captured = time.monotonic() - started
        last = await observer.arrivals.until("deal", sent.ids, stall_s=args.stall_s)
    elapsed = end_to_end_s(started, captured, last)
    timeline, took = to_deal_opened(sent, observer)
    return Throughput(
        replicas=stack.replicas,
        leads=len(sent.ids),
        ingest=args.ingest,
        captured_s=round(captured, 2),
        elapsed_s=round(elapsed, 2),
        leads_per_second=round(len(sent.ids) / elapsed, 1),
        capture_per_second=round(len(sent.ids) / captured, 1),
        requests=sent.requests,
        retries=sent.retries,
        usage=meter.usage,
        deals_per_second=timeline,
        to_deal_opened_distribution_ms=took,
    )


async def latency(
    http: httpx.AsyncClient,
    stack: Stack,
    observer: Observer,
    bodies: list[dict[str, Any]],
    per_second: float,
    stall_s: float,
) -> Latency:
    sent = await capture_at_rate(http, stack.leads_url, bodies, per_second=per_second)
    await observer.arrivals.until("deal", sent.ids, stall_s=stall_s)
    at = observer.arrivals.at
    timeline, took = to_deal_opened(sent, observer)
    return Latency(
        offered_per_second=round(per_second, 1),
        leads=len(sent.ids),
        to_qualified_ms=percentiles([(at["qualified"][i] - t) * 1000 for i, t in sent.at.items()]),
        to_deal_opened_ms=percentiles([(at["deal"][i] - t) * 1000 for i, t in sent.at.items()]),
        deals_per_second=timeline,
        to_deal_opened_distribution_ms=took,
    )


async def on_stack(backend: Backend, replicas: int, logs: Path, work: Any, *, profile: bool = False) -> Any:
    sinks = await Sinks().start()
    stack = Stack(backend, sinks, logs, replicas=replicas)
    try:
        await stack.start(profile=profile)
        observer = await Observer(backend.backends.kafka_bootstrap).start()
        try:
            headers = {"Authorization": f"Bearer {stack.token}"}
            async with httpx.AsyncClient(timeout=120, headers=headers) as http:
                return await work(http, stack, observer)
        finally:
            await observer.stop()
    finally:
        await stack.stop()
        await sinks.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Each phase on backends of its own (fresh embedded ones, or the external ones again), so none
    starts with another's data in the database or records in the topics."""
    tag = uuid.uuid4().hex[:6]
    layout = {
        "shared_database": args.shared_database,
        "standalone": args.standalone,
        "released_database": args.released_database,
        "sync_on_commit": args.sync_on_commit,
    }
    logs = Path(args.logs or tempfile.mkdtemp(prefix="kariz-bench-logs-"))
    phases = set(args.phases.split(","))
    results: dict[str, Any] = {}
    say(f"drawing {args.leads:,} hot leads (seed {args.seed}) ...")
    bodies = hot_leads(args.warmup + args.leads, seed=args.seed, run_tag=tag)
    if phases & {"throughput", "latency"}:

        async def single(http: httpx.AsyncClient, stack: Stack, observer: Observer) -> None:
            say(f"Kariz, 1 replica: {args.leads:,} leads by {args.ingest} ...")
            one = results["one_replica"] = await throughput(http, stack, observer, bodies, args)
            say(
                f"  {one.leads_per_second:,.1f} leads/s end to end ({one.capture_per_second:,.1f}/s captured)"
            )
            if args.plans:
                uris = {name: stack.backend.mongodb_uri_of(name) for name in stack.databases}
                found = results["collection_scans"] = await collection_scans(uris, stack.databases)
                say(f"  {len(found)} filter shapes answered with a collection scan (see the JSON)")
                for scan in found:
                    say(
                        f"    {scan.times:>6} x {scan.service}.{scan.collection} "
                        f"({scan.documents:,} docs, {scan.ms} ms once) {scan.shape}"
                    )
            if "latency" in phases:
                # At half load on an idle system: not while notifications still work off the backlog.
                waited = await stack.until_idle()
                say(f"  idle after {waited:,.0f} s more")
                rate = args.latency_rate or one.leads_per_second / 2
                count = min(args.latency_leads, max(200, int(rate * args.latency_s)))
                say(f"latency: {count:,} leads one by one at {rate:,.1f}/s ...")
                late = hot_leads(count, seed=args.seed + 1, run_tag=tag + "l")
                results["latency"] = await latency(http, stack, observer, late, rate, args.stall_s)
                say(f"  to deal opened {results['latency'].to_deal_opened_ms}")

        async with backends(**layout) as backend:
            results["backends"] = backend.kind
            await on_stack(backend, 1, logs / "one", single, profile=args.plans)
    if "replicas" in phases:
        more = hot_leads(args.warmup + args.replica_leads, seed=args.seed + 2, run_tag=tag + "r")

        async def double(http: httpx.AsyncClient, stack: Stack, observer: Observer) -> Throughput:
            say(f"Kariz, 2 replicas: {args.replica_leads:,} leads by {args.ingest} ...")
            return await throughput(http, stack, observer, more, args)

        async with backends(**layout) as backend:
            results["backends"] = backend.kind
            two: Throughput = await on_stack(backend, 2, logs / "two", double)
        results["two_replicas"] = two
        say(f"  {two.leads_per_second:,.1f} leads/s end to end")
    if "import" in phases:

        async def upload(http: httpx.AsyncClient, stack: Stack, observer: Observer) -> CsvImportRun:
            say(f"CSV import: {args.import_rows:,} rows through POST /imports ...")
            return await csv_import(
                http, stack.leads_url, rows=args.import_rows, tag=tag, stall_s=args.stall_s
            )

        async with backends(**layout) as backend:
            results["backends"] = backend.kind
            csv_run: CsvImportRun = await on_stack(backend, 1, logs / "import", upload)
        results["csv_import"] = csv_run
        per_s, worker_per_s = csv_run.rows_per_second, csv_run.worker_rows_per_second
        say(f"  {per_s:,.1f} rows/s ({worker_per_s:,.1f}/s in the worker)")
    if "reports" in phases:
        from kariz_bench.reports import run_reports
        from kariz_shared.messaging.broker import ensure_topics

        async with backends(**layout) as backend:
            results["backends"] = backend.kind
            await ensure_topics(backend.backends.kafka_bootstrap, partitions=PARTITIONS)
            say(
                f"reports: {args.report_deals:,} deals' events, then {args.report_rounds} rounds of questions"
            )
            results["reports"] = await run_reports(
                backend.backends.kafka_bootstrap,
                backend.mongodb_uri_of("reports"),
                deals=args.report_deals,
                seed=args.seed,
                rounds=args.report_rounds,
                live_rate=args.report_live_rate,
            )
        r = results["reports"]
        say(
            f"  caught up in {r.caught_up_s:,.0f} s; answers p95 {r.all_ms['p95']} ms (max {r.all_ms['max']})"
        )
    # Last: a failure of Kariz shows early, and the raw path does not warm the machine before Kariz.
    if "raw" in phases:
        from kariz_bench.raw import run_raw

        async with backends(**layout) as backend:
            results["backends"] = backend.kind
            say(f"raw ceiling: {args.raw_leads:,} leads through bare aiokafka + PyMongo ...")
            with Meter({name: [proc] for name, proc in backend.processes.items()}) as meter:
                raw = await run_raw(
                    backend.backends.kafka_bootstrap,
                    {name: backend.mongodb_uri_of(name) for name in SERVICE_NAMES},
                    args.raw_leads,
                    batch=args.raw_batch,
                    partitions=PARTITIONS,
                    enable_idempotence=backend.backends.kafka_idempotence,
                )
            await drop_databases(backend, raw.databases)
        results["raw"] = {**asdict(raw), "usage": meter.usage}
        say(f"  {raw.leads_per_second:,.1f} leads/s")
    return summary(results, args, logs)


def summary(results: dict[str, Any], args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    one: Throughput | None = results.get("one_replica")
    two: Throughput | None = results.get("two_replicas")
    raw = results.get("raw")
    late: Latency | None = results.get("latency")
    leads_per_second = one.leads_per_second if one else None
    raw_per_second = round(raw["leads_per_second"], 1) if raw else None
    out: dict[str, Any] = {
        "leads_per_second": leads_per_second,
        "raw_leads_per_second": raw_per_second,
        "ratio_vs_raw": round(leads_per_second / raw_per_second, 3)
        if leads_per_second and raw_per_second
        else None,
        "two_replicas_speedup": round(two.leads_per_second / one.leads_per_second, 2)
        if one and two
        else None,
        "latency_ms": {"to_qualified": late.to_qualified_ms, "to_deal_opened": late.to_deal_opened_ms}
        if late
        else None,
        "cpu_seconds_per_lead": round(one.cpu_s_per_lead, 4) if one else None,
        "csv_import_rows_per_second": results["csv_import"].rows_per_second
        if results.get("csv_import")
        else None,
        "reports_p95_ms": results["reports"].all_ms["p95"] if results.get("reports") else None,
        "limit": limit(one),
        "details": {
            "one_replica": _plain(one),
            "two_replicas": _plain(two),
            "latency": _plain(late),
            "raw": _plain(raw),
            "csv_import": _plain(results.get("csv_import")),
            "reports": _plain(results.get("reports")),
            "collection_scans": [asdict(s) for s in results.get("collection_scans", [])] or None,
        },
        "run": {
            "command": " ".join(["kariz-bench", *sys.argv[1:]]),
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "backends": results.get("backends"),
            "machine": machine(),
            "logs": str(logs),
        },
    }
    return out


def limit(run: Throughput | None) -> dict[str, Any] | None:
    """The busiest process of a run: how many cores it kept busy on average. A process near one core is
    the limit when it cannot use more than one (a Python server holds the GIL)."""
    if run is None or not run.usage:
        return None
    name, usage = max(run.usage.items(), key=lambda item: item[1].cpu_s)
    return {
        "process": name,
        "cores_busy": round(usage.cpu_s / run.elapsed_s, 2),
        "cpu_share": round(usage.cpu_s / sum(u.cpu_s for u in run.usage.values()), 2),
        "cpu_ms_per_lead": round(usage.cpu_s * 1000 / run.leads, 1),
    }


def _plain(value: Any) -> Any:
    if value is None:
        return None
    plain = asdict(value) if not isinstance(value, dict) else dict(value)
    if "usage" in plain:
        plain["usage"] = {k: asdict(u) if isinstance(u, Usage) else u for k, u in plain["usage"].items()}
    if isinstance(value, Throughput):
        plain["cpu_s_per_lead"] = round(value.cpu_s_per_lead, 4)
    return plain


def machine() -> dict[str, Any]:
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def table(out: dict[str, Any]) -> str:
    d = out["details"]
    rows = [("leads/s end to end, 1 replica", out["leads_per_second"])]
    if d["one_replica"]:
        rows.append(("  captured/s (ingest alone)", d["one_replica"]["capture_per_second"]))
    rows += [
        ("leads/s raw ceiling", out["raw_leads_per_second"]),
        ("Kariz / raw", out["ratio_vs_raw"]),
        ("leads/s, 2 replicas", d["two_replicas"]["leads_per_second"] if d["two_replicas"] else None),
        ("2 replicas / 1", out["two_replicas_speedup"]),
        ("CPU seconds per lead (all processes)", out["cpu_seconds_per_lead"]),
    ]
    if d.get("csv_import"):
        run = d["csv_import"]
        rows.append(
            (
                f"CSV import rows/s ({run['rows']:,} rows, {run['megabytes']} MB)",
                f"{run['rows_per_second']} to done, {run['worker_rows_per_second']} in the worker",
            )
        )
    if d.get("reports"):
        r = d["reports"]
        rows.append(
            (
                f"reports over {r['deals']:,} deals, p50 / p95 ms",
                f"{r['all_ms']['p50']} / {r['all_ms']['p95']} (caught up in {r['caught_up_s']} s)",
            )
        )
    if out["limit"]:
        busiest = out["limit"]
        rows.append(
            (
                f"busiest process: {busiest['process']}",
                f"{busiest['cores_busy']} cores busy, {busiest['cpu_share']:.0%} of all CPU, "
                f"{busiest['cpu_ms_per_lead']} ms/lead",
            )
        )
    if out["latency_ms"]:
        rate = d["latency"]["offered_per_second"]
        for what in ("to_qualified", "to_deal_opened"):
            p = out["latency_ms"][what]
            rows.append(
                (
                    f"ms {what.replace('_', ' ')} at {rate}/s",
                    f"p50 {p['p50']}  p95 {p['p95']}  p99 {p['p99']}",
                )
            )
    lines = [f"{name:<44}{'-' if value is None else value}" for name, value in rows]
    for phase in ("one_replica", "two_replicas", "raw"):
        if d[phase] and d[phase].get("usage"):
            lines.append(
                f"\n{phase.replace('_', ' ')}: "
                f"{'process':<24}{'peak RSS MB':>12}{'CPU s':>9}{'CPU ms/lead':>13}"
            )
            leads = d[phase]["leads"]
            for name, u in d[phase]["usage"].items():
                lines.append(
                    f"{'':<14}{name:<24}{u['peak_rss_mb']:>12.0f}{u['cpu_s']:>9.1f}"
                    f"{u['cpu_s'] * 1000 / leads:>13.2f}"
                )
            databases = [u for name, u in d[phase]["usage"].items() if name.startswith("database-")]
            if len(databases) > 1:  # one per service: what they cost together
                cpu = sum(u["cpu_s"] for u in databases)
                lines.append(f"{'':<14}{'databases, all':<24}{'':>12}{cpu:>9.1f}{cpu * 1000 / leads:>13.2f}")
    m = out["run"]["machine"]
    lines.append(
        f"\n{m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB, Python {m['python']}; "
        f"{out['run']['backends']}"
    )
    return "\n".join(lines)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="kariz-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=20_000, help="leads for the one-replica throughput")
    parser.add_argument("--raw-leads", type=int, default=20_000, help="leads for the raw ceiling")
    parser.add_argument("--raw-batch", type=int, default=500, help="records per raw batch and transaction")
    parser.add_argument(
        "--replica-leads", type=int, default=20_000, help="leads for the two-replica throughput"
    )
    parser.add_argument("--latency-leads", type=int, default=3_000, help="at most this many for the latency")
    parser.add_argument("--latency-s", type=float, default=60.0, help="offer load this long for the latency")
    parser.add_argument(
        "--latency-rate", type=float, default=0.0, help="leads/s offered; 0: half the maximum"
    )
    parser.add_argument(
        "--ingest", choices=("import", "single"), default="import", help="POST /leads/import or /leads"
    )
    parser.add_argument("--chunk", type=int, default=500, help="leads per import")
    parser.add_argument("--in-flight", type=int, default=2, help="imports at once")
    parser.add_argument("--concurrency", type=int, default=32, help="single captures at once")
    parser.add_argument("--phases", default="raw,throughput,latency,replicas,import", help="which to run")
    parser.add_argument("--import-rows", type=int, default=100_000, help="rows of the CSV import phase")
    parser.add_argument("--warmup", type=int, default=50, help="leads sent (not measured) before a run")
    parser.add_argument(
        "--stall-s", type=float, default=120.0, help="give up after this long without progress"
    )
    parser.add_argument(
        "--shared-database",
        action="store_true",
        help="embedded: one database process for every service (the layout before issue H), not one each",
    )
    parser.add_argument(
        "--standalone", action="store_true", help="embedded: databases with --standalone (no oplog)"
    )
    parser.add_argument(
        "--released-database",
        action="store_true",
        help="embedded: SecantusDB as released, without Kariz's fix of its transaction registry "
        "(kariz_devkit.embedded_database), to measure the fix",
    )
    parser.add_argument(
        "--sync-on-commit",
        action="store_true",
        help="embedded: databases sync their log on every commit (as the dev stack and the tests that "
        "kill the database); off by default, as a real MongoDB's journal is the operator's",
    )
    parser.add_argument(
        "--plans",
        action="store_true",
        help="profile every command of the 1-replica run and list the filters answered by a collection "
        "scan (the profiler costs the database CPU: not for figures)",
    )
    parser.add_argument(
        "--report-deals", type=int, default=100_000, help="deals seeded for the reports phase"
    )
    parser.add_argument("--report-rounds", type=int, default=20, help="rounds of the reports' questions")
    parser.add_argument(
        "--report-live-rate", type=float, default=2.0, help="new deals a second while the reports answer"
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", default="bench-results.json")
    parser.add_argument("--logs", default="", help="service logs go here (default: a temporary folder)")
    args = parser.parse_args()
    # Stopped from outside, it still stops the processes it started (as on Ctrl-C).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    out = asyncio.run(run(args))
    Path(args.out).write_text(json.dumps(out, indent=2, default=str) + "\n")
    picture = draw(json.loads(Path(args.out).read_text()), Path(args.out).with_suffix(".svg"))
    print(table(out))
    print(f"\nwritten to {args.out}, its picture to {picture}")
