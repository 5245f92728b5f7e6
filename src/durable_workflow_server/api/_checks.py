"""The request pipeline every route shares: the protocol's check order, then the handler.

Check order (worker-plane §1, control-plane §2), first failure wins:

1. body size: 413 ``payload_too_large`` (``Content-Length`` and the bytes actually read)
2. media type, only when there is a body: 415 ``unsupported_media_type``
3. JSON syntax: 400 ``malformed_json``
4. authentication: 401 ``unauthorized``
5. role: 403 ``forbidden``
6. version header: 400 (worker protocol on ``/worker/*``, control-plane version on control routes)
7. namespace exists: 404 ``namespace_not_found``
8. field validation (in the handler): 422 ``validation_failed``
9. domain refusals from the engine

This is a plain function around each Starlette endpoint rather than a middleware: it runs only
for matched routes, and ``BaseHTTPMiddleware`` would cost more than the whole check list.
Answers and refusals are rendered by ``_render`` in the envelope of the route's plane.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from durable_workflow.protocol import (
    CONTROL_PLANE_HEADER,
    CONTROL_PLANE_VERSION,
    NAMESPACE_HEADER,
    PROTOCOL_HEADER,
    WORKER_PROTOCOL_VERSION,
    is_supported_worker_protocol,
)
from durable_workflow_server.api._auth import ANONYMOUS, Principal
from durable_workflow_server.api._context import (
    DEFAULT_NAMESPACE,
    Api,
    Call,
    Handler,
    Plane,
    RouteSpec,
    header,
    request_headers,
)
from durable_workflow_server.api._errors import ApiError, from_engine_error
from durable_workflow_server.api._json import parse_json
from durable_workflow_server.api._render import render, render_error
from durable_workflow_server.engine import EngineError

logger = logging.getLogger("durable_workflow_server.api")

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ACCEPTED_CONTENT_TYPES = ["application/json", "application/*+json"]
_PROTOCOL_KEY = PROTOCOL_HEADER.lower().encode()
_CONTROL_PLANE_KEY = CONTROL_PLANE_HEADER.lower().encode()
_NAMESPACE_KEY = NAMESPACE_HEADER.lower().encode()
#: Worker protocol header values every client sends, accepted without parsing them again.
_ACCEPTED_PROTOCOLS = frozenset(
    value.encode() for value in (WORKER_PROTOCOL_VERSION, "1.19") if is_supported_worker_protocol(value)
)


T = TypeVar("T")


async def unless_client_leaves(request: Request, work: Awaitable[T]) -> T:
    """Await ``work`` (a held long poll), abandoning it the moment the client disconnects.

    The 2.12.0 worker cancels its polls mid-request when it stops; a poll that went on
    holding would lease the next task to a socket nobody reads, and the task would sit
    leased until the lease expired. The body has been read already, so the only message
    ``receive()`` can still deliver is ``http.disconnect``.

    Args:
        request: the request whose connection is watched.
        work: the engine call (it runs as its own task).

    Returns:
        What ``work`` returned.

    Raises:
        ClientDisconnect: the client went away first (``work`` was cancelled).
    """
    held = asyncio.ensure_future(work)
    left = False

    async def watch() -> None:
        nonlocal left
        while (await request.receive())["type"] != "http.disconnect":
            pass
        left = True
        held.cancel()

    watcher = asyncio.create_task(watch())
    try:
        # If this handler is cancelled (server shutdown), awaiting the task cancels it too.
        return await held
    except asyncio.CancelledError:
        if left:
            raise ClientDisconnect() from None
        raise
    finally:
        watcher.cancel()


def route(api: Api, path: str, method: str, spec: RouteSpec, handler: Handler) -> Route:
    """Build a Starlette route whose endpoint runs the checks and then ``handler``.

    Args:
        api: the shared state.
        path: the URL path, with ``{param}`` placeholders.
        method: the one HTTP method served.
        spec: admission and decoration rules.
        handler: the resource logic; returns ``(status, body)``.

    Returns:
        The route.
    """

    async def endpoint(request: Request) -> Response:
        try:
            try:
                call = await _admit(api, spec, request)
                status, body = await handler(call)
                return render(api, spec, request, status, body)
            except ApiError as exc:
                return render_error(api, spec, request, exc)
            except EngineError as exc:
                return render_error(api, spec, request, from_engine_error(exc))
        except ClientDisconnect:
            # Nobody is left to read an answer; uvicorn discards it.
            return Response(status_code=400)
        except Exception:
            # The outer block also covers failures while rendering a refusal.
            logger.exception("unhandled error in %s %s", request.method, request.url.path)
            return render_error(
                api,
                spec,
                request,
                ApiError(500, "server_error", "The server failed to handle the request."),
            )

    endpoint.__name__ = getattr(handler, "__name__", "endpoint")
    return Route(path, endpoint, methods=[method])


async def _admit(api: Api, spec: RouteSpec, request: Request) -> Call:
    headers = request_headers(request)
    body: Any = None
    if request.method in _BODY_METHODS:
        raw = await _read_body(request, api.max_payload_bytes)
        if raw:
            if not _is_json_media_type(header(headers, b"content-type")):
                raise ApiError(
                    415,
                    "unsupported_media_type",
                    "The request body must be sent as application/json.",
                    accepted_content_types=_ACCEPTED_CONTENT_TYPES,
                )
            body = parse_json(raw)
    principal: Principal | None = None
    if spec.plane is not Plane.PUBLIC:
        auth = api.auth
        principal = auth.authenticate(header(headers, b"authorization")) if auth.enabled else ANONYMOUS
        if principal is None:
            raise ApiError(401, "unauthorized", "Unauthenticated: send Authorization: Bearer <token>.")
        if not principal.roles & spec.roles:
            raise ApiError(
                403,
                "forbidden",
                f"The {principal.role} role may not call this route.",
                role=principal.role,
                allowed_roles=sorted(spec.roles),
            )
    if spec.plane is Plane.WORKER:
        if headers.get(_PROTOCOL_KEY) not in _ACCEPTED_PROTOCOLS:
            _check_worker_protocol(header(headers, _PROTOCOL_KEY))
    elif spec.plane is Plane.CONTROL:
        _check_control_plane_version(header(headers, _CONTROL_PLANE_KEY))
    namespace = resolve_namespace(request, headers)
    if spec.check_namespace and namespace not in api.known_namespaces:
        if not await api.engine.namespace_exists(namespace):
            raise ApiError(
                404,
                "namespace_not_found",
                f"Namespace [{namespace}] does not exist.",
                namespace=namespace,
                remediation="Use an existing namespace (the server seeds 'default') in X-Namespace.",
            )
        api.known_namespaces.add(namespace)
    return Call(api, request, namespace, body, principal)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = header(request_headers(request), b"content-length")
    if declared is not None:
        try:
            too_big = int(declared) > limit
        except ValueError:
            too_big = False  # a broken header is uvicorn's business; the real size still counts
        if too_big:
            raise _payload_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    receive = request.receive
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _payload_too_large(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _payload_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"The request body is larger than the server's limit of {limit} bytes.",
        limit=limit,
    )


def _is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _check_worker_protocol(value: str | None) -> None:
    if is_supported_worker_protocol(value):
        return
    missing = value is None or not value.strip()
    raise ApiError(
        400,
        "missing_protocol_version" if missing else "unsupported_protocol_version",
        (
            f"The {PROTOCOL_HEADER} header is required on worker routes."
            if missing
            else f"Worker protocol version [{value}] is not supported."
        ),
        supported_version=WORKER_PROTOCOL_VERSION,
        requested_version=None if missing else value,
        remediation=(
            f"Send {PROTOCOL_HEADER}: {WORKER_PROTOCOL_VERSION}; "
            f"any 1.x up to {WORKER_PROTOCOL_VERSION} is accepted."
        ),
    )


def _check_control_plane_version(value: str | None) -> None:
    if value is not None and value.strip() == CONTROL_PLANE_VERSION:
        return
    missing = value is None or not value.strip()
    raise ApiError(
        400,
        "missing_control_plane_version" if missing else "unsupported_control_plane_version",
        (
            f"The {CONTROL_PLANE_HEADER} header is required on control-plane routes."
            if missing
            else f"Control-plane version [{value}] is not supported."
        ),
        supported_version=CONTROL_PLANE_VERSION,
        requested_version=None if missing else value,
        remediation=f"Send {CONTROL_PLANE_HEADER}: {CONTROL_PLANE_VERSION}.",
    )


def resolve_namespace(request: Request, headers: dict[bytes, bytes]) -> str:
    """Return the request's namespace: ``X-Namespace``, then ``?namespace=``, then ``default``.

    Args:
        request: the request.
        headers: its headers, from :func:`request_headers`.

    Returns:
        The lower-cased namespace name.
    """
    value = header(headers, _NAMESPACE_KEY)
    if value is not None and value.strip():
        return value.strip().lower()
    if request.scope.get("query_string"):
        query = request.query_params.get("namespace")
        if query is not None and query.strip():
            return query.strip().lower()
    return DEFAULT_NAMESPACE
