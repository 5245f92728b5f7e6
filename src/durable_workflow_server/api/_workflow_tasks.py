"""Workflow tasks: long poll, history pages, heartbeat, complete, fail (worker-plane §4).

A poll is held by the engine until a task is ready or ``timeout_seconds`` pass. The engine is
told how to notice a caller that went away, so a task is never leased into a dead poll (the
2.12.0 worker cancels its polls mid-request when it stops).
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from durable_workflow_server.api._auth import WORKER_ROLES
from durable_workflow_server.api._checks import route, unless_client_leaves
from durable_workflow_server.api._context import Api, Call, Plane, Reply, RouteSpec
from durable_workflow_server.api._validate import MAX_DURATION_SECONDS, Fields

_WORKER = RouteSpec(Plane.WORKER, WORKER_ROLES)

#: Command fields holding seconds; the engine turns them into dates, which must exist.
_DURATION_FIELDS = (
    "delay_seconds",
    "timeout_seconds",
    "start_to_close_timeout",
    "schedule_to_start_timeout",
    "schedule_to_close_timeout",
    "heartbeat_timeout",
    "execution_timeout_seconds",
    "run_timeout_seconds",
)


async def poll(call: Call) -> Reply:
    """``POST /api/worker/workflow-tasks/poll``: ``{"task": {...}}`` or ``{"task": null}``."""
    fields = Fields(call.body_object())
    worker_id = fields.string("worker_id", required=True)
    task_queue = fields.string("task_queue", required=True)
    build_id = fields.string("build_id")
    poll_request_id = fields.string("poll_request_id")
    timeout_seconds = fields.number("timeout_seconds")  # the engine clamps it to 0..60
    history_page_size = fields.integer("history_page_size", minimum=1, maximum=1000)
    fields.done()
    assert worker_id is not None and task_queue is not None  # done() raised otherwise
    call.api.claim_poll_slot("workflow_task", task_queue)
    try:
        result = await unless_client_leaves(
            call.request,
            call.engine.poll_workflow_task(
                call.namespace,
                worker_id=worker_id,
                task_queue=task_queue,
                build_id=build_id,
                timeout_seconds=timeout_seconds,
                poll_request_id=poll_request_id,
                history_page_size=history_page_size,
            ),
        )
    finally:
        call.api.release_poll_slot()
    return 200, result


def _lease(fields: Fields) -> tuple[str, int]:
    lease_owner = fields.string("lease_owner", required=True)
    attempt = fields.integer("workflow_task_attempt", required=True, minimum=1)
    return lease_owner or "", attempt or 0


async def history(call: Call) -> Reply:
    """``POST /api/worker/workflow-tasks/{task_id}/history``: the next page of the task's history."""
    fields = Fields(call.body_object())
    lease_owner, attempt = _lease(fields)
    page_token = fields.string("next_history_page_token", max_length=64)
    page_size = fields.integer("history_page_size", minimum=1, maximum=1000)
    fields.done()
    return 200, await call.engine.workflow_task_history(
        call.namespace,
        call.path("task_id"),
        lease_owner=lease_owner,
        attempt=attempt,
        page_token=page_token,
        page_size=page_size,
    )


async def heartbeat(call: Call) -> Reply:
    """``POST /api/worker/workflow-tasks/{task_id}/heartbeat``: renew the lease."""
    fields = Fields(call.body_object())
    lease_owner, attempt = _lease(fields)
    fields.done()
    return 200, await call.engine.heartbeat_workflow_task(
        call.namespace, call.path("task_id"), lease_owner=lease_owner, attempt=attempt
    )


async def complete(call: Call) -> Reply:
    """``POST /api/worker/workflow-tasks/{task_id}/complete``: apply the task's commands."""
    fields = Fields(call.body_object())
    lease_owner, attempt = _lease(fields)
    commands = fields.array("commands", required=True, min_items=1)
    for index, command in enumerate(commands or ()):
        if not isinstance(command, dict):
            fields.fail(f"commands.{index}", "Each command must be an object.")
        elif not isinstance(command.get("type"), str) or not command["type"]:
            fields.fail(f"commands.{index}.type", "The command type field is required.")
        else:
            _check_durations(fields, index, command)
    # Our extension (protocol-decisions.md, "Eager tasks"): the worker's free activity slots.
    eager_slots = fields.integer("eager_activity_slots", minimum=0, maximum=1000)
    fields.done()
    if eager_slots is not None:
        return 200, await call.engine.eager.complete_workflow_task(
            call.namespace,
            call.path("task_id"),
            lease_owner=lease_owner,
            attempt=attempt,
            commands=commands or [],
            eager_activity_slots=eager_slots,
        )
    return 200, await call.engine.complete_workflow_task(
        call.namespace,
        call.path("task_id"),
        lease_owner=lease_owner,
        attempt=attempt,
        commands=commands or [],
    )


def _check_durations(fields: Fields, index: int, command: dict[str, Any]) -> None:
    """Refuse durations too long to end on a date; their meaning is the engine's to check."""
    values = [(key, command.get(key)) for key in _DURATION_FIELDS]
    policy = command.get("retry_policy")
    if isinstance(policy, dict) and isinstance(policy.get("backoff_seconds"), list):
        values += [(f"retry_policy.backoff_seconds.{i}", v) for i, v in enumerate(policy["backoff_seconds"])]
    for key, value in values:
        if isinstance(value, int | float) and not isinstance(value, bool) and value > MAX_DURATION_SECONDS:
            fields.fail(
                f"commands.{index}.{key}",
                f"The {key} field must not be greater than {MAX_DURATION_SECONDS} seconds.",
            )


async def fail(call: Call) -> Reply:
    """``POST /api/worker/workflow-tasks/{task_id}/fail``: record a task (not workflow) failure."""
    fields = Fields(call.body_object())
    lease_owner, attempt = _lease(fields)
    failure = fields.mapping("failure", required=True)
    if failure is not None and not isinstance(failure.get("message", ""), str):
        fields.fail("failure.message", "The failure.message field must be a string.")
    fields.done()
    return 200, await call.engine.fail_workflow_task(
        call.namespace,
        call.path("task_id"),
        lease_owner=lease_owner,
        attempt=attempt,
        failure=failure or {},
    )


def routes(api: Api) -> list[Route]:
    """Return this resource's routes."""
    base = "/api/worker/workflow-tasks"
    return [
        route(api, f"{base}/poll", "POST", _WORKER, poll),
        route(api, f"{base}/{{task_id}}/history", "POST", _WORKER, history),
        route(api, f"{base}/{{task_id}}/heartbeat", "POST", _WORKER, heartbeat),
        route(api, f"{base}/{{task_id}}/complete", "POST", _WORKER, complete),
        route(api, f"{base}/{{task_id}}/fail", "POST", _WORKER, fail),
    ]
