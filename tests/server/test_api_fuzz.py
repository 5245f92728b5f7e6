"""Junk in every field of every route: always a 4xx with a reason, never a 500 or a hang."""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp
import pytest
from api_support import CONTROL_HEADERS, WORKER_HEADERS, send, unique

JUNK: list[Any] = [
    None,
    "",
    "x" * 2000,
    -1,
    0,
    2**63 - 1,
    2**64 - 1,
    1.5,
    True,
    [],
    {},
    [{"a": 1}],
    {"nested": {"deep": []}},
]

WORKER_ROUTES: dict[str, list[str]] = {
    "/api/worker/register": ["worker_id", "task_queue", "runtime", "build_id", "supported_workflow_types"],
    "/api/worker/heartbeat": ["worker_id", "task_slots"],
    "/api/worker/workflow-tasks/poll": ["worker_id", "task_queue", "timeout_seconds", "history_page_size"],
    "/api/worker/activity-tasks/poll": ["worker_id", "task_queue", "timeout_seconds", "poll_request_id"],
    "/api/worker/workflow-tasks/t1/history": [
        "lease_owner",
        "workflow_task_attempt",
        "next_history_page_token",
    ],
    "/api/worker/workflow-tasks/t1/heartbeat": ["lease_owner", "workflow_task_attempt"],
    "/api/worker/workflow-tasks/t1/complete": ["lease_owner", "workflow_task_attempt", "commands"],
    "/api/worker/workflow-tasks/t1/fail": ["lease_owner", "workflow_task_attempt", "failure"],
    "/api/worker/activity-tasks/t1/complete": ["activity_attempt_id", "lease_owner", "result"],
    "/api/worker/activity-tasks/t1/fail": ["activity_attempt_id", "lease_owner", "failure"],
    "/api/worker/activity-tasks/t1/heartbeat": ["activity_attempt_id", "lease_owner", "details"],
}
CONTROL_ROUTES: dict[str, list[str]] = {
    "/api/workflows": [
        "workflow_type",
        "workflow_id",
        "task_queue",
        "input",
        "memo",
        "search_attributes",
        "duplicate_policy",
        "execution_timeout_seconds",
        "business_key",
    ],
    "/api/workflows/wf-fuzz/cancel": ["reason", "request_id"],
    "/api/workflows/wf-fuzz/terminate": ["reason", "request_id"],
}
QUERIES: dict[str, list[str]] = {
    "/api/workflows": ["page_size", "status", "next_page_token", "workflow_type"],
    "/api/workflows/wf-fuzz/runs/r1/history": ["page_size", "next_page_token", "wait_new_event"],
    "/api/workflows/wf-fuzz/runs/r1/result": ["wait_seconds"],
}
QUERY_JUNK = ["", "-1", "abc", "99999999999999999999", "0", "true", "%00"]


def _good(path: str) -> dict[str, Any]:
    return {
        "worker_id": unique("w"),
        "task_queue": unique("q"),
        "runtime": "python",
        "timeout_seconds": 0,
        "lease_owner": "w",
        "workflow_task_attempt": 1,
        "activity_attempt_id": "a1",
        "commands": [{"type": "complete_workflow"}],
        "failure": {"message": "m"},
        "workflow_type": "tests.fuzz",
        "workflow_id": unique("wf"),
    }


@pytest.mark.parametrize(("path", "field"), [(p, f) for p, fs in WORKER_ROUTES.items() for f in fs])
async def test_worker_routes_refuse_junk_cleanly(
    http: aiohttp.ClientSession, server_url: str, path: str, field: str
) -> None:
    for value in JUNK:
        body = {**_good(path), field: value}
        reply = await send(http, "POST", server_url + path, json=body, headers=WORKER_HEADERS)
        assert reply.status < 500, (field, value, reply.body)
        if reply.status >= 400:
            assert isinstance(reply.reason, str), reply.body


@pytest.mark.parametrize(("path", "field"), [(p, f) for p, fs in CONTROL_ROUTES.items() for f in fs])
async def test_control_routes_refuse_junk_cleanly(
    http: aiohttp.ClientSession, server_url: str, path: str, field: str
) -> None:
    for value in JUNK:
        body = {**_good(path), field: value}
        reply = await send(http, "POST", server_url + path, json=body, headers=CONTROL_HEADERS)
        assert reply.status < 500, (field, value, reply.body)
        if reply.status >= 400:
            assert isinstance(reply.reason, str), reply.body


@pytest.mark.parametrize(("path", "field"), [(p, f) for p, fs in QUERIES.items() for f in fs])
async def test_query_parameters_refuse_junk_cleanly(
    http: aiohttp.ClientSession, server_url: str, path: str, field: str
) -> None:
    for value in QUERY_JUNK:
        params = {field: value}
        if field != "wait_seconds" and path.endswith("/result"):
            params["wait_seconds"] = "0"
        reply = await send(http, "GET", server_url + path, headers=CONTROL_HEADERS, params=params)
        assert reply.status < 500, (field, value, reply.body)


async def test_odd_bodies_are_refused_cleanly(http: aiohttp.ClientSession, server_url: str) -> None:
    bodies = [b"null", b"[]", b'"text"', b"1e999", b"[" * 5000, b"\xff\xfe", b'{"a": 18446744073709551616}']
    for raw, path in itertools.product(bodies, ["/api/worker/register", "/api/workflows"]):
        headers = {"Content-Type": "application/json", **WORKER_HEADERS, **CONTROL_HEADERS}
        reply = await send(http, "POST", server_url + path, data=raw, headers=headers)
        assert 400 <= reply.status < 500, (raw[:20], reply.body)


#: Each is invalid by worker-plane §5, or names a duration too long to end on a date.
BAD_COMMANDS: list[Any] = [
    [{"type": "schedule_activity"}],
    [{"type": "start_timer", "delay_seconds": -1}],
    [{"type": "start_timer", "delay_seconds": 2**63 - 1}],
    [{"type": "schedule_activity", "activity_type": "a", "schedule_to_close_timeout": 2**63 - 1}],
    [{"type": "schedule_activity", "activity_type": "a", "retry_policy": {"backoff_seconds": [2**62]}}],
    [{"type": "complete_workflow", "result": {"codec": "json", "blob": "x"}}],
    [{"type": "fail_workflow"}],
    [{"type": "record_version_marker", "change_id": "c", "version": 2**64 - 1, "min_supported": 0}],
    [{"type": "upsert_search_attributes", "attributes": {"bad key": 1}}],
    [{"type": "record_side_effect", "result": 5}],
    [{"type": "no_such_command"}],
    [{"type": "complete_workflow"}, {"type": "complete_workflow"}],
]


async def test_junk_commands_are_refused_and_the_task_survives(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    queue = unique("q")
    worker_id = unique("w")
    body = {"worker_id": worker_id, "task_queue": queue, "runtime": "python"}
    await send(http, "POST", server_url + "/api/worker/register", json=body, headers=WORKER_HEADERS)
    start = {"workflow_type": "tests.fuzz", "workflow_id": unique("wf"), "task_queue": queue}
    await send(http, "POST", server_url + "/api/workflows", json=start, headers=CONTROL_HEADERS)
    poll = {"worker_id": worker_id, "task_queue": queue, "timeout_seconds": 5}
    task = (
        await send(
            http, "POST", server_url + "/api/worker/workflow-tasks/poll", json=poll, headers=WORKER_HEADERS
        )
    ).body["task"]
    assert task is not None
    url = f"{server_url}/api/worker/workflow-tasks/{task['task_id']}/complete"
    lease = {"lease_owner": worker_id, "workflow_task_attempt": task["workflow_task_attempt"]}
    for commands in BAD_COMMANDS:
        reply = await send(http, "POST", url, json={**lease, "commands": commands}, headers=WORKER_HEADERS)
        assert 400 <= reply.status < 500, (commands, reply.body)
    done = await send(
        http, "POST", url, json={**lease, "commands": [{"type": "complete_workflow"}]}, headers=WORKER_HEADERS
    )
    assert done.status == 200, done.body
