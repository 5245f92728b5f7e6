"""The storage contract: every backend must pass this suite.

``backend`` runs each test over SQLite and over PostgreSQL; the PostgreSQL runs skip with a
clear reason when ``DW_TEST_POSTGRES_DSN`` is absent, and each uses a fresh schema of its own
(dropped afterwards), so no test sees another's rows."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from storage_backends import BACKENDS, forget
from storage_backends import make_storage as backend_storage

from durable_workflow_server.storage import (
    ROW_TYPES,
    ActivityRow,
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
    RunFilter,
    RunRow,
    RunVersion,
    Storage,
    StorageUnavailable,
    TimerDue,
    TimerRow,
    Wake,
    WorkerRow,
    WorkflowCurrentRun,
    WorkflowRow,
    WorkflowTaskRow,
    WorkflowTaskState,
)

T0 = 1_800_000_000.0


def make_storage(kind: str, tmp_path: Path) -> Storage:
    return backend_storage(kind, tmp_path, "contract")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    kind: str = request.param
    yield kind
    forget(kind, tmp_path, "contract")


@pytest.fixture
async def storage(backend: str, tmp_path: Path) -> AsyncIterator[Storage]:
    store = make_storage(backend, tmp_path)
    await store.open()
    await store.open()  # idempotent
    yield store
    await store.close()
    await store.close()


def run_row(run_id: str = "r1", *, started_at: float = T0, **kw: object) -> RunRow:
    values: dict[str, object] = {
        "run_id": run_id,
        "namespace": "default",
        "workflow_id": f"wf-{run_id}",
        "run_number": 1,
        "workflow_type": "t",
        "task_queue": "q",
        "status": "pending",
        "started_at": started_at,
    }
    values.update(kw)
    return RunRow(**values)  # type: ignore[arg-type]


def wf_task(
    task_id: str, run_id: str = "r1", *, available_at: float = T0, wtype: str = "t"
) -> WorkflowTaskRow:
    return WorkflowTaskRow(
        task_id=task_id,
        namespace="default",
        run_id=run_id,
        workflow_id=f"wf-{run_id}",
        workflow_type=wtype,
        task_queue="q",
        status="ready",
        available_at=available_at,
        created_at=T0,
    )


def ev(run_id: str, n: int) -> NewEvent:
    return NewEvent(run_id, f"e{run_id}{n}", "SideEffectRecorded", {"n": n}, T0)


async def test_namespace_seeded_and_ping(storage: Storage) -> None:
    assert await storage.namespace_exists("default")
    assert not await storage.namespace_exists("nope")
    await storage.ping()


async def test_rows_round_trip(storage: Storage) -> None:
    run = run_row(
        memo={"a": [1, 2]},
        search_attributes={"Tier": "gold"},
        wake_pending=True,
        pending_resume={"timer_id": "x"},
        failure={"message": "m"},
    )
    act = ActivityRow(
        activity_execution_id="a1",
        namespace="default",
        run_id="r1",
        workflow_id="wf-r1",
        sequence=1,
        activity_type="x",
        task_queue="q",
        status="scheduled",
        scheduled_at=T0,
        retry_policy={"max_attempts": 3},
        heartbeat_details={"p": 1},
        parallel={"k": "v"},
    )
    atask = ActivityTaskRow(
        task_id="at1",
        namespace="default",
        activity_execution_id="a1",
        run_id="r1",
        workflow_id="wf-r1",
        activity_type="x",
        task_queue="q",
        status="ready",
        attempt_number=1,
        available_at=T0,
        created_at=T0,
    )
    timer = TimerRow(
        timer_id="t1",
        namespace="default",
        run_id="r1",
        kind="user",
        fire_at=T0,
        status="pending",
        data={"sequence": 1},
    )
    worker = WorkerRow(
        namespace="default",
        worker_id="w",
        task_queue="q",
        runtime="python",
        status="active",
        registered_at=T0,
        last_heartbeat_at=T0,
        supported_workflow_types=["a"],
    )
    wf = WorkflowRow(
        workflow_id="wf-r1",
        namespace="default",
        workflow_type="t",
        current_run_id="r1",
        run_count=1,
        created_at=T0,
    )
    await storage.apply(
        Mutation(
            ops=[
                Insert(wf),
                Insert(run),
                Insert(wf_task("k1")),
                Insert(act),
                Insert(atask),
                Insert(timer),
                Put(worker),
            ]
        )
    )
    assert await storage.get_run("r1") == run
    assert await storage.get_workflow("wf-r1") == wf
    assert await storage.get_activity("a1") == act
    assert await storage.get_activity_task("at1") == atask
    assert await storage.get_timer("t1") == timer
    assert await storage.get_worker("default", "w") == worker
    assert await storage.get_workflow_task("k1") == wf_task("k1")
    assert await storage.open_workflow_task("r1") == wf_task("k1")
    assert await storage.open_activities("r1") == [act]
    assert await storage.pending_timers("r1") == [timer]
    assert await storage.get_run("missing") is None
    assert len(ROW_TYPES) == 10


async def test_mutation_is_atomic(storage: Storage) -> None:
    await storage.apply(Mutation(ops=[Insert(run_row("r1"))]))
    with pytest.raises(PreconditionFailed):
        await storage.apply(
            Mutation(ops=[Insert(run_row("r2")), Insert(run_row("r1"))], events=[ev("r2", 1)])
        )
    assert await storage.get_run("r2") is None
    assert await storage.history("r2", after=0, limit=10) == []


async def test_events_get_contiguous_sequences(storage: Storage) -> None:
    await storage.apply(Mutation(ops=[Insert(run_row("r1"))], events=[ev("r1", 1), ev("r1", 2)]))
    stored = await storage.apply(Mutation(events=[ev("r1", 3)]))
    assert [e.sequence for e in stored] == [3]
    assert (await storage.get_run("r1")).last_history_sequence == 3  # type: ignore[union-attr]
    page = await storage.history("r1", after=1, limit=1)
    assert [(e.sequence, e.payload) for e in page] == [(2, {"n": 2})]
    with pytest.raises(PreconditionFailed):
        await storage.apply(Mutation(events=[ev("nope", 1)]))


async def test_writes_of_one_row_in_one_mutation_add_up(storage: Storage) -> None:
    """Several writes of one row in one mutation, in the forms the backends fold together."""
    await storage.apply(Mutation(ops=[Insert(run_row("r0"))]))
    stored = await storage.apply(
        Mutation(
            preconditions=[RunVersion("r0", 0)],
            ops=[
                Insert(run_row("r1", status="pending")),
                Insert(wf_task("k1")),
                Patch(RunRow, ("r1",), {"status": "running", "run_number": Inc(2)}),
                Patch(WorkflowTaskRow, ("k1",), {"status": "leased", "attempt": Inc(1)}),
                Patch(RunRow, ("r0",), {"status": "waiting"}),
                Patch(RunRow, ("r0",), {"version": Inc(2), "status": "running"}),
                # Moves r2's sequence after its insert: its events follow the moved value.
                Insert(run_row("r2")),
                PatchWhere(RunRow, {"run_id": "r2"}, {"last_history_sequence": 5}),
            ],
            events=[ev("r1", 1), ev("r0", 1), ev("r2", 6), ev("r1", 2)],
        )
    )
    assert [(e.run_id, e.sequence) for e in stored] == [("r1", 1), ("r0", 1), ("r2", 6), ("r1", 2)]
    r0, r1, r2 = [await storage.get_run(r) for r in ("r0", "r1", "r2")]
    assert r0 is not None and (r0.status, r0.version, r0.last_history_sequence) == ("running", 3, 1)
    assert r1 is not None and (r1.status, r1.run_number, r1.last_history_sequence) == ("running", 3, 2)
    assert r2 is not None and r2.last_history_sequence == 6
    task = await storage.get_workflow_task("k1")
    assert task is not None and (task.status, task.attempt) == ("leased", 1)
    assert [e.sequence for e in await storage.history("r1", after=0, limit=10)] == [1, 2]
    moved = Mutation(
        ops=[Insert(run_row("r3")), PatchWhere(RunRow, {"run_id": "r3"}, {"last_history_sequence": 5})],
        events=[ev("r3", 6)],
    )
    assert [e.sequence for e in await storage.apply(moved)] == [6]
    assert [e.sequence for e in await storage.history("r3", after=0, limit=10)] == [6]


async def test_concurrent_appends_never_collide(storage: Storage) -> None:
    await storage.apply(Mutation(ops=[Insert(run_row("r1"))]))
    await asyncio.gather(*(storage.apply(Mutation(events=[ev("r1", i)])) for i in range(200)))
    events = await storage.history("r1", after=0, limit=1000)
    assert [e.sequence for e in events] == list(range(1, 201))


async def test_run_version_precondition(storage: Storage) -> None:
    await storage.apply(Mutation(ops=[Insert(run_row("r1"))]))
    await storage.apply(
        Mutation(preconditions=[RunVersion("r1", 0)], ops=[Patch(RunRow, ("r1",), {"status": "waiting"})])
    )
    with pytest.raises(PreconditionFailed) as err:
        await storage.apply(
            Mutation(preconditions=[RunVersion("r1", 0)], ops=[Patch(RunRow, ("r1",), {"status": "running"})])
        )
    assert isinstance(err.value.precondition, RunVersion)
    run = await storage.get_run("r1")
    assert run is not None and run.status == "waiting" and run.version == 1


async def test_patch_inc_and_patch_where(storage: Storage) -> None:
    await storage.apply(
        Mutation(
            ops=[
                Insert(run_row("r1")),
                Insert(run_row("r2")),
                Insert(wf_task("k1")),
                Insert(wf_task("k2", "r2")),
            ]
        )
    )
    await storage.apply(
        Mutation(
            ops=[
                Patch(WorkflowTaskRow, ("k1",), {"attempt": Inc(1)}),
                Patch(WorkflowTaskRow, ("k1",), {"attempt": Inc(2)}),
                PatchWhere(
                    WorkflowTaskRow,
                    {"run_id": "r1", "status": "ready"},
                    {"status": "cancelled", "lease_owner": None},
                ),
            ]
        )
    )
    k1 = await storage.get_workflow_task("k1")
    assert k1 is not None and k1.attempt == 3 and k1.status == "cancelled"
    assert await storage.open_workflow_task("r1") is None
    assert await storage.open_workflow_task("r2") == wf_task("k2", "r2")  # other runs untouched


async def test_patch_where_any_of(storage: Storage) -> None:
    await storage.apply(
        Mutation(
            ops=[
                Insert(run_row("r1")),
                Insert(wf_task("k1")),
                Insert(dataclasses.replace(wf_task("k2"), status="completed")),
                Insert(dataclasses.replace(wf_task("k3"), status="failed")),
            ]
        )
    )
    await storage.apply(
        Mutation(
            ops=[
                PatchWhere(
                    WorkflowTaskRow, {"run_id": "r1", "status": AnyOf(("ready", "failed"))}, {"attempt": 7}
                ),
                PatchWhere(WorkflowTaskRow, {"run_id": "r1", "status": AnyOf(())}, {"attempt": 9}),
            ]
        )
    )
    attempts = {k: (await storage.get_workflow_task(k)) for k in ("k1", "k2", "k3")}
    assert {k: t.attempt for k, t in attempts.items() if t is not None} == {"k1": 7, "k2": 0, "k3": 7}


async def test_one_open_workflow_task_per_run(storage: Storage) -> None:
    await storage.apply(Mutation(ops=[Insert(run_row("r1")), Insert(wf_task("k1"))]))
    with pytest.raises(PreconditionFailed):
        await storage.apply(Mutation(ops=[Insert(wf_task("k2"))]))
    # Ending the open one first, in the same mutation, makes room for the next.
    await storage.apply(
        Mutation(ops=[Patch(WorkflowTaskRow, ("k1",), {"status": "completed"}), Insert(wf_task("k2"))])
    )
    assert await storage.open_workflow_task("r1") == wf_task("k2")


async def test_state_preconditions(storage: Storage) -> None:
    wf = WorkflowRow(
        workflow_id="wf-r1",
        namespace="default",
        workflow_type="t",
        current_run_id="r1",
        run_count=1,
        created_at=T0,
    )
    await storage.apply(Mutation(ops=[Insert(wf), Insert(run_row("r1")), Insert(wf_task("k1"))]))
    await storage.apply(
        Mutation(preconditions=[WorkflowTaskState("k1", "ready"), WorkflowCurrentRun("wf-r1", "r1")])
    )
    for pre in (
        WorkflowTaskState("k1", "leased"),
        WorkflowTaskState("k1", "ready", "w", None),
        WorkflowTaskState("zz", "ready"),
        WorkflowCurrentRun("wf-r1", "r2"),
        ActivityTaskState("x", "ready"),
    ):
        with pytest.raises(PreconditionFailed):
            await storage.apply(Mutation(preconditions=[pre]))


async def test_timer_fires_exactly_once(storage: Storage) -> None:
    timer = TimerRow(
        timer_id="t1", namespace="default", run_id="r1", kind="user", fire_at=T0, status="pending"
    )
    later = TimerRow(
        timer_id="t2", namespace="default", run_id="r1", kind="user", fire_at=T0 + 5, status="pending"
    )
    await storage.apply(Mutation(ops=[Insert(run_row("r1")), Insert(timer), Insert(later)]))
    assert [t.timer_id for t in await storage.due_timers(T0, 10)] == ["t1"]
    assert await storage.next_timer_at() == T0
    results = await asyncio.gather(
        *(
            storage.apply(Mutation(preconditions=[TimerDue("t1", T0)], events=[ev("r1", i)]))
            for i in range(10)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert len(await storage.history("r1", after=0, limit=100)) == 1
    with pytest.raises(PreconditionFailed):  # not due yet
        await storage.apply(Mutation(preconditions=[TimerDue("t2", T0)]))
    assert await storage.due_timers(T0, 10) == []


async def test_claim_workflow_task(storage: Storage) -> None:
    await storage.apply(
        Mutation(
            ops=[
                Insert(run_row("r1")),
                Insert(run_row("r2")),
                Insert(run_row("r3")),
                Insert(wf_task("late", "r1", available_at=T0 + 10)),
                Insert(wf_task("other-type", "r2", available_at=T0 - 2, wtype="x")),
                Insert(wf_task("first", "r3", available_at=T0 - 1)),
            ]
        )
    )

    def build(task: WorkflowTaskRow, run: RunRow) -> Mutation:
        return Mutation(
            preconditions=[RunVersion(run.run_id, run.version)],
            ops=[
                Patch(
                    WorkflowTaskRow,
                    (task.task_id,),
                    {"status": "leased", "attempt": Inc(1), "lease_owner": "w", "lease_expires_at": T0 + 5},
                )
            ],
        )

    claimed = await storage.claim_workflow_task("default", "q", ["t"], None, T0, build)
    assert claimed is not None and claimed[0].task_id == "first" and claimed[0].attempt == 1
    assert await storage.claim_workflow_task("default", "q", ["t"], None, T0, build) is None
    assert await storage.next_available_at("workflow", "default", "q") is not None
    # An expired lease is claimable again.
    again = await storage.claim_workflow_task("default", "q", ["t"], None, T0 + 6, build)
    assert again is not None and again[0].task_id == "first" and again[0].attempt == 2
    everything = await storage.claim_workflow_task("default", "q", [], None, T0, build)
    assert everything is not None and everything[0].task_id == "other-type"


async def test_concurrent_claims_hand_out_each_task_once(storage: Storage) -> None:
    ops: list[Insert] = []
    for i in range(20):
        ops += [Insert(run_row(f"r{i}")), Insert(wf_task(f"k{i}", f"r{i}"))]
    await storage.apply(Mutation(ops=list(ops)))

    def build(task: WorkflowTaskRow, run: RunRow) -> Mutation:
        return Mutation(
            ops=[
                Patch(
                    WorkflowTaskRow,
                    (task.task_id,),
                    {"status": "leased", "lease_owner": "w", "lease_expires_at": T0 + 60},
                )
            ]
        )

    results = await asyncio.gather(
        *(storage.claim_workflow_task("default", "q", [], None, T0, build) for _ in range(30))
    )
    ids = [r[0].task_id for r in results if r is not None]
    assert sorted(ids) == sorted(f"k{i}" for i in range(20))


async def test_claim_activity_task(storage: Storage) -> None:
    act = ActivityRow(
        activity_execution_id="a1",
        namespace="default",
        run_id="r1",
        workflow_id="wf-r1",
        sequence=1,
        activity_type="x",
        task_queue="q",
        status="scheduled",
        scheduled_at=T0,
        retry_policy={},
    )
    atask = ActivityTaskRow(
        task_id="at1",
        namespace="default",
        activity_execution_id="a1",
        run_id="r1",
        workflow_id="wf-r1",
        activity_type="x",
        task_queue="q",
        status="ready",
        attempt_number=1,
        available_at=T0,
        created_at=T0,
    )
    await storage.apply(Mutation(ops=[Insert(run_row("r1")), Insert(act), Insert(atask)]))

    def build(task: ActivityTaskRow, a: ActivityRow) -> Mutation:
        assert a.activity_execution_id == "a1"
        return Mutation(
            preconditions=[ActivityTaskState(task.task_id, "ready")],
            ops=[Patch(ActivityTaskRow, (task.task_id,), {"status": "leased", "attempt_id": "att"})],
            events=[ev("r1", 1)],
        )

    assert await storage.claim_activity_task("default", "q", ["y"], T0, build) is None
    claimed = await storage.claim_activity_task("default", "q", ["x"], T0, build)
    assert claimed is not None and claimed[0].attempt_id == "att" and claimed[1][0].sequence == 1
    assert (await storage.activity_task_by_attempt("att")) == claimed[0]
    assert await storage.claim_activity_task("default", "q", [], T0, build) is None


async def test_wakes_follow_commit(storage: Storage) -> None:
    seen: list[Wake] = []
    storage.set_wake_listener(seen.append)
    await storage.apply(
        Mutation(
            ops=[Insert(run_row("r1"))], events=[ev("r1", 1)], wakes=[Wake(("workflow_task", "default", "q"))]
        )
    )
    assert Wake(("workflow_task", "default", "q")) in seen and Wake(("run", "r1")) in seen
    seen.clear()
    with pytest.raises(PreconditionFailed):
        await storage.apply(Mutation(preconditions=[RunVersion("r1", 99)], wakes=[Wake(("x",))]))
    assert seen == []
    storage.set_wake_listener(None)


async def test_list_runs(storage: Storage) -> None:
    ops = [
        Insert(
            run_row(
                f"r{i}", started_at=T0 + i, business_key=f"k_{i}", status="completed" if i % 2 else "waiting"
            )
        )
        for i in range(6)
    ]
    await storage.apply(Mutation(ops=list(ops)))
    flt = RunFilter(namespace="default")
    first = await storage.list_runs(flt, limit=4, after=None)
    assert [r.run_id for r in first] == ["r5", "r4", "r3", "r2"]
    rest = await storage.list_runs(flt, limit=4, after=(first[-1].started_at, first[-1].run_id))
    assert [r.run_id for r in rest] == ["r1", "r0"]
    assert await storage.count_runs(RunFilter(namespace="default", statuses=("completed",))) == 3
    assert [
        r.run_id
        for r in await storage.list_runs(RunFilter(namespace="default", query="k_3"), limit=9, after=None)
    ] == ["r3"]
    # LIKE wildcards in the query are literal.
    assert await storage.count_runs(RunFilter(namespace="default", query="k%")) == 0
    assert await storage.count_runs(RunFilter(namespace="default", query="wf-r")) == 6
    assert len(await storage.runs_of("wf-r1")) == 1


async def test_group_commit_many_concurrent_writers(storage: Storage) -> None:
    await storage.apply(Mutation(ops=[Insert(run_row("r0"))]))
    writes = [
        storage.apply(Mutation(ops=[Insert(run_row(f"g{i}"))], events=[ev(f"g{i}", 1)])) for i in range(500)
    ]
    # Writes whose precondition fails land in the same batches and must not drag them down.
    writes += [
        storage.apply(Mutation(preconditions=[RunVersion("r0", 42)], ops=[Insert(run_row(f"bad{i}"))]))
        for i in range(50)
    ]
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert sum(isinstance(r, PreconditionFailed) for r in results) == 50
    assert sum(isinstance(r, list) for r in results) == 500
    assert await storage.count_runs(RunFilter(namespace="default")) == 501


async def test_data_survives_reopen(backend: str, tmp_path: Path) -> None:
    store = make_storage(backend, tmp_path)
    await store.open()
    await store.apply(Mutation(ops=[Insert(run_row("r1"))], events=[ev("r1", 1)]))
    await store.close()
    with pytest.raises(StorageUnavailable):
        await store.apply(Mutation())
    store = make_storage(backend, tmp_path)
    await store.open()
    assert (await store.get_run("r1")) is not None
    assert len(await store.history("r1", after=0, limit=10)) == 1
    await store.close()
