"""The single SQLite writer thread, with group commit.

SQLite allows one writer at a time, and with ``synchronous=FULL`` every COMMIT costs one
fsync (~220 µs here). So one thread owns the write connection, drains its queue, and runs
up to ``batch_size`` jobs in one ``BEGIN IMMEDIATE … COMMIT``: one fsync for the whole
batch. Each job runs inside its own SAVEPOINT, so a job that raises (for example a failed
precondition) rolls back only its own writes. Callers' futures are resolved on their event
loop only after the COMMIT succeeded: nothing is acknowledged before it is durable.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from durable_workflow_server.storage._interface import (
    StorageUnavailable,
)

Job = Callable[[sqlite3.Connection], Any]
#: Called on the event loop after a job committed: (job result) -> None.
AfterCommit = Callable[[Any], None]


@dataclass
class _Item:
    job: Job
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    after_commit: AfterCommit | None


class SqliteWriter:
    """Owns the write connection; ``submit`` a job and await its committed result."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, batch_size: int = 256) -> None:
        self._connect = connect
        self._batch_size = batch_size
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        """Open the write connection in the writer thread and start draining."""
        ready: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="dw-sqlite-writer", daemon=True)
        self._thread.start()
        error = ready.get()
        if error is not None:
            raise error

    def submit(self, job: Job, after_commit: AfterCommit | None = None) -> asyncio.Future[Any]:
        """Queue ``job``; the future resolves to its result once the batch committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._closed or self._thread is None:
            future.set_exception(StorageUnavailable("storage is closed"))
            return future
        self._queue.put(_Item(job, future, loop, after_commit))
        return future

    def stop(self) -> None:
        """Finish queued jobs, then close the connection (blocks until the thread ends)."""
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    def _run(self, ready: queue.SimpleQueue[BaseException | None]) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # reported to start(), which raises it in the caller
            ready.put(exc)
            return
        ready.put(None)
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch = [first]
                stop = False
                while len(batch) < self._batch_size:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                try:
                    self._run_batch(conn, batch)
                except Exception as exc:  # never let the thread die: waiting callers would hang
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    failure = StorageUnavailable(f"sqlite writer failed: {exc!r}")
                    for item in batch:
                        _post(item, False, failure)
                if stop:
                    return
        finally:
            conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Item]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for index, item in enumerate(batch):
                conn.execute(f"SAVEPOINT j{index}")
                try:
                    result = item.job(conn)
                except Exception as exc:  # the job's own failure: undo only its writes
                    conn.execute(f"ROLLBACK TO j{index}")
                    conn.execute(f"RELEASE j{index}")
                    if isinstance(exc, sqlite3.Error):  # a database problem, not the caller's
                        exc = StorageUnavailable(f"sqlite: {exc}")
                    outcomes.append((False, exc))
                else:
                    conn.execute(f"RELEASE j{index}")
                    outcomes.append((True, result))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            failure = StorageUnavailable(f"sqlite write failed: {exc}")
            for item in batch:
                _post(item, False, failure)
            return
        for item, (ok, value) in zip(batch, outcomes, strict=True):
            _post(item, ok, value)


def _post(item: _Item, ok: bool, value: Any) -> None:
    try:
        item.loop.call_soon_threadsafe(_settle, item, ok, value)
    except RuntimeError:  # the caller's loop is closed: nobody is waiting any more
        pass


def _settle(item: _Item, ok: bool, value: Any) -> None:
    if ok and item.after_commit is not None:
        item.after_commit(value)
    if item.future.done():  # the caller was cancelled; the write is committed anyway
        return
    if ok:
        item.future.set_result(value)
    else:
        item.future.set_exception(value)
