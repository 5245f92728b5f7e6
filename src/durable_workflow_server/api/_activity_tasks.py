"""Activity tasks: long poll, complete, fail, heartbeat (worker-plane §8).

Every call after the poll is fenced by ``activity_attempt_id`` and ``lease_owner``; the 2.12.0
worker always sends both.
"""

from __future__ import annotations

from starlette.routing import Route

from durable_workflow_server.api._auth import WORKER_ROLES
from durable_workflow_server.api._checks import route, unless_client_leaves
from durable_workflow_server.api._context import Api, Call, Plane, Reply, RouteSpec
from durable_workflow_server.api._validate import Fields

_WORKER = RouteSpec(Plane.WORKER, WORKER_ROLES)


async def poll(call: Call) -> Reply:
    """``POST /api/worker/activity-tasks/poll``: ``{"task": {...}}`` or ``{"task": null}``."""
    fields = Fields(call.body_object())
    worker_id = fields.string("worker_id", required=True)
    task_queue = fields.string("task_queue", required=True)
    build_id = fields.string("build_id")
    poll_request_id = fields.string("poll_request_id")
    timeout_seconds = fields.number("timeout_seconds")  # the engine clamps it to 0..60
    fields.done()
    assert worker_id is not None and task_queue is not None  # done() raised otherwise
    call.api.claim_poll_slot("activity_task", task_queue)
    try:
        result = await unless_client_leaves(
            call.request,
            call.engine.poll_activity_task(
                call.namespace,
                worker_id=worker_id,
                task_queue=task_queue,
                build_id=build_id,
                timeout_seconds=timeout_seconds,
                poll_request_id=poll_request_id,
            ),
        )
    finally:
        call.api.release_poll_slot()
    return 200, result


def _attempt(fields: Fields) -> tuple[str, str]:
    attempt_id = fields.string("activity_attempt_id", required=True)
    lease_owner = fields.string("lease_owner", required=True)
    return attempt_id or "", lease_owner or ""


async def complete(call: Call) -> Reply:
    """``POST /api/worker/activity-tasks/{task_id}/complete``: record the result."""
    body = call.body_object()
    fields = Fields(body)
    attempt_id, lease_owner = _attempt(fields)
    eager = fields.boolean("eager_workflow_task")  # our extension ("Eager tasks")
    fields.done()
    plane = call.engine.eager if eager else call.engine
    return 200, await plane.complete_activity_task(
        call.namespace,
        call.path("task_id"),
        attempt_id=attempt_id,
        lease_owner=lease_owner,
        result=body.get("result"),
    )


async def fail(call: Call) -> Reply:
    """``POST /api/worker/activity-tasks/{task_id}/fail``: record a failure; retries may follow."""
    fields = Fields(call.body_object())
    attempt_id, lease_owner = _attempt(fields)
    failure = fields.mapping("failure", required=True)
    if failure is not None and not isinstance(failure.get("message"), str):
        fields.fail("failure.message", "The failure.message field is required.")
    eager = fields.boolean("eager_workflow_task")  # our extension ("Eager tasks")
    fields.done()
    plane = call.engine.eager if eager else call.engine
    return 200, await plane.fail_activity_task(
        call.namespace,
        call.path("task_id"),
        attempt_id=attempt_id,
        lease_owner=lease_owner,
        failure=failure or {},
    )


async def heartbeat(call: Call) -> Reply:
    """``POST /api/worker/activity-tasks/{task_id}/heartbeat``: liveness; says whether to stop."""
    fields = Fields(call.body_object())
    attempt_id, lease_owner = _attempt(fields)
    details = fields.mapping("details")
    fields.done()
    return 200, await call.engine.heartbeat_activity_task(
        call.namespace,
        call.path("task_id"),
        attempt_id=attempt_id,
        lease_owner=lease_owner,
        details=details,
    )


def routes(api: Api) -> list[Route]:
    """Return this resource's routes."""
    base = "/api/worker/activity-tasks"
    return [
        route(api, f"{base}/poll", "POST", _WORKER, poll),
        route(api, f"{base}/{{task_id}}/complete", "POST", _WORKER, complete),
        route(api, f"{base}/{{task_id}}/fail", "POST", _WORKER, fail),
        route(api, f"{base}/{{task_id}}/heartbeat", "POST", _WORKER, heartbeat),
    ]
