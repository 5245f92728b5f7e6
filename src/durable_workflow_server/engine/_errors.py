"""The one exception the engine raises for a refused request."""

from __future__ import annotations

from typing import Any

#: kind -> HTTP status the API maps it to (see docs/server-internals.md).
KINDS = {
    "bad_request": 400,
    "not_found": 404,
    "precondition": 412,
    "conflict": 409,
    "invalid": 422,
    "unavailable": 503,
    "timeout": 504,
}


class EngineError(Exception):
    """A domain refusal: ``kind`` picks the HTTP status, ``reason`` is the protocol's code.

    Args:
        kind: one of ``bad_request``, ``not_found``, ``precondition``, ``conflict``,
            ``invalid``, ``unavailable``.
        reason: the machine-readable reason clients read.
        message: human-readable text.
        **extra: fields copied into the error body next to ``reason`` and ``message``.
    """

    def __init__(self, kind: str, reason: str, message: str, **extra: Any) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown EngineError kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.reason = reason
        self.message = message
        self.extra = extra

    @property
    def status(self) -> int:
        """The HTTP status for this kind."""
        return KINDS[self.kind]

    def __repr__(self) -> str:
        return f"EngineError({self.kind!r}, {self.reason!r}, {self.message!r})"


def invalid(errors: dict[str, list[str]], message: str = "The request is invalid.") -> EngineError:
    """A 422 ``validation_failed`` with its ``errors`` map."""
    return EngineError("invalid", "validation_failed", message, errors=errors)
