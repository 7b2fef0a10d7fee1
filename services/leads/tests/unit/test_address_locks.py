"""Captures of one address wait for each other; captures of different addresses do not."""

from __future__ import annotations

import asyncio

from kariz_leads.service_layer.address_locks import AddressLocks


async def test_a_capture_of_an_address_being_captured_waits_for_the_first() -> None:
    locks = AddressLocks()
    order: list[str] = []
    first_holds = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with locks.holding(["b@x.example", "a@x.example"]):
            order.append("first in")
            first_holds.set()
            await release_first.wait()
            order.append("first out")

    async def second() -> None:
        await first_holds.wait()
        async with locks.holding(["a@x.example"]):
            order.append("second in")

    async def other() -> None:
        await first_holds.wait()
        async with locks.holding(["c@x.example"]):
            order.append("other in")

    tasks = [asyncio.create_task(f()) for f in (first, second, other)]
    await first_holds.wait()
    for _ in range(5):  # let the others run as far as they can
        await asyncio.sleep(0)
    assert order == ["first in", "other in"]
    release_first.set()
    await asyncio.gather(*tasks)
    assert order == ["first in", "other in", "first out", "second in"]
    assert len(locks) == 0  # nothing is kept once nobody holds or waits


async def test_two_units_taking_the_same_addresses_in_any_order_never_wait_on_each_other() -> None:
    locks = AddressLocks()
    done: list[int] = []

    async def unit(n: int, addresses: list[str]) -> None:
        async with locks.holding(addresses):
            await asyncio.sleep(0)
            done.append(n)

    # Without the address order, the first taking a then b and the second b then a would deadlock.
    await asyncio.wait_for(
        asyncio.gather(unit(1, ["a@x.example", "b@x.example"]), unit(2, ["b@x.example", "a@x.example"])), 5
    )
    assert sorted(done) == [1, 2] and len(locks) == 0


async def test_a_unit_that_fails_lets_the_address_go() -> None:
    locks = AddressLocks()
    try:
        async with locks.holding(["a@x.example"]):
            raise ValueError("the unit failed")
    except ValueError:
        pass
    async with locks.holding(["a@x.example"]):
        assert len(locks) == 1
    assert len(locks) == 0
