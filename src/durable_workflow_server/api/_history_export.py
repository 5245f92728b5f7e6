"""History export (control-plane §6.10): ``GET …/history/export`` answers a replay bundle.

The bundle has no ``control_plane`` block (the route has no operation), as upstream's.
"""

from __future__ import annotations

from starlette.routing import Route

from durable_workflow_server.api._auth import CONTROL_ROLES
from durable_workflow_server.api._checks import route
from durable_workflow_server.api._context import Api, Call, Plane, Reply, RouteSpec

_SPEC = RouteSpec(Plane.CONTROL, CONTROL_ROLES)


async def export(call: Call) -> Reply:
    """``GET /api/workflows/{workflow_id}[/runs/{run_id}]/history/export``."""
    return 200, await call.engine.export_history(
        call.namespace, call.path("workflow_id"), call.request.path_params.get("run_id")
    )


def routes(api: Api) -> list[Route]:
    """Return this resource's routes."""
    one = "/api/workflows/{workflow_id}"
    return [
        route(api, one + "/history/export", "GET", _SPEC, export),
        route(api, one + "/runs/{run_id}/history/export", "GET", _SPEC, export),
    ]
