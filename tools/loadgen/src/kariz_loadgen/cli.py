"""``kariz-load``: drive synthetic leads through a running Kariz and print the funnel."""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import httpx

from kariz_loadgen.journey import DEFAULT_URLS, Kariz, Tally, drive_all
from kariz_loadgen.population import Population


def funnel(tally: Tally, elapsed_s: float) -> str:
    """The funnel as a rep's manager reads it: captured -> qualified -> deals -> won/lost, by source."""
    lines = [
        f"leads captured {tally.captured} (+{tally.touches} touches of known leads) in {elapsed_s:.1f}s",
        f"qualified {tally.qualified}, disqualified {tally.disqualified} ({tally.nurtured} after a call)",
        f"deals {tally.deals}: won {tally.won}, lost {tally.lost}"
        + (f", win rate {tally.won / (tally.won + tally.lost):.0%}" if tally.won + tally.lost else ""),
        f"requests {tally.requests}, retried {tally.retries}",
        "",
        f"{'source':<16}{'captured':>9}{'qualified':>10}{'won':>6}",
    ]
    for source, count in tally.by_source.most_common():
        lines.append(
            f"{source:<16}{count:>9}{tally.qualified_by_source[source]:>10}{tally.won_by_source[source]:>6}"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> None:
    leads = Population(args.seed, run_tag=uuid.uuid4().hex[:6]).leads(args.leads)
    urls = {name: getattr(args, f"{name}_url") for name in DEFAULT_URLS}
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as http:
        tally = await drive_all(Kariz(http, urls), leads, concurrency=args.concurrency)
    print(funnel(tally, time.monotonic() - started))


def main() -> None:
    parser = argparse.ArgumentParser(prog="kariz-load", description=__doc__)
    parser.add_argument("--leads", type=int, default=100, help="captures to send")
    parser.add_argument("--concurrency", type=int, default=32, help="leads driven at once")
    parser.add_argument("--seed", type=int, default=7, help="the same seed draws the same leads")
    for name, url in DEFAULT_URLS.items():
        parser.add_argument(f"--{name}-url", default=url, help=f"the {name} service (default {url})")
    asyncio.run(run(parser.parse_args()))
