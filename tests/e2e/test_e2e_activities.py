"""Workflows with activities and timers, end to end: real server, real worker, real SQLite."""

from __future__ import annotations

import time

import pytest
from e2e_support import event_types, running_worker, unique

from durable_workflow import Client
from durable_workflow.errors import WorkflowAlreadyStarted, WorkflowFailedError


async def test_greeter_completes(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue):
        started = time.monotonic()
        handle = await client.start_workflow(
            workflow_type="greeter", workflow_id=unique("greeter"), task_queue=queue, input=["Ada"]
        )
        assert await handle.result(timeout=30) == "hello, Ada"
        assert time.monotonic() - started >= 1.0  # the durable one-second sleep really slept
        history = event_types(await handle.history())
    assert history[0] == "WorkflowStarted"
    for expected in ("TimerScheduled", "TimerFired", "ActivityScheduled", "ActivityStarted",
                     "ActivityCompleted", "WorkflowCompleted"):
        assert expected in history


async def test_retries_with_backoff_then_success(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue):
        started = time.monotonic()
        handle = await client.start_workflow(
            workflow_type="retrying", workflow_id=unique("retry"), task_queue=queue, input=[2]
        )
        assert await handle.result(timeout=30) == 3  # attempts 1 and 2 failed, 3 succeeded
        assert time.monotonic() - started >= 2.0  # two one-second backoffs
        history = event_types(await handle.history())
    assert history.count("ActivityRetryScheduled") == 2
    assert history.count("ActivityStarted") == 3


async def test_non_retryable_failure_fails_the_workflow_after_one_attempt(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue):
        handle = await client.start_workflow(
            workflow_type="non-retryable", workflow_id=unique("nr"), task_queue=queue, input=[]
        )
        with pytest.raises(WorkflowFailedError) as caught:
            await handle.result(timeout=30)
        history = event_types(await handle.history())
    assert caught.value.failure.get("exception_type") == "ActivityFailed"
    assert history.count("ActivityStarted") == 1
    assert "ActivityRetryScheduled" not in history
    assert history[-1] == "WorkflowFailed"


@pytest.mark.parametrize(
    ("activity_type", "seconds", "timeouts", "queue", "expected"),
    [
        ("sleepy", 5, {"start_to_close_timeout": 1}, None, "start_to_close"),
        ("sleepy", 5, {"heartbeat_timeout": 1, "start_to_close_timeout": 10}, None, "heartbeat"),
        ("sleepy", 5, {"schedule_to_close_timeout": 2}, None, "schedule_to_close"),
        ("sleepy", 0, {"schedule_to_start_timeout": 1}, "nobody-polls-here", "schedule_to_start"),
    ],
    ids=["start_to_close", "heartbeat", "schedule_to_close", "schedule_to_start"],
)
async def test_activity_timeouts(
    client: Client, activity_type: str, seconds: float, timeouts: dict[str, int], queue: str | None,
    expected: str,
) -> None:
    task_queue = unique("q")
    async with running_worker(client, task_queue):
        handle = await client.start_workflow(
            workflow_type="timeout-probe", workflow_id=unique("timeout"), task_queue=task_queue,
            input=[activity_type, seconds, timeouts, queue],
        )
        assert await handle.result(timeout=30) == {"timed_out": expected}
        history = event_types(await handle.history())
    assert "ActivityTimedOut" in history


async def test_saga_compensates_after_a_failure(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue):
        handle = await client.start_workflow(
            workflow_type="saga", workflow_id=unique("saga"), task_queue=queue, input=["o-1"]
        )
        result = await handle.result(timeout=30)
    assert result == {"undone": ["undo-charge", "undo-reserve"], "error": "CardDeclined"}


async def test_parallel_activities_resolve_in_list_order(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue):
        handle = await client.start_workflow(
            workflow_type="fan-out", workflow_id=unique("fan"), task_queue=queue, input=[8]
        )
        assert await handle.result(timeout=30) == [i * 10 for i in range(8)]
        history = event_types(await handle.history())
    assert history.count("ActivityScheduled") == 8


async def test_timer_sleeps_durably(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue):
        started = time.monotonic()
        handle = await client.start_workflow(
            workflow_type="sleeper", workflow_id=unique("sleep"), task_queue=queue, input=[2]
        )
        assert await handle.result(timeout=30) == "woke"
    assert time.monotonic() - started >= 2.0


async def test_duplicate_start_is_refused_while_running(client: Client) -> None:
    queue = unique("q")
    workflow_id = unique("dup")
    await client.start_workflow(
        workflow_type="sleeper", workflow_id=workflow_id, task_queue=queue, input=[60]
    )
    with pytest.raises(WorkflowAlreadyStarted):
        await client.start_workflow(
            workflow_type="sleeper", workflow_id=workflow_id, task_queue=queue, input=[1]
        )
    handle = client.get_workflow_handle(workflow_id)
    await handle.terminate("test cleanup")
    description = await handle.describe()
    assert description.status == "terminated"
