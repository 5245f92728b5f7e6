"""Eager tasks (our extension): tasks handed back in a report's reply run without a poll."""

from __future__ import annotations

import asyncio
from typing import Any

from sdk_worker_fakes import FakeServer, activity_task, started_event, workflow_task

from durable_workflow import activity, workflow
from durable_workflow.client import Request, Response
from durable_workflow.worker import Worker


@activity.defn(name="sdk-eager.greet")
def greet(name: str) -> str:
    return f"hello, {name}"


@workflow.defn(name="sdk-eager.flow")
class Flow:
    def run(self, ctx: Any, name: str) -> Any:
        return (yield ctx.schedule_activity("sdk-eager.greet", [name]))


async def test_eager_activity_and_workflow_task_run_without_polls() -> None:
    server = FakeServer()
    handed: dict[str, bool] = {}

    def workflow_complete(request: Request) -> Response | None:
        if not request.path.endswith("/workflow-tasks/t-1/complete"):
            return None
        asyncio.get_running_loop().call_soon(server.reports.put_nowait, request)
        tasks = [] if handed.get("activity") else [activity_task("a-1", "sdk-eager.greet", ["Ada"])]
        handed["activity"] = True
        return Response(200, json={"outcome": "completed", "eager_activity_tasks": tasks})

    def activity_complete(request: Request) -> Response | None:
        if "/activity-tasks/" not in request.path:
            return None
        asyncio.get_running_loop().call_soon(server.reports.put_nowait, request)
        task = workflow_task("t-2", "sdk-eager.flow", [started_event()])
        return Response(200, json={"outcome": "completed", "eager_workflow_task": task})

    server.overrides["/workflow-tasks/t-1/complete"] = workflow_complete
    server.overrides["/activity-tasks/a-1/complete"] = activity_complete
    await server.workflow_tasks.put(workflow_task("t-1", "sdk-eager.flow", [started_event()]))
    worker = Worker(server.client(), task_queue="q", worker_id="w-test", workflows=[Flow], activities=[greet])
    running = asyncio.create_task(worker.run())
    try:
        first = await server.next_report()
        second = await server.next_report()
        third = await server.next_report()
    finally:
        await worker.shutdown(grace_seconds=2)
        await asyncio.wait_for(running, timeout=5)

    assert first.path == "/api/worker/workflow-tasks/t-1/complete"
    assert first.json["eager_activity_slots"] == 1  # one activity scheduled, a slot free
    assert second.path == "/api/worker/activity-tasks/a-1/complete"
    assert second.json["eager_workflow_task"] is True
    assert second.json["activity_attempt_id"] == "att-a-1"
    assert third.path == "/api/worker/workflow-tasks/t-2/complete"
    # The slots taken for the eager tasks came back.
    assert all(p.free_slots == p.max_concurrent for p in worker._pollers)


async def test_no_eager_fields_without_the_other_kind() -> None:
    server = FakeServer()
    await server.workflow_tasks.put(workflow_task("t-1", "sdk-eager.flow", [started_event()]))
    worker = Worker(server.client(), task_queue="q", worker_id="w-test", workflows=[Flow])
    running = asyncio.create_task(worker.run())
    try:
        report = await server.next_report()
    finally:
        await worker.shutdown(grace_seconds=2)
        await asyncio.wait_for(running, timeout=5)
    assert "eager_activity_slots" not in report.json
