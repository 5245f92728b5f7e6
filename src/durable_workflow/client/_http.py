"""The JSON layer over a :class:`Transport`: headers, retries and error answers.

Every call the SDK makes goes through :class:`HttpApi`. It

- prefixes the route with ``/api`` (the user's URL is the server root);
- adds ``Authorization``, ``X-Namespace`` and the protocol header the route family needs:
  the control-plane version on control routes, the worker protocol version on
  ``/worker/*``, neither on ``/health``, ``/ready`` and ``/cluster/info``;
- retries idempotent calls per :class:`TransportRetryPolicy` on a lost connection, a timeout,
  5xx and 429 (worker completions are idempotent per (task, attempt), and a start that was
  applied before its answer got lost comes back as a 409 the client resolves);
- unwraps the worker poll envelope (``durable-workflow.poll-transport.v1``) if a server uses it;
- turns error answers into :func:`errors.server_error_for` exceptions.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import orjson

from durable_workflow import __version__
from durable_workflow.client._transport import Transport
from durable_workflow.errors import ClientError, ServerError, TransportError, server_error_for
from durable_workflow.protocol import (
    CONTROL_PLANE_HEADER,
    CONTROL_PLANE_VERSION,
    NAMESPACE_HEADER,
    PROTOCOL_HEADER,
    WORKER_PROTOCOL_VERSION,
)
from durable_workflow.retry_policy import TransportRetryPolicy

__all__ = ["Answer", "HttpApi"]

#: Seconds for a call that names no timeout. Long polls pass their own (wait + 5 s).
DEFAULT_TIMEOUT_SECONDS = 30.0

_API_PREFIX = "/api"
_POLL_ENVELOPE_SCHEMA = "durable-workflow.poll-transport.v1"
# Routes that must not carry a version header (control-plane §1).
_UNVERSIONED = frozenset({"/health", "/ready", "/cluster/info"})
_USER_AGENT = f"durable-workflow-python/{__version__}"


@dataclass(frozen=True, slots=True)
class Answer:
    """A decoded answer: status, JSON body (``{}`` when empty or not JSON) and attempts used."""

    status: int
    body: dict[str, Any]
    attempts: int = 1

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


def _is_retryable_status(status: int) -> bool:
    return status >= 500 or status == 429


class HttpApi:
    """Talks JSON to one server in one namespace; shared by the client and the worker.

    Args:
        transport: where requests go.
        token: a bearer token, or None.
        namespace: sent as ``X-Namespace`` on every request.
        retry_policy: attempts and backoff for retryable failures.
        rng: randomness for backoff jitter (tests pass a seeded one).
        sleep: the coroutine used between attempts (tests may pass a fake).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        token: str | None,
        namespace: str,
        retry_policy: TransportRetryPolicy,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.transport = transport
        self.namespace = namespace
        self.retry_policy = retry_policy
        self._rng = rng or random.Random()
        self._sleep = sleep
        base = {"Accept": "application/json", "User-Agent": _USER_AGENT, NAMESPACE_HEADER: namespace}
        if token:
            base["Authorization"] = f"Bearer {token}"
        # The three header sets a route can need, built once; read-only, as they are shared.
        self._worker_headers = MappingProxyType({**base, PROTOCOL_HEADER: WORKER_PROTOCOL_VERSION})
        self._control_headers = MappingProxyType({**base, CONTROL_PLANE_HEADER: CONTROL_PLANE_VERSION})
        self._plain_headers = MappingProxyType(base)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first retry).

        Args:
            attempt: how many attempts have failed so far.

        Returns:
            The policy's delay, jitter included.
        """
        return float(self.retry_policy.delay(attempt, rng=self._rng))

    def headers_for(self, path: str) -> dict[str, str]:
        """The headers a request to ``path`` (below ``/api``) carries."""
        return dict(self._shared_headers(path))

    def _shared_headers(self, path: str) -> Mapping[str, str]:
        if path.startswith("/worker/"):
            return self._worker_headers
        if path in _UNVERSIONED:
            return self._plain_headers
        return self._control_headers

    async def exchange(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        idempotent: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send a request, retrying per policy, and return the final answer without raising.

        Args:
            method: the HTTP verb.
            path: the route below ``/api``, such as ``/workflows``.
            json: the body, or None.
            params: query parameters; None values are left out.
            timeout: seconds per attempt (default 30).
            idempotent: whether the request may be sent again after a failure.
            headers: extra headers for this request.

        Returns:
            The last answer, whatever its status.

        Raises:
            errors.TransportError: no answer after the last attempt.
        """
        send_headers = self._shared_headers(path)
        if headers:
            send_headers = {**send_headers, **headers}
        query = {k: _param(v) for k, v in params.items() if v is not None} if params else None
        max_attempts = max(1, int(self.retry_policy.max_attempts)) if idempotent else 1
        attempt = 0
        while True:
            attempt += 1
            try:
                reply = await self.transport.request(
                    method,
                    _API_PREFIX + path,
                    json=json,
                    params=query or None,
                    headers=send_headers,
                    timeout=timeout if timeout is not None else DEFAULT_TIMEOUT_SECONDS,
                )
            except TransportError:
                if attempt >= max_attempts:
                    raise
                await self._sleep(self.backoff(attempt))
                continue
            status, body = _decode(reply.status, reply.body)
            if _is_retryable_status(status) and attempt < max_attempts:
                await self._sleep(self._retry_delay(attempt, body))
                continue
            return Answer(status, body, attempt)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        idempotent: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Like :meth:`exchange`, but return the body of a 2xx answer and raise for the rest.

        Returns:
            The decoded JSON body.

        Raises:
            errors.ServerError: a subclass chosen by :func:`errors.server_error_for`.
            errors.TransportError: no answer after the last attempt.
        """
        answer = await self.exchange(
            method, path, json=json, params=params, timeout=timeout, idempotent=idempotent, headers=headers
        )
        if not answer.ok:
            raise self.error_for(answer)
        return answer.body

    @staticmethod
    def error_for(answer: Answer) -> ServerError:
        """The exception for an error answer."""
        return server_error_for(answer.status, answer.body)

    def _retry_delay(self, attempt: int, body: Mapping[str, Any]) -> float:
        delay = self.backoff(attempt)
        # 429 and 503 pressure answers say when to come back; honour that, but within the
        # policy's ceiling so one answer cannot park a caller for a minute.
        hint = body.get("retry_after_seconds")
        if isinstance(hint, int | float) and hint > delay:
            delay = min(float(hint), float(self.retry_policy.maximum_backoff_seconds))
        return delay

    async def close(self) -> None:
        """Close the transport."""
        await self.transport.close()


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _decode(status: int, raw: bytes) -> tuple[int, dict[str, Any]]:
    if not raw:
        return status, {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        if 200 <= status < 300:
            raise ClientError(f"server answered HTTP {status} with a body that is not JSON") from None
        return status, {}
    if isinstance(body, dict) and body.get("schema") == _POLL_ENVELOPE_SCHEMA:
        # A server may commit 200 early and report the real status inside (worker-plane §1).
        inner = body.get("body")
        inner_status = body.get("status")
        status = inner_status if isinstance(inner_status, int) else status
        body = inner if isinstance(inner, dict) else {}
    if not isinstance(body, dict):
        if 200 <= status < 300:
            raise ClientError(f"server answered HTTP {status} with JSON that is not an object")
        return status, {}
    return status, body
