"""HTTP-level refusals and the mapping of engine refusals onto status codes.

Handlers and checks raise :class:`ApiError`; the endpoint wrapper in ``_checks`` renders it in
the envelope of the route's plane (``_render``). An
:class:`~durable_workflow_server.engine.EngineError` is translated by :func:`from_engine_error`;
its ``status`` follows the kind table of ``docs/server-internals.md``.
"""

from __future__ import annotations

from typing import Any

from durable_workflow_server.engine import EngineError


class ApiError(Exception):
    """A refusal with its HTTP status, machine ``reason``, human ``message`` and body extras.

    The first three parameters are positional-only so that extras may use any name
    (engine refusals carry e.g. ``status`` for the run status).
    """

    __slots__ = ("extra", "headers", "message", "reason", "status")

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        /,
        *,
        response_headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = response_headers
        self.extra = extra


def from_engine_error(error: EngineError) -> ApiError:
    """Translate a domain refusal into an HTTP one, keeping its extras.

    Args:
        error: what the engine raised.

    Returns:
        The equivalent ``ApiError``.
    """
    extra = dict(error.extra)
    if error.reason == "validation_failed":
        errors = extra.get("errors") or {}
        extra["errors"] = errors
        extra["validation_errors"] = errors
    return ApiError(error.status, error.reason, error.message, **extra)


def validation_failed(errors: dict[str, list[str]]) -> ApiError:
    """Return the 422 ``validation_failed`` refusal for field errors.

    Args:
        errors: field path -> messages.

    Returns:
        An ``ApiError`` carrying the map as both ``errors`` and ``validation_errors``.
    """
    first = next(iter(errors.values()))[0] if errors else "The request is invalid."
    return ApiError(422, "validation_failed", first, errors=errors, validation_errors=errors)
