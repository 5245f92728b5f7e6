"""What every handler shares: the route rules, the per-application state and the admitted call.

``Api`` is built once per application (engine, auth table, the advertised documents);
``Call`` is one admitted request as a handler sees it; ``RouteSpec`` says how a route is
admitted (``_checks``) and how its answers are decorated (``_render``).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from durable_workflow_server.api._auth import Authenticator, Principal
from durable_workflow_server.api._errors import ApiError, validation_failed
from durable_workflow_server.api._manifest import (
    DEFAULT_WORKFLOW_TASK_COMMANDS,
    cluster_info_document,
    server_capabilities,
)
from durable_workflow_server.config import Settings
from durable_workflow_server.engine import Engine

DEFAULT_NAMESPACE = "default"
#: Held long polls beyond this get 429 ``long_poll_capacity_exhausted`` instead of a
#: coroutine and a socket each; 2.12.0 backs off and retries.
DEFAULT_MAX_HELD_POLLS = 4096
_HEADERS_SCOPE_KEY = "durable_workflow.headers"


def request_headers(request: Request) -> dict[bytes, bytes]:
    """Return the request's headers as a dict keyed by lower-case name, built once per request.

    One C-level ``dict()`` over the ASGI header list is cheaper than Starlette's ``Headers``,
    which scans the list on every lookup (half a dozen per request here).
    """
    scope = request.scope
    cached: dict[bytes, bytes] | None = scope.get(_HEADERS_SCOPE_KEY)
    if cached is None:
        cached = scope[_HEADERS_SCOPE_KEY] = dict(scope["headers"])
    return cached


def header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    """Return one header's value as text (``None`` when absent)."""
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")


class Plane(enum.Enum):
    """Which contract a route belongs to; it decides checks and response decoration."""

    PUBLIC = "public"  # health, ready: no auth, no version header
    CLUSTER = "cluster"  # cluster info: any role, no version header
    WORKER = "worker"
    CONTROL = "control"


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """How one route is admitted and decorated.

    Attributes:
        plane: the contract the route belongs to.
        roles: roles allowed to call it (empty for public routes).
        operation: the ``control_plane`` block's operation for workflow routes, else ``None``.
        check_namespace: whether the resolved namespace must exist.
    """

    plane: Plane
    roles: frozenset[str] = frozenset()
    operation: str | None = None
    check_namespace: bool = True


class Api:
    """What every handler shares: the engine, the auth table and the precomputed documents."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        commands: tuple[str, ...] = DEFAULT_WORKFLOW_TASK_COMMANDS,
        max_held_polls: int = DEFAULT_MAX_HELD_POLLS,
    ) -> None:
        """Build the shared state once per application.

        Args:
            engine: the domain facade.
            settings: the server settings.
            commands: the workflow-task command types the engine supports.
            max_held_polls: how many long polls may be held at once.
        """
        self.engine = engine
        self.max_payload_bytes = settings.max_payload_bytes
        self.auth = Authenticator(settings)
        self.capabilities = server_capabilities(commands)
        self.cluster_info = cluster_info_document(
            server_id=f"dw-{uuid.uuid4().hex[:12]}",
            max_payload_bytes=settings.max_payload_bytes,
            capabilities=self.capabilities,
        )
        # Namespaces are never deleted, so a positive answer can be remembered for good and
        # the hot path skips a storage round trip per request.
        self.known_namespaces: set[str] = set()
        self.max_held_polls = max_held_polls
        self.held_polls = 0

    def claim_poll_slot(self, task_kind: str, task_queue: str | None) -> None:
        """Count one more held long poll, or refuse with the protocol's 429 body.

        Args:
            task_kind: ``workflow_task`` or ``activity_task``.
            task_queue: the polled queue, echoed in the refusal.

        Raises:
            ApiError: 429 ``long_poll_capacity_exhausted``.
        """
        if self.held_polls >= self.max_held_polls:
            raise ApiError(
                429,
                "long_poll_capacity_exhausted",
                "The server is holding as many long polls as it can; retry shortly.",
                response_headers={"retry-after": "1"},
                task=None,
                poll_status="long_poll_capacity_exhausted",
                task_kind=task_kind,
                task_queue=task_queue,
                retryable=True,
                retry_after_seconds=1,
            )
        self.held_polls += 1

    def release_poll_slot(self) -> None:
        """Forget one held long poll."""
        self.held_polls -= 1


class Call:
    """One admitted request, as handlers see it."""

    __slots__ = ("api", "body", "namespace", "principal", "request")

    def __init__(
        self, api: Api, request: Request, namespace: str, body: Any, principal: Principal | None
    ) -> None:
        self.api = api
        self.request = request
        self.namespace = namespace
        self.body = body
        self.principal = principal

    @property
    def engine(self) -> Engine:
        """The domain facade."""
        return self.api.engine

    def path(self, name: str) -> str:
        """Return a path parameter."""
        value: str = self.request.path_params[name]
        return value

    def body_object(self) -> dict[str, Any]:
        """Return the JSON body as an object (``{}`` when there was none).

        Raises:
            ApiError: 422 when the body is JSON but not an object.
        """
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise validation_failed({"body": ["The request body must be a JSON object."]})
        return self.body


Reply = tuple[int, dict[str, Any]]
Handler = Callable[[Call], Awaitable[Reply]]
