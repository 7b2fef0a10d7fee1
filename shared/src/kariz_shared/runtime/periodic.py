"""Gauges that describe state held in the database (pipeline value, the newest lead), refreshed in the
background. Every replica reads the same database, so dashboards take ``max`` across replicas, not ``sum``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


def refreshing(
    what: str, refresh: Callable[[], Awaitable[None]], interval_s: float
) -> Callable[[], Coroutine[Any, Any, None]]:
    """A worker for ``Service.add_worker`` that calls ``refresh()`` every ``interval_s`` seconds.

    A failed refresh (database away) leaves the gauges at their last value and is tried again next round:
    ``kariz_dependency_up`` is what reports the outage.
    """

    async def run() -> None:
        while True:
            try:
                await refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("could not refresh the %s gauges; will retry", what, exc_info=True)
            await asyncio.sleep(interval_s)

    return run
