"""Workflow timeouts and cancellation end to end: run and execution timeouts enforced by the
server, cancellation delivered to workflow code (compensation runs, activities and timers see
it), terminate closing at once."""

from __future__ import annotations

import asyncio

import pytest
from e2e_lifecycle_workflows import LIFECYCLE_ACTIVITIES, LIFECYCLE_WORKFLOWS, SEEN
from e2e_support import event_types, running_worker, unique

from durable_workflow import Client
from durable_workflow.errors import WorkflowCancelledError, WorkflowTerminatedError, WorkflowTimedOutError


def _worker(client: Client, queue: str):  # type: ignore[no-untyped-def]
    return running_worker(client, queue, workflows=LIFECYCLE_WORKFLOWS, activities=LIFECYCLE_ACTIVITIES)


async def _until(client: Client, workflow_id: str, event: str) -> None:
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(200):
        if event in event_types(await handle.history()):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never recorded {event}")


async def test_run_timeout(client: Client) -> None:
    queue = unique("q")
    async with _worker(client, queue):
        handle = await client.start_workflow(
            workflow_type="lc-sleeper",
            workflow_id=unique("rt"),
            task_queue=queue,
            input=[60],
            run_timeout_seconds=1,
        )
        with pytest.raises(WorkflowTimedOutError) as caught:
            await handle.result(timeout=20)
    assert caught.value.failure["timeout_kind"] == "run_timeout"
    described = await handle.describe()
    assert described.status == "failed" and described.raw["closed_reason"] == "timed_out"
    assert event_types(await handle.history())[-1] == "WorkflowTimedOut"


async def test_execution_timeout_covers_the_continue_as_new_chain(client: Client) -> None:
    queue = unique("q")
    async with _worker(client, queue):
        handle = await client.start_workflow(
            workflow_type="lc-looper",
            workflow_id=unique("et"),
            task_queue=queue,
            input=[1],
            execution_timeout_seconds=3,
            run_timeout_seconds=2,
        )
        with pytest.raises(WorkflowTimedOutError) as caught:
            await handle.result(timeout=30)
    assert caught.value.failure["timeout_kind"] == "execution_timeout"
    described = await client.describe_workflow(handle.workflow_id)
    assert described.raw["run_count"] >= 2  # several runs, one deadline for all of them
    assert described.raw["closed_reason"] == "timed_out"


async def test_cancel_runs_compensation_and_reaches_the_activity(client: Client) -> None:
    queue, key = unique("q"), unique("cancel")
    async with _worker(client, queue):
        handle = await client.start_workflow(
            workflow_type="lc-cancellable", workflow_id=unique("c"), task_queue=queue, input=[key]
        )
        await _until(client, handle.workflow_id, "ActivityStarted")
        await handle.cancel(reason="customer changed their mind")
        with pytest.raises(WorkflowCancelledError):
            await handle.result(timeout=30)
        history = await handle.history()
        for _ in range(50):  # the activity's failure report may land just after the close
            if key in SEEN:
                break
            await asyncio.sleep(0.1)
    types = event_types(history)
    assert types.index("CancelRequested") < types.index("ActivityCompleted")  # the compensation
    assert types[-1] == "WorkflowCancelled"
    assert SEEN[f"{key}:compensation"] == f"compensated {key}"
    assert SEEN[key] == "activity saw the cancellation"
    described = await handle.describe()
    assert described.status == "cancelled"


async def test_cancel_cancels_timers_and_a_normal_return_closes_cancelled(client: Client) -> None:
    queue = unique("q")
    async with _worker(client, queue):
        handle = await client.start_workflow(
            workflow_type="lc-cancel-timer", workflow_id=unique("ct"), task_queue=queue, input=[]
        )
        await _until(client, handle.workflow_id, "TimerScheduled")
        await handle.cancel()
        with pytest.raises(WorkflowCancelledError):
            await handle.result(timeout=30)
    types = event_types(await handle.history())
    assert "TimerCancelled" in types and "TimerFired" not in types
    described = await handle.describe()
    assert described.status == "cancelled" and described.raw["output"] == "cleaned up"


async def test_terminate_ends_at_once(client: Client) -> None:
    queue = unique("q")
    async with _worker(client, queue):
        handle = await client.start_workflow(
            workflow_type="lc-cancel-timer", workflow_id=unique("tt"), task_queue=queue, input=[]
        )
        await _until(client, handle.workflow_id, "TimerScheduled")
        await handle.terminate(reason="ops")
        with pytest.raises(WorkflowTerminatedError):
            await handle.result(timeout=10)
    types = event_types(await handle.history())
    assert types[-2:] == ["TerminateRequested", "WorkflowTerminated"]
    assert "ActivityScheduled" not in types  # no cleanup code ran
