"""Eager workflow start (our extension): a client whose own worker runs the queue hands the new
run's first workflow task to that worker in the start reply, with no poll in between."""

from __future__ import annotations

from typing import Any

from e2e_support import Recording, unique
from server_process import DwServer

from durable_workflow import Client, Worker, activity, workflow


@activity.defn(name="eager-start.echo")
def echo(value: str) -> str:
    return value


@workflow.defn(name="eager-start.flow")
class Flow:
    def run(self, ctx: Any, value: str) -> Any:
        return (yield ctx.schedule_activity("eager-start.echo", [value]))


async def test_the_local_worker_gets_the_first_task_without_a_poll(server: DwServer) -> None:
    transport = Recording(server.url)
    queue = unique("q")
    async with Client(server.url, transport=transport) as client:
        worker = Worker(client, task_queue=queue, workflows=[Flow], activities=[echo])
        async with worker:
            handles = [
                await client.start_workflow(
                    workflow_type=Flow, workflow_id=unique("eager"), task_queue=queue, input=[f"v{i}"]
                )
                for i in range(5)
            ]
            assert [await h.result(timeout=30) for h in handles] == [f"v{i}" for i in range(5)]
    starts = transport.bodies("POST", "/api/workflows")
    assert len(starts) == 5
    for sent, reply in starts:
        assert sent["eager_worker_id"] == worker.worker_id
        task = reply["eager_workflow_task"]
        assert task["lease_owner"] == worker.worker_id and task["workflow_task_attempt"] == 1
    polled = [reply["task"] for _, reply in transport.bodies("POST", "/api/worker/workflow-tasks/poll")]
    assert all(task is None for task in polled)  # no poll ever carried a workflow task


async def test_no_eager_start_for_a_queue_or_type_no_local_worker_runs(server: DwServer) -> None:
    transport = Recording(server.url)
    queue = unique("q")
    async with Client(server.url, transport=transport) as client:
        async with Worker(client, task_queue=queue, workflows=[Flow], activities=[echo]):
            other = unique("other")
            await client.start_workflow(workflow_type="greeter", workflow_id=unique("t"), task_queue=queue)
            await client.start_workflow(workflow_type=Flow, workflow_id=unique("q"), task_queue=other)
        # After shutdown the worker is no longer offered either.
        await client.start_workflow(workflow_type=Flow, workflow_id=unique("after"), task_queue=queue)
    for sent, reply in transport.bodies("POST", "/api/workflows"):
        assert "eager_worker_id" not in sent and "eager_workflow_task" not in reply


async def test_a_client_without_a_worker_starts_plainly(server: DwServer) -> None:
    transport = Recording(server.url)
    queue = unique("q")
    async with (
        Client(server.url) as worker_client,
        Client(server.url, transport=transport) as client,
        Worker(worker_client, task_queue=queue, workflows=[Flow], activities=[echo]),
    ):
        handle = await client.start_workflow(
            workflow_type=Flow, workflow_id=unique("plain"), task_queue=queue, input=["x"]
        )
        assert await handle.result(timeout=30) == "x"
    [(sent, _)] = transport.bodies("POST", "/api/workflows")
    assert "eager_worker_id" not in sent


async def test_a_worker_without_a_free_slot_is_not_offered(server: DwServer) -> None:
    transport = Recording(server.url)
    queue = unique("q")
    async with Client(server.url, transport=transport) as client:
        # One slot, held by the long poll itself: no slot to reserve for an eager start.
        worker = Worker(
            client, task_queue=queue, workflows=[Flow], activities=[echo], max_concurrent_workflow_tasks=1
        )
        async with worker:
            handle = await client.start_workflow(
                workflow_type=Flow, workflow_id=unique("busy"), task_queue=queue, input=["z"]
            )
            assert await handle.result(timeout=30) == "z"
    [(sent, reply)] = transport.bodies("POST", "/api/workflows")
    assert "eager_worker_id" not in sent and "eager_workflow_task" not in reply
    polled = [reply["task"] for _, reply in transport.bodies("POST", "/api/worker/workflow-tasks/poll")]
    assert any(task is not None for task in polled)
