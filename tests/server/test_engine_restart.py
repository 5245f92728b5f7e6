"""Durability across restarts: timers, deadlines and leases live in SQLite, not in memory."""

from __future__ import annotations

import asyncio
from pathlib import Path

from durable_workflow_server.engine import Engine, EngineSettings, ManualClock
from durable_workflow_server.storage.sqlite import SqliteStorage

NS = "default"
Q = "q"


async def test_timer_fires_after_restart(tmp_path: Path) -> None:
    db = tmp_path / "dw.sqlite"
    clock = ManualClock(1_800_000_000.0)
    eng = Engine(SqliteStorage(db), clock=clock)
    await eng.start(background=False)
    await eng.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python"})
    await eng.start_workflow(NS, {"workflow_id": "sleeper", "workflow_type": "t", "task_queue": Q})
    task = (await eng.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    assert task is not None
    await eng.complete_workflow_task(
        NS,
        task["task_id"],
        lease_owner="w1",
        attempt=1,
        commands=[{"type": "start_timer", "delay_seconds": 30}],
    )
    await eng.stop()

    clock.advance(29)
    eng = Engine(SqliteStorage(db), clock=clock)
    await eng.start(background=False)
    assert await eng.fire_due_timers() == 0
    clock.advance(1)
    assert await eng.fire_due_timers() == 1
    assert await eng.fire_due_timers() == 0  # exactly once
    task = (await eng.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    assert task is not None
    assert [e["event_type"] for e in task["history_events"]][-1] == "TimerFired"
    await eng.stop()


async def test_background_loop_resumes_after_restart(tmp_path: Path) -> None:
    db = tmp_path / "dw.sqlite"
    eng = Engine(SqliteStorage(db), EngineSettings(timer_poll_seconds=0.2))
    await eng.start()
    await eng.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python"})
    await eng.start_workflow(NS, {"workflow_id": "sleeper", "workflow_type": "t", "task_queue": Q})
    task = (await eng.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=1))["task"]
    assert task is not None
    await eng.complete_workflow_task(
        NS,
        task["task_id"],
        lease_owner="w1",
        attempt=1,
        commands=[{"type": "start_timer", "delay_seconds": 1}],
    )
    await eng.stop()
    await asyncio.sleep(1.1)  # the timer becomes due while no server runs
    eng = Engine(SqliteStorage(db), EngineSettings(timer_poll_seconds=0.2))
    await eng.start()
    task = (await eng.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=3))["task"]
    assert task is not None and task["resume_source_kind"] == "timer"
    await eng.stop()


async def test_leased_task_is_offered_again_after_restart(tmp_path: Path) -> None:
    db = tmp_path / "dw.sqlite"
    clock = ManualClock(1_800_000_000.0)
    eng = Engine(SqliteStorage(db), EngineSettings(workflow_task_lease_seconds=10), clock=clock)
    await eng.start(background=False)
    await eng.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python"})
    await eng.start_workflow(NS, {"workflow_id": "lost", "workflow_type": "t", "task_queue": Q})
    first = (await eng.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    assert first is not None
    await eng.stop()
    eng = Engine(SqliteStorage(db), EngineSettings(workflow_task_lease_seconds=10), clock=clock)
    await eng.start(background=False)
    assert (await eng.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"] is None
    clock.advance(10)
    again = (await eng.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    assert again is not None and again["task_id"] == first["task_id"] and again["workflow_task_attempt"] == 2
    await eng.stop()


async def test_expired_lease_is_reoffered_in_real_time(tmp_path: Path) -> None:
    eng = Engine(SqliteStorage(tmp_path / "dw.sqlite"), EngineSettings(workflow_task_lease_seconds=0.5))
    await eng.start()
    await eng.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python"})
    await eng.register_worker(NS, {"worker_id": "w2", "task_queue": Q, "runtime": "python"})
    await eng.start_workflow(NS, {"workflow_id": "x", "workflow_type": "t", "task_queue": Q})
    assert (await eng.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=1))[
        "task"
    ] is not None
    again = (await eng.poll_workflow_task(NS, worker_id="w2", task_queue=Q, timeout_seconds=3))["task"]
    assert again is not None and again["lease_owner"] == "w2"
    await eng.stop()


async def test_two_nodes_fire_a_timer_once(tmp_path: Path) -> None:
    """Two engines on one database file (two server nodes): each due row fires exactly once."""
    db = tmp_path / "shared.sqlite"
    clock = ManualClock(1_800_000_000.0)
    a = Engine(SqliteStorage(db), clock=clock)
    b = Engine(SqliteStorage(db), clock=clock)
    await a.start(background=False)
    await b.start(background=False)
    await a.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python"})
    for i in range(10):
        await a.start_workflow(NS, {"workflow_id": f"n{i}", "workflow_type": "t", "task_queue": Q})
        task = (await b.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
        assert task is not None
        await b.complete_workflow_task(
            NS,
            task["task_id"],
            lease_owner="w1",
            attempt=1,
            commands=[{"type": "start_timer", "delay_seconds": 5}],
        )
    clock.advance(5)
    fired = await asyncio.gather(a.fire_due_timers(), b.fire_due_timers())
    assert sum(fired) == 10
    for i in range(10):
        run_id = (await a.describe_workflow(NS, f"n{i}"))["run_id"]
        types = [e["event_type"] for e in (await b.run_history(NS, f"n{i}", run_id))["events"]]
        assert types.count("TimerFired") == 1
    await a.stop()
    await b.stop()
