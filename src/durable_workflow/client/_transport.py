"""The transport seam: one HTTP exchange, nothing else.

A :class:`Transport` sends one request and returns one :class:`Response`. It knows nothing
about the API's headers, retries or error bodies; the JSON layer in ``_http.py`` adds those.
Keeping the seam this thin lets unit tests inject :class:`MockTransport` and integration tests
use :class:`AiohttpTransport` against a real server, with every line above the seam shared.

A transport raises only :class:`NetworkError` (no answer: refused, reset, dropped) or
:class:`RequestTimeout` (no answer in time); both are :class:`errors.TransportError`, which
the JSON layer treats as retryable.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from durable_workflow.errors import TransportError

__all__ = [
    "AiohttpTransport",
    "MockTransport",
    "NetworkError",
    "Request",
    "RequestTimeout",
    "Response",
    "Transport",
]


#: Entries kept in each per-transport cache (timeouts, header sets); a few are in use at once.
_CACHE_MAX = 64


class NetworkError(TransportError):
    """The connection was refused, reset or dropped before a full answer arrived."""


class RequestTimeout(TransportError):
    """No full answer arrived within the request's timeout."""


class Response:
    """One HTTP answer: status, headers (lower-case names) and the raw body.

    Args:
        status: the HTTP status code.
        headers: response headers; names are stored lower-cased.
        body: the raw body bytes.
        json: a value to encode as the body instead of ``body`` (handy in mock handlers).
    """

    __slots__ = ("_headers", "_raw_headers", "body", "status")

    def __init__(
        self,
        status: int,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        json: Any = None,
    ) -> None:
        self.status = status
        self._raw_headers: Mapping[str, str] | None = headers
        self._headers: dict[str, str] | None = None
        if json is not None:
            body = orjson.dumps(json)
            self.headers.setdefault("content-type", "application/json")
        self.body = body

    @property
    def headers(self) -> dict[str, str]:
        """The headers, names lower-cased (built on first use: most callers never look)."""
        headers = self._headers
        if headers is None:
            headers = self._headers = {k.lower(): v for k, v in (self._raw_headers or {}).items()}
            self._raw_headers = None
        return headers

    def json(self) -> Any:
        """Decode the body as JSON.

        Returns:
            The decoded value.

        Raises:
            orjson.JSONDecodeError: the body is not JSON.
        """
        return orjson.loads(self.body)

    def __repr__(self) -> str:
        return f"Response(status={self.status}, body={self.body[:200]!r})"


class Transport(abc.ABC):
    """Sends one HTTP request to the server and returns its answer.

    ``path`` is relative to the server root (for example ``/api/workflows``); the transport
    owns the base URL, connections and timeouts.
    """

    @abc.abstractmethod
    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send one request.

        Args:
            method: the HTTP verb.
            path: the path below the server root, starting with ``/``.
            json: a JSON-encodable body, or None for no body.
            params: query parameters.
            headers: request headers.
            timeout: seconds for the whole exchange; None means the transport's default.

        Returns:
            The answer, whatever its status.

        Raises:
            NetworkError: no answer (refused, reset, dropped).
            RequestTimeout: no answer within ``timeout``.
        """

    async def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release connections. Calling it twice is harmless."""


class AiohttpTransport(Transport):
    """The production transport: one aiohttp session with a pool sized for many long polls.

    Args:
        base_url: the server root, such as ``http://127.0.0.1:8080``.
        max_connections: pool size. Every worker poller and every ``handle.result()`` holds a
            connection for up to a long-poll period, so the default is far above aiohttp's 100.
        default_timeout: seconds for a request that names no timeout.
        keepalive_seconds: how long an idle connection stays pooled.
    """

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 1024,
        default_timeout: float = 60.0,
        keepalive_seconds: float = 30.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._max_connections = max_connections
        self._default_timeout = default_timeout
        self._keepalive_seconds = keepalive_seconds
        # Imported here so that ``import durable_workflow`` and offline tools stay cheap.
        import aiohttp
        from multidict import CIMultiDict

        self._aiohttp = aiohttp
        self._multidict = CIMultiDict
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        # Per-request objects that are the same for most requests, built once: the timeout of
        # each distinct duration and aiohttp's header multidict of each distinct header set.
        self._timeouts: dict[float, Any] = {}
        self._header_sets: dict[tuple[tuple[tuple[str, str], ...], bool], Any] = {}

    def _get_session(self) -> Any:
        # The session binds to the running loop, so it is created on first use rather than in
        # ``__init__`` (a Client may be built before the loop starts).
        if self._session is None:
            if self._closed:
                raise NetworkError("transport is closed")
            aiohttp = self._aiohttp
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                limit_per_host=self._max_connections,
                keepalive_timeout=self._keepalive_seconds,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # The API uses bearer tokens, never cookies; a dummy jar avoids per-response
                # cookie parsing and storage.
                cookie_jar=_no_cookie_jar(aiohttp),
                auto_decompress=True,
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        session = self._get_session()
        aiohttp = self._aiohttp
        data: bytes | None = None if json is None else orjson.dumps(json)
        total = timeout if timeout is not None else self._default_timeout
        client_timeout = self._timeouts.get(total)
        if client_timeout is None:
            client_timeout = aiohttp.ClientTimeout(total=total)
            if len(self._timeouts) < _CACHE_MAX:
                self._timeouts[total] = client_timeout
        try:
            async with session.request(
                method,
                self._base_url + path,
                data=data,
                params=dict(params) if params else None,
                headers=self._headers_for(headers, data is not None),
                timeout=client_timeout,
            ) as reply:
                body = await reply.read()
                return Response(reply.status, headers=reply.headers, body=body)
        except TimeoutError as exc:  # aiohttp's ServerTimeoutError is also a TimeoutError
            raise RequestTimeout(f"{method} {path}: no answer within {client_timeout.total} s") from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            raise NetworkError(f"{method} {path}: {exc}") from exc

    def _headers_for(self, headers: Mapping[str, str] | None, has_body: bool) -> Any:
        """aiohttp's header multidict for ``headers`` plus our defaults, built once per content.

        The JSON layer sends the same few header sets again and again; aiohttp copies what it
        is given, so one multidict can serve every request with the same headers.
        """
        key = (tuple(headers.items()) if headers else (), has_body)
        cached = self._header_sets.get(key)
        if cached is not None:
            return cached
        multidict = self._multidict(key[0])
        # aiohttp would ask for gzip by default: on the loopback or a LAN the server's compress
        # and our decompress cost more CPU than the bytes saved (bodies are a few KiB at most).
        if "Accept-Encoding" not in multidict:
            multidict["Accept-Encoding"] = "identity"
        if has_body and "Content-Type" not in multidict:
            multidict["Content-Type"] = "application/json"
        if len(self._header_sets) < _CACHE_MAX:
            self._header_sets[key] = multidict
        return multidict

    async def close(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _no_cookie_jar(aiohttp: Any) -> Any:
    """aiohttp's ``DummyCookieJar``, minus the empty ``SimpleCookie`` it builds per request.

    aiohttp only reads what ``filter_cookies`` returns (it would add to it only for a
    request given ``cookies=``, which this transport never passes), so one empty instance
    serves every request.
    """
    from http.cookies import SimpleCookie

    empty: SimpleCookie = SimpleCookie()

    class NoCookieJar(aiohttp.DummyCookieJar):  # type: ignore[misc]
        def filter_cookies(self, request_url: Any) -> SimpleCookie:
            return empty

    return NoCookieJar()


@dataclass(frozen=True)
class Request:
    """What :class:`MockTransport` hands its handler: one request as the client sent it.

    ``headers`` has lower-case names. ``json`` is the body after an orjson round trip, so a
    body that would not encode fails the test just as it would fail in production.
    """

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    timeout: float | None = None


Handler = Callable[[Request], Response | Awaitable[Response]]


class MockTransport(Transport):
    """A transport that calls ``handler(request)`` instead of the network.

    The handler returns a :class:`Response` (or an awaitable of one, to simulate a slow
    server). Raising :class:`NetworkError` or :class:`RequestTimeout` simulates a lost
    connection; a plain ``ConnectionError`` or ``TimeoutError`` is converted to those.
    Every request is also appended to :attr:`requests`.

    Args:
        handler: the function that answers requests.
    """

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[Request] = []
        self.closed = False

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        body = orjson.loads(orjson.dumps(json)) if json is not None else None
        request = Request(
            method=method,
            path=path,
            params={k: str(v) for k, v in (params or {}).items()},
            headers={k.lower(): v for k, v in (headers or {}).items()},
            json=body,
            timeout=timeout,
        )
        self.requests.append(request)
        try:
            answer = self._handler(request)
            if inspect.isawaitable(answer):
                answer = await answer
        except TransportError:
            raise
        except TimeoutError as exc:
            raise RequestTimeout(str(exc) or "mock timeout") from exc
        except (ConnectionError, OSError) as exc:
            raise NetworkError(str(exc) or "mock connection error") from exc
        assert isinstance(answer, Response), "a MockTransport handler must return a Response"
        return answer

    async def close(self) -> None:
        self.closed = True
