"""The engine end to end without HTTP: start, workflow task, activity, timer, result."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable_workflow import serializer
from durable_workflow_server.engine import Engine, EngineError, EngineSettings
from durable_workflow_server.storage import Storage

NS = "default"
Q = "orders"


@pytest.fixture
async def engine(engine_storage: Storage) -> AsyncIterator[Engine]:
    eng = Engine(engine_storage, EngineSettings(timer_poll_seconds=0.2))
    await eng.start()
    yield eng
    await eng.stop()


async def register(engine: Engine, worker_id: str = "w1", queue: str = Q) -> None:
    await engine.register_worker(NS, {"worker_id": worker_id, "task_queue": queue, "runtime": "python"})


async def poll_wf(engine: Engine, worker_id: str = "w1", timeout: float = 2) -> dict[str, Any]:
    reply = await engine.poll_workflow_task(NS, worker_id=worker_id, task_queue=Q, timeout_seconds=timeout)
    assert reply["task"] is not None, "expected a workflow task"
    task: dict[str, Any] = reply["task"]
    return task


async def poll_act(engine: Engine, worker_id: str = "w1", timeout: float = 2) -> dict[str, Any]:
    reply = await engine.poll_activity_task(NS, worker_id=worker_id, task_queue=Q, timeout_seconds=timeout)
    assert reply["task"] is not None, "expected an activity task"
    task: dict[str, Any] = reply["task"]
    return task


async def complete_wf(engine: Engine, task: dict[str, Any], commands: list[dict[str, Any]]) -> dict[str, Any]:
    return await engine.complete_workflow_task(
        NS,
        task["task_id"],
        lease_owner=task["lease_owner"],
        attempt=task["workflow_task_attempt"],
        commands=commands,
    )


def env(value: Any) -> dict[str, str]:
    return {"codec": "avro", "blob": serializer.encode(value)}


async def test_start_activity_complete_result(engine: Engine) -> None:
    await register(engine)
    started = await engine.start_workflow(
        NS, {"workflow_id": "order-1", "workflow_type": "orders.checkout", "task_queue": Q, "input": ["Ada"]}
    )
    assert started["outcome"] == "started_new"
    assert started["status"] == "pending"

    task = await poll_wf(engine)
    assert task["workflow_task_attempt"] == 1
    assert task["payload_codec"] == "avro"
    assert serializer.decode(task["arguments"]["blob"]) == ["Ada"]
    assert [e["event_type"] for e in task["history_events"]] == ["WorkflowStarted"]
    assert task["history_events"][0]["sequence"] == 1
    assert task["next_history_page_token"] is None
    assert task["run_status"] == "running"
    assert task["resume_source_kind"] is None

    reply = await complete_wf(
        engine,
        task,
        [
            {
                "type": "schedule_activity",
                "activity_type": "orders.charge",
                "queue": Q,
                "arguments": env(["Ada"]),
                "start_to_close_timeout": 30,
            }
        ],
    )
    assert reply["outcome"] == "completed" and reply["run_status"] == "waiting"

    act = await poll_act(engine)
    assert act["attempt_number"] == 1
    assert act["activity_type"] == "orders.charge"
    assert serializer.decode(act["arguments"]["blob"]) == ["Ada"]
    assert "start_to_close" in act["deadlines"]
    done = await engine.complete_activity_task(
        NS, act["task_id"], attempt_id=act["activity_attempt_id"], lease_owner="w1", result=env("charged Ada")
    )
    assert done["outcome"] == "completed"
    assert done["next_task_id"] is not None
    # An identical retry of the completion answers the same success.
    again = await engine.complete_activity_task(
        NS, act["task_id"], attempt_id=act["activity_attempt_id"], lease_owner="w1", result=env("charged Ada")
    )
    assert again == done

    task2 = await poll_wf(engine)
    types = [e["event_type"] for e in task2["history_events"]]
    assert types == ["WorkflowStarted", "ActivityScheduled", "ActivityStarted", "ActivityCompleted"]
    assert [e["sequence"] for e in task2["history_events"]] == [1, 2, 3, 4]
    completed = task2["history_events"][-1]["payload"]
    assert completed["sequence"] == 1
    assert serializer.decode(completed["result"]) == "charged Ada"
    assert task2["resume_source_kind"] == "activity_execution"
    assert task2["workflow_event_type"] == "ActivityCompleted"

    final = await complete_wf(engine, task2, [{"type": "complete_workflow", "result": env("ok")}])
    assert final["run_status"] == "completed"
    result = await engine.await_run_result(NS, "order-1", None, wait_seconds=1)
    assert result["status"] == "completed" and result["is_terminal"] is True
    assert serializer.decode(result["output_envelope"]["blob"]) == "ok"
    assert result["failure"] is None

    described = await engine.describe_workflow(NS, "order-1")
    assert (
        described["status"] == "completed" and described["input"] == ["Ada"] and described["output"] == "ok"
    )
    assert described["actions"]["can_cancel"] is False


async def test_poll_answers_the_moment_a_task_exists(engine: Engine) -> None:
    import asyncio
    import time

    await register(engine)
    poller = asyncio.create_task(
        engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=10)
    )
    await asyncio.sleep(0.1)
    t0 = time.monotonic()
    await engine.start_workflow(NS, {"workflow_id": "wake-1", "workflow_type": "t", "task_queue": Q})
    reply = await asyncio.wait_for(poller, 5)
    assert reply["task"] is not None
    assert time.monotonic() - t0 < 0.5


async def test_empty_poll_times_out(engine: Engine) -> None:
    await register(engine)
    reply = await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0)
    assert reply == {"task": None}


async def test_timer_fires_and_wakes_workflow(engine: Engine) -> None:
    await register(engine)
    await engine.start_workflow(NS, {"workflow_id": "sleep-1", "workflow_type": "t", "task_queue": Q})
    task = await poll_wf(engine)
    await complete_wf(engine, task, [{"type": "start_timer", "delay_seconds": 1}])
    task2 = await poll_wf(engine, timeout=5)
    events = task2["history_events"]
    assert [e["event_type"] for e in events] == ["WorkflowStarted", "TimerScheduled", "TimerFired"]
    assert events[2]["payload"]["sequence"] == 1 and events[2]["payload"]["delay_seconds"] == 1
    assert events[2]["payload"]["timer_id"] == events[1]["payload"]["timer_id"]
    assert task2["resume_source_kind"] == "timer"


async def test_side_effects_markers_and_sequences(engine: Engine) -> None:
    await register(engine)
    await engine.start_workflow(NS, {"workflow_id": "seq-1", "workflow_type": "t", "task_queue": Q})
    task = await poll_wf(engine)
    await complete_wf(
        engine,
        task,
        [
            {"type": "record_side_effect", "result": serializer.encode(4), "payload_codec": "avro"},
            {
                "type": "record_version_marker",
                "change_id": "c1",
                "version": 1,
                "min_supported": -1,
                "max_supported": 1,
            },
            {"type": "upsert_search_attributes", "attributes": {"Tier": "gold"}},
            {"type": "complete_workflow", "result": env(None)},
        ],
    )
    history = await engine.run_history(NS, "seq-1", (await engine.describe_workflow(NS, "seq-1"))["run_id"])
    payloads = {e["event_type"]: e["payload"] for e in history["events"]}
    assert payloads["SideEffectRecorded"]["sequence"] == 1
    assert payloads["VersionMarkerRecorded"]["sequence"] == 2
    assert payloads["SearchAttributesUpserted"]["sequence"] == 3
    assert (await engine.describe_workflow(NS, "seq-1"))["search_attributes"] == {"Tier": "gold"}


async def test_history_paging(engine: Engine) -> None:
    await register(engine)
    await engine.start_workflow(NS, {"workflow_id": "page-1", "workflow_type": "t", "task_queue": Q})
    task = await poll_wf(engine)
    await complete_wf(
        engine,
        task,
        [
            {"type": "record_side_effect", "result": serializer.encode(i), "payload_codec": "avro"}
            for i in range(5)
        ]
        + [{"type": "start_timer", "delay_seconds": 0}],
    )
    task2 = (
        await engine.poll_workflow_task(
            NS, worker_id="w1", task_queue=Q, timeout_seconds=5, history_page_size=3
        )
    )["task"]
    assert task2 is not None
    assert [e["sequence"] for e in task2["history_events"]] == [1, 2, 3]
    assert task2["total_history_events"] == 8
    token = task2["next_history_page_token"]
    assert base64.b64decode(token) == b"3"
    seen = [e["sequence"] for e in task2["history_events"]]
    while token is not None:
        page = await engine.workflow_task_history(
            NS,
            task2["task_id"],
            lease_owner="w1",
            attempt=task2["workflow_task_attempt"],
            page_token=token,
            page_size=3,
        )
        seen += [e["sequence"] for e in page["history_events"]]
        token = page["next_history_page_token"]
    assert seen == list(range(1, 9))
    with pytest.raises(EngineError) as err:
        await engine.workflow_task_history(
            NS,
            task2["task_id"],
            lease_owner="w1",
            attempt=task2["workflow_task_attempt"],
            page_token="!!",
            page_size=3,
        )
    assert err.value.reason == "invalid_page_token"


async def test_a_completing_task_ends_itself_without_sweeping_the_runs_tasks(engine_storage: Storage) -> None:
    """The closing write ends the task it completes first and sweeps no workflow tasks (the
    completing task is the run's only open one); a terminate still sweeps them."""
    from durable_workflow_server.storage import Mutation, Patch, PatchWhere, WorkflowTaskRow

    applied: list[Mutation] = []
    real_apply = engine_storage.apply

    async def recording(m: Mutation) -> Any:
        applied.append(m)
        return await real_apply(m)

    engine_storage.apply = recording  # type: ignore[method-assign]
    eng = Engine(engine_storage, EngineSettings(timer_poll_seconds=0.2))
    await eng.start()
    try:
        await register(eng)
        for workflow_id in ("done-1", "cut-1"):
            await eng.start_workflow(
                NS, {"workflow_id": workflow_id, "workflow_type": "t", "task_queue": Q, "input": []}
            )
        task = await poll_wf(eng)
        applied.clear()
        await complete_wf(eng, task, [{"type": "complete_workflow", "result": env("ok")}])
        closing = applied[-1]
        assert not any(isinstance(op, PatchWhere) and op.table is WorkflowTaskRow for op in closing.ops)
        first = closing.ops[0]
        assert isinstance(first, Patch) and first.key == (task["task_id"],)
        stored = await engine_storage.get_workflow_task(task["task_id"])
        assert stored is not None and stored.status == "completed"
        assert await engine_storage.open_workflow_task(task["run_id"]) is None

        other = await poll_wf(eng)  # leased, then the run is terminated from outside
        await eng.terminate_workflow(NS, "cut-1" if task["workflow_id"] == "done-1" else "done-1", reason="x")
        assert await engine_storage.open_workflow_task(other["run_id"]) is None
        swept = await engine_storage.get_workflow_task(other["task_id"])
        assert swept is not None and swept.status == "cancelled"
    finally:
        await eng.stop()
