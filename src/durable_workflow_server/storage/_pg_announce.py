"""Wake-ups between server nodes: PostgreSQL LISTEN/NOTIFY (the sending side).

The NOTIFY is not part of a write's transaction, on purpose. PostgreSQL serialises the commits
of notifying transactions: each holds the notification-queue lock from its pre-commit through
its WAL flush, so with a NOTIFY in every write, all writes of all nodes committed one at a
time. The :class:`Announcer` sends one batch at a time instead, on the listening connection,
in a transaction that writes no WAL; while a batch is on its way the next one gathers,
deduplicated. A wake-up reaches the other nodes one round trip after its commit instead of
with it.

A node alone on its database announces no wake-ups at all: nobody would hear them but itself.
Nodes learn of each other through presence notes on the same channel (:class:`Peers`): a node
says ``hello`` when it starts listening (and again after a reconnect), every node answers a
``hello`` with ``here``, says ``here`` every :data:`PRESENCE_SECONDS`, and ``bye`` when it
closes. Any payload from a node counts as a sign of life, and a node silent for three periods
is forgotten. A newcomer waits (briefly) for its own ``hello`` to come back before it serves,
so the nodes already running have heard it too.

What a missed announcement costs (a node killed between commit and announcement, a listening
connection down, the moments before a ``hello`` is heard): latency, never correctness. Every
long poll also re-checks storage periodically, and every node's timer loop reads the table at
least once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from durable_workflow_server.storage._interface import Wake
from durable_workflow_server.storage._pg_listen import encode, presence

log = logging.getLogger(__name__)

#: How often a node says it is still there; peers forget it after three silent periods.
PRESENCE_SECONDS = 5.0


class Peers:
    """The other nodes known to listen on the channel, with when each was last heard."""

    def __init__(
        self, ttl: float = 3 * PRESENCE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl
        self._clock = clock
        self._seen: dict[str, float] = {}

    def saw(self, node: str) -> None:
        """``node`` was just heard from."""
        self._seen[node] = self._clock()

    def gone(self, node: str) -> None:
        """``node`` said it is leaving."""
        self._seen.pop(node, None)

    def alive(self) -> list[str]:
        """The nodes heard from within the time-to-live (forgetting the others)."""
        now = self._clock()
        for node in [n for n, at in self._seen.items() if now - at > self._ttl]:
            del self._seen[node]
        return list(self._seen)


class Announcer:
    """Sends this node's wake-ups and presence notes to the other nodes: one batch in flight at
    a time, the next gathering meanwhile.

    Args:
        node: this node's id (the payload's sender).
        send: sends a list of payloads; may raise (the batch is then dropped and logged).
        peers: who else listens; wake-ups are announced only while someone does.
    """

    def __init__(self, node: str, send: Callable[[list[str]], Awaitable[None]], peers: Peers) -> None:
        self._node = node
        self._send = send
        self.peers = peers
        self._pending: dict[Wake, None] = {}
        self._notes: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._echo: asyncio.Event | None = None
        #: Batches sent so far (tests, metrics).
        self.batches = 0

    # --- sending --------------------------------------------------------------------------

    def announce(self, wakes: Iterable[Wake]) -> None:
        """Queue ``wakes`` for the other nodes, if there are any (call after the commit)."""
        if not self.peers.alive():
            return
        for wake in wakes:
            self._pending[wake] = None
        self._kick()

    def say(self, note: str) -> None:
        """Queue a presence note (``hello``, ``here`` or ``bye``)."""
        self._notes.append(presence(self._node, note))
        self._kick()

    def _kick(self) -> None:
        if (self._pending or self._notes) and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending or self._notes:
                wakes = list(self._pending)
                notes, self._notes = self._notes, []
                self._pending.clear()
                self.batches += 1
                try:
                    await self._send(notes + (encode(self._node, wakes) if wakes else []))
                except Exception as exc:  # the others re-check periodically; keep going
                    log.warning("could not announce %d wake-up(s) to other nodes: %r", len(wakes), exc)
        finally:
            self._task = None

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (at most ``timeout`` seconds) until everything queued has been sent."""
        task = self._task
        if task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout)

    # --- presence -------------------------------------------------------------------------

    def heard(self, node: str, note: str | None) -> None:
        """A notification arrived from ``node`` (this one included): keep track of peers."""
        if node == self._node:
            if note == "hello" and self._echo is not None:
                self._echo.set()
            return
        if note == "bye":
            self.peers.gone(node)
            return
        self.peers.saw(node)
        if note == "hello":
            self.say("here")

    def listening(self) -> None:
        """The listening connection is (again) LISTENing: say hello."""
        self._echo = asyncio.Event()
        self.say("hello")

    async def introduced(self, timeout: float = 1.0) -> bool:
        """Wait until this node's last ``hello`` came back through the database (then every
        node listening at that moment has it too); False when it did not within ``timeout``."""
        echo = self._echo
        if echo is None:
            return False
        try:
            await asyncio.wait_for(echo.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def start_heartbeat(self, every: float = PRESENCE_SECONDS) -> None:
        """Say ``here`` every ``every`` seconds until :meth:`stop`."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(every)
                self.say("here")

        if self._heartbeat is None:
            self._heartbeat = asyncio.get_running_loop().create_task(beat())

    async def stop(self) -> None:
        """Say ``bye`` (if this node said hello), stop the heartbeat and send what is queued
        (bounded)."""
        beat, self._heartbeat = self._heartbeat, None
        if beat is not None:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        if self._echo is not None:
            self._echo = None
            self.say("bye")
        await self.drain()
