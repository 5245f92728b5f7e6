"""Engine rules of children, continue-as-new, cooperative cancellation, run deadlines and the
parallel barrier, driven through the facade with a manual clock (no HTTP, no worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable_workflow import serializer
from durable_workflow_server.engine import Engine, EngineError, ManualClock
from durable_workflow_server.storage import Storage

NS = "default"
Q = "q"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000.0)


@pytest.fixture
async def engine(engine_storage: Storage, clock: ManualClock) -> AsyncIterator[Engine]:
    eng = Engine(engine_storage, clock=clock)
    await eng.start(background=False)
    await eng.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python"})
    yield eng
    await eng.stop()


async def task_of(engine: Engine) -> dict[str, Any]:
    task = (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    assert task is not None
    return dict(task)


async def complete(engine: Engine, task: dict[str, Any], *commands: dict[str, Any]) -> dict[str, Any]:
    return await engine.complete_workflow_task(
        NS, task["task_id"], lease_owner="w1", attempt=task["workflow_task_attempt"], commands=list(commands)
    )


async def types(engine: Engine, wid: str, run_id: str | None = None) -> list[str]:
    run_id = run_id or (await engine.describe_workflow(NS, wid))["run_id"]
    return [e["event_type"] for e in (await engine.run_history(NS, wid, run_id, page_size=1000))["events"]]


async def events(engine: Engine, wid: str) -> list[dict[str, Any]]:
    run_id = (await engine.describe_workflow(NS, wid))["run_id"]
    return list((await engine.run_history(NS, wid, run_id, page_size=1000))["events"])


def blob(value: Any) -> dict[str, Any]:
    return serializer.envelope(value)


async def start(engine: Engine, wid: str, **extra: Any) -> dict[str, Any]:
    return await engine.start_workflow(
        NS, {"workflow_id": wid, "workflow_type": "t", "task_queue": Q, **extra}
    )


async def test_parallel_barrier_wakes_the_parent_once(engine: Engine) -> None:
    await start(engine, "fan")
    size = 50
    group = {"parallel_group_id": f"parallel-activities:1:{size}", "parallel_group_kind": "activity",
             "parallel_group_base_sequence": 1, "parallel_group_size": size}  # fmt: skip
    commands = [
        {"type": "schedule_activity", "activity_type": "a", "queue": Q, **group, "parallel_group_index": i,
         "parallel_group_path": [{**group, "parallel_group_index": i}]}
        for i in range(size)
    ]  # fmt: skip
    await complete(engine, await task_of(engine), *commands)
    woken = []
    for _ in range(size):
        act = (await engine.poll_activity_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
        assert act is not None
        reply = await engine.complete_activity_task(
            NS, act["task_id"], attempt_id=act["activity_attempt_id"], lease_owner="w1", result=blob(1)
        )
        woken.append(reply["next_task_id"])
    assert all(w is None for w in woken[:-1]) and woken[-1] is not None


async def test_child_start_complete_and_parent_wake(engine: Engine) -> None:
    parent = await start(engine, "p1")
    await complete(
        engine,
        await task_of(engine),
        {"type": "start_child_workflow", "workflow_type": "kid", "arguments": blob([2]),
         "parent_close_policy": "terminate", "execution_timeout_seconds": 60, "run_timeout_seconds": 30},
    )  # fmt: skip
    assert (await types(engine, "p1"))[-2:] == ["ChildWorkflowScheduled", "ChildRunStarted"]
    child_id = "p1:r1:c1"
    started = (await events(engine, child_id))[0]["payload"]
    assert started["parent_workflow_instance_id"] == "p1"
    assert started["parent_workflow_run_id"] == parent["run_id"]
    child_desc = await engine.describe_workflow(NS, child_id)
    assert child_desc["run_timeout_seconds"] == 30 and child_desc["execution_deadline_at"] is not None
    await complete(engine, await task_of(engine), {"type": "complete_workflow", "result": blob("done")})
    assert await engine.fire_due_timers() >= 1  # the durable "child closed" row
    parent_events = await events(engine, "p1")
    done = parent_events[-1]
    assert done["event_type"] == "ChildRunCompleted" and done["payload"]["sequence"] == 1
    assert serializer.decode(done["payload"]["result"]) == "done"
    task = await task_of(engine)  # the parent was woken
    assert task["workflow_id"] == "p1" and task["resume_source_kind"] == "child_workflow_run"


async def test_child_failure_retry_then_final_failure(engine: Engine, clock: ManualClock) -> None:
    await start(engine, "p2")
    await complete(
        engine,
        await task_of(engine),
        {"type": "start_child_workflow", "workflow_type": "kid",
         "retry_policy": {"max_attempts": 2, "backoff_seconds": [5]}},
    )  # fmt: skip
    await complete(engine, await task_of(engine), {"type": "fail_workflow", "message": "boom"})
    await engine.fire_due_timers()
    assert "ChildRunFailed" not in await types(engine, "p2")
    clock.advance(5)
    await engine.fire_due_timers()  # the retry starts run 2 of the child
    assert (await engine.describe_workflow(NS, "p2:r1:c1"))["run_number"] == 2
    await complete(engine, await task_of(engine), {"type": "fail_workflow", "message": "boom again"})
    await engine.fire_due_timers()
    last = (await events(engine, "p2"))[-1]
    assert last["event_type"] == "ChildRunFailed" and last["payload"]["message"] == "boom again"
    assert (await types(engine, "p2")).count("ChildRunStarted") == 2


@pytest.mark.parametrize(
    ("command", "field"),
    [
        ({"workflow_type": "k", "parent_close_policy": "explode"}, "parent_close_policy"),
        (
            {"workflow_type": "k", "execution_timeout_seconds": 5, "run_timeout_seconds": 9},
            "run_timeout_seconds",
        ),
        ({"workflow_type": ""}, "workflow_type"),
        ({"workflow_type": "k", "delay_seconds": 3}, "delay_seconds"),
    ],
)
async def test_child_command_validation(engine: Engine, command: dict[str, Any], field: str) -> None:
    await start(engine, "pv")
    with pytest.raises(EngineError) as err:
        await complete(engine, await task_of(engine), {"type": "start_child_workflow", **command})
    assert err.value.kind == "invalid" and f"commands.0.{field}" in err.value.extra["errors"]


async def test_continue_as_new_keeps_the_execution_deadline(engine: Engine, clock: ManualClock) -> None:
    first = await start(engine, "can", execution_timeout_seconds=100, run_timeout_seconds=95,
                        search_attributes={"Tier": "gold"}, memo={"m": 1})  # fmt: skip
    deadline = (await engine.describe_workflow(NS, "can"))["execution_deadline_at"]
    clock.advance(10)
    await complete(engine, await task_of(engine), {"type": "continue_as_new", "arguments": blob([7])})
    second = await engine.describe_workflow(NS, "can")
    assert second["run_number"] == 2 and second["run_count"] == 2
    assert second["continued_from_run_id"] == first["run_id"]
    assert second["execution_deadline_at"] == deadline  # the chain's deadline
    assert (
        second["run_deadline_at"]
        != (await engine.describe_workflow(NS, "can", first["run_id"]))["run_deadline_at"]
    )
    assert (
        second["input"] == [7]
        and second["search_attributes"] == {"Tier": "gold"}
        and second["memo"] == {"m": 1}
    )
    old = await engine.describe_workflow(NS, "can", first["run_id"])
    assert old["status"] == "completed" and old["closed_reason"] == "continued_as_new"
    assert old["continued_to_run_id"] == second["run_id"]
    result = await engine.await_run_result(NS, "can", first["run_id"], wait_seconds=0)
    assert result["continued_to_run_id"] == second["run_id"]
    clock.advance(91)  # past the chain's deadline (100), before the new run's own (10 + 95)
    await engine.fire_due_timers()
    timed_out = await engine.describe_workflow(NS, "can")
    assert timed_out["status"] == "failed" and timed_out["closed_reason"] == "timed_out"
    assert timed_out["failure"]["timeout_kind"] == "execution_timeout"


async def test_cancel_is_cooperative(engine: Engine) -> None:
    await start(engine, "cx")
    await complete(engine, await task_of(engine), {"type": "start_timer", "delay_seconds": 600})
    reply = await engine.cancel_workflow(NS, "cx", None, reason="stop")
    assert reply["outcome"] == "cancel_requested"
    assert (await types(engine, "cx"))[-2:] == ["CancelRequested", "TimerCancelled"]
    assert await engine.fire_due_timers() == 0  # the timer will not fire any more
    task = await task_of(engine)
    assert task["resume_source_kind"] == "workflow_cancel"
    # Cleanup, then a failure that is not the cancellation itself: the run fails.
    await complete(
        engine, task, {"type": "fail_workflow", "message": "refund failed", "exception_type": "RefundError"}
    )
    assert (await engine.describe_workflow(NS, "cx"))["status"] == "failed"


async def test_cancellation_escaping_the_code_closes_cancelled(engine: Engine) -> None:
    await start(engine, "cy")
    await complete(engine, await task_of(engine), {"type": "start_timer", "delay_seconds": 600})
    await engine.cancel_workflow(NS, "cy", None)
    await complete(
        engine,
        await task_of(engine),
        {"type": "fail_workflow", "message": "cancelled", "exception_type": "WorkflowCancellationRequested"},
    )
    result = await engine.await_run_result(NS, "cy", None, wait_seconds=0)
    assert result["status"] == "cancelled"
    assert (await types(engine, "cy"))[-1] == "WorkflowCancelled"


async def test_parent_close_policy_rows(engine: Engine) -> None:
    await start(engine, "pp")
    await complete(
        engine,
        await task_of(engine),
        {"type": "start_child_workflow", "workflow_type": "kid", "parent_close_policy": "request_cancel"},
    )
    await engine.terminate_workflow(NS, "pp", None, reason="done")
    await engine.fire_due_timers()
    child = await engine.describe_workflow(NS, "pp:r1:c1")
    assert child["is_terminal"] is False  # a cancel request, not a close
    assert "CancelRequested" in await types(engine, "pp:r1:c1")
