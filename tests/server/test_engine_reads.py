"""Storage reads per request (engine._rowcache): fewer reads, the same fencing.

Two engines over one database stand for two server nodes: node ``a`` serves the worker and
remembers what its leases wrote, node ``b`` changes things behind its back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from storage_backends import BACKENDS, forget, make_storage

from durable_workflow import serializer
from durable_workflow_server.engine import Engine, EngineError, EngineSettings, ManualClock
from durable_workflow_server.engine._core import event, new_workflow_task
from durable_workflow_server.engine._eager import eligible_worker, lease_workflow_task
from durable_workflow_server.engine._history_cache import HistoryCache
from durable_workflow_server.engine._rowcache import RecentRows, WorkerCache, inserted_run
from durable_workflow_server.engine._workflow_tasks import eager_task_dict
from durable_workflow_server.storage import (
    EventRow,
    Insert,
    Mutation,
    RunRow,
    Storage,
    Wake,
    WorkerRow,
    WorkflowRow,
)

NS = "default"
Q = "orders"
WRITES = frozenset({"apply", "claim_workflow_task", "claim_activity_task", "open", "close"})


def count_reads(storage: Storage) -> Counter[str]:
    """Count the storage reads made through ``storage`` from now on (by method name)."""
    calls: Counter[str] = Counter()
    for name, method in inspect.getmembers(storage, inspect.iscoroutinefunction):
        if name.startswith("_") or name in WRITES:
            continue

        def wrap(method: Any = method, name: str = name) -> Any:
            @functools.wraps(method)
            async def counted(*args: Any, **kwargs: Any) -> Any:
                calls[name] += 1
                return await method(*args, **kwargs)

            return counted

        setattr(storage, name, wrap())
    return calls


@dataclasses.dataclass
class Nodes:
    a: Engine
    b: Engine
    clock: ManualClock
    reads: Counter[str]


@pytest.fixture(params=BACKENDS)
async def nodes(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Nodes]:
    kind: str = request.param
    clock = ManualClock()
    settings = EngineSettings(worker_cache_seconds=5.0)
    storage_a = make_storage(kind, tmp_path)
    reads = count_reads(storage_a)
    a = Engine(storage_a, settings, clock=clock)
    b = Engine(make_storage(kind, tmp_path), settings, clock=clock)
    await a.start(background=False)
    await b.start(background=False)
    yield Nodes(a, b, clock, reads)
    await a.stop()
    await b.stop()
    forget(kind, tmp_path)


def env(value: Any) -> dict[str, str]:
    return {"codec": "avro", "blob": serializer.encode(value)}


ACTIVITY = {
    "type": "schedule_activity",
    "activity_type": "orders.charge",
    "queue": Q,
    "arguments": env(["Ada"]),
    "start_to_close_timeout": 30,
}


async def register(engine: Engine, worker_id: str = "w1", queue: str = Q) -> None:
    await engine.register_worker(NS, {"worker_id": worker_id, "task_queue": queue, "runtime": "python"})


async def first_task(engine: Engine, workflow_id: str) -> dict[str, Any]:
    await engine.start_workflow(
        NS, {"workflow_id": workflow_id, "workflow_type": "orders.checkout", "task_queue": Q}
    )
    task: dict[str, Any] = (
        await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=1)
    )["task"]
    assert task is not None
    return task


async def eager_activity(engine: Engine, task: dict[str, Any]) -> dict[str, Any]:
    reply = await engine.eager.complete_workflow_task(
        NS,
        task["task_id"],
        lease_owner="w1",
        attempt=task["workflow_task_attempt"],
        commands=[ACTIVITY],
        eager_activity_slots=1,
    )
    [act] = reply["eager_activity_tasks"]
    assert act["lease_owner"] == "w1"
    return dict(act)


async def finish(engine: Engine, act: dict[str, Any]) -> dict[str, Any]:
    done = await engine.eager.complete_activity_task(
        NS, act["task_id"], attempt_id=act["activity_attempt_id"], lease_owner="w1", result=env("paid")
    )
    return dict(done)


async def test_one_activity_workflow_reads_little(nodes: Nodes) -> None:
    engine = nodes.a
    await register(engine)
    task = await first_task(engine, "cheap-1")
    nodes.reads.clear()
    act = await eager_activity(engine, task)
    done = await finish(engine, act)
    wf = done["eager_workflow_task"]
    assert wf is not None and wf["lease_owner"] == "w1"
    final = await engine.complete_workflow_task(
        NS,
        wf["task_id"],
        lease_owner="w1",
        attempt=wf["workflow_task_attempt"],
        commands=[{"type": "complete_workflow", "result": env("ok")}],
    )
    assert final["run_status"] == "completed"
    # Three reports, no read. The task rows, the runs and the worker come from the leases that
    # handed the tasks out; the history, "no condition waits" and "no children" from this
    # node's copy of the run's history; "no workflow task open" from the first completion,
    # which ended the only one; "no open update" from this node having created the run, and
    # every write since being this node's own (an update moves the run version).
    assert nodes.reads == Counter(), nodes.reads


async def test_an_update_through_another_node_is_not_missed(nodes: Nodes) -> None:
    """Node a knows its run had no update; one arrives through node b while a's worker holds
    the task. The completion's fence fails on the moved version, and the retry reads the
    messages and starts the update's task."""
    await register(nodes.a)
    task = await first_task(nodes.a, "upd-1")
    status, _ = await nodes.b.update_workflow(
        NS, "upd-1", None, "bump", wait_for="accepted", wait_timeout_seconds=0
    )
    assert status == 202
    nodes.reads.clear()
    reply = await nodes.a.complete_workflow_task(
        NS,
        task["task_id"],
        lease_owner="w1",
        attempt=task["workflow_task_attempt"],
        commands=[ACTIVITY],
    )
    assert nodes.reads["open_messages"] == 1
    assert len(reply["created_task_ids"]) == 2  # the activity's task and the update's
    follow = (await nodes.a.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=1))["task"]
    assert follow is not None and follow["task_id"] in reply["created_task_ids"]


async def test_remembered_run_is_the_stored_run(nodes: Nodes) -> None:
    """What run_after predicts for a committed write equals what storage holds afterwards."""
    engine = nodes.a
    await register(engine)
    task = await first_task(engine, "predict-1")
    act = await eager_activity(engine, task)
    core = engine._core
    remembered = core.recent.take_activity_task(act["task_id"])
    assert remembered is not None and remembered[2] is not None
    assert remembered[2] == await engine.storage.get_run(act["run_id"])
    core.recent.put_activity_task(*remembered)
    done = await finish(engine, act)
    wf = done["eager_workflow_task"]
    known = core.recent.peek_workflow_task(wf["task_id"])
    assert known is not None
    assert known[1] == await engine.storage.get_run(act["run_id"])
    assert known[0] == await engine.storage.get_workflow_task(wf["task_id"])


async def test_stale_remembered_run_makes_the_write_retry(nodes: Nodes) -> None:
    """A signal through another node moves the run on; the remembered copy fails its fence
    and the report is decided again on fresh rows, with the signal seen."""
    await register(nodes.a)
    task = await first_task(nodes.a, "stale-1")
    act = await eager_activity(nodes.a, task)
    await nodes.b.signal_workflow(NS, "stale-1", None, "poke", input=None)
    nodes.reads.clear()
    done = await finish(nodes.a, act)
    assert done["outcome"] == "completed"
    assert nodes.reads["get_run"] >= 1  # the retry read the run the signal changed
    # The signal made a ready workflow task, so the completion made none to hand back.
    assert done["eager_workflow_task"] is None
    wf = (await nodes.a.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=1))["task"]
    assert wf is not None
    types = [e["event_type"] for e in wf["history_events"]]
    assert "SignalReceived" in types and "ActivityCompleted" in types
    final = await nodes.a.complete_workflow_task(
        NS,
        wf["task_id"],
        lease_owner="w1",
        attempt=wf["workflow_task_attempt"],
        commands=[{"type": "complete_workflow", "result": env("ok")}],
    )
    assert final["run_status"] == "completed"


async def test_refusal_is_decided_on_fresh_rows(nodes: Nodes) -> None:
    """A run terminated through another node: the report on remembered rows must not pass."""
    await register(nodes.a)
    task = await first_task(nodes.a, "gone-1")
    act = await eager_activity(nodes.a, task)
    await nodes.b.terminate_workflow(NS, "gone-1", reason="stop")
    with pytest.raises(EngineError) as caught:
        await finish(nodes.a, act)
    assert caught.value.reason == "run_terminated"
    # The same for a workflow task remembered from its lease.
    await register(nodes.a)
    task = await first_task(nodes.a, "gone-2")
    assert nodes.a._core.recent.peek_workflow_task(task["task_id"]) is not None
    await nodes.b.terminate_workflow(NS, "gone-2", reason="stop")
    with pytest.raises(EngineError) as caught:
        await nodes.a.complete_workflow_task(
            NS, task["task_id"], lease_owner="w1", attempt=task["workflow_task_attempt"], commands=[ACTIVITY]
        )
    assert caught.value.reason == "run_closed"


async def test_retried_report_gets_the_first_answer(nodes: Nodes) -> None:
    """The remembered rows are taken once: an identical retry reads storage and replays."""
    await register(nodes.a)
    task = await first_task(nodes.a, "again-1")
    act = await eager_activity(nodes.a, task)
    first = await finish(nodes.a, act)
    again = await finish(nodes.a, act)
    assert again["outcome"] == first["outcome"] == "completed"
    assert again["next_task_id"] == first["next_task_id"]
    assert again["eager_workflow_task"] is None  # the stored reply never holds eager tasks


async def test_worker_cache_staleness_is_bounded(nodes: Nodes) -> None:
    """Deregistered through node b, the worker still takes eager leases on node a until its
    cached registration is ``worker_cache_seconds`` old; deregistered through node a, at once."""
    await register(nodes.a)
    task = await first_task(nodes.a, "cache-1")
    act = await eager_activity(nodes.a, task)  # node a now holds the registration
    await nodes.b.deregister_worker(NS, "w1")  # releases workflow tasks only
    # Within the bound node a still trusts its copy (the worker is alive: it is reporting).
    done = await finish(nodes.a, act)
    assert done["eager_workflow_task"] is not None
    # Past the bound it reads the registration again, and refuses.
    await register(nodes.b)
    task = await first_task(nodes.b, "cache-2")
    act = await eager_activity(nodes.b, task)
    await nodes.b.deregister_worker(NS, "w1")
    nodes.clock.advance(6)
    done = await finish(nodes.a, act)
    assert done["outcome"] == "completed" and done["eager_workflow_task"] is None
    # Through node a itself: seen at once, also by its polls.
    await register(nodes.a)
    await nodes.a.poll_activity_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0)
    await nodes.a.deregister_worker(NS, "w1")
    with pytest.raises(EngineError) as caught:
        await nodes.a.poll_activity_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0)
    assert caught.value.reason == "worker_not_registered"


async def test_poll_refusal_from_cache_is_checked_again(nodes: Nodes) -> None:
    """Re-registered on another queue through node b: node a's cached copy (old queue) must
    not refuse the poll on the new queue."""
    await register(nodes.a)
    await nodes.a.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0)
    await register(nodes.b, queue="payments")
    reply = await nodes.a.poll_workflow_task(NS, worker_id="w1", task_queue="payments", timeout_seconds=0)
    assert reply == {"task": None}
    with pytest.raises(EngineError) as caught:
        await nodes.a.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0)
    assert caught.value.reason == "task_queue_mismatch"


async def complete_run(engine: Engine, task: dict[str, Any]) -> None:
    await engine.complete_workflow_task(
        NS,
        task["task_id"],
        lease_owner="w1",
        attempt=task["workflow_task_attempt"],
        commands=[{"type": "complete_workflow", "result": env("ok")}],
    )


async def test_result_of_a_run_closed_here_is_not_read_again(nodes: Nodes) -> None:
    engine = nodes.a
    await register(engine)
    task = await first_task(engine, "result-1")
    waiting = asyncio.create_task(engine.await_run_result(NS, "result-1", task["run_id"], wait_seconds=5))
    await asyncio.sleep(0.05)
    nodes.reads.clear()
    await complete_run(engine, task)
    result = await waiting
    assert result["status"] == "completed" and result["is_terminal"]
    assert serializer.decode(result["output_envelope"]["blob"]) == "ok"
    assert nodes.reads["get_run"] == 0


async def test_a_result_wait_on_a_run_started_here_reads_nothing_first(nodes: Nodes) -> None:
    """The first look of a waiting result request uses the run this node started; a request
    that does not wait reads (its status must be current), and so does one on a node that
    knows of other nodes."""
    engine = nodes.a
    # Node b shares the database: on PostgreSQL node a has heard of it, so act alone first.
    engine.storage.has_other_nodes = lambda: False  # type: ignore[method-assign]
    await register(engine)
    task = await first_task(engine, "result-2")
    nodes.reads.clear()
    waiting = asyncio.create_task(engine.await_run_result(NS, "result-2", task["run_id"], wait_seconds=5))
    await asyncio.sleep(0.05)
    assert nodes.reads["get_run"] == 0
    now = await engine.await_run_result(NS, "result-2", task["run_id"], wait_seconds=0)
    assert nodes.reads["get_run"] == 1 and now["status"] == "running"  # fresh, not as started
    await complete_run(engine, task)
    result = await waiting
    assert result["status"] == "completed" and nodes.reads["get_run"] == 1

    engine.storage.has_other_nodes = lambda: True  # type: ignore[method-assign]
    other = await first_task(engine, "result-3")
    nodes.reads.clear()
    waiting = asyncio.create_task(engine.await_run_result(NS, "result-3", other["run_id"], wait_seconds=5))
    await asyncio.sleep(0.05)
    assert nodes.reads["get_run"] == 1
    waiting.cancel()


async def test_start_write_needs_no_read_for_its_eager_task(nodes: Nodes) -> None:
    """``eager_task_dict(..., write=(m, events))``: a start that inserted the run and leased its
    first task hands over both without reading them (and its completion reads nothing either)."""
    engine = nodes.a
    core = engine._core
    await register(engine)
    now = core.now()
    run = RunRow(
        run_id="run-w1",
        namespace=NS,
        workflow_id="write-1",
        run_number=1,
        workflow_type="orders.checkout",
        task_queue=Q,
        status="pending",
        started_at=now,
    )
    m = Mutation()
    m.ops.append(Insert(WorkflowRow("write-1", NS, "orders.checkout", run.run_id, 1, now)))
    m.ops.append(Insert(run))
    created = new_workflow_task(run, now, None)
    m.ops.append(Insert(created))
    m.events.append(event(run.run_id, "WorkflowStarted", {"task_queue": Q}, now))
    worker = await eligible_worker(core, NS, "w1")
    assert worker is not None
    leased = lease_workflow_task(core, m, run, created.task_id, worker, now)
    assert leased is not None
    events = await engine.storage.apply(m)
    assert inserted_run(m, run.run_id, events) == await engine.storage.get_run(run.run_id)
    nodes.reads.clear()
    body = await eager_task_dict(core, leased, write=(m, events))
    assert body is not None and [e["event_type"] for e in body["history_events"]] == ["WorkflowStarted"]
    final = await engine.complete_workflow_task(
        NS,
        leased.task_id,
        lease_owner="w1",
        attempt=leased.attempt,
        commands=[{"type": "complete_workflow", "result": env("ok")}],
    )
    assert final["run_status"] == "completed"
    assert sum(nodes.reads.values()) == 0, nodes.reads


def ev(sequence: int, event_type: str = "X", run_id: str = "r") -> EventRow:
    return EventRow(run_id, sequence, f"e{sequence}", event_type, {}, 0.0)


def test_history_cache_keeps_only_gapless_prefixes() -> None:
    cache = HistoryCache(max_events=10, max_run_events=6)
    cache.add("r", [ev(1), ev(2, "ChildWorkflowScheduled")])
    cache.add("r", [ev(2), ev(3)])  # overlap: only 3 is new
    assert [e.sequence for e in cache.page("r", 0, 3) or []] == [1, 2, 3]
    assert cache.page("r", 1, 3) is None  # 4 is not held
    assert cache.never_recorded("r", 3, {"ConditionWaitOpened"})
    assert not cache.never_recorded("r", 3, {"ChildWorkflowScheduled"})
    assert not cache.never_recorded("r", 4, {"ConditionWaitOpened"})  # unknown, not "none"
    cache.add("r", [ev(5)])  # 4 never seen: the copy cannot be extended, and goes
    assert cache.page("r", 0, 1) is None and cache.size() == 0
    cache.add("r", [ev(2)])  # a later page without its start is not a prefix
    assert cache.size() == 0
    cache.add("r", [ev(i) for i in range(1, 8)])  # longer than a run may hold
    assert cache.size() == 0
    cache.add("a", [ev(i, run_id="a") for i in range(1, 6)])
    cache.add("b", [ev(i, run_id="b") for i in range(1, 7)])  # 11 > 10: the oldest run goes
    assert cache.page("a", 0, 1) is None and cache.page("b", 0, 6) is not None


def test_worker_cache_entries_expire_and_can_be_dropped() -> None:
    row = WorkerRow(NS, "w1", Q, "python", "active", 0.0, 0.0)
    cache = WorkerCache(ttl=2.0)
    cache.put(row, 10.0)
    assert cache.get(NS, "w1", 12.0) is row
    assert cache.get(NS, "w1", 12.5) is None  # older than the bound
    cache.put(row, 10.0)
    cache.forget(NS, "w1")
    assert cache.get(NS, "w1", 10.0) is None
    off = WorkerCache(ttl=0.0)
    off.put(row, 10.0)
    assert off.get(NS, "w1", 10.0) is None


def test_only_the_closing_writes_own_wake_remembers_the_closed_run() -> None:
    recent = RecentRows()
    closed = RunRow("r1", NS, "wf", 1, "t", Q, "completed", 0.0)
    ours = Wake(("run_closed", "r1"))
    recent.expect_close(ours, closed)
    recent.on_wake(Wake(("run_closed", "r1")))  # equal, but another node's (or another write's)
    assert recent.closed_run("r1") is None
    recent.on_wake(ours)
    assert recent.closed_run("r1") is closed
    other = RunRow("r2", NS, "wf2", 1, "t", Q, "completed", 0.0)
    failed = Wake(("run_closed", "r2"))
    recent.expect_close(failed, other)
    recent.close_failed("r2", failed)  # the write did not commit
    recent.on_wake(failed)
    assert recent.closed_run("r2") is None
