"""Child workflows end to end: results and failures reach the parent, children on another
queue, retries per ChildWorkflowRetryPolicy, timeouts, and the three parent-close policies."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from e2e_lifecycle_workflows import LIFECYCLE_ACTIVITIES, LIFECYCLE_WORKFLOWS, SEEN
from e2e_support import event_types, running_worker, unique

from durable_workflow import Client
from durable_workflow.errors import WorkflowCancelledError, WorkflowTerminatedError


@contextlib.asynccontextmanager
async def workers(client: Client, *queues: str) -> AsyncIterator[None]:
    async with contextlib.AsyncExitStack() as stack:
        for queue in queues:
            await stack.enter_async_context(
                running_worker(client, queue, workflows=LIFECYCLE_WORKFLOWS, activities=LIFECYCLE_ACTIVITIES)
            )
        yield


async def _wait_for(client: Client, workflow_id: str, event: str, timeout: float = 20) -> list[str]:
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(int(timeout / 0.1)):
        try:
            types = event_types(await handle.history())
        except Exception:  # the child may not exist yet
            types = []
        if event in types:
            return types
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never recorded {event}")


async def test_child_result_reaches_parent_on_another_queue(client: Client) -> None:
    parent_q, child_q = unique("parent"), unique("child")
    async with workers(client, parent_q, child_q):
        handle = await client.start_workflow(
            workflow_type="lc-parent",
            workflow_id=unique("p"),
            task_queue=parent_q,
            input=["lc-child-double", [21], {"task_queue": child_q}],
        )
        result = await handle.result(timeout=30)
        parent_history = await handle.history()
    assert result["result"]["doubled"] == 42
    child_id = result["result"]["queue_run"]
    types = event_types(parent_history)
    for expected in ("ChildWorkflowScheduled", "ChildRunStarted", "ChildRunCompleted", "WorkflowCompleted"):
        assert expected in types
    child = await client.describe_workflow(child_id)
    assert child.task_queue == child_q and child.status == "completed"
    started = (await client.get_workflow_handle(child_id).history())[0]["payload"]
    assert started["parent_workflow_instance_id"] == handle.workflow_id
    assert started["parent_workflow_run_id"] == handle.run_id


async def test_child_failure_is_a_catchable_typed_exception(client: Client) -> None:
    queue = unique("q")
    async with workers(client, queue):
        handle = await client.start_workflow(
            workflow_type="lc-parent",
            workflow_id=unique("p"),
            task_queue=queue,
            input=["lc-child-fail", ["kaputt"], {}],
        )
        result = await handle.result(timeout=30)
        types = event_types(await handle.history())
    assert result == {
        "caught": "ChildWorkflowFailed",
        "exception_type": "ApplicationError",
        "message": "kaputt",
    }
    assert "ChildRunFailed" in types


async def test_child_is_retried_per_its_policy(client: Client) -> None:
    queue, key = unique("q"), unique("flaky")
    async with workers(client, queue):
        handle = await client.start_workflow(
            workflow_type="lc-parent",
            workflow_id=unique("p"),
            task_queue=queue,
            input=["lc-child-flaky", [key, 2], {"retry_attempts": 3}],
        )
        result = await handle.result(timeout=40)
        types = event_types(await handle.history())
    assert result == {"result": 3}  # attempts 1 and 2 failed, the third run succeeded
    assert types.count("ChildRunStarted") == 3 and "ChildRunFailed" not in types


async def test_child_retry_budget_spent_fails_the_child(client: Client) -> None:
    queue, key = unique("q"), unique("flaky")
    async with workers(client, queue):
        handle = await client.start_workflow(
            workflow_type="lc-parent",
            workflow_id=unique("p"),
            task_queue=queue,
            input=["lc-child-flaky", [key, 5], {"retry_attempts": 2}],
        )
        result = await handle.result(timeout=40)
    assert result["caught"] == "ChildWorkflowFailed" and result["exception_type"] == "RuntimeError"


async def test_child_run_timeout(client: Client) -> None:
    queue = unique("q")
    async with workers(client, queue):
        handle = await client.start_workflow(
            workflow_type="lc-parent",
            workflow_id=unique("p"),
            task_queue=queue,
            input=["lc-child-sleeper", [60], {"run_timeout_seconds": 1, "execution_timeout_seconds": 5}],
        )
        result = await handle.result(timeout=30)
    assert result["caught"] == "ChildWorkflowFailed" and result["exception_type"] == "WorkflowTimedOut"


async def test_mixed_parallel_yield_with_activities_timer_and_child(client: Client) -> None:
    queue = unique("q")
    async with workers(client, queue):
        handle = await client.start_workflow(
            workflow_type="lc-parent-mixed", workflow_id=unique("p"), task_queue=queue, input=[queue]
        )
        result = await handle.result(timeout=30)
    assert result[0] == "a" and result[1] is None and result[2]["doubled"] == 42 and result[3] == "b"


@pytest.mark.parametrize(
    ("policy", "child_status"),
    [("terminate", "terminated"), ("abandon", "waiting"), ("request_cancel", "cancelled")],
)
async def test_parent_close_policy(client: Client, policy: str, child_status: str) -> None:
    queue = unique("q")
    async with workers(client, queue):
        handle = await client.start_workflow(
            workflow_type="lc-parent",
            workflow_id=unique("p"),
            task_queue=queue,
            input=["lc-child-sleeper", [30], {"parent_close_policy": policy}],
        )
        child_id = f"{handle.workflow_id}:r1:c1"
        await _wait_for(client, child_id, "TimerScheduled")
        await handle.terminate(reason="closing the parent")
        child = client.get_workflow_handle(child_id)
        if policy == "abandon":
            await asyncio.sleep(1.5)
            assert (await child.describe()).status in ("waiting", "running")
            await child.terminate(reason="test cleanup")
            return
        error = WorkflowTerminatedError if policy == "terminate" else WorkflowCancelledError
        with pytest.raises(error):
            await child.result(timeout=20)
        assert (await child.describe()).status == child_status
    if policy == "request_cancel":
        assert SEEN[child_id] == "child cleaned up"  # the child ran its cleanup first
