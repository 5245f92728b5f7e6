"""In-process wake-ups for long polls and result waits.

A key (for example ``("workflow_task", ns, queue)``) has a counter. A waiter notes the
counter *before* it looks at storage, then waits until the counter moves; a wake that lands
between the look and the wait is therefore never lost. Only wake-ups live here: the state
itself is always re-read from storage, so several server nodes stay correct (another node's
changes are seen at the next periodic re-check).

Task-queue keys wake *one* waiter per new task, chosen among those that accept its type:
waking every poller for one task would send them all to the writer to fight over it.
Other keys (a run's history, the timer loop) wake everyone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

_ONE_AT_A_TIME = frozenset({"workflow_task", "activity_task"})
_MAX_KEYS = 4096


class Notifier:
    """Counters and waiters per key."""

    def __init__(self) -> None:
        self._counters: dict[Hashable, int] = {}
        self._waiters: dict[Hashable, list[tuple[asyncio.Future[object], frozenset[str]]]] = {}

    def mark(self, key: Hashable) -> int:
        """The key's counter now; pass it to :meth:`wait`."""
        return self._counters.get(key, 0)

    def notify(self, key: Hashable, detail: str | None = None) -> None:
        """Wake waiters of ``key``: one accepting ``detail`` for task queues, else all."""
        self._counters[key] = self._counters.get(key, 0) + 1
        if len(self._counters) > _MAX_KEYS:
            self._prune()
        self._wake(key, detail)

    def _prune(self) -> None:
        # Every run gets keys, so counters must not live forever. Dropping those nobody waits
        # on is safe: a waiter whose mark no longer matches just looks at storage once more,
        # and every wait also re-checks storage at least once a second.
        self._counters = {k: v for k, v in self._counters.items() if k in self._waiters}

    def _wake(self, key: Hashable, detail: str | None) -> None:
        waiters = self._waiters.get(key)
        if not waiters:
            return
        one = isinstance(key, tuple) and bool(key) and key[0] in _ONE_AT_A_TIME
        if not one:
            for future, _ in waiters:
                if not future.done():
                    future.set_result(detail)
            waiters.clear()
            return
        for index, (future, accepts) in enumerate(waiters):
            if future.done():
                continue
            if detail is None or not accepts or detail in accepts:
                future.set_result(detail)
                del waiters[index]
                return

    async def wait(
        self, key: Hashable, mark: int, timeout: float, accepts: frozenset[str] = frozenset()
    ) -> bool:
        """Wait until ``key`` is notified after ``mark`` or ``timeout`` passes.

        Args:
            key: what to wait for.
            mark: the counter read by :meth:`mark` before the caller looked at storage.
            timeout: seconds.
            accepts: task types this waiter can take (empty: all); used by task-queue keys.

        Returns:
            True if notified, False on timeout.
        """
        if self._counters.get(key, 0) != mark:
            return True
        if timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        entry = (future, accepts)
        self._waiters.setdefault(key, []).append(entry)
        # A timer instead of asyncio.wait_for: wait_for (3.11) swallows a cancellation that
        # arrives together with the wake-up, and the caller would then act for a gone client.
        timer = loop.call_later(timeout, _expire, future)
        try:
            outcome = await future
        except asyncio.CancelledError:
            # Chosen for a wake-up but cancelled (the client left): hand the wake-up on, or
            # the new task would wait for the next periodic re-check.
            if future.done() and not future.cancelled() and future.result() is not _TIMED_OUT:
                self._wake(key, _detail(future.result()))
            raise
        finally:
            timer.cancel()
            current = self._waiters.get(key)
            if current is not None:
                if entry in current:
                    current.remove(entry)
                if not current:
                    del self._waiters[key]
        if outcome is _TIMED_OUT:
            return self._counters.get(key, 0) != mark
        return True


_TIMED_OUT = object()


def _expire(future: asyncio.Future[object]) -> None:
    if not future.done():
        future.set_result(_TIMED_OUT)


def _detail(value: object) -> str | None:
    return value if isinstance(value, str) else None
