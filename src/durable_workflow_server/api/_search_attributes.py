"""Search-attribute registrations (control-plane §8): list, register, delete."""

from __future__ import annotations

from starlette.routing import Route

from durable_workflow_server.api._auth import CONTROL_ROLES
from durable_workflow_server.api._checks import route
from durable_workflow_server.api._context import Api, Call, Plane, Reply, RouteSpec


def _spec(operation: str) -> RouteSpec:
    return RouteSpec(Plane.CONTROL, CONTROL_ROLES, operation=operation)


async def list_attributes(call: Call) -> Reply:
    """``GET /api/search-attributes``: system and custom attributes with their types."""
    return 200, await call.engine.list_search_attributes(call.namespace)


async def register(call: Call) -> Reply:
    """``POST /api/search-attributes`` ``{name, type}``: 201 ``created``."""
    return 201, await call.engine.register_search_attribute(call.namespace, call.body_object())


async def delete(call: Call) -> Reply:
    """``DELETE /api/search-attributes/{name}``: 200 ``deleted``."""
    return 200, await call.engine.delete_search_attribute(call.namespace, call.path("name"))


def routes(api: Api) -> list[Route]:
    """Return this resource's routes."""
    base = "/api/search-attributes"
    return [
        route(api, base, "GET", _spec("list_search_attributes"), list_attributes),
        route(api, base, "POST", _spec("register_search_attribute"), register),
        route(api, base + "/{name}", "DELETE", _spec("delete_search_attribute"), delete),
    ]
