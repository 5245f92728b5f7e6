"""The SQLite storage backend (the default: one file, durable against ``kill -9``).

Durability and concurrency choices, all dialect-specific and therefore kept here:

- WAL journal with ``synchronous=FULL``: a COMMIT is on disk before we acknowledge it, and
  readers never block the writer (nor it them).
- One writer with group commit (:mod:`._sqlite_writer`): jobs run on the event loop, each
  batch's COMMIT (the fsync) in the writer thread.
- Reads run inline on the event-loop thread on their own connection. They are point lookups
  or short index range scans that take microseconds; a thread hop would cost more than the
  query. WAL gives each read a consistent snapshot of committed data.
- ``busy_timeout`` so that a second server process on the same file waits for the lock
  instead of failing at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import orjson

from durable_workflow_server.storage._interface import (
    ActivityClaimBuilder,
    Mutation,
    RunFilter,
    Storage,
    StorageUnavailable,
    Wake,
    WakeListener,
    WorkflowClaimBuilder,
)
from durable_workflow_server.storage._messages import MessageRow
from durable_workflow_server.storage._rows import (
    ActivityRow,
    ActivityTaskRow,
    ChildRow,
    EventRow,
    Row,
    RunRow,
    SearchAttributeDefRow,
    TimerRow,
    WorkerRow,
    WorkflowRow,
    WorkflowTaskRow,
)
from durable_workflow_server.storage._sqlite_apply import apply_mutation
from durable_workflow_server.storage._sqlite_migrate import migrate
from durable_workflow_server.storage._sqlite_sql import from_sql, queries
from durable_workflow_server.storage._sqlite_writer import SqliteWriter
from durable_workflow_server.storage._visibility_sql import compile_expr

R = TypeVar("R", bound=Row)

_CLAIM_SCAN = 32
_CLAIM_FIRST = 4


def _connect(path: str) -> sqlite3.Connection:
    # Row writes, claim variants and the named queries are well over sqlite3's default of 128
    # cached statements; a cache miss re-prepares the SQL on the hot path.
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30.0, cached_statements=512
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # durable against power loss and kill -9
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class SqliteStorage(Storage):
    """Storage on one SQLite file.

    Args:
        path: the database file (created if missing).
        batch_size: most mutations committed together by the writer thread.
    """

    def __init__(self, path: str | Path, *, batch_size: int = 256) -> None:
        self.path = str(path)
        self._batch_size = batch_size
        self._reader: sqlite3.Connection | None = None
        self._writer: SqliteWriter | None = None
        self._listener: WakeListener | None = None
        self._q = queries()

    # --- lifecycle --------------------------------------------------------------------

    async def open(self) -> None:
        """Create or migrate the database and start the writer thread; idempotent."""
        if self._writer is not None:
            return
        path = self.path

        def setup() -> None:
            conn = _connect(path)
            try:
                migrate(conn)
            finally:
                conn.close()

        try:
            await asyncio.to_thread(setup)
            writer = SqliteWriter(lambda: _connect(path), batch_size=self._batch_size)
            await asyncio.to_thread(writer.start)
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"cannot open the SQLite database {path!r}: {exc}") from exc
        self._writer = writer
        self._reader = _connect(path)

    async def close(self) -> None:
        """Commit what is queued, stop the writer and close connections; idempotent."""
        writer, self._writer = self._writer, None
        if writer is not None:
            await asyncio.to_thread(writer.stop)
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def set_wake_listener(self, listener: WakeListener | None) -> None:
        """Register the wake-up callback (called on the event-loop thread after commit)."""
        self._listener = listener

    async def ping(self) -> None:
        """Run a trivial read; raise StorageUnavailable if it fails."""
        try:
            self._read().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StorageUnavailable(str(exc)) from exc

    # --- reads ------------------------------------------------------------------------

    def _read(self) -> sqlite3.Connection:
        if self._reader is None:
            raise StorageUnavailable("storage is not open")
        return self._reader

    def _one(self, cls: type[R], name: str, **params: Any) -> R | None:
        try:
            record = self._read().execute(self._q[name], params).fetchone()
        except sqlite3.Error as exc:
            raise StorageUnavailable(str(exc)) from exc
        return None if record is None else from_sql(cls, record)

    def _many(self, cls: type[R], name: str, **params: Any) -> list[R]:
        try:
            records = self._read().execute(self._q[name], params).fetchall()
        except sqlite3.Error as exc:
            raise StorageUnavailable(str(exc)) from exc
        return [from_sql(cls, r) for r in records]

    def _scalar(self, name: str, **params: Any) -> Any:
        try:
            record = self._read().execute(self._q[name], params).fetchone()
        except sqlite3.Error as exc:
            raise StorageUnavailable(str(exc)) from exc
        return None if record is None else record[0]

    async def namespace_exists(self, namespace: str) -> bool:
        """Whether the namespace row exists."""
        return self._scalar("namespace_exists", namespace=namespace) is not None

    async def get_workflow(self, workflow_id: str) -> WorkflowRow | None:
        """The workflow id's row."""
        return self._one(WorkflowRow, "get_workflow", workflow_id=workflow_id)

    async def get_run(self, run_id: str) -> RunRow | None:
        """One run."""
        return self._one(RunRow, "get_run", run_id=run_id)

    async def runs_of(self, workflow_id: str) -> list[RunRow]:
        """Runs of a workflow id, oldest first."""
        return self._many(RunRow, "runs_of", workflow_id=workflow_id)

    def _filter_sql(self, flt: RunFilter) -> tuple[str, list[Any]]:
        conds = ["namespace = ?"]
        params: list[Any] = [flt.namespace]
        if flt.workflow_type is not None:
            conds.append("workflow_type = ?")
            params.append(flt.workflow_type)
        if flt.statuses is not None:
            conds.append(f"status IN ({', '.join('?' for _ in flt.statuses)})")
            params.extend(flt.statuses)
        if flt.query:
            # Substring match; LIKE wildcards in the user's text are escaped to stay literal.
            pattern = "%" + flt.query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conds.append("(workflow_id LIKE ? ESCAPE '\\' OR business_key LIKE ? ESCAPE '\\')")
            params.extend([pattern, pattern])
        if flt.visibility is not None:
            conds.append(compile_expr(flt.visibility, params))
        return " AND ".join(conds), params

    async def list_runs(self, flt: RunFilter, *, limit: int, after: tuple[float, str] | None) -> list[RunRow]:
        """Runs newest first, strictly after the (started_at, run_id) cursor."""
        where, params = self._filter_sql(flt)
        if after is not None:
            where += " AND (started_at < ? OR (started_at = ? AND run_id < ?))"
            params.extend([after[0], after[0], after[1]])
        sql = f"SELECT * FROM runs WHERE {where} ORDER BY started_at DESC, run_id DESC LIMIT ?"
        params.append(limit)
        try:
            records = self._read().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageUnavailable(str(exc)) from exc
        return [from_sql(RunRow, r) for r in records]

    async def count_runs(self, flt: RunFilter) -> int:
        """How many runs match the filter."""
        where, params = self._filter_sql(flt)
        try:
            record = self._read().execute(f"SELECT COUNT(*) FROM runs WHERE {where}", params).fetchone()
        except sqlite3.Error as exc:
            raise StorageUnavailable(str(exc)) from exc
        return int(record[0])

    async def history(self, run_id: str, *, after: int, limit: int) -> list[EventRow]:
        """Events after a sequence, ascending."""
        try:
            records = (
                self._read()
                .execute(self._q["history"], {"run_id": run_id, "after": after, "limit": limit})
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise StorageUnavailable(str(exc)) from exc
        return [
            EventRow(
                r["run_id"],
                r["sequence"],
                r["event_id"],
                r["event_type"],
                orjson.loads(r["payload"]),
                r["recorded_at"],
                r["workflow_task_id"],
            )
            for r in records
        ]

    async def get_workflow_task(self, task_id: str) -> WorkflowTaskRow | None:
        """One workflow task."""
        return self._one(WorkflowTaskRow, "get_workflow_task", task_id=task_id)

    async def open_workflow_task(self, run_id: str) -> WorkflowTaskRow | None:
        """The run's open workflow task."""
        return self._one(WorkflowTaskRow, "open_workflow_task", run_id=run_id)

    async def leased_workflow_tasks(self, namespace: str, worker_id: str) -> list[WorkflowTaskRow]:
        """Tasks leased by a worker."""
        return self._many(WorkflowTaskRow, "leased_workflow_tasks", namespace=namespace, worker_id=worker_id)

    async def get_activity(self, activity_execution_id: str) -> ActivityRow | None:
        """One activity execution."""
        return self._one(ActivityRow, "get_activity", activity_execution_id=activity_execution_id)

    async def open_activities(self, run_id: str) -> list[ActivityRow]:
        """Open activity executions of a run."""
        return self._many(ActivityRow, "open_activities", run_id=run_id)

    async def get_activity_task(self, task_id: str) -> ActivityTaskRow | None:
        """One activity task."""
        return self._one(ActivityTaskRow, "get_activity_task", task_id=task_id)

    async def activity_task_by_attempt(self, attempt_id: str) -> ActivityTaskRow | None:
        """The activity task holding an attempt id."""
        return self._one(ActivityTaskRow, "activity_task_by_attempt", attempt_id=attempt_id)

    async def get_timer(self, timer_id: str) -> TimerRow | None:
        """One timer."""
        return self._one(TimerRow, "get_timer", timer_id=timer_id)

    async def pending_timers(self, run_id: str) -> list[TimerRow]:
        """Pending timers of a run."""
        return self._many(TimerRow, "pending_timers", run_id=run_id)

    async def due_timers(self, now: float, limit: int) -> list[TimerRow]:
        """Due pending timers, earliest first."""
        return self._many(TimerRow, "due_timers", now=now, limit=limit)

    async def next_timer_at(self) -> float | None:
        """Earliest pending fire time."""
        value = self._scalar("next_timer_at")
        return None if value is None else float(value)

    async def next_available_at(self, kind: str, namespace: str, task_queue: str) -> float | None:
        """Earliest time a task on the queue becomes claimable."""
        name = "next_available_workflow" if kind == "workflow" else "next_available_activity"
        value = self._scalar(name, namespace=namespace, task_queue=task_queue)
        return None if value is None else float(value)

    async def get_worker(self, namespace: str, worker_id: str) -> WorkerRow | None:
        """One worker registration."""
        return self._one(WorkerRow, "get_worker", namespace=namespace, worker_id=worker_id)

    async def get_message(self, message_id: str) -> MessageRow | None:
        """One signal receipt, update or condition wait."""
        return self._one(MessageRow, "get_message", message_id=message_id)

    async def open_messages(self, run_id: str) -> list[MessageRow]:
        """The run's open waits and unfinished updates, oldest first."""
        return self._many(MessageRow, "open_messages", run_id=run_id)

    async def workers_on_queue(self, namespace: str, task_queue: str) -> list[WorkerRow]:
        """Active registrations on the queue."""
        return self._many(WorkerRow, "workers_on_queue", namespace=namespace, task_queue=task_queue)

    async def get_child(self, link_id: str) -> ChildRow | None:
        """One child-workflow link."""
        return self._one(ChildRow, "get_child", link_id=link_id)

    async def open_children(self, parent_run_id: str) -> list[ChildRow]:
        """Open children of a parent run."""
        return self._many(ChildRow, "open_children", parent_run_id=parent_run_id)

    async def search_attribute_defs(self, namespace: str) -> list[SearchAttributeDefRow]:
        """Search-attribute registrations of a namespace."""
        return self._many(SearchAttributeDefRow, "search_attribute_defs", namespace=namespace)

    async def count_open_activities(self, run_id: str, first: int, last: int, exclude: str) -> int:
        """Open activities of a run in a sequence range (the parallel barrier's question)."""
        value = self._scalar(
            "count_open_activities", run_id=run_id, first=first, last=last, exclude=exclude
        )
        return int(value or 0)

    # --- writes -----------------------------------------------------------------------

    def _writer_or_fail(self) -> SqliteWriter:
        if self._writer is None:
            raise StorageUnavailable("storage is not open")
        return self._writer

    def _after_commit(self, wakes: list[Wake]) -> None:
        listener = self._listener
        if listener is not None:
            for wake in wakes:
                listener(wake)

    async def apply(self, mutation: Mutation) -> list[EventRow]:
        """Apply one mutation atomically (group-committed with others)."""
        q = self._q

        def job(conn: sqlite3.Connection) -> tuple[list[EventRow], list[Wake]]:
            return apply_mutation(conn, q, mutation), _wakes_of(mutation)

        result: tuple[list[EventRow], list[Wake]] = await self._writer_or_fail().submit(
            job, lambda value: self._after_commit(value[1])
        )
        return result[0]

    async def claim_workflow_task(
        self,
        namespace: str,
        task_queue: str,
        types: Sequence[str],
        build_id: str | None,
        now: float,
        build: WorkflowClaimBuilder,
    ) -> tuple[WorkflowTaskRow, list[EventRow]] | None:
        """Lease the oldest eligible workflow task in one atomic step."""
        q = self._q
        wanted = set(types)

        def job(conn: sqlite3.Connection) -> tuple[tuple[WorkflowTaskRow, list[EventRow]] | None, list[Wake]]:
            params: dict[str, Any] = {
                "namespace": namespace,
                "task_queue": task_queue,
                "now": now,
                "limit": _CLAIM_SCAN,
            }
            sql = _candidates_sql(q["workflow_claim_candidates"], "workflow_type", wanted, params)
            for record in _scan(conn, sql, params):
                task = from_sql(WorkflowTaskRow, record)
                if wanted and task.workflow_type not in wanted:
                    continue
                if task.compatibility is not None and build_id is not None and task.compatibility != build_id:
                    continue
                run_record = conn.execute(q["get_run"], {"run_id": task.run_id}).fetchone()
                if run_record is None:
                    continue
                mutation = build(task, from_sql(RunRow, run_record))
                if mutation is None:
                    continue
                events = apply_mutation(conn, q, mutation)
                fresh = conn.execute(q["get_workflow_task"], {"task_id": task.task_id}).fetchone()
                return (from_sql(WorkflowTaskRow, fresh), events), _wakes_of(mutation)
            return None, []

        result = await self._writer_or_fail().submit(job, lambda value: self._after_commit(value[1]))
        claimed: tuple[WorkflowTaskRow, list[EventRow]] | None = result[0]
        return claimed

    async def claim_activity_task(
        self,
        namespace: str,
        task_queue: str,
        types: Sequence[str],
        now: float,
        build: ActivityClaimBuilder,
    ) -> tuple[ActivityTaskRow, list[EventRow]] | None:
        """Lease the oldest eligible activity task in one atomic step."""
        q = self._q
        wanted = set(types)

        def job(conn: sqlite3.Connection) -> tuple[tuple[ActivityTaskRow, list[EventRow]] | None, list[Wake]]:
            params: dict[str, Any] = {
                "namespace": namespace,
                "task_queue": task_queue,
                "now": now,
                "limit": _CLAIM_SCAN,
            }
            sql = _candidates_sql(q["activity_claim_candidates"], "activity_type", wanted, params)
            for record in _scan(conn, sql, params):
                task = from_sql(ActivityTaskRow, record)
                if wanted and task.activity_type not in wanted:
                    continue
                act = conn.execute(
                    q["get_activity"], {"activity_execution_id": task.activity_execution_id}
                ).fetchone()
                if act is None:
                    continue
                mutation = build(task, from_sql(ActivityRow, act))
                if mutation is None:
                    continue
                events = apply_mutation(conn, q, mutation)
                fresh = conn.execute(q["get_activity_task"], {"task_id": task.task_id}).fetchone()
                return (from_sql(ActivityTaskRow, fresh), events), _wakes_of(mutation)
            return None, []

        result = await self._writer_or_fail().submit(job, lambda value: self._after_commit(value[1]))
        claimed: tuple[ActivityTaskRow, list[EventRow]] | None = result[0]
        return claimed


def _scan(conn: sqlite3.Connection, sql: str, params: dict[str, Any]) -> Iterator[sqlite3.Row]:
    """Claim candidates, oldest first: a few, then the whole scan only if those were all skipped.

    Under a backlog the first candidate is nearly always taken, and fetching ``_CLAIM_SCAN``
    rows (twice that for workflow tasks) on every claim was a visible share of a claim's cost.
    """
    for limit in (_CLAIM_FIRST, _CLAIM_SCAN):
        params["limit"] = limit
        records = conn.execute(sql, params).fetchall()
        yield from records
        if len(records) < limit:  # every sub-scan came back short: nothing more to find
            return


def _candidates_sql(base: str, column: str, types: set[str], params: dict[str, Any]) -> str:
    """Narrow a claim query to the worker's types in SQL, so a queue full of other types
    cannot hide the tasks this worker may take behind the scan limit."""
    if not types:
        return base
    names = []
    for index, value in enumerate(sorted(types)):
        params[f"type{index}"] = value
        names.append(f":type{index}")
    return base.replace("ORDER BY", f"AND {column} IN ({', '.join(names)}) ORDER BY")


def _wakes_of(mutation: Mutation) -> list[Wake]:
    wakes = list(mutation.wakes)
    for run_id in dict.fromkeys(e.run_id for e in mutation.events):
        wakes.append(Wake(("run", run_id)))
    return wakes
