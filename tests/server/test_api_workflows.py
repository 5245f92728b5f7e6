"""Workflow control plane over HTTP: start, list, describe, runs, history, cancel, terminate, result.

Also a full worker round trip (poll, complete) and the rule that a refused request leaves
nothing behind.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from api_support import CONTROL_HEADERS, POLL_HEADERS, WORKER_HEADERS, Reply, send, unique

from durable_workflow.protocol import CONTROL_PLANE_HEADER


async def _start(http: aiohttp.ClientSession, url: str, **fields: Any) -> Reply:
    body = {"workflow_type": "tests.api", "task_queue": "api-tests", **fields}
    return await send(http, "POST", f"{url}/api/workflows", json=body, headers=CONTROL_HEADERS)


async def _get(http: aiohttp.ClientSession, url: str, path: str, **params: str) -> Reply:
    return await send(http, "GET", f"{url}{path}", headers=CONTROL_HEADERS, params=params or None)


async def _post(http: aiohttp.ClientSession, url: str, path: str, body: Any = None) -> Reply:
    if body is None:
        return await send(http, "POST", f"{url}{path}", headers=CONTROL_HEADERS)
    return await send(http, "POST", f"{url}{path}", json=body, headers=CONTROL_HEADERS)


async def test_start_then_duplicate_then_use_existing(http: aiohttp.ClientSession, server_url: str) -> None:
    workflow_id = unique("wf")
    first = await _start(http, server_url, workflow_id=workflow_id, input=[1, "two"])
    assert first.status == 201, first.body
    assert first.body["outcome"] == "started_new"
    assert first.body["workflow_id"] == workflow_id
    assert first.body["run_id"]
    assert first.headers[CONTROL_PLANE_HEADER] == "2"
    block = first.body["control_plane"]
    assert block["operation"] == "start"
    assert block["workflow_id"] == workflow_id
    assert block["outcome"] == "started_new"

    duplicate = await _start(http, server_url, workflow_id=workflow_id)
    assert duplicate.status == 409
    assert duplicate.reason == "instance_already_started"
    assert duplicate.body["message"]

    existing = await _start(http, server_url, workflow_id=workflow_id, duplicate_policy="use-existing")
    assert existing.status == 200, existing.body
    assert existing.body["outcome"] == "returned_existing_active"
    assert existing.body["run_id"] == first.body["run_id"]


async def test_list_describe_runs_show_run_history(http: aiohttp.ClientSession, server_url: str) -> None:
    workflow_type = unique("tests.listed")
    workflow_id = unique("wf")
    started = await _start(http, server_url, workflow_id=workflow_id, workflow_type=workflow_type)
    run_id = started.body["run_id"]

    listed = await _get(http, server_url, "/api/workflows", workflow_type=workflow_type)
    assert listed.status == 200, listed.body
    assert [w["workflow_id"] for w in listed.body["workflows"]] == [workflow_id]
    assert listed.body["control_plane"]["operation"] == "list"
    running = await _get(http, server_url, "/api/workflows", workflow_type=workflow_type, status="running")
    assert len(running.body["workflows"]) == 1

    described = await _get(http, server_url, f"/api/workflows/{workflow_id}")
    assert described.status == 200, described.body
    assert described.body["workflow_id"] == workflow_id and described.body["run_id"] == run_id
    assert described.body["control_plane"]["operation"] == "describe"
    assert described.body["control_plane"]["workflow_id"] == workflow_id

    runs = await _get(http, server_url, f"/api/workflows/{workflow_id}/runs")
    assert runs.status == 200, runs.body
    assert [r["run_id"] for r in runs.body["runs"]] == [run_id]
    assert runs.body["control_plane"]["operation"] == "list_runs"

    one = await _get(http, server_url, f"/api/workflows/{workflow_id}/runs/{run_id}")
    assert one.status == 200 and one.body["run_id"] == run_id
    assert one.body["control_plane"]["operation"] == "describe_run"

    history = await _get(http, server_url, f"/api/workflows/{workflow_id}/runs/{run_id}/history")
    assert history.status == 200, history.body
    assert "WorkflowStarted" in [e["event_type"] for e in history.body["events"]]
    assert history.body["control_plane"]["operation"] == "history"
    assert history.body["run_id"] == run_id


async def test_unknown_workflow_and_run_are_404_with_the_block(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    missing = await _get(http, server_url, f"/api/workflows/{unique('ghost')}")
    assert missing.status == 404 and missing.reason == "instance_not_found"
    assert missing.body["control_plane"]["operation"] == "describe"
    workflow_id = unique("wf")
    await _start(http, server_url, workflow_id=workflow_id)
    no_run = await _get(http, server_url, f"/api/workflows/{workflow_id}/runs/{unique('run')}")
    assert no_run.status == 404 and no_run.reason == "run_not_found"


async def test_cancel_and_terminate(http: aiohttp.ClientSession, server_url: str) -> None:
    cancelled_id = unique("wf")
    await _start(http, server_url, workflow_id=cancelled_id)
    cancel = await _post(
        http, server_url, f"/api/workflows/{cancelled_id}/cancel", {"reason": "changed my mind"}
    )
    assert cancel.status == 200, cancel.body
    assert cancel.body["outcome"] == "cancel_requested"
    assert cancel.body["control_plane"]["operation"] == "cancel"
    again = await _post(http, server_url, f"/api/workflows/{cancelled_id}/cancel")
    assert again.status == 200 and again.body["duplicate"] is True
    described = await _get(http, server_url, f"/api/workflows/{cancelled_id}")
    assert described.body["status_bucket"] == "running"  # cooperative: open until its code finishes

    terminated_id = unique("wf")
    started = await _start(http, server_url, workflow_id=terminated_id)
    run_id = started.body["run_id"]
    terminate = await _post(
        http, server_url, f"/api/workflows/{terminated_id}/runs/{run_id}/terminate", {"reason": "ops"}
    )
    assert terminate.status == 200, terminate.body
    assert terminate.body["outcome"] == "terminated"
    assert terminate.body["run_id"] == run_id


async def test_result_extension(http: aiohttp.ClientSession, server_url: str) -> None:
    workflow_id = unique("wf")
    run_id = (await _start(http, server_url, workflow_id=workflow_id)).body["run_id"]
    path = f"/api/workflows/{workflow_id}/runs/{run_id}/result"
    open_run = await _get(http, server_url, path, wait_seconds="0")
    assert open_run.status == 200, open_run.body
    assert open_run.body["is_terminal"] is False
    bad = await _get(http, server_url, path, wait_seconds="61")
    assert bad.status == 422 and "wait_seconds" in bad.body["errors"]
    await _post(http, server_url, f"/api/workflows/{workflow_id}/terminate")
    closed = await _get(http, server_url, path, wait_seconds="5")
    assert closed.body["is_terminal"] is True
    assert closed.body["status"] == "terminated"


async def test_a_refused_start_leaves_nothing_behind(http: aiohttp.ClientSession, server_url: str) -> None:
    workflow_type = unique("tests.refused")
    workflow_id = unique("wf")
    refusals = [
        {"workflow_type": workflow_type, "workflow_id": workflow_id, "memo": "not an object"},
        {"workflow_type": workflow_type, "workflow_id": workflow_id, "execution_timeout_seconds": "soon"},
        {"workflow_type": workflow_type, "workflow_id": workflow_id, "retry_policy": {"max_attempts": 3}},
        {"workflow_type": workflow_type, "workflow_id": "bad id with spaces"},
        {"workflow_id": workflow_id},
    ]
    for body in refusals:
        reply = await send(http, "POST", f"{server_url}/api/workflows", json=body, headers=CONTROL_HEADERS)
        assert reply.status == 422, (body, reply.body)
        assert reply.reason == "validation_failed"
        assert reply.body["validation_errors"]
    listed = await _get(http, server_url, "/api/workflows", workflow_type=workflow_type)
    assert listed.body["workflows"] == [] and listed.body["workflow_count"] == 0
    assert (await _get(http, server_url, f"/api/workflows/{workflow_id}")).status == 404


async def test_worker_round_trip_completes_the_workflow(http: aiohttp.ClientSession, server_url: str) -> None:
    queue = unique("q")
    worker_id = unique("py-worker")
    registered = await send(
        http,
        "POST",
        f"{server_url}/api/worker/register",
        json={"worker_id": worker_id, "task_queue": queue, "runtime": "python"},
        headers=WORKER_HEADERS,
    )
    assert registered.status == 201, registered.body
    workflow_id = unique("wf")
    run_id = (await _start(http, server_url, workflow_id=workflow_id, task_queue=queue)).body["run_id"]

    polled = await send(
        http,
        "POST",
        f"{server_url}/api/worker/workflow-tasks/poll",
        json={
            "worker_id": worker_id,
            "task_queue": queue,
            "timeout_seconds": 5,
            "poll_request_id": unique("p"),
        },
        headers=POLL_HEADERS,
    )
    task = polled.body["task"]
    assert task is not None, polled.body
    assert task["payload_codec"] == "avro"
    lease = {"lease_owner": worker_id, "workflow_task_attempt": task["workflow_task_attempt"]}
    base = f"{server_url}/api/worker/workflow-tasks/{task['task_id']}"

    empty = await send(
        http, "POST", f"{base}/complete", json={**lease, "commands": []}, headers=WORKER_HEADERS
    )
    assert empty.status == 422 and "commands" in empty.body["errors"]

    beat = await send(http, "POST", f"{base}/heartbeat", json=lease, headers=WORKER_HEADERS)
    assert beat.status == 200, beat.body
    assert beat.body["renewed"] is True

    completed = await send(
        http,
        "POST",
        f"{base}/complete",
        json={**lease, "commands": [{"type": "complete_workflow"}]},
        headers=WORKER_HEADERS,
    )
    assert completed.status == 200, completed.body
    assert completed.body["outcome"] == "completed"

    result = await _get(
        http, server_url, f"/api/workflows/{workflow_id}/runs/{run_id}/result", wait_seconds="5"
    )
    assert result.body["status"] == "completed"
    assert result.body["is_terminal"] is True
