"""Eager tasks (our extension): leases handed back in a completion's reply."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from durable_workflow import serializer
from durable_workflow_server.engine import Engine, EngineSettings
from durable_workflow_server.storage import Storage

NS = "default"
Q = "orders"


@pytest.fixture
async def engine(engine_storage: Storage) -> AsyncIterator[Engine]:
    eng = Engine(engine_storage, EngineSettings(timer_poll_seconds=0.2))
    await eng.start()
    yield eng
    await eng.stop()


def env(value: Any) -> dict[str, str]:
    return {"codec": "avro", "blob": serializer.encode(value)}


def activity(activity_type: str = "orders.charge", queue: str = Q) -> dict[str, Any]:
    return {
        "type": "schedule_activity",
        "activity_type": activity_type,
        "queue": queue,
        "arguments": env(["Ada"]),
        "start_to_close_timeout": 30,
    }


async def first_task(engine: Engine, workflow_id: str = "order-1", **worker: Any) -> dict[str, Any]:
    await engine.register_worker(NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python", **worker})
    await engine.start_workflow(
        NS, {"workflow_id": workflow_id, "workflow_type": "orders.checkout", "task_queue": Q}
    )
    reply = await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=2)
    task: dict[str, Any] = reply["task"]
    return task


async def complete_wf(
    engine: Engine, task: dict[str, Any], commands: list[Any], **extra: Any
) -> dict[str, Any]:
    plane: Any = engine.eager if extra else engine
    return await plane.complete_workflow_task(
        NS,
        task["task_id"],
        lease_owner=task["lease_owner"],
        attempt=task["workflow_task_attempt"],
        commands=commands,
        **extra,
    )


async def test_eager_activity_then_eager_workflow_task(engine: Engine) -> None:
    task = await first_task(engine)
    reply = await complete_wf(engine, task, [activity(), activity()], eager_activity_slots=1)
    assert reply["outcome"] == "completed" and reply["run_status"] == "waiting"
    eager = reply["eager_activity_tasks"]
    assert len(eager) == 1  # two scheduled, one slot
    act = eager[0]
    assert act["lease_owner"] == "w1" and act["attempt_number"] == 1
    assert act["activity_type"] == "orders.charge" and "start_to_close" in act["deadlines"]
    assert serializer.decode(act["arguments"]["blob"]) == ["Ada"]
    # The other one is still offered to polls; the eager one is not.
    polled = await engine.poll_activity_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0)
    assert polled["task"] is not None and polled["task"]["task_id"] != act["task_id"]
    assert (await engine.poll_activity_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))[
        "task"
    ] is None

    done = await engine.eager.complete_activity_task(
        NS,
        act["task_id"],
        attempt_id=act["activity_attempt_id"],
        lease_owner="w1",
        result=env("charged"),
    )
    # The parallel barrier is not met (the other activity is open): no workflow task yet.
    assert done["eager_workflow_task"] is None or done["next_task_id"] is not None
    other = polled["task"]
    done2 = await engine.eager.complete_activity_task(
        NS,
        other["task_id"],
        attempt_id=other["activity_attempt_id"],
        lease_owner="w1",
        result=env("again"),
    )
    wf = done2["eager_workflow_task"] or done["eager_workflow_task"]
    assert wf is not None
    assert wf["lease_owner"] == "w1" and wf["workflow_task_attempt"] == 1
    types = [e["event_type"] for e in wf["history_events"]]
    assert types[0] == "WorkflowStarted" and types.count("ActivityStarted") == 2
    assert wf["last_history_sequence"] == len(types) and wf["next_history_page_token"] is None
    # Leased, so no poll gets it; completing it with its fence works.
    assert (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))[
        "task"
    ] is None
    final = await complete_wf(engine, wf, [{"type": "complete_workflow", "result": env("ok")}])
    assert final["run_status"] == "completed"


async def test_no_eager_without_slots_or_field(engine: Engine) -> None:
    task = await first_task(engine)
    reply = await complete_wf(engine, task, [activity()], eager_activity_slots=0)
    assert reply["eager_activity_tasks"] == []
    act = (await engine.poll_activity_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=1))["task"]
    assert act is not None
    done = await engine.complete_activity_task(
        NS, act["task_id"], attempt_id=act["activity_attempt_id"], lease_owner="w1", result=env(1)
    )
    assert "eager_workflow_task" not in done  # the upstream reply shape when not asked
    wf = (await engine.poll_workflow_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=1))["task"]
    assert wf is not None


async def test_no_eager_activity_of_unsupported_type_or_other_queue(engine: Engine) -> None:
    task = await first_task(engine, supported_activity_types=["orders.charge"])
    reply = await complete_wf(
        engine, task, [activity("orders.ship"), activity(queue="elsewhere")], eager_activity_slots=5
    )
    assert reply["eager_activity_tasks"] == []
    act = (await engine.poll_activity_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=0))["task"]
    assert act is None  # orders.ship is not this worker's type; it waits for another worker


async def test_no_eager_workflow_task_for_unsupported_type(engine: Engine) -> None:
    task = await first_task(engine, supported_workflow_types=["orders.checkout"])
    await complete_wf(engine, task, [activity()])
    act = (await engine.poll_activity_task(NS, worker_id="w1", task_queue=Q, timeout_seconds=1))["task"]
    await engine.register_worker(
        NS, {"worker_id": "w1", "task_queue": Q, "runtime": "python", "supported_workflow_types": ["other"]}
    )
    done = await engine.eager.complete_activity_task(
        NS,
        act["task_id"],
        attempt_id=act["activity_attempt_id"],
        lease_owner="w1",
        result=env(1),
    )
    assert done["eager_workflow_task"] is None and done["next_task_id"] is not None


async def test_eager_workflow_task_after_activity_failure(engine: Engine) -> None:
    task = await first_task(engine)
    reply = await complete_wf(engine, task, [activity()], eager_activity_slots=3)
    (act,) = reply["eager_activity_tasks"]
    done = await engine.eager.fail_activity_task(
        NS,
        act["task_id"],
        attempt_id=act["activity_attempt_id"],
        lease_owner="w1",
        failure={"message": "no", "non_retryable": True},
    )
    wf = done["eager_workflow_task"]
    assert wf is not None and wf["history_events"][-1]["event_type"] == "ActivityFailed"
    # An identical retry answers the stored reply, without leasing anything again.
    again = await engine.eager.fail_activity_task(
        NS,
        act["task_id"],
        attempt_id=act["activity_attempt_id"],
        lease_owner="w1",
        failure={"message": "no", "non_retryable": True},
    )
    assert again["eager_workflow_task"] is None and again["outcome"] == "failed"


def test_an_eager_lease_drops_the_wake_only_when_nothing_is_left_ready() -> None:
    from durable_workflow_server.engine._eager import drop_idle_wakes
    from durable_workflow_server.storage import (
        Insert,
        Mutation,
        Patch,
        PatchWhere,
        Wake,
        WorkflowTaskRow,
    )

    def task(task_id: str, status: str, queue: str = Q) -> WorkflowTaskRow:
        return WorkflowTaskRow(
            task_id=task_id,
            namespace="default",
            run_id=f"run-{task_id}",
            workflow_id="w",
            workflow_type="t",
            task_queue=queue,
            status=status,
            available_at=0.0,
            created_at=0.0,
        )

    poll = Wake(("workflow_task", "default", Q), "t")
    other = Wake(("workflow_task", "default", "elsewhere"), "t")
    run = Wake(("run", "r1"))

    def after(*ops: Any) -> list[Wake]:
        m = Mutation(ops=list(ops), wakes=[poll, other, run])
        drop_idle_wakes(m, WorkflowTaskRow, "default", Q)
        return m.wakes

    assert after(Insert(task("a", "leased"))) == [other, run]
    assert after(Insert(task("a", "ready")), Patch(WorkflowTaskRow, ("a",), {"status": "leased"})) == [
        other,
        run,
    ]
    assert after(Insert(task("a", "leased")), Patch(WorkflowTaskRow, ("z",), {"status": "completed"})) == [
        other,
        run,
    ]
    assert after(Insert(task("a", "leased")), Insert(task("b", "ready"))) == [poll, other, run]
    assert after(Insert(task("a", "leased")), Insert(task("b", "ready", "elsewhere"))) == [other, run]
    assert after(Insert(task("a", "leased")), Patch(WorkflowTaskRow, ("z",), {"attempt": 2})) == [
        poll,
        other,
        run,
    ]
    assert after(Insert(task("a", "leased")), PatchWhere(WorkflowTaskRow, {"run_id": "r"}, {"x": 1})) == [
        poll,
        other,
        run,
    ]
