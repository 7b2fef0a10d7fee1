"""Read back a run's figures from the reports service (``REPORTS``, ``?by=campaign`` over the run's
days), waiting until they caught up with what the driver did.

The reports are fed by the event stream, so they lag the driver by however long the events take to
arrive: the run's figures are read again until they agree with the driver's own count, or until
``patience_s`` passed (then the disagreement is the answer, and ``make demo`` exits 1).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

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
    #: How long the reports took to catch up (or until patience ran out).
    waited_s: float


async def caught_up(
    kariz: Kariz,
    tally: Tally,
    run_tag: str,
    first: date,
    last: date,
    *,
    patience_s: float = 60.0,
    poll_s: float = 0.5,
) -> Observed:
    """The run's figures once they agree with ``tally``, or as they are when ``patience_s`` passed."""
    started = time.monotonic()
    while True:
        report = await read_run(kariz, run_tag, first, last)
        mismatches = cross_check(report, tally)
        waited = time.monotonic() - started
        if not mismatches or waited >= patience_s:
            return Observed(report, mismatches, waited)
        await asyncio.sleep(poll_s)
