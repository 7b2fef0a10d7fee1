"""A progress bar for a run: leads finished of the total, the rate and the time elapsed.

On a terminal the line is redrawn in place a few times a second; in a log or a pipe (CI, ``| tee``) a
plain line is printed every few seconds instead, so the log stays readable. No dependency: one line of
text does not need a library.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import TextIO

CLEAR_TO_END = "\x1b[K"


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def progress_line(
    done: int, total: int, elapsed_s: float, *, width: int = 30, detail: str = "", unit: str = "leads"
) -> str:
    """``[#########.........]  120/300 leads  14.2/s  0:08  <detail>``"""
    filled = width * done // total if total else width
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    line = f"[{'#' * filled}{'.' * (width - filled)}] {done:>{len(str(total))}}/{total} {unit}"
    line += f"  {rate:.1f}/s  {clock(elapsed_s)}"
    return f"{line}  {detail}" if detail else line


class Progress:
    """Counts finished leads; ``running()`` draws while the run goes on and once more at the end."""

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        tty: bool | None = None,
        tick_s: float = 0.2,
        every_s: float = 5.0,
        detail: Callable[[], str] | None = None,
        unit: str = "leads",
    ) -> None:
        self.total = total
        self.unit = unit
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval_s = tick_s if self.tty else every_s
        self.detail = detail
        self.started = time.monotonic()

    def advance(self, *_: object) -> None:
        self.done += 1

    def line(self) -> str:
        detail = self.detail() if self.detail else ""
        return progress_line(
            self.done, self.total, time.monotonic() - self.started, detail=detail, unit=self.unit
        )

    def draw(self, *, last: bool = False) -> None:
        if self.tty:
            self.stream.write(f"\r{self.line()}{CLEAR_TO_END}" + ("\n" if last else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Progress]:
        self.started = time.monotonic()

        async def tick() -> None:
            while True:
                await asyncio.sleep(self.interval_s)
                self.draw()

        ticker = asyncio.create_task(tick())
        try:
            yield self
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            self.draw(last=True)
