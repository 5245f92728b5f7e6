"""Helpers for the HTTP API tests: the server subprocess, and one request function."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict
from server_process import DwServer, free_port

from durable_workflow.protocol import (
    ACCEPT_POLL,
    CONTROL_PLANE_HEADER,
    CONTROL_PLANE_VERSION,
    PROTOCOL_HEADER,
    WORKER_PROTOCOL_VERSION,
)

WORKER_HEADERS = {PROTOCOL_HEADER: WORKER_PROTOCOL_VERSION}
CONTROL_HEADERS = {CONTROL_PLANE_HEADER: CONTROL_PLANE_VERSION}
POLL_HEADERS = {**WORKER_HEADERS, "Accept": ACCEPT_POLL}
_UNSET: Any = object()


@dataclass
class Reply:
    """What came back."""

    status: int
    headers: CIMultiDict[str]
    body: Any

    @property
    def reason(self) -> Any:
        """The body's ``reason``."""
        return self.body.get("reason") if isinstance(self.body, dict) else None


def unique(prefix: str) -> str:
    """A fresh id, so tests sharing a server never see each other's rows."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def send(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    json: Any = _UNSET,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    token: str | None = None,
    params: dict[str, str] | None = None,
) -> Reply:
    """Send one request and decode the JSON answer.

    Args:
        http: the session.
        method: HTTP method.
        url: full URL.
        json: a body to send as JSON (omit for none).
        data: raw body bytes (sent as-is, with whatever Content-Type ``headers`` say).
        headers: request headers.
        token: a bearer token.
        params: query parameters.

    Returns:
        The reply.
    """
    out = dict(headers or {})
    if token is not None:
        out["Authorization"] = f"Bearer {token}"
    body = data
    if json is not _UNSET:
        body = orjson.dumps(json)
        out.setdefault("Content-Type", "application/json")
    async with http.request(method, url, data=body, headers=out, params=params) as response:
        raw = await response.read()
        try:
            decoded = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            decoded = raw.decode(errors="replace")
        return Reply(response.status, CIMultiDict(response.headers), decoded)



__all__ = ["DwServer", "Reply", "free_port", "send", "unique"]
