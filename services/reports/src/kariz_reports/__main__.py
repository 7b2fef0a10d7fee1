"""``python -m kariz_reports`` and ``kariz-reports``: the service, configured from the environment;
``kariz-reports rebuild`` makes the projections again from the retained topics and switches to them."""

from __future__ import annotations

import asyncio
import sys

from kariz_reports.bootstrap import build, rebuild
from kariz_shared.runtime.logging import configure_logging


async def _rebuild() -> int:
    service, job = rebuild()
    try:
        done = await job.run()
    finally:
        await service.store.close()
    print(
        f"rebuilt the reports: generation {done.generation}, {done.applied} events applied, "
        f"{done.unreadable} unreadable records skipped"
    )
    return 0


def main() -> None:
    args = sys.argv[1:]
    if not args:
        build().run()
        return
    if args == ["rebuild"]:
        configure_logging("reports")
        sys.exit(asyncio.run(_rebuild()))
    sys.exit("usage: kariz-reports [rebuild]")


if __name__ == "__main__":
    main()
