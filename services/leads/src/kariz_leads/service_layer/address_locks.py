"""The addresses this process is capturing now, each held by one unit of work at a time.

Two units that capture the same new address at once race on the one-lead-per-address index: the
second's insert meets the first's uncommitted one, the database answers a write conflict, and the
second unit is run again whole (after at most half a second, for as long as the first is open). An
import repeats some addresses of the imports before it (the bench's population: 3 %), so two imports
in flight at once race often, and each retry redoes the capture of every lead of the losing one on the
same event loop as the winner.

Holding each address for the whole unit makes the second capture wait for the first instead; it then
finds the address stored and touches that lead. Locks are taken in address order, so two units never
wait on each other. Only this process's units are held: replicas still race (and retry, as before), and
so does a CSV chunk, whose addresses are read inside its unit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager


class AddressLocks:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        # Units holding or waiting for each address: its lock is dropped when none is left.
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def holding(self, addresses: Iterable[str]) -> AsyncIterator[None]:
        wanted = sorted(set(addresses))
        for address in wanted:
            self._users[address] = self._users.get(address, 0) + 1
            self._locks.setdefault(address, asyncio.Lock())
        taken: list[str] = []
        try:
            for address in wanted:
                await self._locks[address].acquire()
                taken.append(address)
            yield
        finally:
            for address in taken:
                self._locks[address].release()
            for address in wanted:
                self._users[address] -= 1
                if not self._users[address]:
                    del self._users[address]
                    del self._locks[address]

    def __len__(self) -> int:
        """How many addresses are held or waited for."""
        return len(self._locks)


#: This process's captures: every capture and import of the process goes through it.
BEING_CAPTURED = AddressLocks()
