"""Signal, query, update and query-task routes over HTTP: status codes, bodies, check order."""

from __future__ import annotations

from typing import Any

import aiohttp
from api_support import CONTROL_HEADERS, WORKER_HEADERS, Reply, send, unique


async def _post(
    http: aiohttp.ClientSession, url: str, path: str, body: Any = None, worker: bool = False
) -> Reply:
    headers = WORKER_HEADERS if worker else CONTROL_HEADERS
    return await send(http, "POST", f"{url}{path}", json=body if body is not None else {}, headers=headers)


async def _started(http: aiohttp.ClientSession, url: str) -> tuple[str, str]:
    workflow_id = unique("msg")
    reply = await _post(
        http,
        url,
        "/api/workflows",
        {"workflow_type": "t", "workflow_id": workflow_id, "task_queue": unique("q")},
    )
    assert reply.status == 201
    return workflow_id, reply.body["run_id"]


async def test_signal_receipt_and_control_plane_block(http: aiohttp.ClientSession, server_url: str) -> None:
    workflow_id, run_id = await _started(http, server_url)
    reply = await _post(
        http,
        server_url,
        f"/api/workflows/{workflow_id}/signal/approve",
        {"input": ["ada"], "request_id": "r1"},
    )
    assert reply.status == 202
    body = reply.body
    assert (body["outcome"], body["signal_name"], body["run_id"]) == ("signal_received", "approve", run_id)
    block = body["control_plane"]
    assert (block["operation"], block["operation_name"], block["operation_name_field"]) == (
        "signal",
        "approve",
        "signal_name",
    )
    again = await _post(
        http,
        server_url,
        f"/api/workflows/{workflow_id}/runs/{run_id}/signal/approve",
        {"input": ["ada"], "request_id": "r1"},
    )
    assert again.status == 202 and again.body["command_id"] == body["command_id"]
    conflict = await _post(
        http,
        server_url,
        f"/api/workflows/{workflow_id}/signal/approve",
        {"input": ["bob"], "request_id": "r1"},
    )
    assert (conflict.status, conflict.reason) == (409, "request_id_conflict")


async def test_signal_refusals(http: aiohttp.ClientSession, server_url: str) -> None:
    missing = await _post(http, server_url, f"/api/workflows/{unique('none')}/signal/x")
    assert (missing.status, missing.reason) == (404, "instance_not_found")
    workflow_id, _ = await _started(http, server_url)
    long_name = "n" * 300
    bad = await _post(http, server_url, f"/api/workflows/{workflow_id}/signal/{long_name}")
    assert (bad.status, bad.reason) == (422, "validation_failed")
    bad_input = await _post(http, server_url, f"/api/workflows/{workflow_id}/signal/x", {"input": "text"})
    assert bad_input.status == 422
    unknown_run = await _post(http, server_url, f"/api/workflows/{workflow_id}/runs/nope/signal/x")
    assert (unknown_run.status, unknown_run.reason) == (404, "run_not_found")


async def test_query_without_a_worker_is_409(http: aiohttp.ClientSession, server_url: str) -> None:
    workflow_id, _ = await _started(http, server_url)
    reply = await _post(http, server_url, f"/api/workflows/{workflow_id}/query/status")
    assert (reply.status, reply.reason) == (409, "query_worker_unavailable")
    assert reply.body["control_plane"]["operation"] == "query"


async def test_update_validation_and_unknown_workflow(http: aiohttp.ClientSession, server_url: str) -> None:
    missing = await _post(http, server_url, f"/api/workflows/{unique('none')}/update/x")
    assert (missing.status, missing.reason) == (404, "instance_not_found")
    workflow_id, _ = await _started(http, server_url)
    removed = await _post(
        http, server_url, f"/api/workflows/{workflow_id}/update/x", {"wait_policy": "completed"}
    )
    assert removed.status == 422 and "wait_policy" in removed.body["errors"]
    accepted = await _post(
        http,
        server_url,
        f"/api/workflows/{workflow_id}/update/x",
        {"update_id": "u1", "wait_timeout_seconds": 1},
    )
    # No worker validates it, so it is accepted at once (UpdateAccepted in history) and waits.
    assert (accepted.status, accepted.body["update_status"], accepted.body["update_id"]) == (
        202,
        "accepted",
        "u1",
    )
    assert accepted.body["control_plane"]["operation_name_field"] == "update_name"


async def test_query_task_routes(http: aiohttp.ClientSession, server_url: str) -> None:
    unregistered = await _post(
        http,
        server_url,
        "/api/worker/query-tasks/poll",
        {"worker_id": unique("w"), "task_queue": "q"},
        worker=True,
    )
    assert (unregistered.status, unregistered.reason) == (412, "worker_not_registered")
    worker_id, queue = unique("w"), unique("q")
    registered = await _post(
        http, server_url, "/api/worker/register",
        {"worker_id": worker_id, "task_queue": queue, "runtime": "python", "capabilities": ["query_tasks"]},
        worker=True,
    )  # fmt: skip
    assert registered.status == 201
    empty = await _post(
        http,
        server_url,
        "/api/worker/query-tasks/poll",
        {"worker_id": worker_id, "task_queue": queue, "timeout_seconds": 0},
        worker=True,
    )
    assert empty.status == 200 and empty.body["task"] is None
    assert empty.body["server_capabilities"]["query_tasks"] is True
    answer = {
        "lease_owner": worker_id,
        "query_task_attempt": 1,
        "result_envelope": {"codec": "avro", "blob": "AA=="},
    }
    gone = await _post(http, server_url, "/api/worker/query-tasks/nope/complete", answer, worker=True)
    assert (gone.status, gone.reason) == (404, "query_task_not_found")
