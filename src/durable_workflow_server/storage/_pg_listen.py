"""Wake-ups between server nodes: PostgreSQL LISTEN/NOTIFY.

After a write commits, the node wakes its own waiters at once and hands the wake-ups meant
for other nodes to its :class:`Announcer`, which sends them with ``pg_notify`` on the schema's
channel. The payload is JSON: ``{"n": <sending node>, "w": [[key, detail], ...]}`` where
``key`` is the wake key (``["workflow_task", ns, queue]``, ``["run", run_id]``, ...).

The NOTIFY is not part of the write's transaction, on purpose. PostgreSQL serialises the
commits of notifying transactions: each holds the notification-queue lock from its
pre-commit through its WAL flush, so with a NOTIFY in every write, all writes of all nodes
committed one at a time (measured: about 12 % of throughput on one node). The announcer
sends one batch at a time on the listening connection, in a transaction that writes no WAL;
while a batch is on its way the next one gathers, deduplicated. A wake-up reaches the other
nodes one round trip after the commit instead of with it. If a node dies between its commit
and its announcement, or the connection is down, the others miss those wake-ups, which costs
only latency: every long poll also re-checks storage periodically, and every node's timer
loop reads the table at least once a second.

Each node holds one dedicated connection that LISTENs and feeds the engine's wake-up
callback. A node ignores its own notifications: it already woke its waiters right after the
commit. If the listening connection drops, it is re-opened with backoff; wake-ups missed
meanwhile only cost latency, for the same reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from durable_workflow_server.storage._interface import Wake

log = logging.getLogger(__name__)

#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; stay well below.
MAX_PAYLOAD = 7000
_BACKOFF_MAX = 5.0
#: One round trip for a whole batch; a transaction that only notifies writes no WAL.
NOTIFY_SQL = "SELECT count(pg_notify($1, p)) FROM unnest($2::text[]) AS p"


def encode(node: str, wakes: Iterable[Wake]) -> list[str]:
    """The NOTIFY payloads for ``wakes`` (several when one would be too long; none for none)."""
    payloads: list[str] = []
    batch: list[list[Any]] = []
    size = 0
    for wake in dict.fromkeys(wakes):
        item = [list(wake.key), wake.detail]
        item_size = len(orjson.dumps(item)) + 1
        if batch and size + item_size > MAX_PAYLOAD:
            payloads.append(orjson.dumps({"n": node, "w": batch}).decode())
            batch, size = [], 0
        batch.append(item)
        size += item_size
    if batch:
        payloads.append(orjson.dumps({"n": node, "w": batch}).decode())
    return payloads


def decode(payload: str) -> tuple[str, list[Wake]]:
    """``(sending node, wakes)`` of one payload; raises ValueError when it is not ours."""
    try:
        data = orjson.loads(payload)
        node = str(data["n"])
        wakes = [
            Wake(tuple(str(part) for part in key), None if detail is None else str(detail))
            for key, detail in data["w"]
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a wake-up payload: {payload[:80]!r}") from exc
    return node, wakes


class Listener:
    """One LISTEN connection that calls ``deliver`` for every wake-up of another node.

    Args:
        connect: opens a new asyncpg connection.
        channel: the channel to LISTEN on.
        node: this node's id (its own notifications are skipped).
        deliver: called on the event loop for each remote wake-up.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        channel: str,
        node: str,
        deliver: Callable[[Wake], None],
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._node = node
        self._deliver = deliver
        self._conn: Any = None
        self._closed = False
        self._reconnect: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and LISTEN (raises if the first connection fails)."""
        await self._open()

    async def _open(self) -> None:
        conn = await self._connect()
        try:
            await conn.add_listener(self._channel, self._on_notify)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(self._on_lost)
        self._conn = conn

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            node, wakes = decode(payload)
        except ValueError:
            log.warning("ignoring a notification on %s that is not a wake-up", channel)
            return
        if node == self._node:
            return
        for wake in wakes:
            self._deliver(wake)

    def _on_lost(self, conn: Any) -> None:
        if self._closed or conn is not self._conn:
            return
        self._conn = None
        log.warning("lost the PostgreSQL LISTEN connection; reconnecting")
        self._reconnect = asyncio.get_running_loop().create_task(self._reopen())

    async def _reopen(self) -> None:
        delay = 0.1
        while not self._closed:
            try:
                await self._open()
            except Exception as exc:  # keep trying, whatever went wrong
                log.warning("PostgreSQL LISTEN reconnect failed (%r); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(_BACKOFF_MAX, delay * 2)
                continue
            log.info("PostgreSQL LISTEN connection restored")
            # Timers may have been created while we were deaf: the timer loop looks at once
            # (long polls re-check storage periodically anyway).
            self._deliver(Wake(("timers",)))
            return

    async def notify(self, payloads: list[str]) -> bool:
        """Send ``payloads`` on the channel over the listening connection (False: it is down)."""
        conn = self._conn
        if conn is None or conn.is_closed():
            return False
        await conn.execute(NOTIFY_SQL, self._channel, payloads)
        return True

    async def stop(self) -> None:
        """Stop listening and close the connection; idempotent."""
        self._closed = True
        task, self._reconnect = self._reconnect, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)


class Announcer:
    """Sends this node's wake-ups to the other nodes, after the writes that raised them
    committed: one batch in flight at a time, the next gathering meanwhile.

    Args:
        node: this node's id (the payload's sender).
        send: sends a list of payloads; may raise (the batch is then dropped and logged).
    """

    def __init__(self, node: str, send: Callable[[list[str]], Awaitable[None]]) -> None:
        self._node = node
        self._send = send
        self._pending: dict[Wake, None] = {}
        self._task: asyncio.Task[None] | None = None
        #: Batches sent so far (tests, metrics).
        self.batches = 0

    def announce(self, wakes: Iterable[Wake]) -> None:
        """Queue ``wakes`` for the other nodes (call on the event loop, after the commit)."""
        for wake in wakes:
            self._pending[wake] = None
        if self._pending and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = list(self._pending)
                self._pending.clear()
                self.batches += 1
                try:
                    await self._send(encode(self._node, batch))
                except Exception as exc:  # the others re-check periodically; keep going
                    log.warning("could not announce %d wake-up(s) to other nodes: %r", len(batch), exc)
        finally:
            self._task = None

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (at most ``timeout`` seconds) until everything queued has been sent."""
        task = self._task
        if task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout)
