"""Eager workflow start (our extension): a start hands its first workflow task to a named worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable_workflow import serializer
from durable_workflow_server.engine import Engine, EngineError, EngineSettings
from durable_workflow_server.storage import Storage

NS = "default"
Q = "orders"
TYPE = "orders.checkout"


@pytest.fixture
async def engine(engine_storage: Storage) -> AsyncIterator[Engine]:
    eng = Engine(engine_storage, EngineSettings(timer_poll_seconds=0.2))
    await eng.start()
    yield eng
    await eng.stop()


async def register(engine: Engine, worker_id: str = "w1", **fields: Any) -> None:
    body = {"worker_id": worker_id, "task_queue": Q, "runtime": "python", **fields}
    await engine.register_worker(NS, body)


async def start(engine: Engine, workflow_id: str = "order-1", **fields: Any) -> dict[str, Any]:
    body = {"workflow_id": workflow_id, "workflow_type": TYPE, "task_queue": Q, **fields}
    return await engine.start_workflow(NS, body)


async def poll(engine: Engine, worker_id: str = "w1") -> Any:
    return (await engine.poll_workflow_task(NS, worker_id=worker_id, task_queue=Q, timeout_seconds=0))["task"]


async def test_the_first_task_is_leased_to_the_named_worker(engine: Engine) -> None:
    await register(engine, supported_workflow_types=[TYPE])
    reply = await start(engine, input=["Ada"], eager_worker_id="w1")
    task = reply["eager_workflow_task"]
    assert reply["outcome"] == "started_new" and reply["status"] == "running"
    assert task["lease_owner"] == "w1" and task["workflow_task_attempt"] == 1
    assert task["run_id"] == reply["run_id"] and task["workflow_type"] == TYPE
    assert [e["event_type"] for e in task["history_events"]] == ["WorkflowStarted"]
    assert task["last_history_sequence"] == 1
    assert await poll(engine) is None  # leased already: no poll gets it
    done = await engine.complete_workflow_task(
        NS,
        task["task_id"],
        lease_owner="w1",
        attempt=1,
        commands=[{"type": "complete_workflow", "result": {"codec": "avro", "blob": serializer.encode(1)}}],
    )
    assert done["outcome"] == "completed"
    described = await engine.describe_workflow(NS, "order-1")
    assert described["status"] == "completed"


@pytest.mark.parametrize(
    ("worker", "eager_worker_id"),
    [
        ({}, "nobody"),  # not registered
        ({"task_queue": "elsewhere"}, "w1"),  # polls another queue
        ({"supported_workflow_types": ["other.type"]}, "w1"),  # does not run this type
    ],
)
async def test_no_lease_when_the_worker_may_not_take_it(
    engine: Engine, worker: dict[str, Any], eager_worker_id: str
) -> None:
    await register(engine, **worker)
    await register(engine, "w2")
    reply = await start(engine, eager_worker_id=eager_worker_id)
    assert reply["eager_workflow_task"] is None and reply["status"] == "pending"
    polled = await poll(engine, "w2")
    assert polled is not None and polled["run_id"] == reply["run_id"]


async def test_a_deregistered_worker_gets_no_lease(engine: Engine) -> None:
    await register(engine)
    await engine.deregister_worker(NS, "w1")
    reply = await start(engine, eager_worker_id="w1")
    assert reply["eager_workflow_task"] is None


async def test_plain_starts_and_existing_runs_carry_no_task(engine: Engine) -> None:
    await register(engine)
    plain = await start(engine)
    assert "eager_workflow_task" not in plain
    existing = await start(engine, duplicate_policy="use-existing", eager_worker_id="w1")
    assert existing["outcome"] == "returned_existing_active"
    assert existing["eager_workflow_task"] is None
    polled = await poll(engine)
    assert polled is not None and polled["run_id"] == plain["run_id"]


async def test_a_bad_eager_worker_id_is_refused(engine: Engine) -> None:
    with pytest.raises(EngineError) as raised:
        await start(engine, eager_worker_id=7)
    assert raised.value.reason == "validation_failed"
    assert "eager_worker_id" in str(raised.value.extra)
