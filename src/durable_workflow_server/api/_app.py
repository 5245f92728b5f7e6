"""The route table and the Starlette application around it.

Unknown routes answer 404 ``not_found`` and known routes called with the wrong verb 405
``method_not_allowed``, in the JSON envelope of their plane. No middleware is installed: the
checks run inside each endpoint (see ``_checks``), and compression happens at render time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from durable_workflow_server.api import (
    _activity_tasks,
    _cluster,
    _history_export,
    _query_tasks,
    _search_attributes,
    _workers,
    _workflow_tasks,
    _workflows,
)
from durable_workflow_server.api import _messages as _message_routes
from durable_workflow_server.api._context import Api
from durable_workflow_server.api._errors import ApiError
from durable_workflow_server.api._manifest import DEFAULT_WORKFLOW_TASK_COMMANDS
from durable_workflow_server.api._render import render_error, unmatched_spec
from durable_workflow_server.api._router import Endpoint, IndexedRouter
from durable_workflow_server.config import Settings
from durable_workflow_server.engine import Engine

logger = logging.getLogger("durable_workflow_server.api")

#: ``(app) -> async context manager`` run around serving (start and stop the engine).
Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


def api_routes(api: Api) -> list[Route]:
    """Return every API route, grouped by resource.

    Args:
        api: the shared state the handlers use.

    Returns:
        The route table.
    """
    return _one_route_per_path(_resource_routes(api))


def _resource_routes(api: Api) -> list[Route]:
    return [
        *_workflow_tasks.routes(api),
        *_activity_tasks.routes(api),
        *_workflows.routes(api),
        *_message_routes.routes(api),
        *_query_tasks.routes(api),
        *_search_attributes.routes(api),
        *_history_export.routes(api),
        *_workers.routes(api),
        *_cluster.routes(api),
    ]


def _one_route_per_path(routes: list[Route]) -> list[Route]:
    """Merge routes that share a path, so a wrong verb's 405 lists every allowed method."""
    merged: list[Route] = []
    for path, table in _endpoints_by_path(routes).items():
        group = [one for one in routes if one.path == path]
        if len(group) == 1:
            merged.append(group[0])
            continue

        async def dispatch(request: Request, table: dict[str, Endpoint] = table) -> Response:
            return await table[request.method](request)

        merged.append(Route(path, dispatch, methods=list(table)))
    return merged


def _endpoints_by_path(routes: list[Route]) -> dict[str, dict[str, Endpoint]]:
    by_path: dict[str, dict[str, Endpoint]] = {}
    for one in routes:
        table = by_path.setdefault(one.path, {})
        for method in one.methods or ():
            table[method] = one.endpoint
    return by_path


class _LeanStarlette(Starlette):
    """Starlette with a direct path for every request the route index settles.

    Each endpoint (``_checks.route``) runs the whole check order and turns every exception
    into its own envelope, so for a matched route the error middlewares, the router and
    ``request_response`` only add frames and closures per request. Those requests call the
    endpoint directly with the same ``Request`` (same ``receive``: long polls still see the
    disconnect); unknown paths, wrong verbs and lifespan go through Starlette as before.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and isinstance(self.router, IndexedRouter):
            endpoint = self.router.lookup(scope)
            if endpoint is not None:
                scope["app"] = self
                response = await endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def build_api(
    engine: Engine,
    settings: Settings,
    *,
    lifespan: Lifespan | None = None,
    commands: Sequence[str] = DEFAULT_WORKFLOW_TASK_COMMANDS,
) -> Starlette:
    """Build the HTTP application over an engine.

    Args:
        engine: the domain facade.
        settings: the server settings (auth, payload limit).
        lifespan: an async context manager factory ``(app) -> ...`` run around serving.
        commands: the workflow-task command types to advertise.

    Returns:
        The Starlette application.
    """
    api = Api(engine, settings, commands=tuple(commands))

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        path = request.url.path
        if status == 404:
            error = ApiError(404, "not_found", f"No route matches {request.method} {path}.")
        elif status == 405:
            allow = (exc.headers or {}).get("Allow", "") if isinstance(exc, HTTPException) else ""
            error = ApiError(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {path}.",
                response_headers={"allow": allow} if allow else None,
            )
        else:
            error = ApiError(status, "server_error" if status >= 500 else "bad_request", "Request refused.")
        return render_error(api, unmatched_spec(path), request, error)

    async def crash(request: Request, exc: Exception) -> Response:
        # Last resort: a failure outside any endpoint (routing, lifespan); endpoints catch their own.
        logger.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
        error = ApiError(500, "server_error", "The server failed to handle the request.")
        return render_error(api, unmatched_spec(request.url.path), request, error)

    app = _LeanStarlette(exception_handlers={HTTPException: http_error, Exception: crash})
    # A trailing slash is a different (unknown) route, not a redirect the clients would not follow.
    routes = _resource_routes(api)
    app.router = IndexedRouter(
        list(_one_route_per_path(routes)),
        endpoints=_endpoints_by_path(routes),
        lifespan=lifespan,
        redirect_slashes=False,
    )
    app.state.api = api
    return app
