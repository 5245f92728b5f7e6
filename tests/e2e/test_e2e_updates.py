"""Updates end to end: validator before acceptance, handler with an activity, idempotency."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from e2e_message_workflows import MESSAGE_WORKFLOWS
from e2e_support import event_types, running_worker, unique

from durable_workflow import Client
from durable_workflow.errors import QueryFailed, UpdateFailed


async def _worker_ready(handle: Any) -> None:
    """Wait until the worker registered (so it validates updates inside their task)."""
    for _ in range(100):
        try:
            await handle.query("count")
            return
        except QueryFailed as exc:
            if exc.reason != "query_worker_unavailable":
                raise
        await asyncio.sleep(0.1)


async def _counter(client: Client, queue: str) -> object:
    return await client.start_workflow(
        workflow_type="counter", workflow_id=unique("counter"), task_queue=queue, input=[]
    )


async def test_update_completed_returns_the_handler_result(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=MESSAGE_WORKFLOWS):
        handle = await client.start_workflow(
            workflow_type="counter", workflow_id=unique("counter"), task_queue=queue, input=[]
        )
        assert await handle.update("add", 5) == 5
        assert await handle.update("add", 2, wait_for="completed") == 7
        assert await handle.query("count") == 7
        await handle.signal("finish")
        assert await handle.result(timeout=30) == 7
        history = event_types(await handle.history())
    assert history.count("UpdateAccepted") == 2
    assert history.count("UpdateApplied") == 2
    assert history.count("UpdateCompleted") == 2


async def test_update_accepted_returns_before_completion_is_awaited(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=MESSAGE_WORKFLOWS):
        handle = await client.start_workflow(
            workflow_type="counter", workflow_id=unique("accepted"), task_queue=queue, input=[]
        )
        # The handler waits on a one-second activity: accepted comes back before it completes.
        started = time.monotonic()
        assert await handle.update("add_slowly", 4, wait_for="accepted", update_id="u-accepted") is None
        assert time.monotonic() - started < 1.0
        # The same id waited to completion returns the first (and only) outcome.
        assert await handle.update("add_slowly", 4, update_id="u-accepted") == 4
        assert await handle.query("count") == 4
        await handle.signal("finish")
        assert await handle.result(timeout=30) == 4


async def test_validator_rejection_leaves_history_clean(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=MESSAGE_WORKFLOWS):
        handle = await client.start_workflow(
            workflow_type="counter", workflow_id=unique("reject"), task_queue=queue, input=[]
        )
        await _worker_ready(handle)
        before = event_types(await handle.history())
        with pytest.raises(UpdateFailed) as caught:
            await handle.update("add", -1)
        assert caught.value.reason == "update_rejected"
        assert "must not be negative" in str(caught.value)
        after = event_types(await handle.history())
        assert not [t for t in after if t.startswith("Update")]
        assert after[: len(before)] == before
        assert await handle.query("count") == 0
        await handle.signal("finish")
        assert await handle.result(timeout=30) == 0


async def test_handler_failure_is_update_failed(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=MESSAGE_WORKFLOWS):
        handle = await client.start_workflow(
            workflow_type="counter", workflow_id=unique("explode"), task_queue=queue, input=[]
        )
        with pytest.raises(UpdateFailed) as caught:
            await handle.update("explode")
        assert caught.value.reason == "update_failed"
        assert "blew up" in str(caught.value)
        await handle.signal("finish")
        assert await handle.result(timeout=30) == 0


async def test_update_handler_that_runs_an_activity(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=MESSAGE_WORKFLOWS):
        handle = await client.start_workflow(
            workflow_type="counter", workflow_id=unique("activity"), task_queue=queue, input=[]
        )
        assert await handle.update("add_via_activity", 6, wait_timeout_seconds=30) == 6
        assert await handle.update("add", 1) == 7
        assert await handle.query("applied") == ["activity:6", "add:1"]
        await handle.signal("finish")
        assert await handle.result(timeout=30) == 7
        history = event_types(await handle.history())
    assert "ActivityCompleted" in history
    assert history.index("ActivityCompleted") < history.index("UpdateApplied")


async def test_same_update_id_twice_runs_the_handler_once(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=MESSAGE_WORKFLOWS):
        handle = await client.start_workflow(
            workflow_type="counter", workflow_id=unique("once"), task_queue=queue, input=[]
        )
        first = await handle.update("add", 3, update_id="only-once")
        second = await handle.update("add", 3, update_id="only-once")
        assert first == second == 3
        assert await handle.query("applied") == ["add:3"]
        await handle.signal("finish")
        assert await handle.result(timeout=30) == 3
        history = await handle.history()
    applied = [e for e in history if e["event_type"] == "UpdateApplied"]
    assert len(applied) == 1 and applied[0]["payload"]["update_id"] == "only-once"


async def test_a_wait_is_re_evaluated_after_each_update(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=MESSAGE_WORKFLOWS):
        handle = await client.start_workflow(
            workflow_type="update-gate", workflow_id=unique("gate"), task_queue=queue, input=[3]
        )
        assert [await handle.update("raise") for _ in range(3)] == [1, 2, 3]
        assert await handle.result(timeout=30) == 3
        history = event_types(await handle.history())
    assert history.count("ConditionWaitOpened") == 1 and history.count("ConditionWaitSatisfied") == 1
