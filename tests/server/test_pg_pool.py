"""The PostgreSQL backend's connection pool, on fake connections (no database needed):
bounded size, waiters served in order, broken or cancelled connections replaced, close waits
for connections in use."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("asyncpg")

from durable_workflow_server.storage._pg_pool import Pool


class FakeConn:
    """Just what the pool looks at, plus ``fetch``."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False
        self.in_transaction = False
        self.gate: asyncio.Event | None = None

    def is_closed(self) -> bool:
        return self.closed

    def is_in_transaction(self) -> bool:
        return self.in_transaction

    def terminate(self) -> None:
        self.closed = True

    async def close(self, timeout: float | None = None) -> None:
        self.closed = True

    async def fetch(self, sql: str, *args: Any, timeout: float | None = None) -> list[Any]:
        if self.gate is not None:
            await self.gate.wait()
        if sql == "fail":
            import asyncpg

            raise asyncpg.PostgresError("refused")
        return [(self.number, *args)]


class Opener:
    def __init__(self) -> None:
        self.opened: list[FakeConn] = []
        self.fail = False

    async def __call__(self) -> FakeConn:
        await asyncio.sleep(0)
        if self.fail:
            raise OSError("connection refused")
        conn = FakeConn(len(self.opened))
        self.opened.append(conn)
        return conn


async def test_reuses_one_connection_for_sequential_callers() -> None:
    opener = Opener()
    pool = Pool(opener, 4)
    await pool.start()
    for i in range(5):
        assert await pool.fetch("q", (i,)) == [(0, i)]
    assert await pool.fetchval("q", (7,)) == 0
    assert len(opener.opened) == 1
    await pool.close()
    assert opener.opened[0].closed


async def test_never_opens_more_than_its_size_and_serves_waiters_in_order() -> None:
    opener = Opener()
    pool = Pool(opener, 2)
    held = [await pool.acquire(), await pool.acquire()]
    order: list[int] = []

    async def waiter(n: int) -> None:
        conn = await pool.acquire()
        order.append(n)
        pool.release(conn)

    tasks = [asyncio.ensure_future(waiter(n)) for n in range(3)]
    await asyncio.sleep(0.01)
    assert len(opener.opened) == 2 and order == []
    pool.release(held[0])
    pool.release(held[1])
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert len(opener.opened) == 2


async def test_a_broken_connection_is_replaced_and_its_slot_goes_to_a_waiter() -> None:
    opener = Opener()
    pool = Pool(opener, 1)
    conn = await pool.acquire()
    waiting = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.01)
    pool.release(conn, reusable=False)  # e.g. its caller was cancelled mid-query
    fresh = await waiting
    assert conn.closed and fresh is not conn and not fresh.closed
    pool.release(fresh)
    conn2 = await pool.acquire()
    assert conn2 is fresh


async def test_connections_left_in_a_transaction_or_closed_are_not_reused() -> None:
    opener = Opener()
    pool = Pool(opener, 2)
    conn = await pool.acquire()
    conn.in_transaction = True
    pool.release(conn)
    assert conn.closed
    other = await pool.acquire()
    assert other is not conn
    other.closed = True  # the server went away while it was idle
    pool.release(other)
    assert (await pool.acquire()) not in (conn, other)


async def test_a_refused_statement_keeps_the_connection_a_cancelled_one_drops_it() -> None:
    import asyncpg

    opener = Opener()
    pool = Pool(opener, 1)
    with pytest.raises(asyncpg.PostgresError):
        await pool.fetch("fail", ())
    assert await pool.fetch("q", ()) == [(0,)]
    opener.opened[0].gate = asyncio.Event()
    task = asyncio.ensure_future(pool.fetch("q", ()))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert opener.opened[0].closed
    assert await pool.fetch("q", ()) == [(1,)]


async def test_a_cancelled_waiter_passes_its_turn_on() -> None:
    opener = Opener()
    pool = Pool(opener, 1)
    conn = await pool.acquire()
    first = asyncio.ensure_future(pool.acquire())
    second = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.01)
    first.cancel()
    pool.release(conn)
    assert await second is conn


async def test_failed_connect_frees_its_slot() -> None:
    opener = Opener()
    opener.fail = True
    pool = Pool(opener, 1)
    with pytest.raises(OSError):
        await pool.acquire()
    opener.fail = False
    assert isinstance(await pool.acquire(), FakeConn)


async def test_close_waits_for_connections_in_use_and_refuses_new_callers() -> None:
    import asyncpg

    opener = Opener()
    pool = Pool(opener, 2)
    conn = await pool.acquire()
    closing = asyncio.ensure_future(pool.close())
    await asyncio.sleep(0.02)
    assert not closing.done()
    with pytest.raises(asyncpg.InterfaceError):
        await pool.acquire()
    pool.release(conn)
    await asyncio.wait_for(closing, 1)
    assert conn.closed


async def test_terminate_closes_connections_in_use() -> None:
    opener = Opener()
    pool = Pool(opener, 2)
    conn = await pool.acquire()
    pool.terminate()
    assert conn.closed


async def test_terminate_fails_waiters() -> None:
    import asyncpg

    pool = Pool(Opener(), 1)
    await pool.acquire()
    waiting = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.01)
    pool.terminate()
    with pytest.raises(asyncpg.InterfaceError):
        await waiting
