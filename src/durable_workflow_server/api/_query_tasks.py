"""Query tasks for workers: long poll, complete, fail (worker-plane §9 "Queries")."""

from __future__ import annotations

from starlette.routing import Route

from durable_workflow_server.api._auth import WORKER_ROLES
from durable_workflow_server.api._checks import route, unless_client_leaves
from durable_workflow_server.api._context import Api, Call, Plane, Reply, RouteSpec
from durable_workflow_server.api._validate import Fields

_WORKER = RouteSpec(Plane.WORKER, WORKER_ROLES)


async def poll(call: Call) -> Reply:
    """``POST /api/worker/query-tasks/poll``: ``{"task": {...}}`` or ``{"task": null}``."""
    fields = Fields(call.body_object())
    worker_id = fields.string("worker_id", required=True)
    task_queue = fields.string("task_queue", required=True)
    build_id = fields.string("build_id")
    fields.string("poll_request_id")
    timeout_seconds = fields.number("timeout_seconds")
    fields.done()
    assert worker_id is not None and task_queue is not None
    call.api.claim_poll_slot("query_task", task_queue)
    try:
        result = await unless_client_leaves(
            call.request,
            call.engine.poll_query_task(
                call.namespace,
                worker_id=worker_id,
                task_queue=task_queue,
                build_id=build_id,
                timeout_seconds=timeout_seconds,
            ),
        )
    finally:
        call.api.release_poll_slot()
    return 200, result


def _lease(fields: Fields) -> tuple[str | None, int | None]:
    lease_owner = fields.string("lease_owner", required=True)
    attempt = fields.integer("query_task_attempt", minimum=1)
    return lease_owner, attempt


async def complete(call: Call) -> Reply:
    """``POST /api/worker/query-tasks/{task_id}/complete``: the answer, as ``result_envelope``."""
    body = call.body_object()
    fields = Fields(body)
    lease_owner, attempt = _lease(fields)
    envelope = fields.mapping("result_envelope", required=True)
    fields.done()
    return 200, await call.engine.complete_query_task(
        call.namespace,
        call.path("task_id"),
        lease_owner=lease_owner,
        attempt=attempt,
        result_envelope=envelope,
    )


async def fail(call: Call) -> Reply:
    """``POST /api/worker/query-tasks/{task_id}/fail``: the query failed (reason, message)."""
    fields = Fields(call.body_object())
    lease_owner, attempt = _lease(fields)
    failure = fields.mapping("failure", required=True)
    if failure is not None and not isinstance(failure.get("message"), str):
        fields.fail("failure.message", "The failure.message field is required.")
    fields.done()
    return 200, await call.engine.fail_query_task(
        call.namespace, call.path("task_id"), lease_owner=lease_owner, attempt=attempt, failure=failure
    )


def routes(api: Api) -> list[Route]:
    """Return this resource's routes."""
    base = "/api/worker/query-tasks"
    return [
        route(api, f"{base}/poll", "POST", _WORKER, poll),
        route(api, f"{base}/{{task_id}}/complete", "POST", _WORKER, complete),
        route(api, f"{base}/{{task_id}}/fail", "POST", _WORKER, fail),
    ]
