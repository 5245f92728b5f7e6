"""The PostgreSQL backend's connection pool: a list of idle asyncpg connections and a queue.

asyncpg's own ``Pool`` costs about 80 µs of CPU per ``fetch`` here against about 40 µs for the
same query on a bare connection: every release runs in a shielded task of its own, re-arms an
inactivity timer and resets the connection. This backend's reads are one-row queries on
connections that never change session state (no SET, LISTEN, cursors or session locks; the
listener has a connection of its own), so a release only needs to hand the connection to the
next waiter. Two rules keep that safe:

- A connection comes back only in a known state: a caller that was cancelled, timed out or
  lost the connection releases it with ``reusable=False`` and it is closed (asyncpg would
  still be cancelling its query); one still in a transaction is closed too.
- Closed slots are not lost: when a connection is dropped while others wait, the first waiter
  opens a new one in its place.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

#: A waiter's future gets a connection, or ``None``: "a slot is free, open one yourself".
_Waiter = asyncio.Future[Any]


class Pool:
    """At most ``size`` connections opened by ``connect``, handed out one caller at a time.

    Args:
        connect: opens one asyncpg connection.
        size: most connections open at once.
    """

    def __init__(self, connect: Callable[[], Awaitable[Any]], size: int) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one connection")
        self._connect = connect
        self._size = size
        self._conns: set[Any] = set()
        self._opening = 0
        self._idle: list[Any] = []
        self._waiters: deque[_Waiter] = deque()
        self._closed = False

    async def start(self) -> None:
        """Open the first connection (raises when the database cannot be reached)."""
        self.release(await self.acquire())

    async def acquire(self) -> Any:
        """A connection for the caller alone; give it back with :meth:`release`."""
        if self._closed:
            raise asyncpg.InterfaceError("the connection pool is closed")
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._conns.discard(conn)
        if len(self._conns) + self._opening < self._size:
            return await self._open()
        waiter: _Waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            conn = await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over as we were cancelled
                got = waiter.result()
                if got is None:
                    self._opening -= 1
                    self._free_slot()
                else:
                    self.release(got)
            raise
        return await self._open(reserved=True) if conn is None else conn

    async def _open(self, *, reserved: bool = False) -> Any:
        if not reserved:
            self._opening += 1
        try:
            conn = await self._connect()
        except BaseException:
            self._opening -= 1
            self._free_slot()
            raise
        self._opening -= 1
        if self._closed:
            conn.terminate()
            raise asyncpg.InterfaceError("the connection pool is closed")
        self._conns.add(conn)
        return conn

    def release(self, conn: Any, *, reusable: bool = True) -> None:
        """Give a connection back; ``reusable=False`` (or a connection left in a transaction
        or closed) closes it instead, and its slot goes to the next waiter."""
        if not reusable or conn.is_closed() or conn.is_in_transaction():
            self._conns.discard(conn)
            conn.terminate()
            self._free_slot()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    def _free_slot(self) -> None:
        """A slot became free: the first live waiter opens a connection in it."""
        while self._waiters and not self._closed:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._opening += 1
                waiter.set_result(None)
                return

    async def fetch(self, sql: str, args: Sequence[Any], *, timeout: float | None = None) -> list[Any]:
        """Run one query on a pooled connection; its records."""
        conn = await self.acquire()
        reusable = False
        try:
            records = list(await conn.fetch(sql, *args, timeout=timeout))
            reusable = True
            return records
        except asyncpg.PostgresError:
            reusable = True  # the server refused the statement; the connection is as it was
            raise
        finally:
            self.release(conn, reusable=reusable)

    async def fetchval(self, sql: str, args: Sequence[Any], *, timeout: float | None = None) -> Any:
        """Run one query on a pooled connection; the first column of its first row."""
        records = await self.fetch(sql, args, timeout=timeout)
        return records[0][0] if records else None

    def _refuse_waiters(self) -> None:
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the connection pool is closed"))

    async def close(self) -> None:
        """Refuse new callers, wait for the connections in use, close them all."""
        self._refuse_waiters()
        while len(self._idle) < len(self._conns) or self._opening:
            await asyncio.sleep(0.01)
        idle, self._idle = self._idle, []
        for conn in idle:
            self._conns.discard(conn)
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    def terminate(self) -> None:
        """Close every connection at once, in use or not."""
        self._refuse_waiters()
        for conn in list(self._conns):
            conn.terminate()
        self._conns.clear()
        self._idle.clear()
