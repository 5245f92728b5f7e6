"""Signal, query and update a workflow (control-plane §6.4-6.6, run-targeted variants §6.8).

Bodies carry ``input`` (a JSON array of arguments or an Avro envelope). Signals take
``request_id`` (idempotency); updates take ``update_id`` (``request_id`` is accepted as its
alias, which is what 2.12.0 sends), ``wait_for`` and ``wait_timeout_seconds``.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from durable_workflow_server.api._auth import CONTROL_ROLES
from durable_workflow_server.api._checks import route, unless_client_leaves
from durable_workflow_server.api._context import Api, Call, Plane, Reply, RouteSpec
from durable_workflow_server.api._validate import Fields


def _spec(operation: str) -> RouteSpec:
    return RouteSpec(Plane.CONTROL, CONTROL_ROLES, operation=operation)


def _named(body: dict[str, Any], field: str, name: str) -> dict[str, Any]:
    body.setdefault(field, name)
    body["operation_name"] = name
    body["operation_name_field"] = field
    return body


def _input(body: dict[str, Any], fields: Fields) -> Any:
    value = body.get("input")
    if value is not None and not isinstance(value, list | dict):
        fields.fail("input", "The input field must be an array of arguments or a payload envelope.")
    return value


async def signal(call: Call) -> Reply:
    """``POST /api/workflows/{id}[/runs/{run_id}]/signal/{name}``: 202 ``signal_received``."""
    body = call.body_object()
    fields = Fields(body)
    request_id = fields.string("request_id")
    value = _input(body, fields)
    fields.done()
    name = call.path("name")
    result = await call.engine.signal_workflow(
        call.namespace,
        call.path("workflow_id"),
        call.request.path_params.get("run_id"),
        name,
        input=value,
        request_id=request_id,
    )
    return 202, _named(result, "signal_name", name)


async def query(call: Call) -> Reply:
    """``POST /api/workflows/{id}[/runs/{run_id}]/query/{name}``: 200 with the answer."""
    body = call.body_object()
    fields = Fields(body)
    value = _input(body, fields)
    fields.done()
    name = call.path("name")
    work = call.engine.query_workflow(
        call.namespace, call.path("workflow_id"), call.request.path_params.get("run_id"), name, input=value
    )
    # A caller that gives up frees the query task at once.
    result = await unless_client_leaves(call.request, work)
    return 200, _named(result, "query_name", name)


async def update(call: Call) -> Reply:
    """``POST /api/workflows/{id}[/runs/{run_id}]/update/{name}``: 200 completed, 202 accepted."""
    body = call.body_object()
    fields = Fields(body)
    update_id = fields.string("update_id")
    request_id = fields.string("request_id")
    wait_for = fields.string("wait_for", max_length=32)
    wait_timeout = fields.integer("wait_timeout_seconds", minimum=1, maximum=3600)
    if "wait_policy" in body:
        fields.fail("wait_policy", "The wait_policy field was removed; use wait_for.")
    value = _input(body, fields)
    fields.done()
    name = call.path("name")
    work = call.engine.update_workflow(
        call.namespace,
        call.path("workflow_id"),
        call.request.path_params.get("run_id"),
        name,
        input=value,
        update_id=update_id or request_id,
        wait_for=wait_for,
        wait_timeout_seconds=wait_timeout,
    )
    status, result = await unless_client_leaves(call.request, work)
    return status, _named(result, "update_name", name)


def routes(api: Api) -> list[Route]:
    """Return this resource's routes."""
    one = "/api/workflows/{workflow_id}"
    run = one + "/runs/{run_id}"
    found: list[Route] = []
    for base in (one, run):
        found += [
            route(api, base + "/signal/{name}", "POST", _spec("signal"), signal),
            route(api, base + "/query/{name}", "POST", _spec("query"), query),
            route(api, base + "/update/{name}", "POST", _spec("update"), update),
        ]
    return found
