"""A server started under the guard dies with the process that started it, even a SIGKILLed one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kariz_devkit.orphans import guarded

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    from kariz_devkit.orphans import guarded
    child = subprocess.Popen(guarded(["sleep", "600"]))
    print(child.pid, flush=True)
    time.sleep(600)
    """
)


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper (a container's init may never reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def until(condition: object, limit_s: float = 30.0) -> bool:
    # Polls a state change the kernel makes; the limit only keeps a broken guard from hanging the run.
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False


def test_a_guarded_child_dies_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        assert until(
            lambda: alive(child) and Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"sleep")
        )
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert until(lambda: not alive(child)), "the child outlived its SIGKILLed parent"
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)


def test_the_guard_becomes_the_program_itself() -> None:
    """The guard execs the program: the process a fixture stops (SIGTERM to its pid) is the server."""
    program = subprocess.Popen(
        guarded([sys.executable, "-c", "import os; print(os.getpid())"]), stdout=subprocess.PIPE, text=True
    )
    out, _ = program.communicate(timeout=30)
    assert program.returncode == 0 and int(out) == program.pid
