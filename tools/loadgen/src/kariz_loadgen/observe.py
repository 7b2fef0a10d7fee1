"""Read back a run's figures from the reports service (``REPORTS``, ``?by=campaign`` over the run's
days), waiting until they caught up with what the driver did.

The reports are fed by the event stream, so they lag the driver by however long the events take to
arrive (on a busy machine, minutes after a run of hundreds of leads). The run's figures are read again
until they agree with the driver's own count; as long as they keep moving the wait goes on, and once
they stood still for ``patience_s`` the disagreement is the answer (``make demo`` exits 1).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import date
from typing import Any, TextIO

from kariz_loadgen.journey import Kariz, Tally, expect
from kariz_loadgen.run_report import REPORTS, RunReport, cross_check, run_report


async def read_run(kariz: Kariz, run_tag: str, first: date, last: date) -> RunReport:
    """The run's figures as the reports answer them now, days ``first`` to ``last`` (both included)."""
    params = {"by": "campaign", "from": first.isoformat(), "to": last.isoformat()}
    answers: dict[str, dict[str, Any]] = {}
    for name in REPORTS:
        answers[name] = expect(await kariz.call("GET", "reports", f"/reports/{name}", params=params), 200)
    return run_report(answers, run_tag)


@dataclass(frozen=True)
class Observed:
    report: RunReport
    #: Where the reports and the driver still disagree (empty: they agree).
    mismatches: list[str]
    #: How long the reports took to catch up (or until they stood still for the patience).
    waited_s: float


def behind(report: RunReport, tally: Tally) -> str:
    """How far the reports are, as a person waiting reads it."""
    return (
        f"waiting for the reports service: captured {report.captured}/{tally.captured}, "
        f"deals {report.deals}/{tally.deals}, won {report.won}/{tally.won}, lost {report.lost}/{tally.lost}"
    )


async def caught_up(
    kariz: Kariz,
    tally: Tally,
    run_tag: str,
    first: date,
    last: date,
    *,
    patience_s: float = 30.0,
    poll_s: float = 0.5,
    say_every_s: float = 5.0,
    stream: TextIO | None = None,
) -> Observed:
    """The run's figures once they agree with ``tally``, or as they are when they have not moved for
    ``patience_s``; every ``say_every_s`` while it waits, a line to ``stream`` on how far they are."""
    started = time.monotonic()
    moved_at = said_at = started
    last_seen: list[str] | None = None
    while True:
        report = await read_run(kariz, run_tag, first, last)
        mismatches = cross_check(report, tally)
        now = time.monotonic()
        if not mismatches:
            return Observed(report, mismatches, now - started)
        if mismatches != last_seen:
            last_seen, moved_at = mismatches, now
        elif now - moved_at >= patience_s:
            return Observed(report, mismatches, now - started)
        if stream is not None and now - said_at >= say_every_s:
            print(behind(report, tally), file=stream, flush=True)
            said_at = now
        await asyncio.sleep(poll_s)
