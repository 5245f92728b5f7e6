"""``Client.execute_workflow``: start and result, in one request when no local worker takes the
first task (our ``wait_for_result_seconds`` extension)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from e2e_support import Recording, running_worker, unique
from e2e_workflows import ALL_ACTIVITIES, ALL_WORKFLOWS
from server_process import DwServer

from durable_workflow import Client, Worker
from durable_workflow.errors import WorkflowFailedError


@contextlib.asynccontextmanager
async def remote_worker(server: DwServer, queue: str) -> AsyncIterator[None]:
    """A worker on a client of its own, as in another process: no eager start."""
    async with Client(server.url) as worker_client, running_worker(worker_client, queue):
        yield


async def test_one_request_when_the_worker_runs_elsewhere(server: DwServer) -> None:
    transport = Recording(server.url)
    queue = unique("q")
    async with remote_worker(server, queue), Client(server.url, transport=transport) as client:
        started = time.monotonic()
        result = await client.execute_workflow(
            workflow_type="greeter", workflow_id=unique("ex"), task_queue=queue, input=["Ada"]
        )
        assert result == "hello, Ada"
        assert time.monotonic() - started >= 1.0  # the greeter's durable sleep
    assert [(m, p) for m, p, _, _ in transport.calls] == [("POST", "/api/workflows")]  # one request
    [(body, answer)] = transport.bodies("POST", "/api/workflows")
    assert body["wait_for_result_seconds"] == 30 and "eager_worker_id" not in body
    assert answer["result"]["is_terminal"] is True and answer["result"]["status"] == "completed"


async def test_failure_is_raised(server: DwServer) -> None:
    queue = unique("q")
    async with remote_worker(server, queue), Client(server.url) as client:
        with pytest.raises(WorkflowFailedError):
            await client.execute_workflow(
                workflow_type="non-retryable", workflow_id=unique("ex"), task_queue=queue, timeout=30
            )


async def test_a_run_longer_than_the_timeout_raises_timeout_and_goes_on(server: DwServer) -> None:
    transport = Recording(server.url)
    queue = unique("q")
    workflow_id = unique("ex")
    async with remote_worker(server, queue), Client(server.url, transport=transport) as client:
        with pytest.raises(TimeoutError):
            await client.execute_workflow(
                workflow_type="sleeper",
                workflow_id=workflow_id,
                task_queue=queue,
                input=[3],
                timeout=1.5,
            )
        [(body, answer)] = transport.bodies("POST", "/api/workflows")
        assert body["wait_for_result_seconds"] == 1
        assert answer["result"]["is_terminal"] is False
        handle = client.get_workflow_handle(workflow_id)
        assert await handle.result(timeout=30) == "woke"


async def test_with_a_local_worker_the_first_task_is_eager_and_the_result_long_polled(
    server: DwServer,
) -> None:
    transport = Recording(server.url)
    queue = unique("q")
    async with Client(server.url, transport=transport) as client:
        worker = Worker(client, task_queue=queue, workflows=ALL_WORKFLOWS, activities=ALL_ACTIVITIES)
        async with worker:  # returns once registered and polling
            result = await client.execute_workflow(
                workflow_type="greeter", workflow_id=unique("ex"), task_queue=queue, input=["Bo"]
            )
    assert result == "hello, Bo"
    [(body, answer)] = transport.bodies("POST", "/api/workflows")
    assert body["eager_worker_id"] == worker.worker_id and "wait_for_result_seconds" not in body
    assert answer["eager_workflow_task"] is not None and "result" not in answer
