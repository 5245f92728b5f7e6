"""A scripted worker-plane server for Worker unit tests, served through MockTransport."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from durable_workflow.client import Client, MockTransport, Request, Response
from durable_workflow.retry_policy import TransportRetryPolicy

FAST = TransportRetryPolicy(max_attempts=3, initial_backoff_seconds=0.001, maximum_backoff_seconds=0.01)

Override = Callable[[Request], "Response | None"]


class FakeServer:
    """Hands out queued tasks, records every request, and answers reports with success.

    ``overrides`` maps a path suffix (``"/complete"``, ``"/heartbeat"``...) to a function that
    may return a custom Response (None falls through to the default answer).
    """

    def __init__(self) -> None:
        self.workflow_tasks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.activity_tasks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.overrides: dict[str, Override] = {}
        self.reports: asyncio.Queue[Request] = asyncio.Queue()
        self.transport = MockTransport(self.handle)
        self.poll_hold_seconds = 0.02

    @property
    def requests(self) -> list[Request]:
        return self.transport.requests

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def client(self) -> Client:
        return Client("http://dw.test", transport=self.transport, retry_policy=FAST)

    async def handle(self, request: Request) -> Response:
        for suffix, override in self.overrides.items():
            if request.path.endswith(suffix):
                answer = override(request)
                if answer is not None:
                    return answer
        path = request.path
        if path == "/api/worker/register":
            return Response(201, json={"worker_id": request.json["worker_id"], "registered": True})
        if path == "/api/worker/heartbeat":
            return Response(200, json={"worker_id": request.json["worker_id"], "acknowledged": True})
        if path.startswith("/api/worker/registrations/"):
            return Response(200, json={"outcome": "deregistered", "recovered_workflow_task_count": 0})
        if path.endswith("/poll"):
            queue = self.workflow_tasks if "workflow-tasks" in path else self.activity_tasks
            try:
                task = await asyncio.wait_for(queue.get(), timeout=self.poll_hold_seconds)
            except TimeoutError:
                return Response(200, json={"task": None})
            return Response(200, json={"task": task})
        if path.endswith(("/complete", "/fail")):
            await self.reports.put(request)
            return Response(200, json={"outcome": "completed", "recorded": True, "reason": None})
        if path.endswith("/heartbeat"):
            return Response(200, json={"cancel_requested": False, "can_continue": True, "reason": None})
        return Response(404, json={"reason": "not_found"})

    async def next_report(self, timeout: float = 5.0) -> Request:
        return await asyncio.wait_for(self.reports.get(), timeout=timeout)


def workflow_task(
    task_id: str, workflow_type: str, history: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    from durable_workflow import serializer

    task: dict[str, Any] = {
        "task_id": task_id,
        "workflow_id": "wf-1",
        "run_id": "run-1",
        "workflow_task_attempt": 2,
        "workflow_type": workflow_type,
        "payload_codec": "avro",
        "arguments": serializer.envelope(["Ada"]),
        "history_events": history,
        "next_history_page_token": None,
        "task_queue": "q",
        "lease_owner": "w-test",
        "lease_expires_at": "2999-01-01T00:00:00.000000Z",
    }
    task.update(extra)
    return task


def activity_task(task_id: str, activity_type: str, args: list[Any], **extra: Any) -> dict[str, Any]:
    from durable_workflow import serializer

    task: dict[str, Any] = {
        "task_id": task_id,
        "workflow_id": "wf-1",
        "run_id": "run-1",
        "activity_execution_id": "act-1",
        "activity_attempt_id": f"att-{task_id}",
        "attempt_number": 1,
        "activity_type": activity_type,
        "payload_codec": "avro",
        "arguments": serializer.envelope(args),
        "task_queue": "q",
        "lease_owner": "w-test",
        "lease_expires_at": "2999-01-01T00:00:00.000000Z",
        "deadlines": {"start_to_close": "2999-01-01T00:01:00+00:00"},
    }
    task.update(extra)
    return task


def started_event(sequence: int = 1) -> dict[str, Any]:
    return {
        "sequence": sequence,
        "event_type": "WorkflowStarted",
        "recorded_at": "2026-08-01T10:00:00.000000Z",
        "payload": {"workflow_type": "greeter", "workflow_instance_id": "wf-1", "workflow_run_id": "run-1"},
    }
