"""The embedded database server: SecantusDB's ``secantusd-py``, with one fix to its transaction registry.

SecantusDB reaps transactions idle past their lifetime (60 s) on every statement, commit and abort:
``TransactionRegistry._prune_locked`` walks every transaction under the registry's one lock and takes
each one's mutex to look at it. A running statement holds its own transaction's mutex, so while any
statement of any transaction runs, the next statement of every other transaction waits for it, and so
does every ``killSessions`` (which needs the registry lock too). Under the test and bench load the
database then runs one transactional statement at a time at a quarter of a core, and units time out:
the stall of issue H. Caught in CI's crash test (stop 26: a capture still failing after 300 s) and
live with py-spy here (53 threads in ``for_statement`` and 13 in ``abort_for_session`` waiting for the
registry lock, its holder in ``_prune_locked`` waiting for the mutex of a transaction whose update was
running). Reproduced alone by ``docs/upstream/secantusdb_prune_stall.py``; the upstream report is
``docs/upstream/secantusdb-prune-stall.md``.

The fix: a transaction whose mutex is held is in use, so it is not idle and there is nothing to reap;
the prune skips it instead of waiting (and looks at a transaction's mutex only when its state and last
use say it may be idle). What is reaped, and when, is unchanged otherwise. And ``killSessions`` of a
session whose statement still runs (Kariz kills the session of a unit that ran out of time, so the
server does not keep its writes for 60 s) waits for that statement holding only its transaction's
mutex, not the registry lock: with the first fix alone, five 3,000-lead bench runs did not stall, but
one paused 19 s with leads' ``killSessions`` timing out behind a 500-lead import's insert. A dev and
test dependency only: production runs MongoDB, where none of this applies.

Run as ``python -m kariz_devkit.embedded_database`` with ``secantusd-py``'s own arguments.
"""

from __future__ import annotations

import sys

from secantus import transactions
from secantus.cli import main as serve
from secantus.transactions import TransactionRegistry, TxnState


def prune_idle_without_waiting(self: TransactionRegistry) -> int:
    """``_prune_locked`` (called with the registry lock held), not waiting for a transaction in use."""
    cutoff = self._time() - self._lifetime
    reaped = 0
    for txn in list(self._txns.values()):
        # Read without the mutex only to choose the candidates; decided again under it.
        if txn.state is not TxnState.IN_PROGRESS or txn.last_use >= cutoff:
            continue
        if not txn.mutex.acquire(blocking=False):
            continue  # a statement, commit or abort of it is running: in use, not idle
        try:
            if txn.state is TxnState.IN_PROGRESS and txn.last_use < cutoff:
                self._rollback_quietly(txn)
                txn.state = TxnState.ABORTED
                reaped += 1
        finally:
            txn.mutex.release()
    return reaped


def abort_for_session_without_holding_the_registry(self: TransactionRegistry, lsid_bytes: bytes) -> None:
    """``abort_for_session`` (``killSessions``, ``endSessions``), waiting for the session's running
    statement with only that transaction's mutex, not the registry lock as well: a client that gave up
    on a slow statement kills its session while the statement still runs, and as released every other
    transaction's next statement waited for that statement meanwhile."""
    with self._lock:
        cur = self._txns.get(lsid_bytes)
    if cur is not None:
        self._abort_locked(cur)  # takes cur.mutex alone, which the lock order allows


def patch() -> None:
    transactions.TransactionRegistry._prune_locked = prune_idle_without_waiting
    transactions.TransactionRegistry.abort_for_session = abort_for_session_without_holding_the_registry


def main() -> int:
    patch()
    return serve()


if __name__ == "__main__":
    sys.exit(main())
