"""Worker registration, heartbeat and deregistration (worker-plane §3).

Deregistration is what the 2.12.0 ``Worker.stop()`` calls: ``DELETE
/api/worker/registrations/{worker_id}``, plus the fenced ``POST …/{worker_id}/deregister``.
"""

from __future__ import annotations

from starlette.routing import Route

from durable_workflow_server.api._auth import WORKER_ROLES
from durable_workflow_server.api._checks import route
from durable_workflow_server.api._context import Api, Call, Plane, Reply, RouteSpec
from durable_workflow_server.api._validate import Fields

_WORKER = RouteSpec(Plane.WORKER, WORKER_ROLES)


async def register(call: Call) -> Reply:
    """``POST /api/worker/register``: upsert the worker's registration; 201."""
    body = call.body_object()
    fields = Fields(body)
    fields.string("worker_id")
    fields.string("task_queue", required=True)
    fields.string("runtime", required=True, max_length=64)
    fields.string("build_id")
    fields.string("sdk_version")
    fields.array("supported_workflow_types")
    fields.array("supported_activity_types")
    fields.integer("max_concurrent_workflow_tasks", minimum=1)
    fields.integer("max_concurrent_activity_tasks", minimum=1)
    fields.done()
    return 201, await call.engine.register_worker(call.namespace, body)


async def heartbeat(call: Call) -> Reply:
    """``POST /api/worker/heartbeat``: record liveness; 404 ``worker_not_registered`` if unknown."""
    body = call.body_object()
    fields = Fields(body)
    fields.string("worker_id", required=True)
    fields.done()
    return 200, await call.engine.heartbeat_worker(call.namespace, body)


async def deregister(call: Call) -> Reply:
    """``DELETE /api/worker/registrations/{worker_id}``: remove it and release its leases."""
    return 200, await call.engine.deregister_worker(call.namespace, call.path("worker_id"))


async def deregister_fenced(call: Call) -> Reply:
    """``POST /api/worker/registrations/{worker_id}/deregister``: as DELETE, echoing the token."""
    body = call.body_object()
    fields = Fields(body)
    token = fields.string("registration_token", max_length=64)
    fields.done()
    result = await call.engine.deregister_worker(call.namespace, call.path("worker_id"))
    if token is not None:
        result["registration_token"] = token
    return 200, result


def routes(api: Api) -> list[Route]:
    """Return this resource's routes."""
    return [
        route(api, "/api/worker/register", "POST", _WORKER, register),
        route(api, "/api/worker/heartbeat", "POST", _WORKER, heartbeat),
        route(api, "/api/worker/registrations/{worker_id}", "DELETE", _WORKER, deregister),
        route(api, "/api/worker/registrations/{worker_id}/deregister", "POST", _WORKER, deregister_fenced),
    ]
