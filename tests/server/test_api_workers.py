"""Worker registration, heartbeat, deregistration and polls in the 2.12.0 shapes, over HTTP."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
from api_support import CONTROL_HEADERS, POLL_HEADERS, WORKER_HEADERS, send, unique

from durable_workflow.protocol import PROTOCOL_HEADER, WORKER_PROTOCOL_VERSION


def register_body_2_12(worker_id: str, task_queue: str) -> dict[str, Any]:
    """What the published 2.12.0 Worker sends (worker-plane §3)."""
    return {
        "worker_id": worker_id,
        "task_queue": task_queue,
        "runtime": "python",
        "sdk_version": "durable-workflow-python/2.12.0",
        "supported_workflow_types": [],
        "supported_activity_types": [],
        "workflow_definition_fingerprints": {},
        "workflow_command_contracts": {},
        "capabilities": ["workflow_entry_arguments_validation", "query_tasks"],
        "capability_manifest": {
            "sticky_execution": {"supported": False, "minimum_protocol_version": "1.18", "reason": "off"}
        },
        "build_id": None,
        "max_concurrent_workflow_tasks": 10,
        "max_concurrent_activity_tasks": 10,
        "max_concurrent_worker_sessions": 10,
        "task_slots": {"workflow_available": 10, "activity_available": 10, "session_available": 10},
        "process_metrics": {"process_uptime_seconds": 3, "process_id": 4242, "host": "box-1"},
    }


async def _register(http: aiohttp.ClientSession, url: str, task_queue: str) -> str:
    worker_id = unique("py-worker")
    reply = await send(
        http,
        "POST",
        f"{url}/api/worker/register",
        json=register_body_2_12(worker_id, task_queue),
        headers=WORKER_HEADERS,
    )
    assert reply.status == 201, reply.body
    return worker_id


async def test_register_heartbeat_deregister_round_trip(http: aiohttp.ClientSession, server_url: str) -> None:
    worker_id = unique("py-worker")
    registered = await send(
        http,
        "POST",
        f"{server_url}/api/worker/register",
        json=register_body_2_12(worker_id, unique("q")),
        headers=WORKER_HEADERS,
    )
    assert registered.status == 201
    assert registered.body["worker_id"] == worker_id
    assert registered.body["registered"] is True
    assert registered.body["protocol_version"] == WORKER_PROTOCOL_VERSION
    assert registered.headers[PROTOCOL_HEADER] == WORKER_PROTOCOL_VERSION
    assert isinstance(registered.body["server_capabilities"], dict)

    beat = await send(
        http,
        "POST",
        f"{server_url}/api/worker/heartbeat",
        json={"worker_id": worker_id},
        headers=WORKER_HEADERS,
    )
    assert beat.status == 200, beat.body
    assert beat.body["worker_id"] == worker_id
    assert beat.body["acknowledged"] is True

    gone = await send(
        http, "DELETE", f"{server_url}/api/worker/registrations/{worker_id}", headers=WORKER_HEADERS
    )
    assert gone.status == 200, gone.body
    assert gone.body["worker_id"] == worker_id
    assert gone.body["outcome"] == "deregistered"
    count = gone.body["recovered_workflow_task_count"]
    assert isinstance(count, int) and count >= 0


async def test_unknown_workers(http: aiohttp.ClientSession, server_url: str) -> None:
    beat = await send(
        http,
        "POST",
        f"{server_url}/api/worker/heartbeat",
        json={"worker_id": unique("nobody")},
        headers=WORKER_HEADERS,
    )
    assert beat.status == 404 and beat.reason == "worker_not_registered"
    gone = await send(
        http, "DELETE", f"{server_url}/api/worker/registrations/{unique('nobody')}", headers=WORKER_HEADERS
    )
    assert gone.status == 404 and gone.reason == "worker_not_found"


async def test_fenced_deregister_echoes_the_token(http: aiohttp.ClientSession, server_url: str) -> None:
    worker_id = await _register(http, server_url, unique("q"))
    token = "0123456789abcdef0123456789abcdef"
    reply = await send(
        http,
        "POST",
        f"{server_url}/api/worker/registrations/{worker_id}/deregister",
        json={"registration_token": token},
        headers=WORKER_HEADERS,
    )
    assert reply.status == 200, reply.body
    assert reply.body["outcome"] == "deregistered"
    assert reply.body["registration_token"] == token


async def test_poll_accepts_the_2_12_accept_header_and_answers_json(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    queue = unique("q")
    worker_id = await _register(http, server_url, queue)
    for kind in ("workflow-tasks", "activity-tasks"):
        reply = await send(
            http,
            "POST",
            f"{server_url}/api/worker/{kind}/poll",
            json={
                "worker_id": worker_id,
                "task_queue": queue,
                "timeout_seconds": 0,
                "poll_request_id": unique("p"),
            },
            headers=POLL_HEADERS,
        )
        assert reply.status == 200, reply.body
        assert reply.headers["Content-Type"].startswith("application/json")
        assert reply.body["task"] is None
        assert reply.body["protocol_version"] == WORKER_PROTOCOL_VERSION


async def test_poll_is_held_for_timeout_seconds(http: aiohttp.ClientSession, server_url: str) -> None:
    queue = unique("q")
    worker_id = await _register(http, server_url, queue)
    began = time.monotonic()
    reply = await send(
        http,
        "POST",
        f"{server_url}/api/worker/workflow-tasks/poll",
        json={"worker_id": worker_id, "task_queue": queue, "timeout_seconds": 1},
        headers=POLL_HEADERS,
    )
    assert reply.status == 200 and reply.body["task"] is None
    assert time.monotonic() - began >= 0.9


async def test_poll_before_register_is_412(http: aiohttp.ClientSession, server_url: str) -> None:
    reply = await send(
        http,
        "POST",
        f"{server_url}/api/worker/workflow-tasks/poll",
        json={"worker_id": unique("stranger"), "task_queue": unique("q"), "timeout_seconds": 0},
        headers=POLL_HEADERS,
    )
    assert reply.status == 412 and reply.reason == "worker_not_registered"


async def test_a_task_is_not_leased_into_a_poll_whose_client_left(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    queue = unique("q")
    worker_id = await _register(http, server_url, queue)
    poll_body = {"worker_id": worker_id, "task_queue": queue, "timeout_seconds": 20}
    abandoned = asyncio.create_task(
        send(
            http, "POST", f"{server_url}/api/worker/workflow-tasks/poll", json=poll_body, headers=POLL_HEADERS
        )
    )
    await asyncio.sleep(0.3)
    abandoned.cancel()  # the 2.12.0 worker does this to its polls when it stops
    await asyncio.gather(abandoned, return_exceptions=True)
    await asyncio.sleep(0.3)
    workflow_id = unique("wf")
    started = await send(
        http,
        "POST",
        f"{server_url}/api/workflows",
        json={"workflow_type": "tests.gone", "workflow_id": workflow_id, "task_queue": queue},
        headers=CONTROL_HEADERS,
    )
    assert started.status == 201, started.body
    # A fresh poll gets the task at once; had it been leased to the dead poll, it would wait out the lease.
    began = time.monotonic()
    reply = await send(
        http,
        "POST",
        f"{server_url}/api/worker/workflow-tasks/poll",
        json={**poll_body, "timeout_seconds": 5},
        headers=POLL_HEADERS,
    )
    assert reply.status == 200, reply.body
    assert reply.body["task"] is not None
    assert reply.body["task"]["workflow_id"] == workflow_id
    assert reply.body["task"]["workflow_task_attempt"] == 1
    assert time.monotonic() - began < 4
