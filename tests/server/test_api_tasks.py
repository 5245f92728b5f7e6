"""Every worker task route over HTTP, in one workflow: history, heartbeat, fail, complete, activities."""

from __future__ import annotations

from typing import Any

import aiohttp
from api_support import CONTROL_HEADERS, POLL_HEADERS, WORKER_HEADERS, Reply, send, unique


class Worker:
    """Just enough of a worker to drive the routes by hand."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.worker_id = unique("py-worker")
        self.queue = unique("q")

    async def post(self, path: str, body: dict[str, Any], headers: dict[str, str] = WORKER_HEADERS) -> Reply:
        return await send(self.http, "POST", f"{self.url}/api{path}", json=body, headers=headers)

    async def poll(self, kind: str) -> dict[str, Any]:
        body = {"worker_id": self.worker_id, "task_queue": self.queue, "timeout_seconds": 5}
        reply = await self.post(
            f"/worker/{kind}-tasks/poll", {**body, "poll_request_id": unique("p")}, POLL_HEADERS
        )
        assert reply.status == 200, reply.body
        task: dict[str, Any] = reply.body["task"]
        assert task is not None, reply.body
        return task


async def test_one_activity_workflow_through_every_task_route(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    worker = Worker(http, server_url)
    registered = await worker.post(
        "/worker/register", {"worker_id": worker.worker_id, "task_queue": worker.queue, "runtime": "python"}
    )
    assert registered.status == 201, registered.body
    workflow_id = unique("wf")
    started = await worker.post(
        "/workflows",
        {"workflow_type": "tests.tasks", "workflow_id": workflow_id, "task_queue": worker.queue},
        CONTROL_HEADERS,
    )
    run_id = started.body["run_id"]

    # First workflow task: read history from the start, then schedule two activities.
    task = await worker.poll("workflow")
    lease = {"lease_owner": worker.worker_id, "workflow_task_attempt": task["workflow_task_attempt"]}
    wf_base = f"/worker/workflow-tasks/{task['task_id']}"
    history = await worker.post(f"{wf_base}/history", {**lease, "next_history_page_token": "MA=="})
    assert history.status == 200, history.body
    assert [e["event_type"] for e in history.body["history_events"]][-1] == "WorkflowStarted"
    bad_token = await worker.post(f"{wf_base}/history", {**lease, "next_history_page_token": "!!"})
    assert bad_token.status == 400 and bad_token.reason == "invalid_page_token"
    wrong_owner = await worker.post(f"{wf_base}/heartbeat", {**lease, "lease_owner": "someone-else"})
    assert wrong_owner.status == 409 and wrong_owner.reason == "lease_owner_mismatch"
    schedule = [
        {"type": "schedule_activity", "activity_type": "tests.ok", "queue": worker.queue},
    ]
    done = await worker.post(f"{wf_base}/complete", {**lease, "commands": schedule})
    assert done.status == 200, done.body

    # The activity: heartbeat, then complete.
    activity = await worker.poll("activity")
    assert activity["activity_type"] == "tests.ok"
    fence = {"activity_attempt_id": activity["activity_attempt_id"], "lease_owner": worker.worker_id}
    act_base = f"/worker/activity-tasks/{activity['task_id']}"
    beat = await worker.post(f"{act_base}/heartbeat", {**fence, "details": {"progress": 1}})
    assert beat.status == 200, beat.body
    assert beat.body["cancel_requested"] is False
    stranger = await worker.post(
        f"{act_base}/complete", {**fence, "lease_owner": "someone-else", "result": None}
    )
    assert stranger.status == 409 and stranger.reason == "lease_owner_mismatch"
    completed = await worker.post(f"{act_base}/complete", {**fence, "result": None})
    assert completed.status == 200, completed.body
    assert completed.body["outcome"] == "completed"

    # Second workflow task: report a quiet failure first, as 2.12.0 does when it has nothing new.
    task = await worker.poll("workflow")
    lease = {"lease_owner": worker.worker_id, "workflow_task_attempt": task["workflow_task_attempt"]}
    wf_base = f"/worker/workflow-tasks/{task['task_id']}"
    assert "ActivityCompleted" in [e["event_type"] for e in task["history_events"]]
    finished = await worker.post(
        f"{wf_base}/complete", {**lease, "commands": [{"type": "complete_workflow"}]}
    )
    assert finished.status == 200, finished.body

    result = await send(
        http,
        "GET",
        f"{server_url}/api/workflows/{workflow_id}/runs/{run_id}/result",
        headers=CONTROL_HEADERS,
        params={"wait_seconds": "5"},
    )
    assert result.body["status"] == "completed"


async def test_activity_failure_and_workflow_task_failure(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    worker = Worker(http, server_url)
    await worker.post(
        "/worker/register", {"worker_id": worker.worker_id, "task_queue": worker.queue, "runtime": "python"}
    )
    workflow_id = unique("wf")
    await worker.post(
        "/workflows",
        {"workflow_type": "tests.tasks", "workflow_id": workflow_id, "task_queue": worker.queue},
        CONTROL_HEADERS,
    )
    task = await worker.poll("workflow")
    lease = {"lease_owner": worker.worker_id, "workflow_task_attempt": task["workflow_task_attempt"]}
    schedule = [{"type": "schedule_activity", "activity_type": "tests.boom", "queue": worker.queue}]
    await worker.post(f"/worker/workflow-tasks/{task['task_id']}/complete", {**lease, "commands": schedule})

    activity = await worker.poll("activity")
    fence = {"activity_attempt_id": activity["activity_attempt_id"], "lease_owner": worker.worker_id}
    missing = await worker.post(
        f"/worker/activity-tasks/{activity['task_id']}/fail", {**fence, "failure": {}}
    )
    assert missing.status == 422 and "failure.message" in missing.body["errors"]
    failed = await worker.post(
        f"/worker/activity-tasks/{activity['task_id']}/fail",
        {**fence, "failure": {"message": "card declined", "type": "CardDeclined", "non_retryable": True}},
    )
    assert failed.status == 200, failed.body
    assert failed.body["outcome"] == "failed"

    task = await worker.poll("workflow")
    assert "ActivityFailed" in [e["event_type"] for e in task["history_events"]]
    lease = {"lease_owner": worker.worker_id, "workflow_task_attempt": task["workflow_task_attempt"]}
    reported = await worker.post(
        f"/worker/workflow-tasks/{task['task_id']}/fail",
        {**lease, "failure": {"message": "nothing new", "type": "WorkflowTaskWaitingForHistory"}},
    )
    assert reported.status == 200, reported.body
    assert reported.body["outcome"] == "failed"
