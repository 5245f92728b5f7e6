"""Our start extensions over HTTP: eager workflow start (only a caller that may use the worker
plane gets a lease) and waiting for the result."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from api_support import CONTROL_HEADERS, POLL_HEADERS, WORKER_HEADERS, send, unique
from server_process import DwServer


async def test_the_lease_needs_a_token_with_the_worker_role(
    http: aiohttp.ClientSession, dw_server: Callable[..., DwServer]
) -> None:
    # "both" is configured as the worker and the operator token, so it holds both roles.
    url = dw_server(
        "--auth", "token", "--worker-token", "both", "--operator-token", "both", "--admin-token", "admin"
    ).url  # fmt: skip
    queue = unique("q")
    worker_id = unique("w")
    registered = await send(
        http,
        "POST",
        f"{url}/api/worker/register",
        json={"worker_id": worker_id, "task_queue": queue, "runtime": "python"},
        headers=WORKER_HEADERS,
        token="both",
    )
    assert registered.status == 201

    async def start(token: str) -> dict[str, object]:
        reply = await send(
            http,
            "POST",
            f"{url}/api/workflows",
            json={
                "workflow_type": "t",
                "workflow_id": unique("wf"),
                "task_queue": queue,
                "eager_worker_id": worker_id,
            },
            headers=CONTROL_HEADERS,
            token=token,
        )
        assert reply.status == 201, reply.body
        body: dict[str, object] = reply.body
        return body

    admin = await start("admin")  # control plane only: starts plainly
    assert admin["eager_workflow_task"] is None
    both = await start("both")
    task = both["eager_workflow_task"]
    assert isinstance(task, dict) and task["lease_owner"] == worker_id
    polled = await send(
        http,
        "POST",
        f"{url}/api/worker/workflow-tasks/poll",
        json={"worker_id": worker_id, "task_queue": queue, "timeout_seconds": 1},
        headers=POLL_HEADERS,
        token="both",
    )
    assert polled.status == 200 and polled.body["task"]["run_id"] == admin["run_id"]


async def test_a_bad_eager_worker_id_is_422(http: aiohttp.ClientSession, server_url: str) -> None:
    reply = await send(
        http,
        "POST",
        f"{server_url}/api/workflows",
        json={"workflow_type": "t", "workflow_id": unique("wf"), "eager_worker_id": 5},
        headers=CONTROL_HEADERS,
    )
    assert reply.status == 422 and reply.reason == "validation_failed"
    assert "eager_worker_id" in reply.body["errors"]


async def test_wait_for_result_is_bounded_and_answers_the_result_body(
    http: aiohttp.ClientSession, server_url: str
) -> None:
    too_long = await send(
        http,
        "POST",
        f"{server_url}/api/workflows",
        json={"workflow_type": "t", "workflow_id": unique("wf"), "wait_for_result_seconds": 61},
        headers=CONTROL_HEADERS,
    )
    assert too_long.status == 422 and "wait_for_result_seconds" in too_long.body["errors"]
    no_wait = await send(
        http,
        "POST",
        f"{server_url}/api/workflows",
        json={"workflow_type": "t", "workflow_id": unique("wf"), "wait_for_result_seconds": 0},
        headers=CONTROL_HEADERS,
    )
    assert no_wait.status == 201
    assert no_wait.body["result"]["is_terminal"] is False
    assert no_wait.body["result"]["run_id"] == no_wait.body["run_id"]
