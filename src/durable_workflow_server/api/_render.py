"""Answers in the envelope of their plane.

Worker responses echo the protocol version header and carry ``protocol_version`` and
``server_capabilities`` (success and error alike; handler errors also name their text
``error``). Control responses carry the control-plane header, and workflow routes the
``control_plane`` block of control-plane §3. Cluster, health and unmatched routes get a
bare ``{reason, message}`` envelope.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from durable_workflow.protocol import (
    CONTROL_PLANE_HEADER,
    CONTROL_PLANE_VERSION,
    PROTOCOL_HEADER,
    WORKER_PROTOCOL_VERSION,
)
from durable_workflow_server.api._context import Api, Plane, RouteSpec, request_headers
from durable_workflow_server.api._errors import ApiError
from durable_workflow_server.api._json import encode_headers, json_response
from durable_workflow_server.api._manifest import PROJECTED_FIELDS, RESPONSE_SCHEMA

logger = logging.getLogger("durable_workflow_server.api")

_WORKER_PREFIX = "/api/worker/"


def control_plane_block(operation: str, body: dict[str, Any]) -> dict[str, Any]:
    """Build the ``control_plane`` block of a workflow-route body (control-plane §3).

    Args:
        operation: the operation name (``start``, ``describe``, ...).
        body: the response body, whose projected fields are copied.

    Returns:
        The block.
    """
    block: dict[str, Any] = {"schema": RESPONSE_SCHEMA, "version": 1, "operation": operation}
    workflow_id = body.get("workflow_id")
    if workflow_id is not None:
        block["workflow_id"] = workflow_id
    for key in PROJECTED_FIELDS:
        if key in body:
            block[key] = body[key]
    return block


_WORKER_HEADERS = encode_headers({PROTOCOL_HEADER: WORKER_PROTOCOL_VERSION})
_CONTROL_HEADERS = encode_headers({CONTROL_PLANE_HEADER: CONTROL_PLANE_VERSION})
_ACCEPT_ENCODING = b"accept-encoding"


def decorate(
    api: Api, spec: RouteSpec, request: Request, body: dict[str, Any]
) -> tuple[tuple[bytes, bytes], ...]:
    """Add the plane's transport fields to ``body``; return the plane's response headers."""
    if spec.plane is Plane.WORKER:
        body["protocol_version"] = WORKER_PROTOCOL_VERSION
        body["server_capabilities"] = api.capabilities
        return _WORKER_HEADERS
    if spec.plane is Plane.CONTROL:
        if spec.operation is not None:
            params = request.path_params
            for key in ("workflow_id", "run_id"):
                if key in params and body.get(key) is None:
                    body[key] = params[key]
            body["control_plane"] = control_plane_block(spec.operation, body)
        return _CONTROL_HEADERS
    return ()


def render(api: Api, spec: RouteSpec, request: Request, status: int, body: dict[str, Any]) -> Response:
    """Render a handler's answer in the envelope of the route's plane.

    Args:
        api: the shared state.
        spec: the route's rules (decides the envelope).
        request: the request.
        status: HTTP status.
        body: the handler's body; transport fields are added to it.

    Returns:
        The JSON response.
    """
    headers = decorate(api, spec, request, body)
    return json_response(body, status, request_headers(request).get(_ACCEPT_ENCODING), headers)


def render_error(api: Api, spec: RouteSpec, request: Request, error: ApiError) -> Response:
    """Render a refusal in the envelope of the route's plane.

    Args:
        api: the shared state.
        spec: the route's rules (decides the envelope).
        request: the request.
        error: the refusal.

    Returns:
        The JSON error response.
    """
    body: dict[str, Any] = {"reason": error.reason, "message": error.message}
    body.update(error.extra)
    if spec.plane is Plane.WORKER:
        # The worker plane's handler errors name the text `error`; clients read only `reason`.
        body["error"] = error.message
    headers = decorate(api, spec, request, body)
    if error.headers:
        # The refusal's own headers replace the plane's of the same name.
        extra = encode_headers(error.headers)
        names = {name for name, _ in extra}
        headers = (*(pair for pair in headers if pair[0] not in names), *extra)
    if error.status >= 500:
        logger.warning("%s %s -> %s %s", request.method, request.url.path, error.status, error.reason)
    return json_response(body, error.status, request_headers(request).get(_ACCEPT_ENCODING), headers)


_UNMATCHED_WORKER = RouteSpec(Plane.WORKER)
_UNMATCHED_OTHER = RouteSpec(Plane.CLUSTER)


def unmatched_spec(path: str) -> RouteSpec:
    """Return the envelope rules for a request no route matched (404/405).

    Args:
        path: the request path.

    Returns:
        Worker-plane decoration under ``/api/worker/``, a bare envelope elsewhere.
    """
    return _UNMATCHED_WORKER if path.startswith(_WORKER_PREFIX) else _UNMATCHED_OTHER
