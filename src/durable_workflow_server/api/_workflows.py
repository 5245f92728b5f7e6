"""Workflow control plane: start, list, describe, runs, history, cancel, terminate, result.

Routes follow control-plane §6; ``GET …/runs/{run_id}/result?wait_seconds=N`` is our extension
(a long poll for a run's outcome, so clients need not poll describe). Every response carries
the ``control_plane`` block, added by the shared renderer from the route's operation.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from durable_workflow_server.api._auth import CONTROL_ROLES, WORKER
from durable_workflow_server.api._checks import route, unless_client_leaves
from durable_workflow_server.api._context import Api, Call, Plane, Reply, RouteSpec
from durable_workflow_server.api._validate import MAX_DURATION_SECONDS, Fields

RESULT_WAIT_DEFAULT_SECONDS = 30
RESULT_WAIT_MAX_SECONDS = 60


def _spec(operation: str) -> RouteSpec:
    return RouteSpec(Plane.CONTROL, CONTROL_ROLES, operation=operation)


def _query(call: Call) -> dict[str, Any]:
    if not call.request.scope.get("query_string"):
        return {}
    return dict(call.request.query_params)


async def start(call: Call) -> Reply:
    """``POST /api/workflows``: 201 ``started_new``, or 200 ``returned_existing_active``.

    ``eager_worker_id`` (our extension) asks for the run's first workflow task leased to that
    worker in the start's own write, returned as ``eager_workflow_task`` (or null).
    ``wait_for_result_seconds`` (our extension, 0..60) holds the reply until the run closes or
    the wait passes, and adds ``result``: the body the result route would answer.
    """
    body = call.body_object()
    fields = Fields(body)
    fields.string("workflow_type", required=True)
    fields.string("workflow_id", max_length=128)
    fields.string("task_queue")
    fields.string("business_key")
    fields.string("duplicate_policy", max_length=32)
    fields.mapping("memo")
    fields.mapping("search_attributes")
    fields.integer("execution_timeout_seconds", maximum=MAX_DURATION_SECONDS)
    fields.integer("run_timeout_seconds", maximum=MAX_DURATION_SECONDS)
    eager_worker = fields.string("eager_worker_id")  # our extension ("Eager tasks")
    # Our extension: hold the reply until the run closes, as the result route would.
    wait = fields.integer("wait_for_result_seconds", minimum=0, maximum=RESULT_WAIT_MAX_SECONDS)
    if "input" in body and body["input"] is not None and not isinstance(body["input"], list | dict):
        fields.fail("input", "The input field must be an array of arguments or a payload envelope.")
    fields.done()
    if eager_worker is not None and call.principal is not None and WORKER not in call.principal.roles:
        # Only a caller that may use the worker plane may take a workflow task: start normally.
        body = {**body, "eager_worker_id": None}
    result = await call.engine.start_workflow(call.namespace, body)
    status = 201 if result.get("outcome") == "started_new" else 200
    if wait is not None:
        work = call.engine.await_run_result(
            call.namespace, result["workflow_id"], result["run_id"], wait_seconds=wait
        )
        result["result"] = await unless_client_leaves(call.request, work)
    return status, result


async def list_workflows(call: Call) -> Reply:
    """``GET /api/workflows``: runs, newest first, filtered and paged."""
    fields = Fields(_query(call))
    workflow_type = fields.string("workflow_type")
    status = fields.string("status", max_length=32)
    query = fields.string("query", max_length=4096)
    page_size = fields.integer("page_size")
    page_token = fields.string("next_page_token", max_length=512)
    fields.done()
    return 200, await call.engine.list_workflows(
        call.namespace,
        workflow_type=workflow_type,
        status=status,
        query=query,
        page_size=page_size,
        page_token=page_token,
    )


async def describe(call: Call) -> Reply:
    """``GET /api/workflows/{workflow_id}``: the current run."""
    return 200, await call.engine.describe_workflow(call.namespace, call.path("workflow_id"))


async def list_runs(call: Call) -> Reply:
    """``GET /api/workflows/{workflow_id}/runs``: every run, oldest first."""
    return 200, await call.engine.list_runs(call.namespace, call.path("workflow_id"))


async def describe_run(call: Call) -> Reply:
    """``GET /api/workflows/{workflow_id}/runs/{run_id}``: one run."""
    return 200, await call.engine.describe_workflow(
        call.namespace, call.path("workflow_id"), call.path("run_id")
    )


async def history(call: Call) -> Reply:
    """``GET …/runs/{run_id}/history``: a page of events; ``wait_new_event`` long-polls."""
    fields = Fields(_query(call))
    page_size = fields.integer("page_size")
    page_token = fields.string("next_page_token", max_length=512)
    wait_new_event = fields.boolean("wait_new_event")
    fields.done()
    work = call.engine.run_history(
        call.namespace,
        call.path("workflow_id"),
        call.path("run_id"),
        page_size=page_size,
        page_token=page_token,
        wait_new_event=bool(wait_new_event),
    )
    return 200, await (unless_client_leaves(call.request, work) if wait_new_event else work)


def _command_fields(call: Call) -> tuple[str | None, str | None]:
    fields = Fields(call.body_object())
    reason = fields.string("reason", max_length=1000)
    request_id = fields.string("request_id")
    fields.done()
    return reason, request_id


async def cancel(call: Call) -> Reply:
    """``POST /api/workflows/{workflow_id}[/runs/{run_id}]/cancel``: close the run as cancelled."""
    reason, request_id = _command_fields(call)
    return 200, await call.engine.cancel_workflow(
        call.namespace,
        call.path("workflow_id"),
        call.request.path_params.get("run_id"),
        reason=reason,
        request_id=request_id,
    )


async def terminate(call: Call) -> Reply:
    """``POST /api/workflows/{workflow_id}[/runs/{run_id}]/terminate``: close the run as terminated."""
    reason, request_id = _command_fields(call)
    return 200, await call.engine.terminate_workflow(
        call.namespace,
        call.path("workflow_id"),
        call.request.path_params.get("run_id"),
        reason=reason,
        request_id=request_id,
    )


async def result(call: Call) -> Reply:
    """``GET …/runs/{run_id}/result?wait_seconds=N``: hold until the run closes (0..60 s)."""
    fields = Fields(_query(call))
    wait_seconds = fields.integer("wait_seconds", minimum=0, maximum=RESULT_WAIT_MAX_SECONDS)
    fields.done()
    work = call.engine.await_run_result(
        call.namespace,
        call.path("workflow_id"),
        call.path("run_id"),
        wait_seconds=RESULT_WAIT_DEFAULT_SECONDS if wait_seconds is None else wait_seconds,
    )
    # A held wait ends with its caller, so a client that gives up frees the server at once.
    return 200, await unless_client_leaves(call.request, work)


def routes(api: Api) -> list[Route]:
    """Return this resource's routes."""
    one = "/api/workflows/{workflow_id}"
    run = one + "/runs/{run_id}"
    return [
        route(api, "/api/workflows", "POST", _spec("start"), start),
        route(api, "/api/workflows", "GET", _spec("list"), list_workflows),
        route(api, one, "GET", _spec("describe"), describe),
        route(api, one + "/runs", "GET", _spec("list_runs"), list_runs),
        route(api, run, "GET", _spec("describe_run"), describe_run),
        route(api, run + "/history", "GET", _spec("history"), history),
        route(api, run + "/result", "GET", _spec("result"), result),
        route(api, one + "/cancel", "POST", _spec("cancel"), cancel),
        route(api, one + "/terminate", "POST", _spec("terminate"), terminate),
        route(api, run + "/cancel", "POST", _spec("cancel"), cancel),
        route(api, run + "/terminate", "POST", _spec("terminate"), terminate),
    ]
