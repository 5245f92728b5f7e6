"""The SQLite writer: one write connection, group commit, jobs run on the event loop.

SQLite allows one writer at a time, and with ``synchronous=FULL`` every COMMIT costs one
fsync (~220 µs here). A job is a few statements of a few µs each, so jobs run on the
event-loop thread itself, and only the COMMIT (the fsync, which runs without the GIL) goes to
the writer thread. Jobs used to run in that thread too, but ``sqlite3`` releases the GIL around
every statement, and under load each hand-back waited for the busy loop thread's switch
interval: a 50 µs job took ~0.5 ms and the writer was the server's bottleneck.

Group commit comes naturally: jobs submitted while a batch commits wait for it, then run
together as the next batch (up to ``batch_size``) under one COMMIT. No delay is added: a lone
job runs at the end of the loop iteration that submitted it. Each job of a batch of several
runs inside a SAVEPOINT, so a job that raises (for example a failed precondition) rolls back
only its own writes. Futures are resolved only after the COMMIT succeeded: nothing is
acknowledged before it is durable.

Another process holding the write lock (a second server on the same file): the write
connection has no busy timeout, so BEGIN fails at once instead of stalling the loop, and that
batch runs in the writer thread, which waits for the lock as long as the reader would.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from durable_workflow_server.storage._interface import (
    StorageUnavailable,
)

Job = Callable[[sqlite3.Connection], Any]
#: Called on the event loop after a job committed: (job result) -> None.
AfterCommit = Callable[[Any], None]
Outcome = tuple[bool, Any]

#: How long a batch waits for another process's write lock (the connections' busy timeout).
LOCK_WAIT_SECONDS = 30.0


class _Item:
    __slots__ = ("after_commit", "future", "job", "loop")

    def __init__(
        self,
        job: Job,
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
        after_commit: AfterCommit | None,
    ) -> None:
        self.job = job
        self.future = future
        self.loop = loop
        self.after_commit = after_commit


class SqliteWriter:
    """Owns the write connection; ``submit`` a job and await its committed result."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, batch_size: int = 256) -> None:
        self._connect = connect
        self._batch_size = batch_size
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        # Work for the writer thread: a COMMIT, or a whole batch that must wait for the lock.
        self._work: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._pending: deque[_Item] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._busy = False  # a batch is scheduled, running or committing; only the loop changes it
        self._idle: threading.Event | None = None
        self._closed = False

    def start(self) -> None:
        """Open the write connection and start the writer thread."""
        conn = self._connect()
        try:
            conn.execute("PRAGMA busy_timeout=0")  # see the module docstring: never block the loop
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._thread = threading.Thread(target=self._run, name="dw-sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Job, after_commit: AfterCommit | None = None) -> asyncio.Future[Any]:
        """Queue ``job``; the future resolves to its result once the batch committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._closed or self._thread is None:
            future.set_exception(StorageUnavailable("storage is closed"))
            return future
        self._pending.append(_Item(job, future, loop, after_commit))
        if self._busy and self._loop is not loop and self._loop is not None and self._loop.is_closed():
            # The loop that ran batches is gone (mid-batch, its callbacks never ran); carry on here.
            self._busy = False
        if not self._busy:
            self._busy = True
            self._loop = loop
            loop.call_soon(self._flush)
        return future

    def stop(self) -> None:
        """Finish queued jobs, then close the connection (blocks: call it off the loop)."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            idle = threading.Event()

            def arm() -> None:
                self._idle = idle
                if not self._busy:
                    idle.set()

            try:
                loop.call_soon_threadsafe(arm)
                while not idle.wait(0.05):
                    if loop.is_closed() or not loop.is_running():
                        break
            except RuntimeError:  # the loop closed meanwhile
                pass
        self._work.put(None)
        self._thread.join()
        failure = StorageUnavailable("storage is closed")
        while self._pending:  # only when the loop went away before they could run
            _post(self._pending.popleft(), False, failure)
        if self._conn is not None:
            self._conn.close()

    # --- on the event loop ----------------------------------------------------------------

    def _flush(self) -> None:
        conn = self._conn
        assert conn is not None
        batch = [self._pending.popleft() for _ in range(min(self._batch_size, len(self._pending)))]
        if not batch:
            self._finish([], [], None)
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:  # locked by another process: the thread waits for the lock
            self._work.put(lambda: self._run_in_thread(batch))
            return
        try:
            outcomes = _run_jobs(conn, batch)
            if not any(ok for ok, _ in outcomes):  # nothing to make durable
                conn.execute("ROLLBACK")
                self._finish(batch, outcomes, None)
                return
        except Exception as exc:
            _rollback(conn)
            self._finish(batch, [], StorageUnavailable(f"sqlite write failed: {exc}"))
            return
        self._work.put(lambda: self._commit(batch, outcomes))

    def _finish(self, batch: list[_Item], outcomes: list[Outcome], error: BaseException | None) -> None:
        loop = self._loop
        for index, item in enumerate(batch):
            ok, value = (False, error) if error is not None else outcomes[index]
            if item.loop is loop:
                _settle(item, ok, value)
            else:
                _post(item, ok, value)
        if self._pending:
            # call_soon, not a direct call: callbacks already due run first and may add jobs.
            asyncio.get_running_loop().call_soon(self._flush)
            return
        self._busy = False
        if self._idle is not None:
            self._idle.set()

    # --- in the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            work = self._work.get()
            if work is None:
                return
            work()

    def _commit(self, batch: list[_Item], outcomes: list[Outcome]) -> None:
        conn = self._conn
        assert conn is not None
        error: BaseException | None = None
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(conn)
            error = StorageUnavailable(f"sqlite write failed: {exc}")
        self._hand_back(batch, outcomes, error)

    def _run_in_thread(self, batch: list[_Item]) -> None:
        conn = self._conn
        assert conn is not None
        try:
            _begin_waiting(conn)
            outcomes = _run_jobs(conn, batch)
            conn.execute("COMMIT")
        except Exception as exc:
            _rollback(conn)
            self._hand_back(batch, [], StorageUnavailable(f"sqlite write failed: {exc}"))
            return
        self._hand_back(batch, outcomes, None)

    def _hand_back(self, batch: list[_Item], outcomes: list[Outcome], error: BaseException | None) -> None:
        loop = self._loop
        try:
            assert loop is not None
            loop.call_soon_threadsafe(self._finish, batch, outcomes, error)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


def _run_jobs(conn: sqlite3.Connection, batch: list[_Item]) -> list[Outcome]:
    """Run the jobs inside the open transaction; a job's failure undoes only its writes."""
    if len(batch) == 1:
        # No savepoint: if the lone job fails the caller rolls the whole transaction back.
        try:
            return [(True, batch[0].job(conn))]
        except Exception as exc:
            return [(False, _job_error(exc))]
    outcomes: list[Outcome] = []
    for item in batch:
        # One constant savepoint name keeps the statement text stable, so it stays prepared.
        conn.execute("SAVEPOINT j")
        try:
            result = item.job(conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO j")
            conn.execute("RELEASE j")
            outcomes.append((False, _job_error(exc)))
        else:
            conn.execute("RELEASE j")
            outcomes.append((True, result))
    return outcomes


def _job_error(exc: Exception) -> Exception:
    if isinstance(exc, sqlite3.Error):  # a database problem, not the caller's
        return StorageUnavailable(f"sqlite: {exc}")
    return exc


def _begin_waiting(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, retrying while another process holds the lock (the busy timeout's job)."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    delay = 0.001
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _post(item: _Item, ok: bool, value: Any) -> None:
    try:
        item.loop.call_soon_threadsafe(_settle, item, ok, value)
    except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
        pass


def _settle(item: _Item, ok: bool, value: Any) -> None:
    if ok and item.after_commit is not None:
        try:
            item.after_commit(value)
        except Exception as exc:  # a wake-up bug must not keep the caller from its result
            item.loop.call_exception_handler({"message": "after-commit callback failed", "exception": exc})
    if item.future.done():  # the caller was cancelled; the write is committed anyway
        return
    if ok:
        item.future.set_result(value)
    else:
        item.future.set_exception(value)
