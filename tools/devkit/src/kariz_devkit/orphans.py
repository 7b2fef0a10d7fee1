"""No server outlives what started it: every child the dev stack, the bench and the test fixtures start
(broker, database, services, Prometheus) runs under this guard, which asks Linux to send it SIGTERM
when its parent dies (``PR_SET_PDEATHSIG``) and then becomes the real program (``exec``). A parent
killed with SIGKILL, or a test run killed by a timeout, then leaves nothing running.

The guard runs in the child, not in the parent (``preexec_fn`` is unsafe in a process with threads, and
the test process has several). It is a no-op where ``prctl`` does not exist (not Linux).

``python -m kariz_devkit.orphans PARENT_PID PROGRAM [ARGS...]``
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1


def guarded(argv: Sequence[str]) -> list[str]:
    """``argv`` run under the guard, for ``subprocess.Popen``: it dies with the calling process. Call it
    from the thread that lives as long as the child should (Linux signals the child when the thread
    that forked it ends; the main thread, or an executor's, which lasts until the event loop closes)."""
    return [sys.executable, "-m", "kariz_devkit.orphans", str(os.getpid()), *argv]


def _die_with_parent() -> None:
    name = ctypes.util.find_library("c")
    if name is None:
        return
    libc = ctypes.CDLL(name, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        sys.exit("usage: python -m kariz_devkit.orphans PARENT_PID PROGRAM [ARGS...]")
    parent, program = int(args[0]), args[1:]
    if sys.platform.startswith("linux"):
        _die_with_parent()
        # The parent may have died before the request took effect: then nobody would signal us.
        if os.getppid() != parent:
            sys.exit(0)
    os.execvp(program[0], program)


if __name__ == "__main__":
    main()
