"""Shared setup of the signal, query and update engine tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable_workflow import serializer
from durable_workflow_server.engine import Engine, EngineError, EngineSettings, ManualClock
from durable_workflow_server.storage import Storage

NS = "default"
Q = "q"
CAPABLE = {"capabilities": ["query_tasks", "update_validation_in_task"]}


def blob(value: Any) -> dict[str, str]:
    return {"codec": "avro", "blob": serializer.encode(value)}


async def make_engine(storage: Storage, clock: ManualClock, **worker: Any) -> Engine:
    eng = Engine(storage, EngineSettings(workflow_task_lease_seconds=60), clock=clock)
    await eng.start(background=False)
    await eng.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python", **worker})
    return eng


async def engine_fixture(storage: Storage, clock: ManualClock, **worker: Any) -> AsyncIterator[Engine]:
    eng = await make_engine(storage, clock, **worker)
    yield eng
    await eng.stop()


async def start(engine: Engine, wid: str = "wf-1") -> None:
    await engine.start_workflow(NS, {"workflow_id": wid, "workflow_type": "t", "task_queue": Q})


async def lease(engine: Engine) -> dict[str, Any]:
    """Lease the next workflow task (a concurrent request may still be creating it)."""
    for _ in range(100):
        reply = await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0)
        if reply["task"] is not None:
            return dict(reply["task"])
        await asyncio.sleep(0.01)
    raise AssertionError("no workflow task")


async def no_task(engine: Engine) -> bool:
    reply = await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0)
    return reply["task"] is None


async def complete(engine: Engine, task: dict[str, Any], commands: list[dict[str, Any]]) -> dict[str, Any]:
    return await engine.complete_workflow_task(
        NS, task["task_id"], lease_owner="w1", attempt=task["workflow_task_attempt"], commands=commands
    )


async def release(engine: Engine, task: dict[str, Any]) -> dict[str, Any]:
    return await engine.fail_workflow_task(
        NS,
        task["task_id"],
        lease_owner="w1",
        attempt=task["workflow_task_attempt"],
        failure={"message": "nothing new", "type": "WorkflowTaskWaitingForHistory"},
    )


async def events(engine: Engine, wid: str = "wf-1") -> list[dict[str, Any]]:
    run_id = (await engine.describe_workflow(NS, wid))["run_id"]
    page = await engine.run_history(NS, wid, run_id, page_size=1000, page_token=None, wait_new_event=False)
    return list(page["events"])


def types(history: list[dict[str, Any]]) -> list[str]:
    return [e["event_type"] for e in history]


async def refusal(coro: Any) -> tuple[str, str, dict[str, Any]]:
    with pytest.raises(EngineError) as err:
        await coro
    return err.value.kind, err.value.reason, err.value.extra
