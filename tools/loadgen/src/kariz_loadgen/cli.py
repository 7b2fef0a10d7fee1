"""``kariz-load`` (``make demo``): drive synthetic leads through a running Kariz, then print the funnel
as the reports service answers it for the run, cross-checked against the driver's own count.

Exit status: 0 when the run went through and Kariz agrees with the driver, 1 when the run failed or the
two disagree, 2 when Kariz is not running (or not ready).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TextIO

import httpx

from kariz_loadgen.journey import DEFAULT_URLS, GaveUp, Kariz, Tally, drive_all
from kariz_loadgen.observe import caught_up
from kariz_loadgen.population import Population
from kariz_loadgen.progress import Progress
from kariz_loadgen.run_report import RunReport, render

NOT_RUNNING = 2


async def not_ready(urls: dict[str, str], *, timeout_s: float = 3.0) -> list[str]:
    """Which services do not answer ``/readyz`` with 200, and what they answered instead."""
    problems: list[str] = []
    async with httpx.AsyncClient(timeout=timeout_s) as http:
        for name, url in urls.items():
            try:
                answer = await http.get(f"{url}/readyz")
            except httpx.HTTPError as exc:
                problems.append(f"{name} ({url}): {type(exc).__name__} {exc}".rstrip())
                continue
            if answer.status_code != 200:
                problems.append(f"{name} ({url}): /readyz answered {answer.status_code} {answer.text[:200]}")
    return problems


@dataclass
class DemoRun:
    tally: Tally
    report: RunReport
    mismatches: list[str]
    elapsed_s: float
    waited_s: float
    run_tag: str

    def head(self) -> str:
        t = self.tally
        return (
            f"Drove {t.captured + t.touches} captures (run {self.run_tag}) in {self.elapsed_s:.1f} s: "
            f"{t.requests} requests, {t.retries} retried; {t.captured} new leads, {t.touches} repeat touches "
            f"of a known lead, {t.nurtured} qualification calls.\n"
            f"The reports service caught up with the run in {self.waited_s:.1f} s"
            + ("" if not self.mismatches else " (or not: its figures stood still)")
            + ".\n"
        )

    def report_text(self) -> str:
        return self.head() + "\n" + render(self.report, mismatches=self.mismatches)


async def run_demo(
    urls: dict[str, str],
    *,
    leads: int,
    concurrency: int,
    seed: int,
    token: str,
    progress_to: TextIO | None = None,
    reports_patience_s: float = 30.0,
) -> DemoRun:
    """Drive ``leads`` synthetic captures through Kariz, then read the run's funnel from the reports
    service once it caught up, signed in with ``token`` (a bearer token from the identity provider; in
    dev ``kariz-dev token``)."""
    run_tag = uuid.uuid4().hex[:8]
    population = Population(seed, run_tag=run_tag, run_campaigns=True).leads(leads)
    since = datetime.now(UTC)
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=30, headers=headers) as http:
        kariz = Kariz(http, urls)
        t = kariz.tally
        progress = Progress(
            len(population),
            stream=progress_to,
            detail=lambda: f"qualified {t.qualified}  deals {t.deals}  won {t.won}  lost {t.lost}",
        )
        async with progress.running():
            await drive_all(kariz, population, concurrency=concurrency, on_done=progress.advance)
        elapsed = time.monotonic() - started
        # The run's days with a day either side: the reports count in the organisation's time zone.
        first = (since - timedelta(days=1)).date()
        last = (datetime.now(UTC) + timedelta(days=1)).date()
        # A reader of its own: its requests are not the run's.
        seen = await caught_up(
            Kariz(http, urls),
            t,
            run_tag,
            first,
            last,
            patience_s=reports_patience_s,
            stream=progress_to or sys.stderr,
        )
    return DemoRun(t, seen.report, seen.mismatches, elapsed, seen.waited_s, run_tag)


def flat(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in flat(inner)]
    return [exc]


async def run(args: argparse.Namespace) -> int:
    urls = {name: getattr(args, f"{name}_url").rstrip("/") for name in DEFAULT_URLS}
    problems = await not_ready(urls)
    if problems:
        print("Kariz is not running (or not ready yet):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        print("Start it with `make run` in another terminal, then run `make demo` again.", file=sys.stderr)
        return NOT_RUNNING
    print(
        f"Kariz is ready; driving {args.leads} synthetic leads, {args.concurrency} at a time"
        f" (seed {args.seed})"
    )
    try:
        result = await run_demo(
            urls,
            leads=args.leads,
            concurrency=args.concurrency,
            seed=args.seed,
            token=args.token,
            reports_patience_s=args.reports_patience,
        )
    except (GaveUp, httpx.HTTPError, ExceptionGroup) as exc:
        # Kariz did not recover in time or answered what the driver did not expect; anything else is a bug.
        failures = flat(exc)
        if not all(isinstance(f, GaveUp | httpx.HTTPError) for f in failures):
            raise
        for failure in failures:
            print(f"The run stopped: {failure}", file=sys.stderr)
        return 1
    print(result.report_text())
    return 1 if result.mismatches else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="kariz-load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=300, help="captures to send (default 300)")
    parser.add_argument("--concurrency", type=int, default=16, help="leads driven at once (default 16)")
    parser.add_argument("--seed", type=int, default=7, help="the same seed draws the same leads (default 7)")
    for name, url in DEFAULT_URLS.items():
        parser.add_argument(f"--{name}-url", default=url, help=f"the {name} service (default {url})")
    parser.add_argument(
        "--reports-patience",
        type=float,
        default=30.0,
        help="seconds the reports service's figures of the run may stand still, short of the driver's "
        "count, before the cross-check gives up on them (default 30)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("KARIZ_TOKEN", ""),
        help="a bearer token that may capture, read and move (default $KARIZ_TOKEN; `make demo` gets one "
        "from the dev stack's issuer with `kariz-dev token`)",
    )
    args = parser.parse_args()
    if not args.token:
        parser.error("a token is needed: --token or KARIZ_TOKEN (in dev: kariz-dev token --role admin)")
    if args.leads < 1 or args.concurrency < 1:
        parser.error("--leads and --concurrency must be at least 1")
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(run(args)))
    sys.exit(130)
