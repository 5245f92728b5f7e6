"""PostgreSQL writes through ``dw_apply`` (migration 0004): one round trip per mutation, values
that read back exactly, every failure mapped to the precondition the engine retries on, and an
upgrade from a 0003 database. Skipped without ``DW_TEST_POSTGRES_DSN``; fresh schema per test.
"""

from __future__ import annotations

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

    async def counting_acquire() -> Any:
        return Counting(await acquire())

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
        assert await _pg_migrate.migrate(conn) == [4]
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
