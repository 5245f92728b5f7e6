"""Several server nodes on one PostgreSQL database: what only a shared server database shows.

Two :class:`PostgresStorage` instances (or two engines) on one schema stand for two nodes:
claims hand each task to one poller, timers fire once, and a write on one node wakes long
polls on the other through LISTEN/NOTIFY (sent only on commit, re-established when the
listening connection drops). Skipped without ``DW_TEST_POSTGRES_DSN``; each test has a fresh
schema.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pg_support import drop_schema, postgres_dsn, schema_name

from durable_workflow_server.engine import Engine, EngineSettings, ManualClock
from durable_workflow_server.storage import (
    ActivityRow,
    ActivityTaskRow,
    ActivityTaskState,
    Insert,
    Mutation,
    Patch,
    PreconditionFailed,
    RunRow,
    RunVersion,
    Wake,
    WorkflowTaskRow,
)

pytestmark = pytest.mark.postgres

T0 = 1_800_000_000.0
NS = "default"
Q = "q"


@pytest.fixture
def schema(tmp_path: Path) -> Iterator[str]:
    dsn = postgres_dsn()
    name = schema_name(str(tmp_path))
    yield name
    drop_schema(dsn, name)


@pytest.fixture
async def nodes(schema: str) -> AsyncIterator[list[object]]:
    from durable_workflow_server.storage.postgres import PostgresStorage

    stores = [PostgresStorage(postgres_dsn(), schema=schema) for _ in range(2)]
    for store in stores:
        await store.open()
    # The second node's hello came back to it before open() returned; the first has heard it
    # by then or a moment later (presence: storage._pg_announce).
    await _until(lambda: all(store.peer_nodes() for store in stores))
    yield list(stores)
    for store in stores:
        await store.close()


def run_row(run_id: str) -> RunRow:
    return RunRow(
        run_id=run_id, namespace=NS, workflow_id=f"wf-{run_id}", run_number=1, workflow_type="t",
        task_queue=Q, status="pending", started_at=T0,
    )  # fmt: skip


def wf_task(task_id: str, run_id: str) -> WorkflowTaskRow:
    return WorkflowTaskRow(
        task_id=task_id, namespace=NS, run_id=run_id, workflow_id=f"wf-{run_id}", workflow_type="t",
        task_queue=Q, status="ready", available_at=T0, created_at=T0,
    )  # fmt: skip


async def _until(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_a_commit_on_one_node_wakes_the_other(nodes: list[object]) -> None:
    a, b = nodes  # type: ignore[misc]
    seen_a: list[Wake] = []
    seen_b: list[Wake] = []
    a.set_wake_listener(seen_a.append)
    b.set_wake_listener(seen_b.append)
    wake = Wake(("workflow_task", NS, Q), "t")
    await a.apply(Mutation(ops=[Insert(run_row("r1")), Insert(wf_task("k1", "r1"))], wakes=[wake]))
    await _until(lambda: wake in seen_b)
    assert seen_a == [wake]  # its own NOTIFY is not delivered a second time
    # A write that fails its precondition rolls back, NOTIFY included.
    seen_b.clear()
    with pytest.raises(PreconditionFailed):
        await a.apply(Mutation(preconditions=[RunVersion("r1", 99)], wakes=[Wake(("run", "r1"))]))
    # The timer loop's wake stays local: every node's loop re-reads the timers table anyway.
    await a.apply(Mutation(wakes=[Wake(("timers",)), Wake(("marker",))]))
    await _until(lambda: Wake(("marker",)) in seen_b)
    assert Wake(("run", "r1")) not in seen_b and Wake(("timers",)) not in seen_b
    assert Wake(("timers",)) in seen_a


async def test_many_wakes_in_one_write_all_arrive(nodes: list[object]) -> None:
    a, b = nodes  # type: ignore[misc]
    seen_b: list[Wake] = []
    b.set_wake_listener(seen_b.append)
    wakes = [Wake(("run", f"run-{i:04d}-" + "x" * 40)) for i in range(400)]  # > one NOTIFY payload
    await a.apply(Mutation(wakes=wakes))
    await _until(lambda: len(seen_b) == 400)
    assert seen_b == wakes


async def test_listener_reconnects_after_its_connection_dies(nodes: list[object], schema: str) -> None:
    import asyncpg

    a, b = nodes  # type: ignore[misc]
    seen_b: list[Wake] = []
    b.set_wake_listener(seen_b.append)
    conn = await asyncpg.connect(postgres_dsn())
    try:
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND datname = current_database() "
            "AND (query LIKE 'LISTEN%' OR query LIKE '%pg_notify%')"
        )
    finally:
        await conn.close()
    assert killed >= 1

    async def delivered() -> bool:
        await a.apply(Mutation(wakes=[Wake(("probe",))]))
        await asyncio.sleep(0.1)
        return Wake(("probe",)) in seen_b

    deadline = time.monotonic() + 10
    while not await delivered():
        assert time.monotonic() < deadline, "wake-ups never resumed"


async def test_claims_across_two_nodes_hand_out_each_task_once(nodes: list[object]) -> None:
    a, b = nodes  # type: ignore[misc]
    ops: list[Insert] = []
    for i in range(30):
        ops += [Insert(run_row(f"r{i}")), Insert(wf_task(f"k{i}", f"r{i}"))]
        act = ActivityRow(
            activity_execution_id=f"a{i}", namespace=NS, run_id=f"r{i}", workflow_id=f"wf-r{i}",
            sequence=1, activity_type="x", task_queue=Q, status="scheduled", scheduled_at=T0,
            retry_policy={},
        )  # fmt: skip
        atask = ActivityTaskRow(
            task_id=f"at{i}", namespace=NS, activity_execution_id=f"a{i}", run_id=f"r{i}",
            workflow_id=f"wf-r{i}", activity_type="x", task_queue=Q, status="ready", attempt_number=1,
            available_at=T0, created_at=T0,
        )  # fmt: skip
        ops += [Insert(act), Insert(atask)]
    await a.apply(Mutation(ops=list(ops)))

    def lease_wf(task: WorkflowTaskRow, run: RunRow) -> Mutation:
        return Mutation(
            preconditions=[RunVersion(run.run_id, run.version)],
            ops=[Patch(WorkflowTaskRow, (task.task_id,), {"status": "leased", "lease_expires_at": T0 + 60})],
        )

    def lease_act(task: ActivityTaskRow, act: ActivityRow) -> Mutation:
        return Mutation(
            preconditions=[ActivityTaskState(task.task_id, "ready")],
            ops=[
                Patch(
                    ActivityTaskRow, (task.task_id,), {"status": "leased", "attempt_id": f"x-{task.task_id}"}
                ),
                Patch(RunRow, (task.run_id,), {"version": 5}),
            ],
        )

    claims = []
    for i in range(45):
        store = (a, b)[i % 2]
        claims.append(store.claim_workflow_task(NS, Q, [], None, T0, lease_wf))
        claims.append(store.claim_activity_task(NS, Q, [], T0, lease_act))
    results = await asyncio.gather(*claims)
    wf_ids = [r[0].task_id for r in results if r is not None and isinstance(r[0], WorkflowTaskRow)]
    act_ids = [r[0].task_id for r in results if r is not None and isinstance(r[0], ActivityTaskRow)]
    assert sorted(wf_ids) == sorted(f"k{i}" for i in range(30))
    assert sorted(act_ids) == sorted(f"at{i}" for i in range(30))


@pytest.fixture
async def engines(schema: str) -> AsyncIterator[tuple[Engine, Engine, ManualClock]]:
    from durable_workflow_server.storage.postgres import PostgresStorage

    clock = ManualClock(T0)
    a = Engine(PostgresStorage(postgres_dsn(), schema=schema), clock=clock)
    b = Engine(PostgresStorage(postgres_dsn(), schema=schema), clock=clock)
    await a.start(background=False)
    await b.start(background=False)
    yield a, b, clock
    await a.stop()
    await b.stop()


async def test_two_nodes_fire_each_timer_once(engines: tuple[Engine, Engine, ManualClock]) -> None:
    a, b, clock = engines
    await a.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python"})
    for i in range(10):
        await a.start_workflow(NS, {"workflow_id": f"n{i}", "workflow_type": "t", "task_queue": Q})
        task = (await b.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
        assert task is not None
        await b.complete_workflow_task(
            NS, task["task_id"], lease_owner="w1", attempt=1,
            commands=[{"type": "start_timer", "delay_seconds": 5}],
        )  # fmt: skip
    clock.advance(5)
    fired = await asyncio.gather(a.fire_due_timers(), b.fire_due_timers(), a.fire_due_timers())
    assert sum(fired) == 10
    for i in range(10):
        run_id = (await a.describe_workflow(NS, f"n{i}"))["run_id"]
        types = [e["event_type"] for e in (await b.run_history(NS, f"n{i}", run_id))["events"]]
        assert types.count("TimerFired") == 1


async def test_a_long_poll_on_one_node_answers_at_once_for_a_task_made_on_another(schema: str) -> None:
    from durable_workflow_server.storage.postgres import PostgresStorage

    # Re-checks only every 30 s: an answer within a fraction of a second can only be the NOTIFY.
    settings = EngineSettings(poll_recheck_seconds=30)
    a = Engine(PostgresStorage(postgres_dsn(), schema=schema), settings)
    b = Engine(PostgresStorage(postgres_dsn(), schema=schema), settings)
    await a.start()
    await b.start()
    try:
        await b.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python"})
        await b.register_worker(NS, {"worker_id": "w2", "task_queue": Q, "runtime": "python"})
        wf_poll = asyncio.create_task(
            b.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=20)
        )
        await asyncio.sleep(0.3)  # the poll is waiting
        started = time.monotonic()
        await a.start_workflow(NS, {"workflow_id": "remote-wake", "workflow_type": "t", "task_queue": Q})
        task = (await wf_poll)["task"]
        assert task is not None
        assert time.monotonic() - started < 0.5
        # The same for an activity task scheduled on node A and polled on node B.
        act_poll = asyncio.create_task(
            b.poll_activity_task(NS, worker_id="w2", task_queue=Q, timeout_seconds=20)
        )
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await a.complete_workflow_task(
            NS, task["task_id"], lease_owner="w1", attempt=task["workflow_task_attempt"],
            commands=[{"type": "schedule_activity", "activity_type": "x", "queue": Q}],
        )  # fmt: skip
        assert (await act_poll)["task"] is not None
        assert time.monotonic() - started < 0.5
        # And a result wait on node B answers when node A closes the run.
        run_id = task["run_id"]
        result = asyncio.create_task(b.await_run_result(NS, "remote-wake", run_id, wait_seconds=20))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await a.terminate_workflow(NS, "remote-wake", run_id, reason="done", request_id=None)
        assert (await result)["is_terminal"]
        assert time.monotonic() - started < 0.5
    finally:
        await a.stop()
        await b.stop()


async def test_nodes_know_of_each_other_and_forget_one_that_leaves(nodes: list[object], schema: str) -> None:
    from durable_workflow_server.storage.postgres import PostgresStorage

    a, b = nodes  # type: ignore[misc]
    assert a.has_other_nodes() and b.has_other_nodes()
    alone = PostgresStorage(postgres_dsn(), schema=f"{schema}_alone")
    try:
        await alone.open()
        assert not alone.has_other_nodes()  # a node on its own announces nothing
    finally:
        await alone.close()
        drop_schema(postgres_dsn(), f"{schema}_alone")
    third = PostgresStorage(postgres_dsn(), schema=schema)
    await third.open()
    await _until(lambda: len(a.peer_nodes()) == 2 and len(third.peer_nodes()) == 2)
    await third.close()  # says bye
    await _until(lambda: len(a.peer_nodes()) == 1 and len(b.peer_nodes()) == 1)
