"""PostgreSQL writes through ``dw_apply_prepared`` (migration 0005): one round trip per
mutation, values that read back exactly, every failure mapped to the precondition the engine
retries on, statements prepared once per connection (and again when the session lost them),
foldings that write what the unfolded statements write, and an upgrade from a 0003 database.
Skipped without ``DW_TEST_POSTGRES_DSN``; fresh schema per test.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_support import drop_schema, postgres_dsn, schema_name

from durable_workflow_server.storage import (
    ActivityTaskRow,
    ActivityTaskState,
    AnyOf,
    Inc,
    Insert,
    Mutation,
    NewEvent,
    Patch,
    PatchWhere,
    PreconditionFailed,
    Put,
    RunRow,
    RunVersion,
    TimerDue,
    TimerRow,
    WorkflowCurrentRun,
    WorkflowRow,
    WorkflowTaskRow,
    WorkflowTaskState,
)

pytestmark = pytest.mark.postgres
asyncpg = pytest.importorskip("asyncpg")

T0 = 1_800_000_000.123456
NS = "default"


@pytest.fixture
def schema(tmp_path: Path) -> Iterator[str]:
    dsn = postgres_dsn()
    name = schema_name(str(tmp_path))
    yield name
    drop_schema(dsn, name)


@pytest.fixture
async def store(schema: str) -> AsyncIterator[Any]:
    from durable_workflow_server.storage.postgres import PostgresStorage

    s = PostgresStorage(postgres_dsn(), schema=schema)
    await s.open()
    yield s
    await s.close()


def run_row(run_id: str, **fields: Any) -> RunRow:
    values: dict[str, Any] = {"status": "running", **fields}
    return RunRow(
        run_id=run_id, namespace=NS, workflow_id=f"wf-{run_id}", run_number=1, workflow_type="t",
        task_queue="q", started_at=T0, **values,
    )  # fmt: skip


def task_row(task_id: str, run_id: str, status: str = "ready") -> WorkflowTaskRow:
    return WorkflowTaskRow(
        task_id=task_id, namespace=NS, run_id=run_id, workflow_id=f"wf-{run_id}", workflow_type="t",
        task_queue="q", status=status, available_at=T0, created_at=T0,
    )  # fmt: skip


def event(run_id: str, n: int) -> NewEvent:
    return NewEvent(run_id, f"e-{run_id}-{n}", "Marker", {"n": n}, T0 + n)


class Counting:
    """A pooled connection that counts the statements sent through it."""

    calls = 0

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if name in {"execute", "executemany", "fetch", "fetchrow", "fetchval"}:

            async def counted(*args: Any, **kwargs: Any) -> Any:
                Counting.calls += 1
                return await attr(*args, **kwargs)

            return counted
        return attr


def count_round_trips(store: Any) -> None:
    pool = store._pool
    acquire, release = pool.acquire, pool.release
    # One wrapper per connection: what a connection has prepared is remembered per object.
    wrappers: dict[Any, Counting] = {}

    async def counting_acquire() -> Any:
        conn = await acquire()
        return wrappers.setdefault(conn, Counting(conn))

    def unwrapping_release(conn: Any, *, reusable: bool = True) -> None:
        release(conn._conn, reusable=reusable)

    pool.acquire, pool.release = counting_acquire, unwrapping_release
    Counting.calls = 0


async def test_a_mutation_is_one_round_trip_and_a_claim_four(store: Any) -> None:
    count_round_trips(store)
    await store.apply(
        Mutation(
            ops=[Insert(run_row("r1")), Insert(task_row("t1", "r1"))],
            events=[event("r1", 1), event("r1", 2)],
        )
    )
    assert Counting.calls == 1
    Counting.calls = 0
    await store.apply(
        Mutation(
            preconditions=[RunVersion("r1", 0), WorkflowTaskState("t1", "ready")],
            ops=[
                Patch(RunRow, ("r1",), {"status": "waiting"}),
                Patch(WorkflowTaskRow, ("t1",), {"attempt": Inc(1)}),
            ],
            events=[event("r1", 3)],
        )
    )
    assert Counting.calls == 1

    def lease(task: WorkflowTaskRow, run: RunRow) -> Mutation:
        return Mutation(
            preconditions=[RunVersion(run.run_id, run.version)],
            ops=[Patch(WorkflowTaskRow, (task.task_id,), {"status": "leased", "lease_owner": "w"})],
            events=[event(run.run_id, 4)],
        )

    Counting.calls = 0
    claimed = await store.claim_workflow_task(NS, "q", [], None, T0 + 10, lease)
    assert claimed is not None
    task, events = claimed
    assert (task.status, task.lease_owner, task.attempt) == ("leased", "w", 1)
    assert [e.sequence for e in events] == [4]
    assert Counting.calls == 4  # BEGIN, dw_claim_workflow_task, dw_apply, COMMIT


async def test_values_read_back_exactly(store: Any) -> None:
    text = "quote ' double \" backslash \\ newline \n tab \t unicode é 漢 {} [] , ()"
    run = run_row(
        "r1",
        input=text,
        output="",
        business_key=None,
        memo={"k": text, "n": [1, 2.5, None, True]},
        execution_timeout_seconds=2**62,
        run_deadline_at=0.1 + 0.2,
        last_progress_at=1e-7,
        wake_pending=1,  # type: ignore[arg-type]  # SQLite-minded callers pass 0/1
        cancel_requested=False,
    )
    await store.apply(Mutation(ops=[Insert(run)]))
    got = await store.get_run("r1")
    assert got is not None
    assert got.input == text and got.output == "" and got.business_key is None
    assert got.memo == {"k": text, "n": [1, 2.5, None, True]}
    assert got.execution_timeout_seconds == 2**62
    assert got.run_deadline_at == 0.1 + 0.2 and got.last_progress_at == 1e-7
    assert got.started_at == T0
    assert got.wake_pending is True and got.cancel_requested is False
    await store.apply(
        Mutation(ops=[Patch(RunRow, ("r1",), {"failure": {"message": text}, "closed_at": 3, "input": None})])
    )
    got = await store.get_run("r1")
    assert got is not None
    assert got.failure == {"message": text} and got.closed_at == 3.0 and got.input is None


async def test_each_failure_names_its_precondition_and_writes_nothing(store: Any) -> None:
    timer = TimerRow("tm1", NS, "r1", "user", T0 + 100, "pending")
    activity_task = ActivityTaskRow("at1", NS, "a1", "r1", "wf-r1", "act", "q", "ready", 1, T0, T0)
    await store.apply(
        Mutation(
            ops=[
                Insert(WorkflowRow("wf-r1", NS, "t", "r1", 1, T0)),
                Insert(run_row("r1")),
                Insert(task_row("t1", "r1")),
                Insert(timer),
                Insert(activity_task),
            ]
        )
    )
    failing: list[tuple[object, object]] = [
        (RunVersion("r1", 5), RunVersion("r1", 5)),
        (WorkflowTaskState("t1", "leased"), WorkflowTaskState("t1", "leased")),
        (
            WorkflowTaskState("t1", "ready", lease_owner="w"),
            WorkflowTaskState("t1", "ready", lease_owner="w"),
        ),
        (WorkflowTaskState("t1", "ready", attempt=3), WorkflowTaskState("t1", "ready", attempt=3)),
        (
            ActivityTaskState("at1", "ready", attempt_id="x"),
            ActivityTaskState("at1", "ready", attempt_id="x"),
        ),
        (TimerDue("tm1", T0), TimerDue("tm1", T0)),  # not due yet
        (WorkflowCurrentRun("wf-r1", "other"), WorkflowCurrentRun("wf-r1", "other")),
    ]
    for pre, expected in failing:
        with pytest.raises(PreconditionFailed) as info:
            await store.apply(
                Mutation(
                    preconditions=[pre],  # type: ignore[list-item]
                    ops=[Patch(RunRow, ("r1",), {"status": "changed"})],
                    events=[event("r1", 1)],
                )
            )
        assert info.value.precondition == expected
    with pytest.raises(PreconditionFailed) as info:
        await store.apply(
            Mutation(ops=[Patch(RunRow, ("r1",), {"status": "changed"}), Insert(task_row("t2", "r1"))])
        )
    assert info.value.precondition == ("exists", "workflow_tasks")  # the one-open-task index
    with pytest.raises(PreconditionFailed) as info:
        await store.apply(
            Mutation(ops=[Patch(RunRow, ("r1",), {"status": "changed"})], events=[event("nope", 1)])
        )
    assert info.value.precondition == ("run_exists", "nope")
    run = await store.get_run("r1")
    assert run is not None
    assert (run.status, run.version, run.last_history_sequence) == ("running", 0, 0)
    assert await store.history("r1", after=0, limit=10) == []
    # The same preconditions hold when they should.
    await store.apply(
        Mutation(
            preconditions=[
                TimerDue("tm1", T0 + 100),
                WorkflowCurrentRun("wf-r1", "r1"),
                ActivityTaskState("at1", "ready"),
                WorkflowTaskState("t1", "ready", attempt=0),
                RunVersion("r1", 0),
            ],
            events=[event("r1", 1)],
        )
    )
    assert (await store.get_timer("tm1")).status == "fired"


async def test_events_of_several_runs_fenced_or_not_get_contiguous_sequences(store: Any) -> None:
    await store.apply(Mutation(ops=[Insert(run_row("a")), Insert(run_row("b"))], events=[event("a", 1)]))
    stored = await store.apply(
        Mutation(
            preconditions=[RunVersion("a", 0)],
            ops=[Patch(RunRow, ("a",), {"wait_kind": "activity"}), Patch(RunRow, ("b",), {"wait_kind": "x"})],
            events=[event("b", 1), event("a", 2), event("b", 2), event("a", 3)],
        )
    )
    assert [(e.run_id, e.sequence) for e in stored] == [("b", 1), ("a", 2), ("b", 2), ("a", 3)]
    for run_id, expected in (("a", [1, 2, 3]), ("b", [1, 2])):
        history = await store.history(run_id, after=0, limit=10)
        assert [e.sequence for e in history] == expected
        assert [e.event_id for e in history] == [f"e-{run_id}-{n}" for n in expected]
        assert [e.recorded_at for e in history] == [T0 + n for n in expected]
        run = await store.get_run(run_id)
        assert run is not None and run.last_history_sequence == expected[-1]
    run_a = await store.get_run("a")
    assert run_a is not None and (run_a.version, run_a.wait_kind) == (1, "activity")


async def test_patch_where_null_and_empty_any_of_and_put(store: Any) -> None:
    await store.apply(Mutation(ops=[Insert(run_row("r1")), Insert(task_row("t1", "r1", "completed"))]))
    await store.apply(
        Mutation(
            ops=[
                PatchWhere(WorkflowTaskRow, {"run_id": "r1", "lease_owner": None}, {"outcome": {"a": 1}}),
                PatchWhere(WorkflowTaskRow, {"run_id": "r1", "status": AnyOf(())}, {"status": "ready"}),
                PatchWhere(
                    RunRow, {"run_id": "r1", "status": AnyOf(("running", "waiting"))}, {"version": Inc(2)}
                ),
                Put(run_row("r2", status="closed")),
                Put(run_row("r2", status="reopened")),
            ]
        )
    )
    task = await store.get_workflow_task("t1")
    assert task is not None and (task.status, task.outcome) == ("completed", {"a": 1})
    r1, r2 = await store.get_run("r1"), await store.get_run("r2")
    assert r1 is not None and r1.version == 2
    assert r2 is not None and r2.status == "reopened"


async def test_upgrade_from_a_0003_database(schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from durable_workflow_server.storage import _pg_migrate
    from durable_workflow_server.storage.postgres import PostgresStorage

    every = _pg_migrate.known_migrations()
    assert [v for v, _, _ in every][3] == 4
    conn = await asyncpg.connect(postgres_dsn(), server_settings={"search_path": schema})
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        monkeypatch.setattr(_pg_migrate, "known_migrations", lambda: every[:3])
        assert await _pg_migrate.migrate(conn) == [1, 2, 3]
        old = PostgresStorage(postgres_dsn(), schema=schema)
        # A 0003 server writes a run with history the old way (no dw_apply yet).
        await conn.execute(
            "INSERT INTO runs (run_id, namespace, workflow_id, run_number, workflow_type, task_queue, "
            "status, started_at, memo, search_attributes, last_history_sequence, "
            "next_workflow_sequence, wake_pending, version) "
            "VALUES ('r1', 'default', 'wf-r1', 1, 't', 'q', 'running', 1, '{}', '{}', 1, 1, false, 0)"
        )
        await conn.execute(
            "INSERT INTO history_events VALUES ('r1', 1, 'e1', 'WorkflowStarted', '{}', 1, NULL)"
        )
        monkeypatch.setattr(_pg_migrate, "known_migrations", lambda: every)
        assert await _pg_migrate.migrate(conn) == [4, 5]
        assert await _pg_migrate.migrate(conn) == []
    finally:
        await conn.close()
    del old
    store = PostgresStorage(postgres_dsn(), schema=schema)
    await store.open()
    try:
        stored = await store.apply(Mutation(preconditions=[RunVersion("r1", 0)], events=[event("r1", 2)]))
        assert [e.sequence for e in stored] == [2]
        assert [e.event_id for e in await store.history("r1", after=0, limit=10)] == ["e1", "e-r1-2"]
    finally:
        await store.close()


async def test_a_claim_survives_a_column_added_while_it_runs(store: Any, schema: str) -> None:
    """A newer node may add a column while this one runs (a rolling upgrade): the claim
    functions return whole task and run rows, which asyncpg decoded with the old shape."""

    def lease(task: WorkflowTaskRow, run: RunRow) -> Mutation:
        return Mutation(
            preconditions=[RunVersion(run.run_id, run.version)],
            ops=[Patch(WorkflowTaskRow, (task.task_id,), {"status": "leased", "lease_owner": "w"})],
        )

    await store.apply(Mutation(ops=[Insert(run_row("r1")), Insert(task_row("t1", "r1"))]))
    assert await store.claim_workflow_task(NS, "q", [], None, T0 + 10, lease) is not None
    conn = await asyncpg.connect(postgres_dsn(), server_settings={"search_path": schema})
    try:
        await conn.execute("ALTER TABLE workflow_tasks ADD COLUMN later TEXT")
        await conn.execute("ALTER TABLE runs ADD COLUMN later TEXT")
    finally:
        await conn.close()
    await store.apply(Mutation(ops=[Insert(run_row("r2")), Insert(task_row("t2", "r2"))]))
    claimed = await store.claim_workflow_task(NS, "q", [], None, T0 + 10, lease)
    assert claimed is not None and claimed[0].task_id == "t2"


# --- prepared statements ---------------------------------------------------------------------


class Recording:
    """A connection that records, per ``dw_apply_prepared`` call, the SQL texts it sent."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.texts: list[list[str | None]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def fetchval(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        if "dw_apply_prepared" in sql:
            self.texts.append(list(args[1]))
        return await self._conn.fetchval(sql, *args, **kwargs)


@pytest.fixture
async def conn(store: Any, schema: str) -> AsyncIterator[Recording]:
    """A connection of its own to the store's (migrated) schema."""
    raw = await asyncpg.connect(postgres_dsn(), server_settings={"search_path": schema})
    yield Recording(raw)
    await raw.close()


def start(run_id: str) -> Mutation:
    return Mutation(
        ops=[Insert(run_row(run_id)), Insert(task_row(f"t-{run_id}", run_id))], events=[event(run_id, 1)]
    )


async def our_statements(conn: Any) -> set[str]:
    rows = await conn.fetch("SELECT name FROM pg_prepared_statements WHERE name LIKE 'dw\\_%'")
    return {r["name"] for r in rows}


async def test_a_connection_sends_each_text_once(conn: Recording) -> None:
    from durable_workflow_server.storage._pg_apply import apply_mutation

    await apply_mutation(conn, start("r1"))
    assert conn.texts[0] and None not in conn.texts[0]
    await apply_mutation(conn, start("r2"))
    assert conn.texts[1] == [None] * len(conn.texts[0])
    assert len(await our_statements(conn)) == len(conn.texts[0])
    # A text that appears twice in one call is sent once.
    two = Mutation(ops=[Insert(run_row("a")), Insert(run_row("b")), Insert(task_row("ta", "a"))])
    await apply_mutation(conn, two)
    sent = [t for t in conn.texts[2] if t is not None]
    assert len(sent) == 1 and "RETURNING 1" in str(sent[0])  # a run insert with no events
    assert (await conn.fetchval("SELECT count(*) FROM runs")) == 4


async def test_a_connection_that_lost_its_statements_still_works(conn: Recording) -> None:
    from durable_workflow_server.storage._pg_apply import apply_mutation

    await apply_mutation(conn, start("r1"))
    # Everything gone, asyncpg's own statements too: the call is sent again with every text.
    await conn.execute("DEALLOCATE ALL")
    stored = await apply_mutation(conn, start("r2"))
    assert [e.sequence for e in stored] == [1]
    assert None not in conn.texts[-1]
    # One of ours gone: the function finds it missing; the call is sent again likewise.
    lost = sorted(await our_statements(conn))[0]
    await conn.execute(f"DEALLOCATE {lost}")
    await apply_mutation(conn, start("r3"))
    assert None not in conn.texts[-1]
    assert lost in await our_statements(conn)
    # Inside a transaction the error aborts it: the caller sees it and re-runs the transaction.
    await conn.execute(f"DEALLOCATE {lost}")
    with pytest.raises(asyncpg.InvalidSQLStatementNameError):
        async with conn.transaction():
            await apply_mutation(conn, start("r4"))
    async with conn.transaction():
        await apply_mutation(conn, start("r4"))
    runs = [r[0] for r in await conn.fetch("SELECT run_id FROM runs ORDER BY run_id")]
    assert runs == ["r1", "r2", "r3", "r4"]
    assert (await conn.fetchval("SELECT count(*) FROM history_events")) == 4


async def test_the_store_recovers_from_deallocate_all_in_claims_and_writes(store: Any) -> None:
    def lease(task: WorkflowTaskRow, run: RunRow) -> Mutation:
        return Mutation(
            preconditions=[RunVersion(run.run_id, run.version)],
            ops=[Patch(WorkflowTaskRow, (task.task_id,), {"status": "leased", "lease_owner": "w"})],
            events=[event(run.run_id, 2)],
        )

    await store.apply(start("r1"))
    await store.apply(start("r2"))
    for pooled in store._pool._idle:
        await pooled.execute("DEALLOCATE ALL")
    claimed = await store.claim_workflow_task(NS, "q", [], None, T0 + 10, lease)
    assert claimed is not None and [e.sequence for e in claimed[1]] == [2]
    for pooled in store._pool._idle:
        await pooled.execute("DEALLOCATE ALL")
    await store.apply(start("r3"))
    assert [e.sequence for e in await store.history("r3", after=0, limit=10)] == [1]


async def test_a_failed_precondition_still_leaves_its_statements_prepared(conn: Recording) -> None:
    from durable_workflow_server.storage._pg_apply import apply_mutation

    await apply_mutation(conn, start("r1"))
    with pytest.raises(PreconditionFailed):
        await apply_mutation(
            conn, Mutation(preconditions=[RunVersion("r1", 9)], events=[event("r1", 2)])
        )
    assert conn.texts[-1] != [None]
    await apply_mutation(
        conn, Mutation(preconditions=[RunVersion("r1", 0)], events=[event("r1", 2)])
    )
    assert conn.texts[-1] == [None]


# --- foldings --------------------------------------------------------------------------------


def _block(table: Any) -> PatchWhere:
    """A write to ``table`` that matches nothing; placed first, it stops a folding."""
    key = table.__key__[0]
    return PatchWhere(table, {key: "no such row"}, {key: "no such row"})


def _compare(a: Any, b: Any, *ids: str) -> None:
    fa, fb = dataclasses.asdict(a), dataclasses.asdict(b)
    for name in ids:
        fa.pop(name), fb.pop(name)
    assert fa == fb


async def test_folded_task_state_writes_what_the_check_and_patch_write(store: Any) -> None:
    from durable_workflow_server.storage._pg_apply import compile_mutation

    rows: list[Any] = []
    for world, blocked in (("a", False), ("b", True)):
        act = ActivityTaskRow(f"at{world}", NS, "a1", "r1", "wf-r1", "act", "q", "leased", 1, T0, T0)
        act = dataclasses.replace(act, attempt_id="x1")
        await store.apply(Mutation(ops=[Insert(task_row(f"t{world}", f"r{world}")), Insert(act)]))
        ops: list[Any] = [_block(WorkflowTaskRow), _block(ActivityTaskRow)] if blocked else []
        ops += [
            Patch(
                WorkflowTaskRow, (f"t{world}",), {"status": "leased", "lease_owner": "w", "attempt": Inc(2)}
            ),
            Patch(ActivityTaskRow, (f"at{world}",), {"status": "completed", "attempt_id": None}),
        ]
        mutation = Mutation(
            preconditions=[
                WorkflowTaskState(f"t{world}", "ready", attempt=0),
                ActivityTaskState(f"at{world}", "leased", attempt_id="x1"),
            ],
            ops=ops,
        )
        sql = compile_mutation(mutation).stmts
        assert sum(s.startswith("SELECT 1") for s in sql) == (2 if blocked else 0)
        await store.apply(mutation)
        rows.append((await store.get_workflow_task(f"t{world}"), await store.get_activity_task(f"at{world}")))
    _compare(rows[0][0], rows[1][0], "task_id", "run_id", "workflow_id")
    _compare(rows[0][1], rows[1][1], "task_id")
    assert (rows[0][0].status, rows[0][0].attempt, rows[0][1].attempt_id) == ("leased", 2, None)
    # A folded check that fails names its precondition and writes nothing.
    for pre in (
        WorkflowTaskState("ta", "ready"),
        WorkflowTaskState("ta", "leased", lease_owner="v"),
        ActivityTaskState("ata", "leased"),
    ):
        table = WorkflowTaskRow if isinstance(pre, WorkflowTaskState) else ActivityTaskRow
        with pytest.raises(PreconditionFailed) as info:
            await store.apply(
                Mutation(
                    preconditions=[pre],  # type: ignore[list-item]
                    ops=[Insert(run_row("late")), Patch(table, (pre.task_id,), {"status": "x"})],
                )
            )
        assert info.value.precondition == pre
    assert await store.get_run("late") is None
    assert (await store.get_workflow_task("ta")).status == "leased"


async def test_a_fence_takes_an_inc_of_version_but_not_other_version_writes(store: Any) -> None:
    from durable_workflow_server.storage._pg_apply import compile_mutation

    runs: list[RunRow] = []
    for world, blocked in (("a", False), ("b", True)):
        await store.apply(Mutation(ops=[Insert(run_row(world))], events=[event(world, 1)]))
        ops: list[Any] = [_block(RunRow)] if blocked else []
        ops.append(Patch(RunRow, (world,), {"status": "waiting", "version": Inc(2), "wake_pending": True}))
        mutation = Mutation(preconditions=[RunVersion(world, 0)], ops=ops, events=[event(world, 2)])
        assert len(compile_mutation(mutation).stmts) == (3 if blocked else 1)
        stored = await store.apply(mutation)
        assert [e.sequence for e in stored] == [2]
        got = await store.get_run(world)
        assert got is not None
        runs.append(got)
    _compare(runs[0], runs[1], "run_id", "workflow_id")
    assert (runs[0].version, runs[0].last_history_sequence, runs[0].status) == (3, 2, "waiting")
    for fields in ({"version": 7}, {"last_history_sequence": Inc(1)}):
        compiled = compile_mutation(
            Mutation(preconditions=[RunVersion("a", 3)], ops=[Patch(RunRow, ("a",), fields)])
        )
        assert len(compiled.stmts) == 2  # the fence, then the patch on its own
    with pytest.raises(PreconditionFailed) as info:
        await store.apply(
            Mutation(
                preconditions=[RunVersion("a", 2)],
                ops=[Patch(RunRow, ("a",), {"version": Inc(1)})],
                events=[event("a", 3)],
            )
        )
    assert info.value.precondition == RunVersion("a", 2)
    got = await store.get_run("a")
    assert got is not None and (got.version, got.last_history_sequence) == (3, 2)


async def test_a_new_run_reserves_its_sequences_in_its_insert(store: Any) -> None:
    from durable_workflow_server.storage._pg_apply import compile_mutation

    runs: list[RunRow] = []
    for world, blocked in (("a", False), ("b", True)):
        ops: list[Any] = [_block(RunRow)] if blocked else []
        ops += [Insert(run_row(world, wait_kind="x")), Insert(task_row(f"t{world}", world))]
        mutation = Mutation(ops=ops, events=[event(world, n) for n in (1, 2, 3)])
        sql = compile_mutation(mutation).stmts
        assert any(s.startswith("UPDATE runs SET last_history_sequence") for s in sql) == blocked
        stored = await store.apply(mutation)
        assert [e.sequence for e in stored] == [1, 2, 3]
        got = await store.get_run(world)
        assert got is not None
        runs.append(got)
        history = await store.history(world, after=0, limit=10)
        assert [(e.sequence, e.event_id) for e in history] == [(n, f"e-{world}-{n}") for n in (1, 2, 3)]
    _compare(runs[0], runs[1], "run_id", "workflow_id")
    assert runs[0].last_history_sequence == 3
    # An existing run: the same failure as before, and nothing of the mutation written.
    with pytest.raises(PreconditionFailed) as info:
        await store.apply(
            Mutation(ops=[Insert(task_row("t9", "r9")), Insert(run_row("a"))], events=[event("a", 4)])
        )
    assert info.value.precondition == ("exists", "runs")
    assert await store.get_workflow_task("t9") is None
    assert [e.sequence for e in await store.history("a", after=0, limit=10)] == [1, 2, 3]
    # A later write that could move the run's sequence keeps the separate reservation.
    later = Mutation(
        ops=[Insert(run_row("c")), PatchWhere(RunRow, {"run_id": "c"}, {"last_history_sequence": 5})],
        events=[event("c", 6)],
    )
    assert any(s.startswith("UPDATE runs SET last_history_sequence") for s in compile_mutation(later).stmts)
    assert [e.sequence for e in await store.apply(later)] == [6]
