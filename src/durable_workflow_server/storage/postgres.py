"""The PostgreSQL storage backend (asyncpg): one database shared by any number of server nodes.

Concurrency and durability choices, all dialect-specific and therefore kept here:

- READ COMMITTED (PostgreSQL's default) with explicit row locks instead of SERIALIZABLE: every
  precondition locks what it checks until COMMIT (a conditional ``UPDATE … WHERE version =``
  or a ``SELECT … FOR UPDATE``), and READ COMMITTED re-evaluates an UPDATE's WHERE after
  waiting for a concurrent writer, so a stale writer finds zero rows and fails its precondition
  (the run-version fence). SERIALIZABLE would add aborts for harmless read overlaps.
- Preconditions are checked runs first (in run-id order), then other rows, so that two
  mutations on the same runs take their locks in one order; a deadlock or serialization
  failure that still happens (PostgreSQL aborts one side) is retried here, invisibly.
- Claims lock ONE candidate task at a time with ``FOR UPDATE SKIP LOCKED``: concurrent pollers
  on any node get different tasks and nobody queues behind another poller's lock. The claim
  then takes the run's lock with SKIP LOCKED too; if another transaction holds the run (and
  might be waiting for this very task row), the claim lets go of the task and takes the locks
  again run first, the order every other write uses.
- Round trips are the main cost on a shared machine, so a write transaction is one: a
  mutation is one ``dw_apply`` call (``dw_apply_prepared`` of migration 0005, whose
  statements are prepared once per connection; :mod:`._pg_apply`) sent in autocommit mode,
  which makes the call itself the transaction (no BEGIN, no COMMIT). A claim needs the
  engine's builder between its lock and its write, so it stays an explicit transaction of
  four round trips: BEGIN, a ``dw_claim_*`` call (task, run lock state and the builder's row
  at once), ``dw_apply``, COMMIT.
- Wake-ups cross nodes with LISTEN/NOTIFY (:mod:`._pg_listen`, :mod:`._pg_announce`),
  announced after the commit in batches rather than inside the write (PostgreSQL makes
  notifying transactions commit one at a time), and only while another node listens. A
  wake-up therefore always follows the rows it announces.
- ``synchronous_commit`` stays on: a COMMIT (explicit or the autocommit of ``dw_apply``) is
  on disk before we acknowledge it.
- Connections come from a small pool of our own (:mod:`._pg_pool`); asyncpg's costs as
  much CPU per one-row read as the read itself.
- A write already sent is not abandoned when its caller is cancelled (a client hanging up):
  it finishes in a shielded task, like SQLite's writer thread, and its wake-ups still fire.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import orjson

from durable_workflow_server.storage._interface import (
    ActivityClaimBuilder,
    Inc,
    Insert,
    Mutation,
    Patch,
    PatchWhere,
    PreconditionFailed,
    Put,
    RunFilter,
    Storage,
    StorageUnavailable,
    Wake,
    WakeListener,
    WorkflowClaimBuilder,
)
from durable_workflow_server.storage._messages import MessageRow
from durable_workflow_server.storage._pg_announce import Announcer, Peers
from durable_workflow_server.storage._pg_apply import apply_mutation, forget_prepared, wakes_of
from durable_workflow_server.storage._pg_listen import NOTIFY_SQL, NOTIFY_TIMEOUT, Listener
from durable_workflow_server.storage._pg_migrate import migrate
from durable_workflow_server.storage._pg_pool import Pool
from durable_workflow_server.storage._pg_sql import (
    Query,
    from_pg,
    queries,
)
from durable_workflow_server.storage._pg_visibility import compile_expr
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

R = TypeVar("R", bound=Row)
T = TypeVar("T")

#: Candidates one claim looks at before it gives up (each turned down by its builder).
_CLAIM_SCAN = 32
#: Transparent re-runs of a write that PostgreSQL aborted as a deadlock victim.
_CONFLICT_RETRIES = 8
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: Errors that mean "the database is not there" rather than "your write is wrong".
_UNAVAILABLE = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError)
#: A session whose prepared statements were changed behind our back (a ``DEALLOCATE ALL``).
_STATEMENTS_LOST = (asyncpg.InvalidSQLStatementNameError, asyncpg.DuplicatePreparedStatementError)
#: Aborts PostgreSQL chooses to break a lock cycle, and lost prepared statements (forgotten
#: first, so the re-run prepares them again); nothing was written, so a re-run is safe.
_CONFLICTS = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError, *_STATEMENTS_LOST)


class _RunBusy(Exception):
    """Raised out of a claim transaction to give back the task lock before waiting for the run."""

    def __init__(self, task_id: str, run_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id
        self.run_id = run_id


class PostgresStorage(Storage):
    """Storage on a PostgreSQL database; several server nodes may share it.

    Args:
        dsn: a ``postgresql://`` connection string (asyncpg syntax).
        schema: keep the tables in this schema (created if missing) instead of the
            connection's default; tests use it to give each test its own empty schema.
        pool_size: most connections this node opens for requests (plus one to LISTEN).
    """

    def __init__(self, dsn: str, *, schema: str | None = None, pool_size: int = 16) -> None:
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise ValueError(f"schema must be a lower-case SQL identifier, not {schema!r}")
        self.dsn = dsn
        self.schema = schema
        self._pool_size = pool_size
        self._pool: Pool | None = None
        self._listen: Listener | None = None
        self._listener: WakeListener | None = None
        self._channel = "dw_wake"
        self._node = uuid.uuid4().hex
        self._announcer = Announcer(self._node, self._notify, Peers())
        self._q = queries()

    # --- lifecycle --------------------------------------------------------------------

    def _server_settings(self) -> dict[str, str]:
        # search_path on every connection (pool and listener) rather than schema-qualified
        # SQL: the same queries serve the default schema and a test's private one.
        return {"search_path": self.schema} if self.schema else {}

    async def _connect(self) -> Any:
        # timeout: connecting; an unreachable server fails requests instead of hanging them.
        return await asyncpg.connect(self.dsn, server_settings=self._server_settings(), timeout=10)

    async def open(self) -> None:
        """Create or migrate the schema, open the pool and start listening; idempotent."""
        if self._pool is not None:
            return
        try:
            conn = await self._connect()
            try:
                if self.schema is not None:
                    with contextlib.suppress(asyncpg.UniqueViolationError):  # a racing node made it
                        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema}")
                await migrate(conn)
                current = str(await conn.fetchval("SELECT current_schema()"))
            finally:
                await conn.close()
            # One channel per schema: nodes of another deployment in the same database
            # (another schema) are not woken by ours. Channel names are identifiers (<= 63).
            self._channel = f"dw_wake_{current}"[:63]
            pool = Pool(self._connect, self._pool_size)
            await pool.start()
            announcer = self._announcer
            listen = Listener(
                self._connect,
                self._channel,
                self._node,
                self._remote_wake,
                heard=announcer.heard,
                opened=announcer.listening,
            )
            try:
                await listen.start()
            except BaseException:
                await pool.close()
                raise
        except _UNAVAILABLE as exc:
            raise StorageUnavailable(f"cannot open the PostgreSQL database: {exc}") from exc
        self._pool = pool
        self._listen = listen
        # Serve only once the nodes already running have heard this one (or after a second).
        await announcer.introduced()
        announcer.start_heartbeat()

    async def close(self) -> None:
        """Stop listening and close the pool (waiting for writes in flight); idempotent."""
        await self._announcer.stop()
        listen, self._listen = self._listen, None
        if listen is not None:
            await listen.stop()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), 10)
            except (TimeoutError, *_UNAVAILABLE):
                pool.terminate()

    def peer_nodes(self) -> list[str]:
        """The other nodes heard on this database's wake-up channel lately (tests, metrics)."""
        return self._announcer.peers.alive()

    def has_other_nodes(self) -> bool:
        """Whether another node was heard on the wake-up channel lately (``_pg_announce``)."""
        return bool(self._announcer.peers.alive())

    def set_wake_listener(self, listener: WakeListener | None) -> None:
        """Register the wake-up callback: this node's wakes after commit, and other nodes'
        wakes as their NOTIFY arrives (both on the event loop)."""
        self._listener = listener

    def _remote_wake(self, wake: Wake) -> None:
        listener = self._listener
        if listener is not None:
            listener(wake)

    def _after_commit(self, wakes: list[Wake]) -> None:
        listener = self._listener
        if listener is not None:
            for wake in wakes:
                listener(wake)
        self._announcer.announce(_remote(wakes))

    async def _notify(self, payloads: list[str]) -> None:
        """Send wake-up payloads to the other nodes: on the listening connection, or on a
        pooled one while that is being re-opened."""
        listen = self._listen
        if listen is not None and await listen.notify(payloads):
            return
        await self._pool_or_fail().fetchval(NOTIFY_SQL, (self._channel, payloads), timeout=NOTIFY_TIMEOUT)

    async def ping(self) -> None:
        """Run a trivial query; raise StorageUnavailable if it fails or takes over 5 s."""
        pool = self._pool_or_fail()
        try:
            # Bounded: a health check must answer "unavailable" while the database is
            # unreachable, not hang for the TCP connect timeout.
            await pool.fetchval("SELECT 1", (), timeout=5)
        except _UNAVAILABLE as exc:
            raise StorageUnavailable(f"postgresql: {exc}") from exc

    # --- reads ------------------------------------------------------------------------

    def _pool_or_fail(self) -> Pool:
        if self._pool is None:
            raise StorageUnavailable("storage is not open")
        return self._pool

    async def _fetch_sql(self, sql: str, args: Sequence[Any]) -> list[Any]:
        pool = self._pool_or_fail()
        try:
            return await pool.fetch(sql, args)
        except _UNAVAILABLE as exc:
            raise StorageUnavailable(f"postgresql: {exc}") from exc

    async def _scalar_sql(self, sql: str, args: Sequence[Any]) -> Any:
        pool = self._pool_or_fail()
        try:
            return await pool.fetchval(sql, args)
        except _UNAVAILABLE as exc:
            raise StorageUnavailable(f"postgresql: {exc}") from exc

    async def _one(self, cls: type[R], name: str, **params: Any) -> R | None:
        q = self._q[name]
        records = await self._fetch_sql(q.sql, q.args(params))
        return from_pg(cls, records[0]) if records else None

    async def _many(self, cls: type[R], name: str, **params: Any) -> list[R]:
        q = self._q[name]
        return [from_pg(cls, r) for r in await self._fetch_sql(q.sql, q.args(params))]

    async def _scalar(self, name: str, **params: Any) -> Any:
        q = self._q[name]
        return await self._scalar_sql(q.sql, q.args(params))

    async def namespace_exists(self, namespace: str) -> bool:
        """Whether the namespace row exists."""
        return await self._scalar("namespace_exists", namespace=namespace) is not None

    async def get_workflow(self, workflow_id: str) -> WorkflowRow | None:
        """The workflow id's row."""
        return await self._one(WorkflowRow, "get_workflow", workflow_id=workflow_id)

    async def get_run(self, run_id: str) -> RunRow | None:
        """One run."""
        return await self._one(RunRow, "get_run", run_id=run_id)

    async def runs_of(self, workflow_id: str) -> list[RunRow]:
        """Runs of a workflow id, oldest first."""
        return await self._many(RunRow, "runs_of", workflow_id=workflow_id)

    @staticmethod
    def _filter_sql(flt: RunFilter) -> tuple[str, list[Any]]:
        args: list[Any] = [flt.namespace]
        conds = ["namespace = $1"]
        if flt.workflow_type is not None:
            args.append(flt.workflow_type)
            conds.append(f"workflow_type = ${len(args)}")
        if flt.statuses is not None:
            args.append(list(flt.statuses))
            conds.append(f"status = ANY(${len(args)}::text[])")
        if flt.query:
            # Substring match; LIKE wildcards in the user's text are escaped to stay literal.
            # (standard_conforming_strings is on since 9.1, so '\' is one backslash.)
            args.append(
                "%" + flt.query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            )
            n = len(args)
            conds.append(f"(workflow_id LIKE ${n} ESCAPE '\\' OR business_key LIKE ${n} ESCAPE '\\')")
        if flt.visibility is not None:
            conds.append(compile_expr(flt.visibility, args))
        return " AND ".join(conds), args

    async def list_runs(self, flt: RunFilter, *, limit: int, after: tuple[float, str] | None) -> list[RunRow]:
        """Runs newest first, strictly after the (started_at, run_id) cursor."""
        where, args = self._filter_sql(flt)
        if after is not None:
            args.extend([after[0], after[1]])
            n = len(args)
            where += f" AND (started_at < ${n - 1} OR (started_at = ${n - 1} AND run_id < ${n}))"
        args.append(limit)
        sql = f"SELECT * FROM runs WHERE {where} ORDER BY started_at DESC, run_id DESC LIMIT ${len(args)}"
        return [from_pg(RunRow, r) for r in await self._fetch_sql(sql, args)]

    async def count_runs(self, flt: RunFilter) -> int:
        """How many runs match the filter."""
        where, args = self._filter_sql(flt)
        return int(await self._scalar_sql(f"SELECT COUNT(*) FROM runs WHERE {where}", args))

    async def history(self, run_id: str, *, after: int, limit: int) -> list[EventRow]:
        """Events after a sequence, ascending."""
        q = self._q["history"]
        records = await self._fetch_sql(q.sql, q.args({"run_id": run_id, "after": after, "limit": limit}))
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
        return await self._one(WorkflowTaskRow, "get_workflow_task", task_id=task_id)

    async def open_workflow_task(self, run_id: str) -> WorkflowTaskRow | None:
        """The run's open workflow task."""
        return await self._one(WorkflowTaskRow, "open_workflow_task", run_id=run_id)

    async def leased_workflow_tasks(self, namespace: str, worker_id: str) -> list[WorkflowTaskRow]:
        """Tasks leased by a worker."""
        return await self._many(
            WorkflowTaskRow, "leased_workflow_tasks", namespace=namespace, worker_id=worker_id
        )

    async def get_activity(self, activity_execution_id: str) -> ActivityRow | None:
        """One activity execution."""
        return await self._one(ActivityRow, "get_activity", activity_execution_id=activity_execution_id)

    async def open_activities(self, run_id: str) -> list[ActivityRow]:
        """Open activity executions of a run."""
        return await self._many(ActivityRow, "open_activities", run_id=run_id)

    async def get_activity_task(self, task_id: str) -> ActivityTaskRow | None:
        """One activity task."""
        return await self._one(ActivityTaskRow, "get_activity_task", task_id=task_id)

    async def activity_task_by_attempt(self, attempt_id: str) -> ActivityTaskRow | None:
        """The activity task holding an attempt id."""
        return await self._one(ActivityTaskRow, "activity_task_by_attempt", attempt_id=attempt_id)

    async def get_timer(self, timer_id: str) -> TimerRow | None:
        """One timer."""
        return await self._one(TimerRow, "get_timer", timer_id=timer_id)

    async def pending_timers(self, run_id: str) -> list[TimerRow]:
        """Pending timers of a run."""
        return await self._many(TimerRow, "pending_timers", run_id=run_id)

    async def due_timers(self, now: float, limit: int) -> list[TimerRow]:
        """Due pending timers, earliest first."""
        return await self._many(TimerRow, "due_timers", now=now, limit=limit)

    async def next_timer_at(self) -> float | None:
        """Earliest pending fire time."""
        value = await self._scalar("next_timer_at")
        return None if value is None else float(value)

    async def next_available_at(self, kind: str, namespace: str, task_queue: str) -> float | None:
        """Earliest time a task on the queue becomes claimable."""
        name = "next_available_workflow" if kind == "workflow" else "next_available_activity"
        value = await self._scalar(name, namespace=namespace, task_queue=task_queue)
        return None if value is None else float(value)

    async def get_worker(self, namespace: str, worker_id: str) -> WorkerRow | None:
        """One worker registration."""
        return await self._one(WorkerRow, "get_worker", namespace=namespace, worker_id=worker_id)

    async def get_message(self, message_id: str) -> MessageRow | None:
        """One signal receipt, update or condition wait."""
        return await self._one(MessageRow, "get_message", message_id=message_id)

    async def open_messages(self, run_id: str) -> list[MessageRow]:
        """The run's open waits and unfinished updates, oldest first."""
        return await self._many(MessageRow, "open_messages", run_id=run_id)

    async def workers_on_queue(self, namespace: str, task_queue: str) -> list[WorkerRow]:
        """Active registrations on the queue."""
        return await self._many(WorkerRow, "workers_on_queue", namespace=namespace, task_queue=task_queue)

    async def get_child(self, link_id: str) -> ChildRow | None:
        """One child-workflow link."""
        return await self._one(ChildRow, "get_child", link_id=link_id)

    async def open_children(self, parent_run_id: str) -> list[ChildRow]:
        """Open children of a parent run."""
        return await self._many(ChildRow, "open_children", parent_run_id=parent_run_id)

    async def search_attribute_defs(self, namespace: str) -> list[SearchAttributeDefRow]:
        """Search-attribute registrations of a namespace."""
        return await self._many(SearchAttributeDefRow, "search_attribute_defs", namespace=namespace)

    async def count_open_activities(self, run_id: str, first: int, last: int, exclude: str) -> int:
        """Open activities of a run in a sequence range (the parallel barrier's question)."""
        value = await self._scalar(
            "count_open_activities", run_id=run_id, first=first, last=last, exclude=exclude
        )
        return int(value or 0)

    # --- writes -----------------------------------------------------------------------

    async def _write(
        self, body: Callable[[Any], Awaitable[tuple[T, list[Wake]]]], *, transaction: bool = True
    ) -> T:
        """Run ``body`` on one connection and wake locally after it committed.

        ``transaction=False`` runs it in autocommit mode: ``body`` must then be one statement
        (a ``dw_apply`` call), which is its own transaction. The work runs in a shielded task:
        once started it commits or rolls back on its own even if the caller is cancelled, and
        its wake-ups are delivered either way.
        """

        async def run() -> T:
            for attempt in range(_CONFLICT_RETRIES):
                try:
                    result, wakes = await self._on_connection(body, transaction)
                except _CONFLICTS:
                    if attempt + 1 == _CONFLICT_RETRIES:
                        raise PreconditionFailed(("concurrent_transaction", "deadlock")) from None
                    await asyncio.sleep(0.001 * (attempt + 1))
                    continue
                except (PreconditionFailed, _RunBusy):
                    raise
                except _UNAVAILABLE as exc:
                    raise StorageUnavailable(f"postgresql write failed: {exc}") from exc
                self._after_commit(wakes)
                return result
            raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

        task = asyncio.ensure_future(run())
        task.add_done_callback(_consume)
        return await asyncio.shield(task)

    async def _on_connection(
        self, body: Callable[[Any], Awaitable[tuple[T, list[Wake]]]], transaction: bool
    ) -> tuple[T, list[Wake]]:
        """Run ``body`` on a pooled connection (inside BEGIN … COMMIT if ``transaction``)."""
        pool = self._pool_or_fail()
        conn = await pool.acquire()
        reusable = False
        try:
            if not transaction:
                done = await body(conn)
            else:
                await conn.execute("BEGIN")
                try:
                    done = await body(conn)
                    await conn.execute("COMMIT")
                except BaseException:
                    if conn.is_in_transaction():
                        with contextlib.suppress(*_UNAVAILABLE):
                            await conn.execute("ROLLBACK")
                    raise
            reusable = True
            return done
        except (asyncpg.PostgresError, PreconditionFailed, _RunBusy) as exc:
            if isinstance(exc, _STATEMENTS_LOST):
                await forget_prepared(conn)
            reusable = True  # refused by the server or by us; rolled back (the pool checks)
            raise
        finally:
            pool.release(conn, reusable=reusable)

    async def apply(self, mutation: Mutation) -> list[EventRow]:
        """Apply one mutation atomically: one ``dw_apply`` call, one round trip."""
        wakes = wakes_of(mutation)

        async def body(conn: Any) -> tuple[list[EventRow], list[Wake]]:
            return await apply_mutation(conn, mutation), wakes

        return await self._write(body, transaction=False)

    async def _claim(
        self,
        table: type[R],
        pick: str,
        relock: Query,
        params: dict[str, Any],
        related: Callable[[Any, R, Any], Awaitable[Any]],
        build: Callable[[R, Any], Mutation | None],
    ) -> tuple[R, list[EventRow]] | None:
        """The claim loop shared by both task kinds (see the module docstring for the locks).

        ``pick`` is a ``dw_claim_*`` call (migration 0004): the candidate task locked with SKIP
        LOCKED, the state of its run's lock and the row the builder needs besides the task, in
        one round trip; with BEGIN, the ``dw_apply`` call and COMMIT a claim costs four.
        """
        q = self._q
        excluded: list[str] = []
        params["excluded"] = excluded

        async def finish(conn: Any, task: R, other: Any) -> tuple[Any, list[Wake]]:
            mutation = None if other is None else build(task, other)
            if mutation is None:
                return ("skip", _task_id(task)), []
            wakes = wakes_of(mutation)
            events = await apply_mutation(conn, mutation)
            claimed = _patched(table, task, mutation)
            if claimed is None:
                sql = f"SELECT * FROM {table.__table__} WHERE task_id = $1"
                claimed = from_pg(table, await conn.fetchrow(sql, _task_id(task)))
            return ("got", (claimed, events)), wakes

        pick_args = [params[name] for name in _PICK_ARGS[table]]

        async def fast(conn: Any) -> tuple[Any, list[Wake]]:
            try:
                record = await conn.fetchrow(pick, *pick_args)
            except asyncpg.exceptions.OutdatedSchemaCacheError:
                # A newer node changed a task or run table since this connection decoded one
                # (asyncpg dropped its type cache). Our transaction still holds the task it
                # picked, and SKIP LOCKED does not skip our own locks: ask once more.
                record = await conn.fetchrow(pick, *pick_args)
            if record is None:
                return ("none", None), []
            task = from_pg(table, record["task"])
            state = record["run_state"]
            if state == "missing":
                return ("skip", _task_id(task)), []
            if state == "busy":
                raise _RunBusy(_task_id(task), task.run_id)  # type: ignore[attr-defined]
            other = record[1]
            return await finish(conn, task, None if other is None else _RELATED[table](other))

        def slow(busy: _RunBusy) -> Callable[[Any], Awaitable[tuple[Any, list[Wake]]]]:
            async def body(conn: Any) -> tuple[Any, list[Wake]]:
                # Run first, waiting for whoever holds it; we hold nothing else yet.
                run_record = await conn.fetchrow(q["lock_run"].sql, busy.run_id)
                if run_record is None:
                    return ("skip", busy.task_id), []
                record = await conn.fetchrow(relock.sql, *relock.args({**params, "task_id": busy.task_id}))
                if record is None:  # taken, or changed, meanwhile: look for candidates again
                    return ("again", None), []
                task = from_pg(table, record)
                return await finish(conn, task, await related(conn, task, run_record))

            return body

        for _ in range(_CLAIM_SCAN):
            try:
                outcome, value = await self._write(fast)
            except _RunBusy as busy:
                outcome, value = await self._write(slow(busy))
            if outcome == "none":
                return None
            if outcome == "got":
                claimed: tuple[R, list[EventRow]] = value
                return claimed
            if outcome == "skip":
                excluded.append(value)
        return None

    async def claim_workflow_task(
        self,
        namespace: str,
        task_queue: str,
        types: Sequence[str],
        build_id: str | None,
        now: float,
        build: WorkflowClaimBuilder,
    ) -> tuple[WorkflowTaskRow, list[EventRow]] | None:
        """Lease the oldest eligible workflow task (ready first, then expired leases)."""

        async def related(conn: Any, task: WorkflowTaskRow, run_record: Any) -> RunRow:
            return from_pg(RunRow, run_record)

        q = self._q
        params: dict[str, Any] = {
            "namespace": namespace,
            "task_queue": task_queue,
            "now": now,
            "types": sorted(set(types)),
            "build_id": build_id,
        }
        return await self._claim(
            WorkflowTaskRow,
            "SELECT * FROM dw_claim_workflow_task($1, $2, $3, $4, $5, $6)",
            q["relock_workflow_task"],
            params,
            related,
            build,
        )

    async def claim_activity_task(
        self,
        namespace: str,
        task_queue: str,
        types: Sequence[str],
        now: float,
        build: ActivityClaimBuilder,
    ) -> tuple[ActivityTaskRow, list[EventRow]] | None:
        """Lease the oldest eligible ready activity task."""
        q = self._q

        async def related(conn: Any, task: ActivityTaskRow, run_record: Any) -> ActivityRow | None:
            get = q["get_activity"]
            record = await conn.fetchrow(get.sql, task.activity_execution_id)
            return None if record is None else from_pg(ActivityRow, record)

        params: dict[str, Any] = {
            "namespace": namespace,
            "task_queue": task_queue,
            "now": now,
            "types": sorted(set(types)),
        }
        return await self._claim(
            ActivityTaskRow,
            "SELECT * FROM dw_claim_activity_task($1, $2, $3, $4, $5)",
            q["relock_activity_task"],
            params,
            related,
            build,
        )


#: Wake keys that stay on the node that raised them. ``("timers",)`` only makes the timer loop
#: look early at a timer created just now; every node's loop re-reads the table at least once
#: a second anyway, and the creating node (woken locally) fires it. Sent to every other node,
#: each activity start would cost each of them a pass of the timer loop for nothing.
_LOCAL_ONLY = frozenset({("timers",)})


def _remote(wakes: list[Wake]) -> list[Wake]:
    return [wake for wake in wakes if wake.key not in _LOCAL_ONLY]


#: The arguments of each ``dw_claim_*`` function, in order.
_PICK_ARGS: dict[type[Row], tuple[str, ...]] = {
    WorkflowTaskRow: ("namespace", "task_queue", "now", "types", "build_id", "excluded"),
    ActivityTaskRow: ("namespace", "task_queue", "now", "types", "excluded"),
}
#: What the builder gets besides the task, from the second column of the pick.
_RELATED: dict[type[Row], Callable[[Any], Any]] = {
    WorkflowTaskRow: lambda record: from_pg(RunRow, record),
    ActivityTaskRow: lambda record: from_pg(ActivityRow, record),
}


def _patched(table: type[R], task: R, mutation: Mutation) -> R | None:
    """The claimed task row as the mutation left it, worked out from the row locked before it
    (saves reading it back); ``None`` when only a read can tell (another kind of write to the
    table, or a value whose stored form might read back differently)."""
    row = task
    for op in mutation.ops:
        if isinstance(op, Patch) and op.table is table:
            if op.key != (_task_id(task),):
                continue
            changes: dict[str, Any] = {}
            for name, value in op.fields.items():
                if name in table.__json__:
                    return None
                if isinstance(value, Inc):
                    changes[name] = getattr(row, name) + value.by
                elif type(value) is int and "float" in str(_field_types(table)[name]):
                    changes[name] = float(value)  # what a double precision column reads back as
                elif value is None or type(value) in (str, int, float, bool):
                    changes[name] = value
                else:
                    return None
            row = dataclasses.replace(row, **changes)
        elif isinstance(op, PatchWhere | Insert | Put) and (
            op.table is table if isinstance(op, PatchWhere) else isinstance(op.row, table)
        ):
            return None
    return row


def _field_types(table: type[Row]) -> dict[str, Any]:
    return {f.name: f.type for f in dataclasses.fields(table)}


def _consume(task: asyncio.Future[Any]) -> None:
    # The caller may have been cancelled and gone; its failure must not be reported as
    # "exception never retrieved".
    if not task.cancelled():
        task.exception()


def _task_id(task: Row) -> str:
    value: str = task.task_id  # type: ignore[attr-defined]
    return value
