"""Wake-ups between server nodes: PostgreSQL LISTEN/NOTIFY (the receiving side).

After a write commits, the node wakes its own waiters at once and hands the wake-ups meant
for other nodes to its announcer (``_pg_announce``), which sends them with ``pg_notify`` on
the schema's channel, outside the write's transaction. A payload is JSON:
``{"n": <sending node>, "w": [[key, detail], ...]}`` for wake-ups, where ``key`` is the wake
key (``["workflow_task", ns, queue]``, ``["run", run_id]``, ...), or ``{"n": <node>, "p":
"hello" | "here" | "bye"}`` for the presence notes that tell nodes whether anyone else
listens.

Each node holds one dedicated connection that LISTENs, feeds the engine's wake-up callback
and reports presence notes. A node ignores its own wake-ups: it already woke its waiters right
after the commit. If the listening connection drops, it is re-opened with backoff; wake-ups
missed meanwhile only cost latency: every long poll also re-checks storage periodically, and
every node's timer loop reads the table at least once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from durable_workflow_server.storage._interface import Wake

log = logging.getLogger(__name__)

#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; stay well below.
MAX_PAYLOAD = 7000
_BACKOFF_MAX = 5.0
#: One round trip for a whole batch; a transaction that only notifies writes no WAL.
NOTIFY_SQL = "SELECT count(pg_notify($1, p)) FROM unnest($2::text[]) AS p"
#: Seconds a batch of wake-ups may take to send; a stuck send must not hold up the next ones.
NOTIFY_TIMEOUT = 5.0


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
    node, wakes, _ = decode_note(payload)
    return node, wakes


def presence(node: str, note: str) -> str:
    """The payload of a presence note (``hello``, ``here`` or ``bye``)."""
    return orjson.dumps({"n": node, "p": note}).decode()


def decode_note(payload: str) -> tuple[str, list[Wake], str | None]:
    """``(sending node, wakes, presence note or None)``; raises ValueError when it is not ours."""
    try:
        data = orjson.loads(payload)
        node = str(data["n"])
        note = data.get("p")
        if isinstance(note, str):
            return node, [], note
        wakes = [
            Wake(tuple(str(part) for part in key), None if detail is None else str(detail))
            for key, detail in data["w"]
        ]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"not a wake-up payload: {payload[:80]!r}") from exc
    return node, wakes, None


class Listener:
    """One LISTEN connection that calls ``deliver`` for every wake-up of another node.

    Args:
        connect: opens a new asyncpg connection.
        channel: the channel to LISTEN on.
        node: this node's id (its own notifications are skipped).
        deliver: called on the event loop for each remote wake-up.
        heard: called with ``(node, presence note or None)`` for every notification of ours,
            this node's own included (``None``: a wake-up payload).
        opened: called each time the connection LISTENs (the first time and after a
            reconnect).
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        channel: str,
        node: str,
        deliver: Callable[[Wake], None],
        heard: Callable[[str, str | None], None] | None = None,
        opened: Callable[[], None] | None = None,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._node = node
        self._deliver = deliver
        self._heard = heard
        self._opened = opened
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
        if self._opened is not None:
            self._opened()

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        try:
            node, wakes, note = decode_note(payload)
        except ValueError:
            log.warning("ignoring a notification on %s that is not a wake-up", channel)
            return
        if self._heard is not None:
            self._heard(node, note)
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
        await conn.execute(NOTIFY_SQL, self._channel, payloads, timeout=NOTIFY_TIMEOUT)
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
