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
use say it may be idle). What is reaped, and when, is unchanged otherwise.

Left as released, on purpose: ``killSessions`` (``abort_for_session``) also holds the registry lock
while it waits for the killed session's running statement. Taking that wait out too was tried: five
3,000-lead bench runs with the prune's fix alone all finished (two paused 17 to 20 s, one of them
behind such a kill), and the first run with both gave up ("/leads/import kept failing") with 34
transactional inserts queued on one collection's lock behind statements whose clients had given up,
39 kills waiting: the kill's hold on the registry had been the brake that kept abandoned work from
piling up. A dev and test dependency only: production runs MongoDB, where none of this applies.

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


def patch() -> None:
    transactions.TransactionRegistry._prune_locked = prune_idle_without_waiting


def main() -> int:
    patch()
    return serve()


if __name__ == "__main__":
    sys.exit(main())
