"""Signals and wait conditions end to end: real server, real worker, real SQLite."""

from __future__ import annotations

import asyncio

import pytest
from e2e_message_workflows import MESSAGE_WORKFLOWS
from e2e_support import event_types, running_worker, unique

from durable_workflow import Client
from durable_workflow.errors import Conflict, WorkflowNotFound


async def test_approval_workflow_from_the_seed(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=MESSAGE_WORKFLOWS):
        handle = await client.start_workflow(
            workflow_type="approval", workflow_id=unique("approval"), task_queue=queue, input=[]
        )
        await asyncio.sleep(0.5)  # let the workflow reach its wait
        await handle.signal("approve", "ada")
        assert await handle.result(timeout=30) == "approved"
        history = event_types(await handle.history())
    assert "SignalReceived" in history
    assert "ConditionWaitOpened" in history
    assert "ConditionWaitSatisfied" in history
    assert history[-1] == "WorkflowCompleted"


async def test_a_burst_of_signals_is_delivered_in_order(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=MESSAGE_WORKFLOWS):
        handle = await client.start_workflow(
            workflow_type="collector", workflow_id=unique("burst"), task_queue=queue, input=[]
        )
        for value in range(25):
            await handle.signal("add", value)
        await handle.signal("done")
        assert await handle.result(timeout=30) == list(range(25))
        history = event_types(await handle.history())
    assert history.count("SignalReceived") == 26


async def test_concurrent_signals_are_all_delivered(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=MESSAGE_WORKFLOWS):
        handle = await client.start_workflow(
            workflow_type="collector", workflow_id=unique("many"), task_queue=queue, input=[]
        )
        await asyncio.gather(*(handle.signal("add", value) for value in range(20)))
        await handle.signal("done")
        result = await handle.result(timeout=30)
    assert sorted(result) == list(range(20))


async def test_a_signal_sent_before_the_wait_is_not_lost(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=MESSAGE_WORKFLOWS):
        handle = await client.start_workflow(
            workflow_type="late-waiter", workflow_id=unique("late"), task_queue=queue, input=[2]
        )
        await handle.signal("value", "early bird")  # the workflow is still sleeping
        assert await handle.result(timeout=30) == "early bird"


async def test_a_wait_with_a_timeout_resolves_false_when_the_timer_fires_first(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=MESSAGE_WORKFLOWS):
        handle = await client.start_workflow(
            workflow_type="timed-waiter", workflow_id=unique("timeout"), task_queue=queue, input=[1]
        )
        assert await handle.result(timeout=30) == {"came": False}
        history = await handle.history()
    types = event_types(history)
    assert "ConditionWaitTimedOut" in types
    scheduled = [e for e in history if e["event_type"] == "TimerScheduled"]
    assert scheduled and scheduled[0]["payload"]["timer_kind"] == "condition_timeout"
    fired = [e for e in history if e["event_type"] == "TimerFired"]
    assert fired and fired[0]["payload"]["condition_wait_id"]


async def test_a_wait_with_a_timeout_resolves_true_when_the_signal_comes_first(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=MESSAGE_WORKFLOWS):
        handle = await client.start_workflow(
            workflow_type="timed-waiter", workflow_id=unique("in-time"), task_queue=queue, input=[30]
        )
        await asyncio.sleep(0.5)
        await handle.signal("go")
        assert await handle.result(timeout=30) == {"came": True}
        types = event_types(await handle.history())
    assert "TimerCancelled" in types
    assert "ConditionWaitTimedOut" not in types


async def test_signal_idempotency_by_request_id(client: Client) -> None:
    queue = unique("q")
    handle = await client.start_workflow(
        workflow_type="collector", workflow_id=unique("idem"), task_queue=queue, input=[]
    )
    await handle.signal("add", 1, request_id="same-key")
    await handle.signal("add", 1, request_id="same-key")
    with pytest.raises(Conflict) as caught:
        await handle.signal("add", 2, request_id="same-key")
    assert caught.value.reason == "request_id_conflict"
    assert event_types(await handle.history()).count("SignalReceived") == 1


async def test_signal_to_a_run_that_is_not_current_is_refused(client: Client) -> None:
    queue = unique("q")
    workflow_id = unique("old-run")
    first = await client.start_workflow(
        workflow_type="collector", workflow_id=workflow_id, task_queue=queue, input=[]
    )
    await first.terminate("make room")
    described = await first.describe()
    old = client.get_workflow_handle(workflow_id, run_id=described.run_id)
    with pytest.raises(Conflict) as caught:
        await old.signal("add", 1)
    assert caught.value.reason == "run_not_active"
    # A second run makes the first one historical: 409 historical_run_command_rejected.
    raw = await client.api.call(
        "POST", "/workflows", json={"workflow_type": "collector", "workflow_id": workflow_id,
                                    "task_queue": queue, "id_reuse_policy": "allow_duplicate"},
    )  # fmt: skip
    assert raw["run_id"] != described.run_id
    with pytest.raises(Conflict) as caught:
        await old.signal("add", 1)
    assert caught.value.reason == "historical_run_command_rejected"
    assert caught.value.status == 409


async def test_signal_to_an_unknown_workflow_is_404(client: Client) -> None:
    with pytest.raises(WorkflowNotFound):
        await client.get_workflow_handle(unique("nobody")).signal("add", 1)
