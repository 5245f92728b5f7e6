"""Queries end to end: answered by a real worker from replayed history, never written to it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from e2e_message_workflows import MESSAGE_WORKFLOWS
from e2e_support import event_types, running_worker, unique

from durable_workflow import Client
from durable_workflow.errors import QueryFailed, WorkflowNotFound


async def _worker_ready(handle: Any) -> None:
    """Wait until the worker (started just before) registered and answers queries."""
    for _ in range(100):
        try:
            await handle.query("items")
            return
        except QueryFailed as exc:
            if exc.reason != "query_worker_unavailable":
                raise
        await asyncio.sleep(0.1)


async def test_query_a_running_workflow_without_writing_history(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=MESSAGE_WORKFLOWS):
        handle = await client.start_workflow(
            workflow_type="collector", workflow_id=unique("query"), task_queue=queue, input=[]
        )
        for value in (3, 7, 11):
            await handle.signal("add", value)
        await asyncio.sleep(0.5)
        before = len(await handle.history())
        assert await handle.query("items") == [3, 7, 11]
        assert await handle.query("count_above", 5) == 2
        assert len(await handle.history()) == before  # queries never write history
        await handle.signal("done")
        assert await handle.result(timeout=30) == [3, 7, 11]


async def test_query_a_completed_workflow(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=MESSAGE_WORKFLOWS):
        handle = await client.start_workflow(
            workflow_type="collector", workflow_id=unique("done"), task_queue=queue, input=[]
        )
        await handle.signal("add", "x")
        await handle.signal("done")
        await handle.result(timeout=30)
        assert await handle.query("items") == ["x"]
        assert (await handle.describe()).status == "completed"


async def test_unknown_query_and_failing_handler_raise_query_failed(client: Client) -> None:
    queue = unique("q")
    async with running_worker(client, queue, workflows=MESSAGE_WORKFLOWS):
        handle = await client.start_workflow(
            workflow_type="collector", workflow_id=unique("bad"), task_queue=queue, input=[]
        )
        await _worker_ready(handle)
        with pytest.raises(QueryFailed) as unknown:
            await handle.query("no-such-query")
        assert unknown.value.reason == "rejected_unknown_query"
        assert "no-such-query" in str(unknown.value)
        with pytest.raises(QueryFailed) as broken:
            await handle.query("broken")
        assert broken.value.reason == "query_rejected"
        assert "this query always fails" in str(broken.value)
        await handle.signal("done")
        await handle.result(timeout=30)
        assert "Query" not in " ".join(event_types(await handle.history()))


async def test_query_without_a_worker_fails_fast(client: Client) -> None:
    handle = await client.start_workflow(
        workflow_type="collector", workflow_id=unique("alone"), task_queue=unique("q"), input=[]
    )
    started = time.monotonic()
    with pytest.raises(QueryFailed) as caught:
        await handle.query("items")
    assert caught.value.reason == "query_worker_unavailable"
    assert time.monotonic() - started < 5


async def test_query_an_unknown_workflow_is_404(client: Client) -> None:
    with pytest.raises(WorkflowNotFound):
        await client.get_workflow_handle(unique("nobody")).query("items")
