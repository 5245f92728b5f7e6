"""Concurrency: results that race a leased workflow task are never lost, and many workflows
share the writer without interfering."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from durable_workflow_server.engine import Engine
from durable_workflow_server.storage import Storage

NS = "default"
Q = "q"


@pytest.fixture
async def engine(engine_storage: Storage) -> AsyncIterator[Engine]:
    eng = Engine(engine_storage)
    await eng.start()
    await eng.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python"})
    yield eng
    await eng.stop()


async def test_racing_completions_always_reach_the_workflow(engine: Engine) -> None:
    count = 20
    await engine.start_workflow(NS, {"workflow_id": "fan", "workflow_type": "t", "task_queue": Q})
    first = (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=1))["task"]
    assert first is not None
    await engine.complete_workflow_task(
        NS,
        first["task_id"],
        lease_owner="w1",
        attempt=1,
        commands=[{"type": "schedule_activity", "activity_type": "a", "queue": Q} for _ in range(count)],
    )
    rng = random.Random(7)

    async def run_activity() -> None:
        task = (await engine.poll_activity_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=1))["task"]
        assert task is not None
        await asyncio.sleep(rng.random() * 0.05)
        await engine.complete_activity_task(
            NS, task["task_id"], attempt_id=task["activity_attempt_id"], lease_owner="w1", result=None
        )

    async def run_workflow() -> int:
        tasks_seen = 0
        while True:
            task = (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=3))[
                "task"
            ]
            assert task is not None, "a completion was lost: no workflow task came"
            tasks_seen += 1
            events = [e["event_type"] for e in task["history_events"]]
            if events.count("ActivityCompleted") == count:
                await engine.complete_workflow_task(
                    NS,
                    task["task_id"],
                    lease_owner="w1",
                    attempt=task["workflow_task_attempt"],
                    commands=[{"type": "complete_workflow"}],
                )
                return tasks_seen
            await asyncio.sleep(rng.random() * 0.01)  # keep the lease while results land
            await engine.fail_workflow_task(
                NS,
                task["task_id"],
                lease_owner="w1",
                attempt=task["workflow_task_attempt"],
                failure={"message": "waiting", "type": "WorkflowTaskWaitingForHistory"},
            )

    workflow = asyncio.create_task(run_workflow())
    await asyncio.gather(*(run_activity() for _ in range(count)))
    assert await asyncio.wait_for(workflow, 20) >= 1
    result = await engine.await_run_result(NS, "fan", None, wait_seconds=5)
    assert result["status"] == "completed"


async def test_many_workflows_in_parallel(engine: Engine) -> None:
    total = 60
    stop = asyncio.Event()

    async def workflow_worker() -> None:
        while not stop.is_set():
            task = (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0.2))[
                "task"
            ]
            if task is None:
                continue
            done = any(e["event_type"] == "ActivityCompleted" for e in task["history_events"])
            commands = (
                [{"type": "complete_workflow"}]
                if done
                else [{"type": "schedule_activity", "activity_type": "a", "queue": Q}]
            )
            await engine.complete_workflow_task(
                NS,
                task["task_id"],
                lease_owner="w1",
                attempt=task["workflow_task_attempt"],
                commands=commands,
            )

    async def activity_worker() -> None:
        while not stop.is_set():
            task = (await engine.poll_activity_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0.2))[
                "task"
            ]
            if task is None:
                continue
            await engine.complete_activity_task(
                NS, task["task_id"], attempt_id=task["activity_attempt_id"], lease_owner="w1", result=None
            )

    await asyncio.gather(
        *(
            engine.start_workflow(NS, {"workflow_id": f"m{i}", "workflow_type": "t", "task_queue": Q})
            for i in range(total)
        )
    )
    workers = [asyncio.create_task(w()) for w in [workflow_worker, activity_worker] * 8]
    results = await asyncio.gather(
        *(engine.await_run_result(NS, f"m{i}", None, wait_seconds=20) for i in range(total))
    )
    stop.set()
    await asyncio.gather(*workers)
    assert {r["status"] for r in results} == {"completed"}
    listed = await engine.list_workflows(NS, status="completed", page_size=200)
    assert listed["workflow_count"] == total
